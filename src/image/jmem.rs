//! libjpeg's system-dependent memory manager, so that a conversion thread
//! keeps its last JPEG's coefficient arrays for the next one.
//!
//! libjpeg splits its memory manager in two: `jmemmgr.c` (pools, virtual
//! arrays) and a system-dependent half declared in `jmemsys.h` that gets and
//! frees memory, of which the IJG shipped several for different systems and
//! libjpeg-turbo builds one, `jmemnobs.c` (plain `malloc` and `free`). The
//! eight functions below take that half's place: batchimg's objects define
//! them, so the linker never pulls `jmemnobs.o` from the static
//! `libturbojpeg.a` (and would fail on a duplicate symbol if it did). The
//! process's other libjpeg, the shared one ImageMagick's JPEG coder loads,
//! keeps its own.
//!
//! Why: the lossless transform holds every coefficient of the image (32 MB
//! for a 12-megapixel 4:2:0 photo) in a few blocks that libjpeg zeroes before
//! decoding into them. With `malloc` and `free` per image, glibc hands blocks
//! of that size back to the kernel between images and gets them again as
//! fresh pages, so each image paid thousands of page faults for memory it
//! had a moment before (figures in docs/performance.md); the lossless ceiling, one transform after another, reuses its
//! blocks. A thread that opts in ([`keep_blocks`]) keeps the large blocks
//! libjpeg frees and hands one back when a later request has exactly its
//! size, as every image of the same dimensions and subsampling has. The blocks kept
//! are bounded per thread, outside the memory budget (a quarter of it over
//! all threads, see `Converter::new`). An image whose request finds no block
//! of its size frees the last image's blocks before it allocates its own,
//! and [`settle`] frees after each image those it did not use, so a thread
//! never holds more than the larger of two images' arrays.
//!
//! Every other thread (the header reads on the runtime, the bench's ceiling)
//! gets plain `malloc` and `free`, as with `jmemnobs.c`.

use std::cell::RefCell;
use std::ffi::c_void;

use libc::{c_long, size_t};

/// The start of libjpeg's `struct jpeg_common_struct` (`jpeglib.h`): the
/// fields this module reads.
#[repr(C)]
struct CommonStruct {
    err: *mut ErrorMgr,
    mem: *mut MemoryMgr,
}

/// The start of `struct jpeg_error_mgr`: five methods, then the message code.
#[repr(C)]
struct ErrorMgr {
    error_exit: Option<unsafe extern "C" fn(*mut CommonStruct)>,
    _methods: [*const c_void; 4],
    msg_code: libc::c_int,
}

/// `struct jpeg_memory_mgr`: eleven methods, then the memory limit.
#[repr(C)]
struct MemoryMgr {
    _methods: [*const c_void; 11],
    max_memory_to_use: c_long,
}

/// `JERR_NO_BACKING_STORE` ("Memory limit exceeded") in libjpeg-turbo's
/// message table as built with the libjpeg 6b API (`JPEG_LIB_VERSION` 62, the
/// bundled build's default); a unit test checks the message it maps to.
const JERR_NO_BACKING_STORE: libc::c_int = 49;

/// A large block kept for a later request of the same size.
struct Block {
    ptr: *mut c_void,
    size: usize,
    /// Freed into the cache during the current image.
    fresh: bool,
}

#[derive(Default)]
struct Kept {
    /// At most this many bytes are kept; zero: this thread keeps nothing.
    cap: usize,
    blocks: Vec<Block>,
    /// Requests served from a kept block, for the tests.
    reused: u64,
}

impl Kept {
    fn take(&mut self, size: usize) -> Option<*mut c_void> {
        let Some(i) = self.blocks.iter().position(|b| b.size == size) else {
            // An image of other dimensions or subsampling: the last image's
            // blocks will not fit it, so they go before it allocates its own.
            self.free(|b| !b.fresh);
            return None;
        };
        self.reused += 1;
        Some(self.blocks.swap_remove(i).ptr)
    }

    fn give(&mut self, ptr: *mut c_void, size: usize) -> bool {
        if self.bytes() + size > self.cap {
            return false;
        }
        self.blocks.push(Block {
            ptr,
            size,
            fresh: true,
        });
        true
    }

    /// Bytes kept (a handful of blocks: one per component and a few small).
    fn bytes(&self) -> usize {
        self.blocks.iter().map(|b| b.size).sum()
    }

    /// Frees the blocks `doomed` picks.
    fn free(&mut self, doomed: impl Fn(&Block) -> bool) {
        self.blocks.retain(|b| {
            if doomed(b) {
                // SAFETY: allocated by `malloc` in `jpeg_get_large`, owned here.
                unsafe { libc::free(b.ptr) };
                false
            } else {
                true
            }
        });
    }

    /// After an image: frees what it did not give back, and marks the rest
    /// as the last image's.
    fn settle(&mut self) {
        self.free(|b| !b.fresh);
        for b in &mut self.blocks {
            b.fresh = false;
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.free(|_| true);
    }
}

thread_local! {
    static KEPT: RefCell<Kept> = RefCell::default();
}

/// Lets this thread keep up to `cap` bytes of large blocks between images.
pub fn keep_blocks(cap: usize) {
    KEPT.with_borrow_mut(|k| k.cap = cap);
}

/// After an image: frees the kept blocks that it did not use. Never inlined:
/// the conversion threads' call keeps a reference into this module's object
/// file, so the linker takes it, and the symbols below, before it reaches
/// `libturbojpeg.a` (the tests check that it did).
#[inline(never)]
pub fn settle() {
    KEPT.with_borrow_mut(Kept::settle);
}

/// Requests this thread served from kept blocks so far.
pub fn reused() -> u64 {
    KEPT.with_borrow(|k| k.reused)
}

/// Runs `f` on this thread's cache, or returns `None` when the thread keeps
/// nothing or is exiting (libjpeg may free its last blocks from a thread-local
/// destructor, after this one has run).
fn with_kept<T>(f: impl FnOnce(&mut Kept) -> Option<T>) -> Option<T> {
    KEPT.try_with(|k| {
        let mut k = k.try_borrow_mut().ok()?;
        if k.cap == 0 { None } else { f(&mut k) }
    })
    .ok()
    .flatten()
}

#[unsafe(no_mangle)]
extern "C" fn jpeg_get_small(_cinfo: *mut CommonStruct, size: size_t) -> *mut c_void {
    // SAFETY: plain allocation; libjpeg checks for null.
    unsafe { libc::malloc(size) }
}

#[unsafe(no_mangle)]
extern "C" fn jpeg_free_small(_cinfo: *mut CommonStruct, object: *mut c_void, _size: size_t) {
    // SAFETY: `object` came from `jpeg_get_small`.
    unsafe { libc::free(object) }
}

#[unsafe(no_mangle)]
extern "C" fn jpeg_get_large(_cinfo: *mut CommonStruct, size: size_t) -> *mut c_void {
    // SAFETY: plain allocation; libjpeg checks for null.
    with_kept(|k| k.take(size)).unwrap_or_else(|| unsafe { libc::malloc(size) })
}

#[unsafe(no_mangle)]
extern "C" fn jpeg_free_large(_cinfo: *mut CommonStruct, object: *mut c_void, size: size_t) {
    // libjpeg passes the size it asked for, which is the block's size.
    if with_kept(|k| k.give(object, size).then_some(())).is_none() {
        // SAFETY: `object` came from `jpeg_get_large` and is not kept.
        unsafe { libc::free(object) }
    }
}

/// As in `jmemnobs.c`: all of it, unless the handle has a memory limit
/// (TurboJPEG's `TJPARAM_MAXMEMORY`, libjpeg's `JPEGMEM`).
#[unsafe(no_mangle)]
unsafe extern "C" fn jpeg_mem_available(
    cinfo: *mut CommonStruct,
    _min_bytes_needed: size_t,
    max_bytes_needed: size_t,
    already_allocated: size_t,
) -> size_t {
    // SAFETY: libjpeg passes its own live object, whose `mem` is set up.
    let limit = unsafe { (*(*cinfo).mem).max_memory_to_use };
    if limit == 0 {
        max_bytes_needed
    } else {
        (limit as size_t).saturating_sub(already_allocated)
    }
}

/// As in `jmemnobs.c`: there is no backing store, so a virtual array over
/// the memory limit is an error, raised through the handle's error manager.
#[unsafe(no_mangle)]
unsafe extern "C" fn jpeg_open_backing_store(
    cinfo: *mut CommonStruct,
    _info: *mut c_void,
    _total_bytes_needed: c_long,
) {
    // SAFETY: libjpeg's own live object. `error_exit` does not return: it
    // long-jumps to TurboJPEG's handler, over this frame, which owns nothing
    // to drop.
    unsafe {
        let err = (*cinfo).err;
        (*err).msg_code = JERR_NO_BACKING_STORE;
        if let Some(exit) = (*err).error_exit {
            exit(cinfo);
        }
    }
}

#[unsafe(no_mangle)]
extern "C" fn jpeg_mem_init(_cinfo: *mut CommonStruct) -> c_long {
    0
}

#[unsafe(no_mangle)]
extern "C" fn jpeg_mem_term(_cinfo: *mut CommonStruct) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_kept_for_the_same_size_and_freed_when_unused() {
        let mut k = Kept::default();
        k.cap = 1000;
        // SAFETY: test blocks, freed by `Kept`.
        let (a, b) = unsafe { (libc::malloc(600), libc::malloc(300)) };
        assert!(k.give(a, 600) && k.give(b, 300));
        // SAFETY: as above.
        let c = unsafe { libc::malloc(200) };
        assert!(!k.give(c, 200), "over the cap");
        // SAFETY: refused by `Kept`, so still ours to free, once.
        unsafe { libc::free(c) };
        k.settle();
        assert_eq!(k.bytes(), 900, "both given during the last image");
        assert_eq!(k.take(600), Some(a));
        k.settle();
        assert_eq!(k.bytes(), 0, "the 300-byte block was not used: freed");
        assert!(k.blocks.is_empty());
        assert!(k.give(a, 600));
        assert_eq!(k.reused, 1);
        k.settle();
        // SAFETY: as above.
        let d = unsafe { libc::malloc(100) };
        assert!(k.give(d, 100), "given during this image");
        assert_eq!(k.take(500), None, "only an exact size");
        assert_eq!(
            k.bytes(),
            100,
            "a miss frees the last image's blocks, not this one's"
        );
        assert_eq!(k.take(100), Some(d));
        // SAFETY: taken back from `Kept`, so ours to free, once.
        unsafe { libc::free(d) };
    }

    #[test]
    fn the_codes_are_libjpeg_turbos() {
        // The layout of the structs read above is libjpeg's ABI since 6b.
        assert_eq!(std::mem::offset_of!(ErrorMgr, msg_code), 40);
        assert_eq!(std::mem::offset_of!(MemoryMgr, max_memory_to_use), 88);
    }
}
