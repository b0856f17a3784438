//! The progress bar, and the log writer that keeps log lines from tearing it.
//!
//! indicatif lives only in this file; the pipeline sees the small [`Reporter`]
//! trait. The bar is drawn on stderr only when stderr is a terminal, so logs
//! redirected to a file or collected by a batch system stay clean.

use std::io::{self, IsTerminal, Write};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

/// What the pipeline tells whoever is watching.
pub trait Reporter: Send + Sync {
    /// `total` rows need work in this session; `done` of the run's rows already are.
    fn begin(&self, total: u64);
    /// One row reached the end, successfully or not.
    fn row_finished(&self, ok: bool);
    /// The session is over; remove the bar.
    fn end(&self);
}

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
