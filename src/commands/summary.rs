//! A session's final figures: built once, then rendered twice, as the
//! summary line of the log and as `--summary-json`.

use crate::error::{CommandError, ExitStatus, count, fatal};
use crate::job::{Counts, StateKind};
use crate::journal::RunInfo;
use crate::location::Location;
use crate::manifest::Written;
use crate::pipeline::Stop;
use crate::settings::Settings;
use crate::units::rate;

/// The final figures of a session, for the summary line and `--summary-json`.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    /// `completed`, `interrupted` or `stopped` (a fatal error; `resume` continues).
    pub outcome: &'static str,
    pub exit_code: i32,
    /// Why a stopped session stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub rows: u64,
    pub succeeded_rows: u64,
    pub failed_rows: u64,
    pub unfinished_rows: u64,
    /// URLs (a URL repeated in the input counts once): objects uploaded,
    /// objects already in the bucket, URLs that failed.
    pub uploaded: u64,
    pub already_present: u64,
    pub failed: u64,
    /// Failed rows by reason: they add up to `failed_rows`.
    pub failed_by_reason: std::collections::BTreeMap<&'static str, u64>,
    /// This session's: rows it finished, images it stored (failures not
    /// counted), and their rates.
    pub session_rows: u64,
    pub session_images: u64,
    pub elapsed_s: f64,
    pub rows_per_s: f64,
    pub images_per_s: f64,
    pub downloaded_bytes: u64,
    pub uploaded_bytes: u64,
    pub peak_memory_bytes: u64,
    pub state_dir: std::path::PathBuf,
    pub output: String,
    /// The commonest failure reasons, as the log line names them.
    #[serde(skip)]
    pub top_failures: String,
}

impl Summary {
    /// The figures of a session that stopped as `ending` says, from the rows
    /// it wrote out (`written`) and the journal's counts of URLs.
    pub fn new(
        ending: (&'static str, ExitStatus, &Stop),
        run: &RunInfo,
        written: &Written,
        counts: &Counts,
        uploaded_at_start: u64,
        elapsed: std::time::Duration,
        (state_dir, settings): (&std::path::Path, &Settings),
    ) -> Summary {
        let (outcome, status, stop) = ending;
        let processed = counts.done() - run.session_done_at_start;
        let images = counts.get(StateKind::Uploaded) - uploaded_at_start;
        let by_reason = Counts {
            failed_by_class: written.failed_by_reason.clone(),
            ..Counts::default()
        };
        let m = crate::metrics::get();
        Summary {
            outcome,
            exit_code: status as i32,
            error: match stop {
                Stop::Fatal(reason) => Some(reason.clone()),
                _ => None,
            },
            rows: run.rows,
            succeeded_rows: written.succeeded,
            failed_rows: written.failed,
            unfinished_rows: written.unfinished,
            uploaded: counts.get(StateKind::Uploaded) - counts.reused,
            already_present: counts.reused,
            failed: counts.get(StateKind::Failed),
            failed_by_reason: written.failed_by_reason.iter().copied().collect(),
            session_rows: processed,
            session_images: images,
            elapsed_s: elapsed.as_secs_f64(),
            rows_per_s: rate(processed, elapsed),
            images_per_s: rate(images, elapsed),
            downloaded_bytes: m.downloaded_bytes.get(),
            uploaded_bytes: m.uploaded_bytes.get(),
            peak_memory_bytes: peak_memory(),
            state_dir: state_dir.to_path_buf(),
            output: settings.output.to_string(),
            top_failures: by_reason.top_failures(TOP_FAILURES),
        }
    }

    /// The summary line: kept by `-q`, since it is the outcome.
    pub fn log(&self) {
        tracing::info!(
            target: crate::logging::SUMMARY,
            rows = self.rows,
            succeeded_rows = self.succeeded_rows,
            failed_rows = self.failed_rows,
            unfinished_rows = self.unfinished_rows,
            uploaded = self.uploaded,
            already_present = self.already_present,
            failed = self.failed,
            top_failures = self.top_failures,
            elapsed_s = self.elapsed_s,
            images_per_s = self.images_per_s,
            rows_per_s = self.rows_per_s,
            downloaded_bytes = self.downloaded_bytes,
            uploaded_bytes = self.uploaded_bytes,
            peak_memory_mib = self.peak_memory_bytes >> 20,
            "summary: {}: {} succeeded ({} uploaded, {} already in the bucket), {} failed{}, {} unfinished; {:.1} s, {:.1} images/s, peak memory {} MiB",
            count(self.rows, "row", "rows"),
            self.succeeded_rows,
            self.uploaded,
            self.already_present,
            self.failed_rows,
            if self.top_failures.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.top_failures)
            },
            self.unfinished_rows,
            self.elapsed_s,
            self.images_per_s,
            self.peak_memory_bytes >> 20,
        );
    }

    /// Writes the summary as JSON, whole or not at all: staged and committed
    /// as the output CSVs are.
    pub async fn write_json(&self, path: &std::path::Path) -> Result<(), CommandError> {
        let mut text =
            serde_json::to_vec_pretty(self).map_err(|e| fatal(anyhow::Error::from(e)))?;
        text.push(b'\n');
        let loc = Location::Local(path.to_path_buf());
        let mut file = super::outputs::staging_file(&loc).map_err(fatal)?;
        use std::io::Write;
        file.write_all(&text)
            .map_err(|e| fatal(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
        super::outputs::commit_file(file, &loc, None).await
    }
}

/// Failure reasons named in the run's summary line.
pub const TOP_FAILURES: usize = 3;

/// This process's peak resident memory (VmHWM), in bytes; 0 where unknown.
pub fn peak_memory() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}
