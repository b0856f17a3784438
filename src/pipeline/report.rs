//! What the pipeline tells whoever watches: the [`Reporter`] it reports
//! finished rows to (the progress bar implements it), and each row's log
//! line with the figures of its stages.

use std::time::Duration;

use super::convert::Output;
use super::fetch::Fetched;
use super::upload::Timing;
use crate::job::{Failure, Uploaded};
use crate::redact::RawUrl;

/// What the pipeline tells whoever is watching.
pub trait Reporter: Send + Sync {
    /// `total` rows need work in this session.
    fn begin(&self, total: u64);
    /// One row reached the end, successfully or not.
    fn row_finished(&self, ok: bool);
    /// The session is over; remove the bar.
    fn end(&self);
}

/// The target of each finished row's line: shown at -v, with --log-rows,
/// or when RUST_LOG asks for it; hidden by default, so that a million rows
/// do not make a million lines.
pub const ROWS: &str = "batchimg::rows";

/// What each stage did for one row, for its log line. A stage's `_ms` is
/// its work alone; the time it waited for a slot (memory and a core for a
/// conversion, an upload slot for an upload) is its `_wait_ms`, so a slow
/// stage and a busy one read differently.
#[derive(Debug, Default)]
pub struct Figures {
    download_bytes: u64,
    download_ms: u64,
    download_wait_ms: u64,
    convert_ms: u64,
    convert_wait_ms: u64,
    output_bytes: u64,
    upload_ms: u64,
    upload_wait_ms: u64,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Figures {
    pub fn fetched(&mut self, f: &Fetched) {
        self.download_bytes = f.body.len() as u64;
        self.download_ms = ms(f.elapsed);
        self.download_wait_ms = ms(f.wait);
    }

    pub fn converted(&mut self, o: &Output) {
        self.convert_ms = ms(o.elapsed);
        self.convert_wait_ms = ms(o.wait);
        self.output_bytes = o.body.len() as u64;
    }

    pub fn stored(&mut self, t: Timing) {
        self.upload_ms = ms(t.busy);
        self.upload_wait_ms = ms(t.wait);
    }

    /// The line of a row that reached the bucket, `elapsed` after it started.
    pub fn log_uploaded(&self, row: u64, url: &str, done: &Uploaded, elapsed: Duration) {
        tracing::info!(
            target: ROWS,
            row,
            url = %RawUrl(url),
            key = done.key,
            reused = done.reused,
            download_bytes = self.download_bytes,
            download_ms = self.download_ms,
            download_wait_ms = self.download_wait_ms,
            convert_ms = self.convert_ms,
            convert_wait_ms = self.convert_wait_ms,
            output_bytes = self.output_bytes,
            upload_ms = self.upload_ms,
            upload_wait_ms = self.upload_wait_ms,
            elapsed_ms = ms(elapsed),
            "{}",
            if done.reused { "already in the bucket" } else { "uploaded" }
        );
    }
}

/// The line of a row that failed.
pub fn log_failed(row: u64, url: &str, failure: &Failure) {
    tracing::warn!(
        row,
        url = %RawUrl(url),
        reason = failure.class.name(),
        error = %failure.message,
        "failed"
    );
}
