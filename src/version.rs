//! What this build calls itself: `--version`'s short form and the
//! User-Agent of every request batchimg sends itself (downloads without
//! `--user-agent`, and the image PUTs).

/// `0.1.0 (commit 1a2b3c4d5e6f)`; the commit is "unknown" for a build
/// without git and without `BATCHIMG_COMMIT` (see build.rs).
pub const SHORT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BATCHIMG_COMMIT"),
    ")"
);

/// `batchimg/0.1.0`.
pub const USER_AGENT: &str = concat!("batchimg/", env!("CARGO_PKG_VERSION"));

/// The libjpeg-turbo that turbojpeg-sys bundles (it has no run-time version call).
pub const TURBOJPEG_SYS: &str = env!("BATCHIMG_TURBOJPEG_SYS");
