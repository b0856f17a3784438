//! A session: one `run` or `resume` of the pipeline over what the journal
//! still has to do, with its reports, its signals and, at the end, its
//! output files and summary.

use std::sync::Arc;
use std::time::Instant;

use super::outputs::publish_results;
use super::summary::{Summary, TOP_FAILURES, peak_memory};
use super::{Reports, journal_error};
use crate::error::{CommandError, ExitStatus, count, fatal};
use crate::image::magick;
use crate::job::{RetryFailed, StateKind, now_ms};
use crate::journal::Journal;
use crate::journal::quarantine::{self, Quarantine};
use crate::pipeline::{Pipeline, Reporter, Stop};
use crate::progress::Bar;
use crate::settings::Settings;
use crate::store::s3::S3Store;
use crate::units::rate;

/// Runs the pipeline over what the journal still has to do, then writes the CSVs.
pub async fn execute(
    journal: Journal,
    store: S3Store,
    settings: Arc<Settings>,
    retry: RetryFailed,
    display: crate::logging::Display,
    reports: Reports,
) -> Result<ExitStatus, CommandError> {
    magick::init(&settings.limits).map_err(|e| fatal(anyhow::anyhow!(e)))?;
    let journal = Arc::new(journal);
    let counts = journal.counts().map_err(journal_error)?;
    let uploaded_at_start = counts.get(StateKind::Uploaded);
    let mut run = journal.run_info().map_err(journal_error)?;
    run.session_started_ms = now_ms();
    run.session_done_at_start = counts.done() - counts.retried(&retry);
    run.finished_ms = None;
    journal.set_run_info(&run).map_err(journal_error)?;

    let todo = counts.to_do(&retry);
    tracing::info!(
        rows = run.rows,
        duplicates = run.duplicates,
        to_do = todo,
        state_dir = %journal.path().display(),
        "starting"
    );

    // What a process that died was converting: recorded as facts, which the
    // pipeline acts on.
    let state_dir = journal
        .path()
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let left = Quarantine::left_in(&state_dir);
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
    let quarantine = Arc::new(Quarantine::start(&state_dir, crashed));
    let reporter = Arc::new(Bar::stderr(display.progress));
    reporter.begin(todo);
    let writer = journal.writer();
    let pipeline = Pipeline::new(
        Arc::clone(&settings),
        store.clone(),
        writer.clone(),
        reporter.clone() as Arc<dyn Reporter>,
        quarantine,
    )
    .map_err(fatal)?;
    let pipeline = Arc::new(pipeline);
    let served = match reports.metrics {
        Some(listener) => {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| fatal(anyhow::Error::from(e)))?;
            tracing::info!(
                address = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()),
                "serving metrics at /metrics"
            );
            let sources = crate::serve::Sources {
                journal: Arc::clone(&journal),
                budget: pipeline.budget(),
            };
            Some(tokio::spawn(crate::serve::serve(listener, sources)))
        }
        None => None,
    };
    let lines = display.progress_lines.map(|every| {
        tokio::spawn(crate::progress::log_lines(
            Arc::clone(&journal),
            every,
            run.session_done_at_start,
        ))
    });
    let signals = tokio::spawn(watch_signals(
        pipeline.stop_token(),
        settings.stop_grace,
        state_dir.clone(),
    ));
    let started = Instant::now();
    let stop = Arc::clone(&pipeline)
        .run(Arc::clone(&journal), retry, todo)
        .await;
    signals.abort();
    if let Some(lines) = lines {
        lines.abort();
    }
    // An orderly end: conversions the grace abandoned are not crash suspects.
    quarantine::clear(&state_dir);
    reporter.end();
    writer.finish().await.map_err(journal_error)?;
    drop(pipeline);

    let written = publish_results(&journal, &settings, &store).await?;
    let counts = journal.counts().map_err(journal_error)?;
    if stop == Stop::Completed {
        run.finished_ms = Some(now_ms());
        journal.set_run_info(&run).map_err(journal_error)?;
    }

    let elapsed = started.elapsed();
    let processed = counts.done() - run.session_done_at_start;
    let images = counts.get(StateKind::Uploaded) - uploaded_at_start;
    let status = match &stop {
        Stop::Fatal(_) => ExitStatus::Fatal,
        Stop::Interrupted => ExitStatus::Interrupted,
        Stop::Completed if written.failed > 0 => ExitStatus::SomeFailed,
        Stop::Completed => ExitStatus::Success,
    };
    let m = crate::metrics::get();
    let summary = Summary {
        outcome: match stop {
            Stop::Completed => "completed",
            Stop::Interrupted => "interrupted",
            Stop::Fatal(_) => "stopped",
        },
        exit_code: status as i32,
        error: match &stop {
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
        failed_by_reason: counts.failed_by_class.iter().copied().collect(),
        session_rows: processed,
        session_images: images,
        elapsed_s: elapsed.as_secs_f64(),
        rows_per_s: rate(processed, elapsed),
        images_per_s: rate(images, elapsed),
        downloaded_bytes: m.downloaded_bytes.get(),
        uploaded_bytes: m.uploaded_bytes.get(),
        peak_memory_bytes: peak_memory(),
        state_dir: state_dir.clone(),
        output: settings.output.to_string(),
        top_failures: counts.top_failures(TOP_FAILURES),
    };
    if let Some(path) = &reports.summary_json {
        summary.write_json(path).await?;
    }
    if let Some(served) = served {
        served.abort();
    }
    summary.log();
    if !settings.delete_local {
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

    match stop {
        Stop::Fatal(reason) => Err(fatal(anyhow::anyhow!(reason))),
        Stop::Interrupted => {
            tracing::warn!("interrupted; `batchimg resume` continues where this stopped");
            Ok(status)
        }
        Stop::Completed => Ok(status),
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
