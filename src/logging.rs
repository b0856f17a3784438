//! Log set-up: levels from -v/-q or RUST_LOG, text or JSON lines on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};
use crate::progress::LogWriter;

/// Installs the global subscriber. RUST_LOG, when set, wins over -v and -q.
pub fn init(args: &LogArgs) {
    // The AWS SDK logs each failing credential provider as a multi-line
    // warning; batchimg reports the outcome itself in one line, so the SDK's
    // own warnings are shown only at -vv.
    let default = match (args.verbose, args.quiet) {
        (0, 0) => "warn,batchimg=info,aws_config=error,aws_smithy_runtime=error,aws_runtime=error",
        (1, _) => "warn,batchimg=debug,aws_config=error,aws_smithy_runtime=error,aws_runtime=error",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn,aws_config=error,aws_smithy_runtime=error,aws_runtime=error",
        _ => "error",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => EnvFilter::try_new(s).unwrap_or_else(|e| {
            eprintln!("batchimg: ignoring RUST_LOG ({e})");
            EnvFilter::new(default)
        }),
        _ => EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter)
        .with_target(false);
    let installed = match args.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests calling `main` twice) keeps the first subscriber.
    drop(installed);
}
