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
///
/// Displayed as one line through [`chain`], not anyhow's `{:#}`: an error
/// whose message already quotes its source (`cannot read x: No such file…`)
/// would otherwise print that source twice.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The user must change something before trying again (exit 2).
    #[error("{}", chain(&**.0))]
    Usage(anyhow::Error),
    /// Something outside the input failed (exit 3).
    #[error("{}", chain(&**.0))]
    Fatal(anyhow::Error),
}

impl CommandError {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            CommandError::Usage(_) => ExitStatus::Usage,
            CommandError::Fatal(_) => ExitStatus::Fatal,
        }
    }

    /// Whether the command stopped because stdout was closed under it
    /// (`batchimg status | head -1`). Like ripgrep, that ends quietly with
    /// success: the reader has what it wanted.
    pub fn is_broken_pipe(&self) -> bool {
        let (CommandError::Usage(e) | CommandError::Fatal(e)) = self;
        let broken = Some(std::io::ErrorKind::BrokenPipe);
        e.chain().any(|cause| {
            // serde_json keeps the io::Error inside without a source().
            cause.downcast_ref::<std::io::Error>().map(|io| io.kind()) == broken
                || cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(|j| j.io_error_kind())
                    == broken
        })
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

pub use crate::text::{chain, count};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_quoted_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read in.csv: {source}")]
        struct Open {
            source: std::io::Error,
        }
        let e = usage(Open { source: io });
        assert_eq!(e.to_string(), format!("cannot read in.csv: {text}"));
        let wrapped = fatal(anyhow::anyhow!("inner").context("outer"));
        assert_eq!(wrapped.to_string(), "outer: inner");
    }

    #[test]
    fn broken_pipes_are_recognised_through_context() {
        let e = fatal(
            anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
                .context("writing the status"),
        );
        assert!(e.is_broken_pipe());
        assert!(!fatal(anyhow::anyhow!("disk full")).is_broken_pipe());
    }
}
