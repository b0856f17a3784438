//! One module per subcommand; `execute` is the part `run` and `resume` share.

pub mod completions;
pub mod merge;
pub mod resume;
pub mod run;
pub mod status;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::error::{CommandError, ExitStatus, count, fatal, usage};
use crate::job::{RetryFailed, StateKind, now_ms};
use crate::journal::{Journal, JournalError};
use crate::location::Location;
use crate::manifest;
use crate::pipeline::quarantine::Quarantine;
use crate::pipeline::{Pipeline, Stop, magick, rate};
use crate::progress::{Bar, Reporter};
use crate::settings::Settings;
use crate::store::StoreErrorKind;
use crate::store::s3::S3Store;

/// Connects to the bucket and checks it before any work, so a wrong name,
/// region or credentials fail at once with exit 2.
async fn connect_store(settings: &Settings) -> Result<S3Store, CommandError> {
    let store = S3Store::connect(&settings.store, settings.retry).await;
    store
        .check_credentials()
        .await
        .map_err(|e| usage(anyhow::anyhow!(e)))?;
    match store.check_bucket().await {
        Ok(()) => Ok(store),
        Err(e) => {
            let detail = crate::error::chain(&e);
            let bucket = &settings.store.bucket;
            Err(match e.kind {
                StoreErrorKind::NoSuchBucket => usage(anyhow::anyhow!(
                    "bucket {bucket:?} does not exist ({detail})"
                )),
                StoreErrorKind::PermissionDenied | StoreErrorKind::BadCredentials => {
                    usage(anyhow::anyhow!(
                        "access to bucket {bucket:?} denied: check the AWS credentials; batchimg needs \
                     s3:ListBucket, s3:GetObject and s3:PutObject ({detail})"
                    ))
                }
                StoreErrorKind::Rejected => usage(anyhow::anyhow!(
                    "bucket {bucket:?} rejected the request ({detail})"
                )),
                _ => fatal(anyhow::anyhow!(
                    "cannot reach the object store for bucket {bucket:?} ({detail})"
                )),
            })
        }
    }
}

fn journal_error(e: JournalError) -> CommandError {
    match e {
        JournalError::Missing(_)
        | JournalError::Busy(_)
        | JournalError::Unfinished(_)
        | JournalError::Incompatible { .. } => usage(e),
        e => fatal(e),
    }
}

/// What a session reports besides its log: the metrics endpoint, bound
/// before any work so that a port in use is a usage error (exit 2) and not a
/// run without metrics, and the file the final figures go to.
pub struct Reports {
    metrics: Option<std::net::TcpListener>,
    summary_json: Option<std::path::PathBuf>,
}

impl Reports {
    pub fn bind(args: &crate::cli::ReportArgs) -> Result<Reports, CommandError> {
        let metrics = match args.metrics_addr {
            None => None,
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|e| usage(anyhow::anyhow!("--metrics-addr {addr}: {e}")))?;
                Some(listener)
            }
        };
        if let Some(path) = &args.summary_json {
            let dir = dir_of(path);
            if !dir.is_dir() {
                return Err(usage(anyhow::anyhow!(
                    "--summary-json {}: the directory {} does not exist",
                    path.display(),
                    dir.display()
                )));
            }
        }
        Ok(Reports {
            metrics,
            summary_json: args.summary_json.clone(),
        })
    }
}

/// The final figures of a session, for the summary line and `--summary-json`.
#[derive(Debug, serde::Serialize)]
struct Summary {
    /// `completed`, `interrupted` or `stopped` (a fatal error; `resume` continues).
    outcome: &'static str,
    exit_code: i32,
    /// Why a stopped session stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    rows: u64,
    succeeded_rows: u64,
    failed_rows: u64,
    unfinished_rows: u64,
    uploaded: u64,
    already_present: u64,
    failed: u64,
    failed_by_reason: std::collections::BTreeMap<&'static str, u64>,
    /// This session's: rows it finished, images it stored (failures not
    /// counted), and their rates.
    session_rows: u64,
    session_images: u64,
    elapsed_s: f64,
    rows_per_s: f64,
    images_per_s: f64,
    downloaded_bytes: u64,
    uploaded_bytes: u64,
    peak_memory_bytes: u64,
    state_dir: std::path::PathBuf,
    output: String,
}

/// Runs the pipeline over what the journal still has to do, then writes the CSVs.
async fn execute(
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
    let done_at_start = counts.get(StateKind::Uploaded) + counts.get(StateKind::Failed);
    run.session_started_ms = now_ms();
    let retried = counts.retried(&retry);
    run.session_done_at_start = done_at_start - retried;
    run.finished_ms = None;
    journal.set_run_info(&run).map_err(journal_error)?;

    let todo = counts.get(StateKind::Pending)
        + counts.get(StateKind::Downloaded)
        + counts.get(StateKind::Processed)
        + retried;
    tracing::info!(
        rows = run.rows,
        duplicates = run.duplicates,
        to_do = todo,
        state_dir = %journal.path().display(),
        "starting"
    );

    // What a process that died was converting: suspects, or crashed rows.
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
            .record_crash(&left.suspects, &left.crashed)
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
            let sources = crate::metrics::Sources {
                journal: Arc::clone(&journal),
                budget: pipeline.budget(),
            };
            Some(tokio::spawn(crate::metrics::serve(listener, sources)))
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
    crate::pipeline::quarantine::clear(&state_dir);
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
    let processed =
        counts.get(StateKind::Uploaded) + counts.get(StateKind::Failed) - run.session_done_at_start;
    let images = counts.get(StateKind::Uploaded) - uploaded_at_start;
    let failed = counts.get(StateKind::Failed);
    let top = counts.top_failures(TOP_FAILURES);
    let uploaded = counts.get(StateKind::Uploaded);
    let m = crate::metrics::get();
    let (status, error) = match &stop {
        Stop::Fatal(reason) => (ExitStatus::Fatal, Some(reason.clone())),
        Stop::Interrupted => (ExitStatus::Interrupted, None),
        Stop::Completed if written.failed > 0 => (ExitStatus::SomeFailed, None),
        Stop::Completed => (ExitStatus::Success, None),
    };
    let summary = Summary {
        outcome: match stop {
            Stop::Completed => "completed",
            Stop::Interrupted => "interrupted",
            Stop::Fatal(_) => "stopped",
        },
        exit_code: status as i32,
        error,
        rows: run.rows,
        succeeded_rows: written.succeeded,
        failed_rows: written.failed,
        unfinished_rows: written.unfinished,
        uploaded: uploaded - counts.reused,
        already_present: counts.reused,
        failed,
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
    };
    if let Some(path) = &reports.summary_json {
        write_summary(path, &summary).await?;
    }
    if let Some(served) = served {
        served.abort();
    }
    tracing::info!(
        target: crate::logging::SUMMARY,
        rows = run.rows,
        succeeded_rows = written.succeeded,
        failed_rows = written.failed,
        unfinished_rows = written.unfinished,
        uploaded = uploaded - counts.reused,
        already_present = counts.reused,
        failed,
        top_failures = top,
        elapsed_s = elapsed.as_secs_f64(),
        images_per_s = summary.images_per_s,
        rows_per_s = summary.rows_per_s,
        downloaded_bytes = summary.downloaded_bytes,
        uploaded_bytes = summary.uploaded_bytes,
        peak_memory_mib = peak_memory() >> 20,
        "summary: {}: {} uploaded, {} already in the bucket, {} failed{}, {} unfinished; {:.1} s, {:.1} images/s, peak memory {} MiB",
        count(run.rows, "row", "rows"),
        uploaded - counts.reused,
        counts.reused,
        failed,
        if top.is_empty() {
            String::new()
        } else {
            format!(" ({top})")
        },
        written.unfinished,
        elapsed.as_secs_f64(),
        summary.images_per_s,
        peak_memory() >> 20,
    );
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

    Ok(match stop {
        Stop::Fatal(reason) => return Err(fatal(anyhow::anyhow!(reason))),
        Stop::Interrupted => {
            tracing::warn!("interrupted; `batchimg resume` continues where this stopped");
            ExitStatus::Interrupted
        }
        Stop::Completed if written.failed > 0 => ExitStatus::SomeFailed,
        Stop::Completed => ExitStatus::Success,
    })
}

/// Writes the summary as JSON, whole or not at all: staged and committed
/// as the output CSVs are.
async fn write_summary(path: &std::path::Path, summary: &Summary) -> Result<(), CommandError> {
    let mut text = serde_json::to_vec_pretty(summary).map_err(|e| fatal(anyhow::Error::from(e)))?;
    text.push(b'\n');
    let loc = Location::Local(path.to_path_buf());
    let mut file = staging_file(&loc).map_err(fatal)?;
    use std::io::Write;
    file.write_all(&text)
        .map_err(|e| fatal(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
    commit_file(file, &loc, None).await
}

/// Failure reasons named in the run's summary line.
const TOP_FAILURES: usize = 3;

/// This process's peak resident memory (VmHWM), in bytes; 0 where unknown.
fn peak_memory() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
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
            crate::pipeline::quarantine::clear(&state_dir);
            // A log line, so that JSON mode stays JSON to the last line.
            tracing::warn!("quitting at once; `batchimg resume` continues");
            std::process::exit(ExitStatus::Interrupted as i32);
        }
    }
}

/// Writes the output and failed CSVs where the settings say.
async fn publish_results(
    journal: &Arc<Journal>,
    settings: &Settings,
    store: &S3Store,
) -> Result<manifest::Written, CommandError> {
    let j = Arc::clone(journal);
    let keep_paths = !settings.delete_local;
    let format = settings.csv.clone();
    let output = settings.output.clone();
    let failed = settings.output_failed.clone();
    let (written, staged) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut out = staging_file(&output)?;
        let mut failed_file = failed.as_ref().map(staging_file).transpose()?;
        let written = manifest::write_results(
            &j,
            out.as_file_mut(),
            failed_file
                .as_mut()
                .map(|f| f.as_file_mut() as &mut dyn std::io::Write),
            keep_paths,
            &format,
        )?;
        Ok((written, (out, failed_file)))
    })
    .await
    .map_err(|e| fatal(anyhow::anyhow!(e)))?
    .map_err(fatal)?;
    let (out, failed_file) = staged;
    commit_file(out, &settings.output, Some(store)).await?;
    if let (Some(file), Some(loc)) = (failed_file, &settings.output_failed) {
        commit_file(file, loc, Some(store)).await?;
    }
    Ok(written)
}

/// Staging files are `.batchimg-<pid>-<random>.csv.tmp`: the pid tells a
/// file that a killed process left from one another process is writing.
const STAGING_PREFIX: &str = ".batchimg-";
const STAGING_SUFFIX: &str = ".csv.tmp";

/// Removes the staging files that processes which no longer run left next to
/// the local outputs (a write killed half-way).
fn remove_stale_staging(settings: &Settings) {
    for loc in std::iter::once(&settings.output).chain(settings.output_failed.as_ref()) {
        let Location::Local(path) = loc else { continue };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name
                .strip_prefix(STAGING_PREFIX)
                .and_then(|r| r.strip_suffix(STAGING_SUFFIX))
            else {
                continue;
            };
            let pid = rest
                .split_once('-')
                .and_then(|(pid, _)| pid.parse::<u32>().ok());
            let procfs = std::path::Path::new("/proc/self").exists();
            let stale = match pid.filter(|_| procfs) {
                Some(pid) => {
                    pid != std::process::id()
                        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                }
                // Without a pid (an older version's name) or /proc: stale once an hour old.
                None => entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600)),
            };
            if stale && std::fs::remove_file(entry.path()).is_ok() {
                tracing::debug!(file = %entry.path().display(), "removed a stale staging file");
            }
        }
    }
}

/// The directory a file is in: its parent, or `.` for a bare name.
fn dir_of(path: &std::path::Path) -> &std::path::Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
}

/// A temporary file next to a local target (so the rename is atomic), or in
/// the temp directory for an S3 target.
pub(crate) fn staging_file(loc: &Location) -> anyhow::Result<tempfile::NamedTempFile> {
    match loc {
        Location::Local(path) => {
            let dir = dir_of(path);
            // tempfile creates 0600 files; output CSVs are the user's
            // documents, so they get 0666 less the umask, as `>` would give.
            tempfile::Builder::new()
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                .prefix(&format!("{STAGING_PREFIX}{}-", std::process::id()))
                .suffix(STAGING_SUFFIX)
                .tempfile_in(dir)
                .with_context(|| format!("cannot create a file in {}", dir.display()))
        }
        Location::S3 { .. } => {
            tempfile::NamedTempFile::new().context("cannot create a temporary file")
        }
    }
}

pub(crate) async fn commit_file(
    file: tempfile::NamedTempFile,
    loc: &Location,
    store: Option<&S3Store>,
) -> Result<(), CommandError> {
    match loc {
        Location::Local(path) => {
            file.as_file()
                .sync_all()
                .map_err(|e| fatal(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
            file.persist(path).map_err(|e| {
                fatal(anyhow::anyhow!(
                    "cannot write {}: {}",
                    path.display(),
                    e.error
                ))
            })?;
            Ok(())
        }
        Location::S3 { bucket, key } => {
            let body = std::fs::read(file.path()).map_err(|e| fatal(anyhow::anyhow!(e)))?;
            store
                .ok_or_else(|| {
                    usage(anyhow::anyhow!(
                        "{loc}: s3:// paths need a region and credentials"
                    ))
                })?
                .put_to(bucket, key, body.into(), "text/csv")
                .await
                .map_err(|e| {
                    fatal(anyhow::anyhow!(
                        "cannot upload {loc}: {}",
                        crate::error::chain(&e)
                    ))
                })
        }
    }
}

/// Checks before any work that each local output's directory exists, and
/// clears what killed writes left there.
fn check_output_dirs(settings: &Settings) -> Result<(), CommandError> {
    remove_stale_staging(settings);
    for loc in std::iter::once(&settings.output).chain(settings.output_failed.as_ref()) {
        if let Location::Local(path) = loc {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if !dir.is_dir() {
                return Err(usage(anyhow::anyhow!(
                    "cannot write {}: directory {} does not exist",
                    path.display(),
                    dir.display()
                )));
            }
        }
    }
    Ok(())
}
