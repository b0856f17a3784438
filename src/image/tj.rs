//! TurboJPEG instances for the conversion threads, one of each kind per
//! thread, shared by the lossless engine (transforms) and the transform
//! engine (decompression and compression). Called through the raw C API
//! (`turbojpeg::raw`): the safe wrapper exposes neither the warnings nor
//! the parameters both engines decide on.

use std::cell::RefCell;
use std::ffi::CStr;

use turbojpeg::raw;

/// What an instance does.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// Lossless transforms (`tj3Transform`).
    Transform,
    Decompress,
    Compress,
}

/// A TurboJPEG instance.
pub(crate) struct Handle(pub(crate) raw::tjhandle);

impl Handle {
    fn new(kind: Kind) -> Option<Handle> {
        let init = match kind {
            Kind::Transform => raw::TJINIT_TJINIT_TRANSFORM,
            Kind::Decompress => raw::TJINIT_TJINIT_DECOMPRESS,
            Kind::Compress => raw::TJINIT_TJINIT_COMPRESS,
        };
        // SAFETY: plain initialisation; a null handle is checked.
        let h = unsafe { raw::tj3Init(init as libc::c_int) };
        (!h.is_null()).then_some(Handle(h))
    }

    /// The last error or warning, as TurboJPEG words it.
    pub(crate) fn error(&self) -> String {
        // SAFETY: the handle is valid; the string is owned by it and copied here.
        unsafe {
            let s = raw::tj3GetErrorStr(self.0);
            if s.is_null() {
                "unknown TurboJPEG error".into()
            } else {
                CStr::from_ptr(s).to_string_lossy().into_owned()
            }
        }
    }

    /// Whether the last error was only a warning (the output exists).
    pub(crate) fn warned(&self) -> bool {
        // SAFETY: the handle is valid.
        let code = unsafe { raw::tj3GetErrorCode(self.0) };
        code == raw::TJERR_TJERR_WARNING as libc::c_int
    }

    pub(crate) fn get(&self, param: raw::TJPARAM) -> libc::c_int {
        // SAFETY: the handle is valid.
        unsafe { raw::tj3Get(self.0, param as libc::c_int) }
    }

    pub(crate) fn set(&self, param: raw::TJPARAM, value: libc::c_int) -> Result<(), String> {
        // SAFETY: the handle is valid.
        match unsafe { raw::tj3Set(self.0, param as libc::c_int, value) } {
            0 => Ok(()),
            _ => Err(self.error()),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by tj3Init, destroyed once.
        unsafe { raw::tj3Destroy(self.0) }
    }
}

thread_local! {
    static TRANSFORM: RefCell<Option<Handle>> = const { RefCell::new(None) };
    static DECOMPRESS: RefCell<Option<Handle>> = const { RefCell::new(None) };
    static COMPRESS: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Calls `f` with this thread's instance of `kind`, made on first use;
/// `None` when TurboJPEG cannot make one.
pub(crate) fn with<T>(kind: Kind, f: impl FnOnce(&Handle) -> T) -> Option<T> {
    let key = match kind {
        Kind::Transform => &TRANSFORM,
        Kind::Decompress => &DECOMPRESS,
        Kind::Compress => &COMPRESS,
    };
    key.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Handle::new(kind);
        }
        slot.as_ref().map(f)
    })
}

/// Whether a warning says data is missing (a truncated file), which is the
/// failure it is; other warnings (stray bytes between markers, common in
/// camera files) leave a whole image.
pub(crate) fn missing_data(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["premature end", "truncat", "unexpected end", "short"]
        .iter()
        .any(|m| lower.contains(m))
}

/// What a JPEG's header says, read by this thread's instance of a kind.
pub(crate) struct JpegHeader {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) colorspace: raw::TJCS,
    pub(crate) precision: libc::c_int,
    pub(crate) lossless: bool,
    pub(crate) progressive: bool,
    /// Samples per pixel, all components together, times 4: 4 for gray,
    /// 6 for 4:2:0, 8 for 4:2:2, 12 for 4:4:4.
    pub(crate) samples_x4: u64,
}

impl JpegHeader {
    /// The header of `data`, or why TurboJPEG could not read it (for the log).
    pub(crate) fn read(kind: Kind, data: &[u8]) -> Result<JpegHeader, &'static str> {
        with(kind, |h| {
            // SAFETY: `data` is valid for its length during the call.
            let res =
                unsafe { raw::tj3DecompressHeader(h.0, data.as_ptr(), data.len() as raw::size_t) };
            if res != 0 {
                return Err("TurboJPEG cannot read the header");
            }
            let samples_x4 = match h.get(raw::TJPARAM_TJPARAM_SUBSAMP) as raw::TJSAMP {
                raw::TJSAMP_TJSAMP_GRAY => 4,
                raw::TJSAMP_TJSAMP_420 | raw::TJSAMP_TJSAMP_411 | raw::TJSAMP_TJSAMP_441 => 6,
                raw::TJSAMP_TJSAMP_422 | raw::TJSAMP_TJSAMP_440 => 8,
                _ => 12,
            };
            Ok(JpegHeader {
                width: h.get(raw::TJPARAM_TJPARAM_JPEGWIDTH).max(0) as usize,
                height: h.get(raw::TJPARAM_TJPARAM_JPEGHEIGHT).max(0) as usize,
                colorspace: h.get(raw::TJPARAM_TJPARAM_COLORSPACE) as raw::TJCS,
                precision: h.get(raw::TJPARAM_TJPARAM_PRECISION),
                lossless: h.get(raw::TJPARAM_TJPARAM_LOSSLESS) != 0,
                progressive: h.get(raw::TJPARAM_TJPARAM_PROGRESSIVE) != 0,
                samples_x4,
            })
        })
        .unwrap_or(Err("TurboJPEG could not start"))
    }

    /// Whether the image is over the decode limits.
    pub(crate) fn exceeds(&self, limits: &crate::options::Limits) -> bool {
        limits.exceeded_by(
            self.width,
            self.height,
            self.width as u64 * self.height as u64,
        )
    }
}
