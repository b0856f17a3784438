//! `batchimg status`: where the run in a state directory stands.
//!
//! Opens the journal read-only, which redb allows while a run writes to it, and
//! reads the counters the writer keeps, so it answers at once on any size.

use serde_json::json;

use crate::cli::StatusArgs;
use crate::error::{CommandError, ExitStatus};
use crate::job::{StateKind, now_ms};
use crate::journal::{ReadJournal, StateLock};
use crate::redact::RawUrl;

/// Failures listed by `status`.
const SHOWN_FAILURES: usize = 20;

pub fn status(args: StatusArgs) -> Result<ExitStatus, CommandError> {
    let journal = ReadJournal::open(&args.state.state_dir).map_err(super::journal_error)?;
    let run = journal.run_info().map_err(super::journal_error)?;
    let counts = journal.counts().map_err(super::journal_error)?;
    let heartbeat = journal.heartbeat_ms().map_err(super::journal_error)?;
    let (failed_total, failures) = journal
        .failures(SHOWN_FAILURES)
        .map_err(super::journal_error)?;

    let urls = run.rows - run.duplicates;
    let done = counts.get(StateKind::Uploaded) + counts.get(StateKind::Failed);
    let now = now_ms();
    // The state directory's lock says whether a process is working on it.
    let state = if StateLock::is_held(&args.state.state_dir) {
        "running"
    } else if run.finished_ms.is_some() || done == urls {
        "finished"
    } else {
        "stopped"
    };
    let session_done = done.saturating_sub(run.session_done_at_start);
    let session_end = match state {
        "running" => now,
        _ => heartbeat.unwrap_or(now).max(run.session_started_ms),
    };
    let secs = (session_end.saturating_sub(run.session_started_ms)) as f64 / 1000.0;
    let throughput = if secs > 0.0 {
        session_done as f64 / secs
    } else {
        0.0
    };
    let remaining = urls - done;
    let eta = (throughput > 0.0 && state == "running").then(|| remaining as f64 / throughput);
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
            .map(|(row, rec)| {
                let e = rec.failure();
                json!({
                    "row": row,
                    "url": rec.url,
                    "reason": e.map(|f| f.class.name()),
                    "message": e.map(|f| f.message.as_str()),
                })
            })
            .collect();
        let out = json!({
            "state": state,
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
            "finished_ms": run.finished_ms,
            "failures_total": failed_total,
            "failures": failures,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
        return Ok(ExitStatus::Success);
    }

    println!(
        "run in {} (started {})",
        args.state.state_dir.display(),
        ago(run.created_ms)
    );
    println!(
        "  input    {} ({} rows, {} repeated URLs)",
        run.settings.input, run.rows, run.duplicates
    );
    println!("  output   {}", run.settings.output);
    let state_line = match state {
        "running" => format!("running, last progress {}", ago(heartbeat.unwrap_or(now))),
        "finished" => "finished".to_string(),
        _ => "stopped before the end: `batchimg resume` continues".to_string(),
    };
    println!("  state    {state_line}");
    println!("  progress {done}/{urls} URLs ({percent:.1}%)");
    for (name, n) in &counts.by_state {
        let extra = if *name == "uploaded" && counts.reused > 0 {
            format!(" ({} were already in the bucket)", counts.reused)
        } else {
            String::new()
        };
        println!("    {name:<11}{n:>10}{extra}");
    }
    print!("  speed    {throughput:.1} images/s");
    match eta {
        Some(s) => println!(", about {} left", human_secs(s)),
        None => println!(),
    }
    if failed_total > 0 {
        let reasons: Vec<String> = counts
            .failed_by_class
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        println!("  failures {failed_total}: {}", reasons.join(", "));
        for (row, rec) in &failures {
            let (reason, message) = rec
                .failure()
                .map_or(("?", ""), |f| (f.class.name(), f.message.as_str()));
            println!("    row {row}: {reason}: {} ({message})", RawUrl(&rec.url));
        }
        if failed_total > failures.len() as u64 {
            println!("    … and {} more", failed_total - failures.len() as u64);
        }
    }
    Ok(ExitStatus::Success)
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
