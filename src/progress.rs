//! Progress for people and machines: the bar, the log writer that keeps log
//! lines from tearing it, and the progress lines logged at an interval.
//!
//! indicatif lives only in this file. The pipeline knows the bar only as the
//! [`Reporter`] trait, which it defines itself (`pipeline::report`) and [`Bar`]
//! implements; the progress lines read what the pipeline left elsewhere: the
//! journal's counts and the process's metrics. The bar is drawn on stderr
//! only when stderr is a terminal; where it is not (a pod's log, a file),
//! [`log_lines`] logs a line at an interval instead, so nobody has to infer
//! progress from one line per URL.

use std::io::{self, IsTerminal, Write};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::pipeline::Reporter;
use tracing_subscriber::fmt::MakeWriter;

/// The bar currently drawn, for [`LogWriter`] to step around.
static ACTIVE: RwLock<Option<ProgressBar>> = RwLock::new(None);

/// A progress bar with done/total, rate, ETA and failures.
pub struct Bar {
    bar: ProgressBar,
    failed: AtomicU64,
}

impl Bar {
    /// A bar on stderr, or a hidden one when stderr is not a terminal or
    /// `show` is false (`--no-progress`). The bar has no colours of its own,
    /// so `--color`/NO_COLOR concern only the log lines.
    pub fn stderr(show: bool) -> Bar {
        let target = if show && io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} {per_sec} ETA {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Bar {
            bar,
            failed: AtomicU64::new(0),
        }
    }
}

impl Reporter for Bar {
    fn begin(&self, total: u64) {
        self.bar.set_length(total);
        self.bar.enable_steady_tick(Duration::from_millis(250));
        *ACTIVE.write().expect("bar lock") = Some(self.bar.clone());
    }

    fn row_finished(&self, ok: bool) {
        if !ok {
            let n = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
            self.bar.set_message(format!("{n} failed"));
        }
        self.bar.inc(1);
    }

    fn end(&self) {
        *ACTIVE.write().expect("bar lock") = None;
        self.bar.finish_and_clear();
    }
}

/// Writes log lines to stderr, lifting the bar out of the way for each one.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let active = ACTIVE.read().expect("bar lock").clone();
        match active {
            Some(bar) => bar.suspend(|| io::stderr().lock().write_all(buf)),
            None => io::stderr().lock().write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

/// Where a session stands, as a progress line tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// URLs of the run finished (uploaded or failed), and in all: the
    /// journal counts a repeated URL once, as `status` does.
    pub done: u64,
    pub total: u64,
    /// Of the uploaded rows: new objects, and objects already in the bucket.
    pub uploaded: u64,
    pub already_present: u64,
    pub failed: u64,
    /// Failure reasons with their counts, the commonest five first.
    pub failed_by_reason: String,
    /// Rows finished per second in this session, and the time the rest need at that pace.
    pub rows_per_s: f64,
    pub eta: Option<Duration>,
    pub downloaded_bytes: u64,
    pub uploaded_bytes: u64,
}

impl Snapshot {
    /// The snapshot of `counts`, `elapsed` into a session that began with
    /// `done_at_start` rows finished.
    pub fn of(counts: &crate::job::Counts, done_at_start: u64, elapsed: Duration) -> Snapshot {
        use crate::job::StateKind;
        let total: u64 = StateKind::ALL.iter().map(|k| counts.get(*k)).sum();
        let uploaded = counts.get(StateKind::Uploaded);
        let failed = counts.get(StateKind::Failed);
        let done = uploaded + failed;
        let rows_per_s = crate::units::rate(done.saturating_sub(done_at_start), elapsed);
        let left = total.saturating_sub(done);
        let eta = (rows_per_s > 0.0)
            .then(|| Duration::from_secs((left as f64 / rows_per_s).ceil() as u64));

        let m = crate::metrics::get();
        Snapshot {
            done,
            total,
            uploaded: uploaded - counts.reused,
            already_present: counts.reused,
            failed,
            failed_by_reason: counts.top_failures(5),
            rows_per_s,
            eta,
            downloaded_bytes: m.downloaded_bytes.get(),
            uploaded_bytes: m.uploaded_bytes.get(),
        }
    }

    /// Logs the snapshot as one line (one JSON object in JSON mode).
    pub fn log(&self) {
        let reasons = &self.failed_by_reason;
        let percent = if self.total > 0 {
            100.0 * self.done as f64 / self.total as f64
        } else {
            100.0
        };
        let eta = self.eta.map_or_else(
            || "unknown".to_string(),
            |d| humantime::format_duration(d).to_string(),
        );
        let size = |b: u64| bytesize::ByteSize::b(b).display().iec().to_string();
        // The busiest hosts' adapted limits, when any moved.
        let hosts: Vec<String> = crate::metrics::get()
            .top_host_limits(3)
            .into_iter()
            .map(|(h, l)| format!("{h} {l}"))
            .collect();
        let hosts = hosts.join(", ");
        tracing::info!(
            done = self.done,
            total = self.total,
            uploaded = self.uploaded,
            already_present = self.already_present,
            failed = self.failed,
            failed_by_reason = reasons,
            rows_per_s = (self.rows_per_s * 10.0).round() / 10.0,
            eta_s = self.eta.map(|d| d.as_secs()),
            downloaded_bytes = self.downloaded_bytes,
            uploaded_bytes = self.uploaded_bytes,
            host_limits = hosts,
            "progress: {}/{} URLs ({percent:.1}%): {} uploaded, {} already in the bucket, {} failed{}; {:.1} URLs/s, ETA {eta}; {} in, {} out{}",
            self.done,
            self.total,
            self.uploaded,
            self.already_present,
            self.failed,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({reasons})")
            },
            self.rows_per_s,
            size(self.downloaded_bytes),
            size(self.uploaded_bytes),
            if hosts.is_empty() {
                String::new()
            } else {
                format!("; hosts' limits: {hosts}")
            },
        );
    }
}

/// Logs a progress line every `every` until dropped: for runs nobody watches
/// (stderr not a terminal), instead of a bar. The counts are the journal's,
/// as `status` and the summary have them.
pub async fn log_lines(
    journal: std::sync::Arc<crate::journal::Journal>,
    every: Duration,
    done_at_start: u64,
) {
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let j = std::sync::Arc::clone(&journal);
        match tokio::task::spawn_blocking(move || j.counts()).await {
            Ok(Ok(counts)) => Snapshot::of(&counts, done_at_start, started.elapsed()).log(),
            Ok(Err(e)) => tracing::debug!(error = %e, "no progress line: cannot read the journal"),
            Err(_) => return,
        }
    }
}
