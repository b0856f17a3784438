//! The command line as the user types it; `resolve` turns it into `Settings`.
//!
//! Only parsing lives here. Options that also come from the environment name
//! their variable with clap's `env`, so `--help` shows both, and defaults that
//! depend on other options or the machine (the work directory, the number of
//! cores) are left as `None` for `resolve` to settle.

mod help;
mod run;
mod tuning;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use help::{
    COMPLETIONS_EXIT_CODES, EXIT_CODES, INPUT_OUTPUT, LOGGING, MERGE_EXIT_CODES, RETRIES,
    STATUS_EXIT_CODES,
};
pub use run::{
    HeaderArgs, HttpArgs, ObjectArgs, ReportArgs, RequestPayer, RunArgs, SourceArgs, StateArgs,
    StoreArgs, TransformArgs,
};
pub use tuning::TuningArgs;

/// Resumable batch image processing: download, convert to grayscale, upload to S3.
#[derive(Debug, Parser)]
#[command(
    name = "batchimg",
    version = crate::version::SHORT,
    after_long_help = EXIT_CODES,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Process every URL of an input CSV (header `url`) and write the output CSVs.
    ///
    /// Creates a journal in the state directory, so an interrupted run can be
    /// continued with `batchimg resume`.
    #[command(after_help = EXIT_CODES)]
    Run(Box<RunArgs>),
    /// Continue the run recorded in the state directory where it stopped.
    #[command(after_help = EXIT_CODES)]
    Resume(Box<ResumeArgs>),
    /// Show where the run in the state directory stands (read-only; safe during a run).
    #[command(after_help = STATUS_EXIT_CODES)]
    Status(StatusArgs),
    /// Merge the output and failed CSVs of a sharded run back into input order.
    #[command(after_help = MERGE_EXIT_CODES)]
    Merge(MergeArgs),
    /// Print a shell completion script, e.g. `batchimg completions bash > /etc/bash_completion.d/batchimg`.
    #[command(after_help = COMPLETIONS_EXIT_CODES)]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The command line, with the tuning options' defaults in their help.
pub fn command() -> clap::Command {
    help::with_defaults(Cli::command())
}

/// Parses the process's command line. Like `Cli::parse`, with the long
/// `--version` naming the linked image libraries (known only at run time),
/// and a bad value (`--max-download-bytes 50XB`) reported on one line.
pub fn parse() -> Cli {
    let command = command().long_version(long_version());
    let matches = command.try_get_matches().unwrap_or_else(|e| exit_with(e));
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| exit_with(e))
}

/// The long `--version`: the build, the ImageMagick that is loaded (asked
/// at run time: it is a shared library, updated by the system), and the
/// libjpeg-turbo the lossless engine is built with, since those are what
/// security advisories name. Leaked once: clap keeps `&'static str`s.
fn long_version() -> &'static str {
    let text = format!(
        "{}\n{}\nlibjpeg-turbo: built in by turbojpeg-sys {} (lossless JPEG engine)",
        crate::version::SHORT,
        crate::image::magick::version(),
        crate::version::TURBOJPEG_SYS,
    );
    Box::leak(text.into_boxed_str())
}

#[allow(
    clippy::exit,
    clippy::print_stderr,
    reason = "the command line's edge: a usage error ends the process here"
)]
fn exit_with(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        // clap adds a blank line and a hint to its message; the first line
        // already names the flag, the value and what was expected.
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        eprintln!("batchimg: {first}");
        std::process::exit(e.exit_code());
    }
    e.exit()
}

#[derive(Debug, Args)]
#[command(next_help_heading = LOGGING)]
pub struct LogArgs {
    /// More log detail: -v shows every stage of every URL, -vv everything.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Less log detail: -q shows warnings and errors only, -qq errors only.
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,

    /// Log line format on stderr. RUST_LOG, when set, overrides -v/-q.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "BATCHIMG_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Colour in log lines: `auto` colours only when stderr is a terminal
    /// and NO_COLOR is unset or empty; `always` and `never` override both [default: auto].
    #[arg(long, global = true, value_enum, value_name = "WHEN")]
    pub color: Option<ColorChoice>,

    /// No progress at all: neither the bar (drawn when stderr is a terminal)
    /// nor the progress lines (logged at an interval when it is not).
    #[arg(long, global = true, env = "BATCHIMG_NO_PROGRESS", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_progress: bool,

    /// When stderr is not a terminal, log a progress line this often (done,
    /// rate, ETA, failures by reason, bytes), e.g. `30s`, `5m`; `0` for none
    /// [default: 30s].
    #[arg(long, global = true, value_name = "DURATION", env = "BATCHIMG_PROGRESS_INTERVAL", value_parser = crate::units::seconds)]
    pub progress_interval: Option<std::time::Duration>,

    /// Log one line per finished row (also at -v). Without it, a run logs
    /// progress lines, failures and the summary, not every success.
    #[arg(long, global = true, env = "BATCHIMG_LOG_ROWS", value_parser = clap::builder::FalseyValueParser::new())]
    pub log_rows: bool,
}

/// When log lines are coloured (`--color`), as ripgrep and rclone spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub state: StateArgs,

    /// Also retry the rows that failed: all of them, or only those failed for
    /// the reasons named (comma-separated, e.g. `--retry-failed network,http-status`).
    /// Rows stopped by a store outage or a full disk are not failed and need no flag.
    #[arg(long, help_heading = RETRIES, value_name = "REASONS", num_args = 0..=1, require_equals = false, value_delimiter = ',')]
    pub retry_failed: Option<Vec<String>>,

    #[command(flatten)]
    pub headers: HeaderArgs,

    /// Write the per-row manifest here when the run ends (default: where
    /// `run --manifest` said).
    #[arg(long, help_heading = INPUT_OUTPUT, value_name = "FILE", env = "BATCHIMG_MANIFEST")]
    pub manifest: Option<String>,

    #[command(flatten)]
    pub report: ReportArgs,

    #[command(flatten)]
    pub tuning: TuningArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArgs,

    /// List every failed row (row, URL with secrets redacted, reason,
    /// message) instead of the summary, streaming from the journal.
    #[arg(long, help_heading = INPUT_OUTPUT)]
    pub failures: bool,

    /// JSON on stdout: one object for the summary; with --failures, one
    /// object per line (JSON lines), so the list streams into `jq`.
    #[arg(long, help_heading = INPUT_OUTPUT, conflicts_with = "csv")]
    pub json: bool,

    /// With --failures: CSV with the header row,url,reason,message.
    #[arg(long, help_heading = INPUT_OUTPUT, requires = "failures")]
    pub csv: bool,

    /// Write the per-row manifest (Parquet, CSV or JSON Lines, by
    /// extension) as the journal has it now, during or after a run. Local or
    /// s3:// (needs the run's region and credentials).
    #[arg(long, help_heading = INPUT_OUTPUT, value_name = "FILE", conflicts_with_all = ["failures", "json"])]
    pub manifest: Option<String>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The input the shards were run on (a file, directory or s3:// path).
    #[arg(long, short = 'i', value_name = "PATH")]
    pub input: String,

    /// Number of shards.
    #[arg(long, value_name = "N")]
    pub shard_count: u32,

    /// The input's format when its name does not say (as `run --input-format`).
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<crate::table::TableFormat>,

    /// The input's URL column, as the shards were run with (`run --url-column`).
    #[arg(long, value_name = "NAME")]
    pub url_column: Option<String>,

    /// The shards' output files, with `{shard}` where the index goes.
    #[arg(long, value_name = "PATTERN")]
    pub from: String,

    /// The shards' failed files, with `{shard}` where the index goes.
    #[arg(long, value_name = "PATTERN")]
    pub from_failed: Option<String>,

    /// The shards' manifests, with `{shard}` where the index goes.
    #[arg(long, value_name = "PATTERN")]
    pub from_manifest: Option<String>,

    /// The merged output file (CSV, Parquet or JSON Lines, by extension).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: String,

    /// The merged failed file.
    #[arg(long, value_name = "FILE", requires = "from_failed")]
    pub output_failed: Option<String>,

    /// The merged manifest, in row order.
    #[arg(long, value_name = "FILE", requires = "from_manifest")]
    pub manifest: Option<String>,

    /// Region for s3:// paths.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// S3-compatible endpoint for s3:// paths (also AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use help::{CONCURRENCY, DOWNLOADS, LIMITS, REPORTS, S3, SECURITY};

    #[test]
    fn command_line_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = command().render_long_help().to_string();
        for code in ["0 ", "1 ", "2 ", "3 ", "130"] {
            assert!(
                help.contains(&format!("  {code}")),
                "exit code {code} missing"
            );
        }
    }

    #[test]
    fn every_subcommand_help_has_exit_codes_and_the_global_options_last() {
        let mut cli = command();
        cli.build();
        for sub in cli.get_subcommands_mut().filter(|s| s.get_name() != "help") {
            let name = sub.get_name().to_string();
            for help in [sub.render_help(), sub.render_long_help()] {
                let help = help.to_string();
                assert!(help.contains("Exit codes:\n  0 "), "{name}: {help}");
                let logging = help
                    .find(LOGGING)
                    .unwrap_or_else(|| panic!("{name}: {help}"));
                for heading in [
                    INPUT_OUTPUT,
                    S3,
                    CONCURRENCY,
                    RETRIES,
                    LIMITS,
                    SECURITY,
                    DOWNLOADS,
                ] {
                    if let Some(at) = help.find(&format!("{heading}:")) {
                        assert!(at < logging, "{name}: {heading} after the global options");
                    }
                }
            }
        }
        let run = cli
            .find_subcommand_mut("run")
            .unwrap()
            .render_help()
            .to_string();
        for heading in [
            INPUT_OUTPUT,
            S3,
            CONCURRENCY,
            RETRIES,
            LIMITS,
            SECURITY,
            DOWNLOADS,
            REPORTS,
            LOGGING,
        ] {
            assert!(
                run.contains(&format!("{heading}:")),
                "run help lacks {heading}"
            );
        }
    }

    /// `--help` of every subcommand, as users and scripts read it.
    #[test]
    fn the_help_is_pinned() {
        let mut cli = command().term_width(100);
        cli.build();
        let mut cli = cli.mut_args(|a| a.hide_env_values(true));
        insta::assert_snapshot!("help", cli.render_long_help().to_string());
        let names: Vec<String> = cli
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .filter(|n| n != "help")
            .collect();
        for name in names {
            let sub = cli.find_subcommand_mut(&name).unwrap();
            let mut sub = sub.clone().mut_args(|a| a.hide_env_values(true));
            insta::assert_snapshot!(format!("help_{name}"), sub.render_long_help().to_string());
        }
    }
}
