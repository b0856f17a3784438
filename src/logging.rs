//! Log set-up: levels from -v/-q or RUST_LOG, text or JSON lines on stderr,
//! and how stderr is used (colour, progress bar), decided here once.

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{ColorChoice, LogArgs, LogFormat};
use crate::progress::LogWriter;

/// How stderr is used, resolved from the global options, NO_COLOR and
/// whether stderr is a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Display {
    /// Log lines carry ANSI colours.
    pub color: bool,
    /// The progress bar is drawn.
    pub progress: bool,
    /// Progress lines are logged this often (stderr is not a terminal).
    pub progress_lines: Option<std::time::Duration>,
}

/// The target of the summary line, which `-q` keeps: it is the outcome.
pub const SUMMARY: &str = "batchimg::summary";

/// The default interval of progress lines.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether to colour: `--color always|never` wins; `auto` (the default)
/// colours a terminal unless NO_COLOR is set to anything but the empty
/// string, as <https://no-color.org> and ripgrep have it.
pub fn color_enabled(
    choice: Option<ColorChoice>,
    no_color: Option<&OsStr>,
    terminal: bool,
) -> bool {
    match choice.unwrap_or(ColorChoice::Auto) {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
    }
}

/// Installs the global subscriber and returns how stderr is used. RUST_LOG,
/// when set, wins over -v and -q.
#[allow(
    clippy::print_stderr,
    reason = "before the subscriber exists, stderr is the only place to say RUST_LOG is ignored"
)]
pub fn init(args: &LogArgs) -> Display {
    let terminal = std::io::stderr().is_terminal();
    let display = Display {
        color: color_enabled(
            args.color,
            std::env::var_os("NO_COLOR").as_deref(),
            terminal,
        ),
        progress: terminal && !args.no_progress,
        progress_lines: (!terminal && !args.no_progress)
            .then(|| args.progress_interval.unwrap_or(PROGRESS_EVERY))
            .filter(|every| !every.is_zero()),
    };
    // The AWS SDK logs each failing credential provider as a multi-line
    // warning; batchimg reports the outcome itself in one line, so the SDK's
    // own warnings are shown only at -vv.
    let default = match (args.verbose, args.quiet) {
        (0, 0) if args.log_rows => {
            "warn,batchimg=info,aws_config=error,aws_smithy_runtime=error,aws_runtime=error"
        }
        (0, 0) => {
            "warn,batchimg=info,batchimg::rows=warn,aws_config=error,aws_smithy_runtime=error,aws_runtime=error"
        }
        (1, _) => "warn,batchimg=debug,aws_config=error,aws_smithy_runtime=error,aws_runtime=error",
        (v, _) if v >= 2 => "trace",
        (_, 1) => {
            "warn,batchimg::summary=info,aws_config=error,aws_smithy_runtime=error,aws_runtime=error"
        }
        _ => "error",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => EnvFilter::try_new(s).unwrap_or_else(|e| {
            let why = format!("ignoring RUST_LOG ({e})");
            match args.log_format {
                LogFormat::Json => {
                    eprintln!("{}", serde_json::json!({"level": "WARN", "message": why}))
                }
                LogFormat::Text => eprintln!("batchimg: {why}"),
            }
            EnvFilter::new(default)
        }),
        _ => EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter)
        .with_target(false);
    let installed = match args.log_format {
        LogFormat::Text => builder.with_ansi(display.color).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // `app::run` initialises once per process; a second command run in the
    // same process would keep the first subscriber.
    drop(installed);
    display
}

/// The error that ends the process, as its last line: plain text, or in
/// JSON mode a JSON object like every other line, with the exit code.
#[allow(
    clippy::print_stderr,
    reason = "the command line's edge: the last line of a failed command"
)]
pub fn fatal(json: bool, message: &str, exit_code: i32) {
    if json {
        let line = serde_json::json!({
            "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            "level": "ERROR",
            "message": message,
            "exit_code": exit_code,
        });
        eprintln!("{line}");
    } else {
        eprintln!("batchimg: error: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_follows_the_flag_then_no_color_then_the_terminal() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        assert!(color_enabled(None, None, true));
        assert!(!color_enabled(None, None, false));
        assert!(!color_enabled(None, set, true));
        assert!(
            color_enabled(None, empty, true),
            "an empty NO_COLOR is unset"
        );
        assert!(color_enabled(Some(ColorChoice::Always), set, false));
        assert!(!color_enabled(Some(ColorChoice::Never), None, true));
        assert!(!color_enabled(Some(ColorChoice::Auto), set, true));
    }
}
