//! Exit codes, and the errors that end a whole command rather than a single row.
//!
//! Per-row failures never come through here: they are recorded in the journal and
//! only raise the exit code to [`ExitStatus::SomeFailed`] at the end.

use std::process::ExitCode;

/// How a command ended, as documented in the README and `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every row was uploaded (or was already in the bucket).
    Success = 0,
    /// The run finished, but some rows failed; they are in the failed CSV.
    SomeFailed = 1,
    /// Bad usage, configuration or input file; nothing was processed.
    Usage = 2,
    /// The run could not go on: the object store or the local disk failed as a whole.
    Fatal = 3,
    /// Stopped by Ctrl-C or SIGTERM; `batchimg resume` continues.
    Interrupted = 130,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

/// An error that stops a command, with the exit status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The user must change something before trying again (exit 2).
    #[error("{0:#}")]
    Usage(anyhow::Error),
    /// Something outside the input failed (exit 3).
    #[error("{0:#}")]
    Fatal(anyhow::Error),
}

impl CommandError {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            CommandError::Usage(_) => ExitStatus::Usage,
            CommandError::Fatal(_) => ExitStatus::Fatal,
        }
    }
}

/// Marks an error as the user's to fix: `.map_err(usage)`.
pub fn usage(err: impl Into<anyhow::Error>) -> CommandError {
    CommandError::Usage(err.into())
}

/// Marks an error as environmental: `.map_err(fatal)`.
pub fn fatal(err: impl Into<anyhow::Error>) -> CommandError {
    CommandError::Fatal(err.into())
}

/// An error and its causes on one line, as `a: b: c`, leaving out a cause
/// whose text the line already holds.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}
