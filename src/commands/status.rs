//! `batchimg status`: where the run in a state directory stands, and which rows failed.
//!
//! Opens the journal read-only, which redb allows while a run writes to it, and
//! reads the counters the writer keeps, so it answers at once on any size.
//! `--failures` streams every failed row from the journal's index of failures
//! (no cap, nothing collected in memory), so it works on a million failures.
//!
//! Everything goes to stdout through `?`: a reader that goes away
//! (`batchimg status | head -1`) ends the command with a broken pipe, which
//! `app::run` turns into a quiet success.

use std::io::{self, Write};
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use crate::cli::StatusArgs;
use crate::error::{CommandError, ExitStatus, count, fatal, usage};
use crate::job::{JobRecord, StateKind, now_ms};
use crate::journal::{ReadJournal, Rows, RunInfo, StateLock};
use crate::location::Location;
use crate::redact::RawUrl;
use crate::store::s3::S3Store;

/// Failures listed in the summary; `--failures` lists them all.
const SHOWN_FAILURES: usize = 20;

/// Where a run stands, as `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// A process holds the state directory's lock.
    Running,
    /// Nothing holds it and the run has not reached its end: `resume` continues.
    Stopped,
    /// The run reached its end and wrote its CSVs.
    Finished,
}

impl RunState {
    /// Decided by the lock, never by how recent the last change is: the
    /// kernel drops the lock the moment its holder dies, `kill -9` included.
    pub fn of(lock_held: bool, run: &RunInfo) -> RunState {
        match (lock_held, run.finished_ms) {
            (true, _) => RunState::Running,
            (false, Some(_)) => RunState::Finished,
            (false, None) => RunState::Stopped,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Stopped => "stopped",
            RunState::Finished => "finished",
        }
    }
}

/// `status --manifest FILE`: the per-row manifest as the journal has it
/// now, written whole, during or after a run.
pub async fn manifest(args: StatusArgs) -> Result<ExitStatus, CommandError> {
    let journal = ReadJournal::open(&args.state.state_dir).map_err(super::journal_error)?;
    let run = journal.run_info().map_err(super::journal_error)?;
    let target = args.manifest.as_deref().unwrap_or_default();
    let loc = Location::parse(target).map_err(|e| usage(anyhow::anyhow!("--manifest: {e}")))?;
    super::outputs::check_dir(&loc)?;
    let store = match &loc {
        Location::S3 { .. } => {
            Some(S3Store::connect(&run.settings.store, run.settings.retry).await)
        }
        Location::Local(_) => None,
    };
    let journal = Arc::new(journal) as Arc<dyn Rows>;
    let files = super::outputs::ResultFiles {
        output: None,
        failed: None,
        manifest: Some(loc.clone()),
        shape: run.settings.shape.clone(),
        keep_paths: true,
    };
    let written = super::outputs::write_results(journal, files, store.as_ref()).await?;
    let rows = written.succeeded + written.failed + written.unfinished;
    tracing::info!(rows, "wrote the manifest to {loc}");
    Ok(ExitStatus::Success)
}

pub fn status(args: StatusArgs) -> Result<ExitStatus, CommandError> {
    let journal = ReadJournal::open(&args.state.state_dir).map_err(super::journal_error)?;
    let mut out = io::stdout().lock();
    if args.failures {
        let format = if args.json {
            FailureFormat::JsonLines
        } else if args.csv {
            FailureFormat::Csv
        } else {
            FailureFormat::Text
        };
        list_failures(&journal, format, &mut out).map_err(fatal)?;
    } else {
        summary(&journal, &args, &mut out).map_err(fatal)?;
    }
    out.flush()
        .context("cannot write to stdout")
        .map_err(fatal)?;
    Ok(ExitStatus::Success)
}

/// How `--failures` prints each failed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureFormat {
    /// `row N: reason: url (message)`.
    Text,
    /// One JSON object per line (`{"row","url","reason","message"}`), as
    /// `jq` and log collectors read them, so a long list streams.
    JsonLines,
    /// A header `row,url,reason,message` and one record per failed row.
    Csv,
}

/// Writes every failed row, in input order. A repeated URL is one row: the
/// first one it appears on.
pub fn list_failures(
    journal: &ReadJournal,
    format: FailureFormat,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        FailureFormat::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            csv.write_record(["row", "url", "reason", "message"])?;
            journal.for_each_failure(|row, rec| {
                let (reason, message) = reason_and_message(rec);
                let url = RawUrl(&rec.url).to_string();
                csv.write_record([row.to_string().as_str(), &url, reason, message])?;
                Ok(())
            })?;
            csv.flush()?;
        }
        FailureFormat::JsonLines => journal.for_each_failure(|row, rec| {
            serde_json::to_writer(&mut *out, &failure_json(row, rec))?;
            out.write_all(b"\n")?;
            Ok(())
        })?,
        FailureFormat::Text => journal.for_each_failure(|row, rec| {
            writeln!(out, "{}", failure_line(row, rec))?;
            Ok(())
        })?,
    }
    Ok(())
}

fn reason_and_message(rec: &JobRecord) -> (&'static str, &str) {
    rec.failure()
        .map_or(("?", ""), |f| (f.class.name(), f.message.as_str()))
}

fn failure_json(row: u64, rec: &JobRecord) -> serde_json::Value {
    let (reason, message) = reason_and_message(rec);
    json!({
        "row": row,
        "url": RawUrl(&rec.url).to_string(),
        "reason": reason,
        "message": message,
    })
}

fn failure_line(row: u64, rec: &JobRecord) -> String {
    let (reason, message) = reason_and_message(rec);
    format!("row {row}: {reason}: {} ({message})", RawUrl(&rec.url))
}

fn summary(journal: &ReadJournal, args: &StatusArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let run = journal.run_info()?;
    let counts = journal.counts()?;
    let heartbeat = journal.heartbeat_ms()?;
    let (failed_total, failures) = journal.failures(SHOWN_FAILURES)?;
    let hosts = journal.host_limits()?;

    let urls = run.rows - run.duplicates;
    let done = counts.get(StateKind::Uploaded) + counts.get(StateKind::Failed);
    let now = now_ms();
    let state = RunState::of(StateLock::is_held(&args.state.state_dir), &run);
    // The last change: the writer's last commit, or the start of the latest
    // session if it has committed nothing since.
    let last_change = heartbeat.unwrap_or(0).max(run.session_started_ms);
    let session_done = done.saturating_sub(run.session_done_at_start);
    let session_end = match state {
        RunState::Running => now,
        _ => last_change,
    };
    let secs = (session_end.saturating_sub(run.session_started_ms)) as f64 / 1000.0;
    let throughput = if secs > 0.0 {
        session_done as f64 / secs
    } else {
        0.0
    };
    let remaining = urls - done;
    let eta =
        (throughput > 0.0 && state == RunState::Running).then(|| remaining as f64 / throughput);
    let percent = if urls == 0 {
        100.0
    } else {
        done as f64 * 100.0 / urls as f64
    };

    if args.json {
        let by_state: serde_json::Map<_, _> = counts
            .by_state
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let by_reason: serde_json::Map<_, _> = counts
            .failed_by_class
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let failures: Vec<_> = failures
            .iter()
            .map(|(row, rec)| failure_json(*row, rec))
            .collect();
        let doc = json!({
            "state": state.name(),
            "state_dir": args.state.state_dir,
            "input": run.settings.input.to_string(),
            "output": run.settings.output.to_string(),
            "rows": run.rows,
            "duplicates": run.duplicates,
            "urls": urls,
            "done": done,
            "percent": percent,
            "counts": by_state,
            "already_present": counts.reused,
            "failed_by_reason": by_reason,
            "images_per_second": throughput,
            "eta_seconds": eta,
            "created_ms": run.created_ms,
            "last_change_ms": last_change,
            "finished_ms": run.finished_ms,
            "failures_total": failed_total,
            "failures": failures,
            "host_limits": hosts
                .iter()
                .map(|(host, limit)| json!({"host": host, "limit": limit}))
                .collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }

    writeln!(
        out,
        "run in {} (started {})",
        args.state.state_dir.display(),
        ago(run.created_ms)
    )?;
    writeln!(
        out,
        "  input    {} ({}, {})",
        run.settings.input,
        count(run.rows, "row", "rows"),
        count(run.duplicates, "repeated URL", "repeated URLs")
    )?;
    writeln!(out, "  output   {}", run.settings.output)?;
    let state_line = match (state, run.finished_ms) {
        (RunState::Running, _) => format!("running, last progress {}", ago(last_change)),
        (RunState::Finished, Some(at)) => format!("finished {}", ago(at)),
        (RunState::Finished, None) => "finished".to_string(),
        (RunState::Stopped, _) if done == urls => format!(
            "stopped before writing the output CSVs (last change {}): `batchimg resume` writes them",
            ago(last_change)
        ),
        (RunState::Stopped, _) => format!(
            "stopped before the end (last change {}): `batchimg resume` continues",
            ago(last_change)
        ),
    };
    writeln!(out, "  state    {state_line}")?;
    writeln!(out, "  progress {done}/{urls} URLs ({percent:.1}%)")?;
    for (name, n) in &counts.by_state {
        let extra = if *name == "uploaded" && counts.reused > 0 {
            format!(
                " ({} already in the bucket)",
                count(counts.reused, "was", "were")
            )
        } else {
            String::new()
        };
        writeln!(out, "    {name:<11}{n:>10}{extra}")?;
    }
    write!(out, "  speed    {throughput:.1} images/s")?;
    match eta {
        Some(s) => writeln!(out, ", about {} left", human_secs(s))?,
        None => writeln!(out)?,
    }
    if !hosts.is_empty() {
        let shown: Vec<String> = hosts.iter().map(|(h, l)| format!("{h} {l}")).collect();
        writeln!(
            out,
            "  hosts    downloads in flight allowed: {}",
            shown.join(", ")
        )?;
    }
    if failed_total > 0 {
        let reasons = counts.top_failures(usize::MAX);
        writeln!(out, "  failures {failed_total}: {reasons}")?;
        for (row, rec) in &failures {
            writeln!(out, "    {}", failure_line(*row, rec))?;
        }
        if failed_total > failures.len() as u64 {
            writeln!(
                out,
                "    … and {} more: `batchimg status --failures` lists them all",
                failed_total - failures.len() as u64
            )?;
        }
    }
    Ok(())
}

/// "3 min ago", for a Unix time in milliseconds.
pub fn ago(ms: u64) -> String {
    let secs = now_ms().saturating_sub(ms) as f64 / 1000.0;
    format!("{} ago", human_secs(secs))
}

fn human_secs(secs: f64) -> String {
    match secs {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5400.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}
