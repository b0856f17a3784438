//! What `--version` reports: this build, and the image libraries linked into
//! it, since those are what security advisories name.
//!
//! `-V` is the short form (version and commit). `--version` adds the
//! ImageMagick that is loaded (asked at run time: it is a shared library,
//! updated by the system) and the libjpeg-turbo the lossless engine is
//! statically built with.

/// `0.1.0 (commit 1a2b3c4d5e6f)`; the commit is "unknown" for a build
/// without git and without `BATCHIMG_COMMIT` (see build.rs).
pub const SHORT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BATCHIMG_COMMIT"),
    ")"
);

/// The long form, leaked once: clap keeps `&'static str`s.
pub fn long() -> &'static str {
    let text = format!(
        "{SHORT}\n{}\nlibjpeg-turbo: built in by turbojpeg-sys {} (lossless JPEG engine)",
        crate::pipeline::magick::version(),
        env!("BATCHIMG_TURBOJPEG_SYS"),
    );
    Box::leak(text.into_boxed_str())
}
