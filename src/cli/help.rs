//! The help's shared text: headings in the order `--help` shows them, and
//! the exit codes each subcommand documents.

pub const EXIT_CODES: &str = "\
Exit codes:
  0    every row was uploaded or was already in the bucket
  1    the run finished but some rows failed (see --output-failed and the log)
  2    usage, configuration or input-file error; nothing was processed
  3    fatal error (object store unreachable, an image host down longer than
       --host-outage-wait, disk full); resume later
  130  interrupted by Ctrl-C or SIGTERM; `batchimg resume` continues";

pub const STATUS_EXIT_CODES: &str = "\
Exit codes:
  0    the report was written (also when its reader closed the pipe early)
  2    usage error, or no journal in the state directory
  3    the journal cannot be read";

pub const MERGE_EXIT_CODES: &str = "\
Exit codes:
  0    the merged CSVs were written
  2    usage or input error (a shard's CSV missing or not from this input)
  3    fatal error (object store unreachable, disk full)";

pub const COMPLETIONS_EXIT_CODES: &str = "\
Exit codes:
  0    the script was written
  2    usage error (an unknown shell)";

// Help headings, in the order `--help` shows them; the global options come
// last because clap appends them to each subcommand's own.
pub const INPUT_OUTPUT: &str = "Input and output";
pub const TRANSFORM: &str = "Transform (resize, format)";
pub const S3: &str = "S3";
pub const CONCURRENCY: &str = "Concurrency";
pub const RETRIES: &str = "Retries";
pub const LIMITS: &str = "Limits";
pub const SECURITY: &str = "Security";
pub const DOWNLOADS: &str = "Downloads (proxy, headers)";
pub const REPORTS: &str = "Metrics and reports";
pub const LOGGING: &str = "Logging and display (global options)";

/// Each tuning option's default, as `--help` shows it: from the `Default`
/// impls that settings start from, so the help cannot drift from them.
fn defaults() -> Vec<(&'static str, String)> {
    use crate::options::{Concurrency, HeadBeforePut, JpegEngine, Limits, SignPayload};
    use clap::ValueEnum;
    let (r, l) = (crate::retry::RetryPolicy::default(), Limits::default());
    let duration = |d| humantime::format_duration(d).to_string();
    let choice = |v: Option<clap::builder::PossibleValue>| {
        v.map_or_else(String::new, |v| v.get_name().to_string())
    };
    vec![
        (
            "jpeg_engine",
            choice(JpegEngine::default().to_possible_value()),
        ),
        (
            "head_before_put",
            choice(HeadBeforePut::default().to_possible_value()),
        ),
        (
            "sign_payload",
            choice(SignPayload::default().to_possible_value()),
        ),
        (
            "downloads",
            "one per 4 MiB of the memory budget, 32 to 512".into(),
        ),
        (
            "per_host",
            format!("adaptive, from {}", Concurrency::INITIAL_PER_HOST),
        ),
        ("converts", "number of cores".into()),
        ("uploads", "as --downloads".into()),
        ("attempts", r.attempts.to_string()),
        ("retry_delay", duration(r.base_delay)),
        ("max_retry_delay", duration(r.max_delay)),
        ("stop_grace", duration(crate::settings::DEFAULT_STOP_GRACE)),
        (
            "max_download_bytes",
            format!(
                "{:.0}",
                bytesize::ByteSize::b(l.max_download_bytes).display().iec()
            ),
        ),
        ("max_width", l.max_width.to_string()),
        ("max_height", l.max_height.to_string()),
        ("max_pixels", l.max_pixels.to_string()),
        ("convert_timeout", duration(l.convert_timeout)),
        ("download_timeout", duration(l.download_timeout)),
        ("connect_timeout", duration(l.connect_timeout)),
        ("read_timeout", duration(l.read_timeout)),
        (
            "host_outage_wait",
            duration(crate::settings::DEFAULT_HOST_OUTAGE_WAIT),
        ),
    ]
}

/// `cmd` with each tuning option's default after its help, in every
/// subcommand that has the option.
pub fn with_defaults(mut cmd: clap::Command) -> clap::Command {
    let defaults = defaults();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |mut sub| {
            for (id, value) in &defaults {
                if sub.get_arguments().any(|a| a.get_id() == *id) {
                    sub = sub.mut_arg(*id, |arg| {
                        let add = |text: Option<&clap::builder::StyledStr>| {
                            text.map(|t| format!("{t} [default: {value}]"))
                        };
                        let help = add(arg.get_help());
                        let long = add(arg.get_long_help());
                        let arg = match help {
                            Some(h) => arg.help(h),
                            None => arg,
                        };
                        match long {
                            Some(l) => arg.long_help(l),
                            None => arg,
                        }
                    });
                }
            }
            sub
        });
    }
    cmd
}
