//! A session: one `run` or `resume` of the pipeline over what the journal
//! still has to do, with its reports, its signals and, at the end, its
//! output files and summary.

use std::sync::Arc;
use std::time::Instant;

use super::outputs::{ResultFiles, write_results};
use super::summary::Summary;
use super::{Reports, journal_error};
use crate::error::{CommandError, ExitStatus, count, fatal};
use crate::image::magick;
use crate::job::{RetryFailed, StateKind, now_ms};
use crate::journal::quarantine::{self, Quarantine};
use crate::journal::{Journal, RunInfo};
use crate::manifest::Written;
use crate::pipeline::{Pipeline, Reporter, Stop};
use crate::progress::Bar;
use crate::settings::Settings;
use crate::store::s3::S3Store;

/// Runs the pipeline over what the journal still has to do, then writes the
/// output files and the summary.
pub async fn execute(
    journal: Journal,
    store: S3Store,
    settings: Arc<Settings>,
    retry: RetryFailed,
    display: crate::logging::Display,
    mut reports: Reports,
) -> Result<ExitStatus, CommandError> {
    magick::init(&settings.limits).map_err(|e| fatal(anyhow::anyhow!(e)))?;
    let journal = Arc::new(journal);
    let Start {
        mut run,
        todo,
        uploaded_at_start,
        state_dir,
    } = begin(&journal, &retry)?;
    let quarantine = Arc::new(recover(&journal, &state_dir)?);
    let reporter = Arc::new(Bar::stderr(display.progress));
    reporter.begin(todo);
    let writer = journal.writer();
    let pipeline = Arc::new(
        Pipeline::new(
            Arc::clone(&settings),
            store.clone(),
            writer.clone(),
            reporter.clone() as Arc<dyn Reporter>,
            quarantine,
        )
        .map_err(fatal)?,
    );
    let metrics = reports.metrics.take();
    let beside = Beside::start(&journal, &pipeline, metrics, &display, &settings, &run)?;

    let started = Instant::now();
    let stop = Arc::clone(&pipeline)
        .run(Arc::clone(&journal), retry, todo)
        .await;
    beside.stop_watching();
    // An orderly end: conversions the grace abandoned are not crash suspects.
    quarantine::clear(&state_dir);
    reporter.end();
    writer.finish().await.map_err(journal_error)?;
    drop(pipeline);

    let rows = Arc::clone(&journal) as Arc<dyn crate::journal::Rows>;
    let written = write_results(rows, ResultFiles::of(&settings), Some(&store)).await?;
    if stop == Stop::Completed {
        run.finished_ms = Some(now_ms());
        journal.set_run_info(&run).map_err(journal_error)?;
    }
    let (outcome, status) = ending(&stop, &written);
    let counts = journal.counts().map_err(journal_error)?;
    let summary = Summary::new(
        (outcome, status, &stop),
        &run,
        &written,
        &counts,
        uploaded_at_start,
        started.elapsed(),
        (&state_dir, &settings),
    );
    if let Some(path) = &reports.summary_json {
        summary.write_json(path).await?;
    }
    beside.stop_serving();
    summary.log();
    log_work_files(&settings);
    match stop {
        Stop::Fatal(reason) => Err(fatal(anyhow::anyhow!(reason))),
        Stop::Interrupted => {
            tracing::warn!("interrupted; `batchimg resume` continues where this stopped");
            Ok(status)
        }
        Stop::Completed => Ok(status),
    }
}

/// How a session stopped, as its summary names it and its exit status: the
/// one place a stop becomes an exit code.
pub(super) fn ending(stop: &Stop, written: &Written) -> (&'static str, ExitStatus) {
    match stop {
        Stop::Fatal(_) => ("stopped", ExitStatus::Fatal),
        Stop::Interrupted => ("interrupted", ExitStatus::Interrupted),
        Stop::Completed if written.failed > 0 => ("completed", ExitStatus::SomeFailed),
        Stop::Completed => ("completed", ExitStatus::Success),
    }
}

/// A session's start, as recorded in the journal.
struct Start {
    run: RunInfo,
    /// Rows it has to do.
    todo: u64,
    uploaded_at_start: u64,
    state_dir: std::path::PathBuf,
}

/// Records the session's start in the journal.
fn begin(journal: &Journal, retry: &RetryFailed) -> Result<Start, CommandError> {
    let counts = journal.counts().map_err(journal_error)?;
    let mut run = journal.run_info().map_err(journal_error)?;
    run.session_started_ms = now_ms();
    run.session_done_at_start = counts.done() - counts.retried(retry);
    run.finished_ms = None;
    journal.set_run_info(&run).map_err(journal_error)?;
    let todo = counts.to_do(retry);
    tracing::info!(
        rows = run.rows,
        duplicates = run.duplicates,
        to_do = todo,
        state_dir = %journal.path().display(),
        "starting"
    );
    let state_dir = journal.path().parent().unwrap_or(std::path::Path::new("."));
    Ok(Start {
        run,
        todo,
        uploaded_at_start: counts.get(StateKind::Uploaded),
        state_dir: state_dir.to_path_buf(),
    })
}

/// What a process that died was converting, recorded as facts the pipeline
/// acts on; the quarantine this session converts under.
fn recover(journal: &Journal, state_dir: &std::path::Path) -> Result<Quarantine, CommandError> {
    let left = Quarantine::left_in(state_dir);
    let crashed = !left.suspects.is_empty() || !left.crashed.is_empty();
    if crashed {
        tracing::warn!(
            suspects = left.suspects.len(),
            crashed = left.crashed.len(),
            "the last process died while converting: its suspects are converted alone first, \
             and this run converts one image at a time"
        );
        journal
            .record_deaths(&left.suspects, &left.crashed)
            .map_err(journal_error)?;
    }
    Ok(Quarantine::start(state_dir, crashed))
}

/// The tasks that run beside the pipeline: the metrics server, the progress
/// lines and the signal watcher.
struct Beside {
    served: Option<tokio::task::JoinHandle<()>>,
    lines: Option<tokio::task::JoinHandle<()>>,
    signals: tokio::task::JoinHandle<()>,
}

impl Beside {
    fn start(
        journal: &Arc<Journal>,
        pipeline: &Arc<Pipeline<S3Store>>,
        metrics: Option<std::net::TcpListener>,
        display: &crate::logging::Display,
        settings: &Settings,
        run: &RunInfo,
    ) -> Result<Beside, CommandError> {
        let served = match metrics {
            Some(listener) => {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .map_err(|e| fatal(anyhow::Error::from(e)))?;
                tracing::info!(
                    address = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()),
                    "serving metrics at /metrics"
                );
                let sources = crate::serve::Sources {
                    journal: Arc::clone(journal),
                    budget: pipeline.budget(),
                };
                Some(tokio::spawn(crate::serve::serve(listener, sources)))
            }
            None => None,
        };
        let lines = display.progress_lines.map(|every| {
            tokio::spawn(crate::progress::log_lines(
                Arc::clone(journal),
                every,
                run.session_done_at_start,
            ))
        });
        let state_dir = journal.path().parent().map(std::path::Path::to_path_buf);
        let signals = tokio::spawn(watch_signals(
            pipeline.stop_token(),
            settings.stop_grace,
            state_dir.unwrap_or_default(),
        ));
        Ok(Beside {
            served,
            lines,
            signals,
        })
    }

    /// The run is over: no more progress lines or signal handling.
    fn stop_watching(&self) {
        self.signals.abort();
        if let Some(lines) = &self.lines {
            lines.abort();
        }
    }

    /// The summary is written: the metrics server goes too.
    fn stop_serving(self) {
        if let Some(served) = self.served {
            served.abort();
        }
    }
}

/// Says what the work directory still holds, when rows' files are kept.
fn log_work_files(settings: &Settings) {
    if settings.delete_local {
        return;
    }
    let (files, bytes) = work_files(&settings.work_dir);
    if files > 0 {
        tracing::info!(
            files,
            bytes,
            work_dir = %settings.work_dir.display(),
            "kept {}, {}, in {}; --delete-local (BATCHIMG_DELETE_LOCAL=true) removes each row's files once it is uploaded",
            count(files, "local file", "local files"),
            bytesize::ByteSize::b(bytes).display().iec(),
            settings.work_dir.display()
        );
    }
}

/// First Ctrl-C or SIGTERM: stop feeding rows and give the ones in flight the
/// stop grace to finish. Second: exit at once; the journal's committed state
/// stays valid.
async fn watch_signals(
    stop: tokio_util::sync::CancellationToken,
    grace: std::time::Duration,
    state_dir: std::path::PathBuf,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    for n in 0.. {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        if n == 0 {
            tracing::warn!(
                "stopping: the rows in flight have {} to finish (press Ctrl-C again to quit at once)",
                humantime::format_duration(grace)
            );
            stop.cancel();
        } else {
            // Conversions still running are stopped by the exit, not crashing.
            quarantine::clear(&state_dir);
            // A log line, so that JSON mode stays JSON to the last line.
            tracing::warn!("quitting at once; `batchimg resume` continues");
            #[allow(clippy::exit, reason = "the second Ctrl-C quits at once, as fd does")]
            std::process::exit(ExitStatus::Interrupted as i32);
        }
    }
}

/// Files and bytes in the work directory's `in/` and `out/`.
fn work_files(work_dir: &std::path::Path) -> (u64, u64) {
    let mut total = (0, 0);
    for sub in ["in", "out"] {
        let Ok(entries) = std::fs::read_dir(work_dir.join(sub)) else {
            continue;
        };
        for meta in entries.flatten().filter_map(|e| e.metadata().ok()) {
            if meta.is_file() {
                total.0 += 1;
                total.1 += meta.len();
            }
        }
    }
    total
}
