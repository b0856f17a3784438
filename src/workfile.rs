//! The work directory's files: written whole or not at all, and read back.
//!
//! A downloaded or converted file appears under its final name only when it
//! is whole (written to a `.part`, then renamed), which is what lets `resume`
//! trust a file it finds: an output, or a download a killed run left before
//! recording it, is read back as it is. A recorded download is read back
//! only if its bytes still hash to what the journal holds ([`read_source`]),
//! since its content key was derived from them. Plain `std::fs` calls, so
//! that errors keep their OS code (a full disk must be recognised as one).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use crate::job::SourceFile;

/// A whole file's bytes, read on the blocking pool; `None` if it cannot be read.
pub async fn read_file(path: PathBuf) -> Option<Bytes> {
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(body)) => Some(Bytes::from(body)),
        _ => None,
    }
}

/// The bytes of a recorded download, if the file is still there and unchanged.
pub async fn read_source(source: &SourceFile) -> Option<Bytes> {
    let body = read_file(source.path.clone()).await?;
    if *blake3::hash(&body).as_bytes() != source.hash {
        tracing::debug!(path = %source.path.display(), "recorded download changed; fetching again");
        return None;
    }
    Some(body)
}

/// Writes a `.part` file beside `path`, then renames it to `path`, so `path`
/// is always whole. The part's name is unique (process and a counter): two
/// rows fetching one URL at once (rows that `--key-template` names apart)
/// write their own, and the second rename replaces a whole file with the
/// same bytes. Parts a killed process left are never read, and removed at
/// the next start ([`remove_parts`]).
pub fn write_whole(path: &Path, body: &[u8]) -> std::io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut part = path.as_os_str().to_owned();
    part.push(format!(".{}-{n}.part", std::process::id()));
    let part = PathBuf::from(part);
    std::fs::write(&part, body)
        .and_then(|()| std::fs::rename(&part, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&part);
        })
}

/// Removes the `.part` files a killed process left in `dir`: those not
/// written for a minute (a live write takes milliseconds), so a work
/// directory two processes share loses nothing in flight.
pub fn remove_parts(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let stale = |e: &std::fs::DirEntry| {
        e.metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(60))
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".part") && stale(&entry) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
