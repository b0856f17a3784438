//! The command line as the user types it; `settings.rs` turns it into `Settings`.
//!
//! Only parsing lives here. Options that also come from the environment name
//! their variable with clap's `env`, so `--help` shows both, and defaults that
//! depend on other options (the work directory, the number of cores) are left
//! as `None` for `settings.rs` to resolve.

use std::path::PathBuf;

use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0    every row was uploaded or was already in the bucket
  1    the run finished but some rows failed (see --output-failed and the log)
  2    usage, configuration or input-file error; nothing was processed
  3    fatal error (object store unreachable, disk full); resume later
  130  interrupted by Ctrl-C or SIGTERM; `batchimg resume` continues";

const STATUS_EXIT_CODES: &str = "\
Exit codes:
  0    the report was written (also when its reader closed the pipe early)
  2    usage error, or no journal in the state directory
  3    the journal cannot be read";

const MERGE_EXIT_CODES: &str = "\
Exit codes:
  0    the merged CSVs were written
  2    usage or input error (a shard's CSV missing or not from this input)
  3    fatal error (object store unreachable, disk full)";

const COMPLETIONS_EXIT_CODES: &str = "\
Exit codes:
  0    the script was written
  2    usage error (an unknown shell)";

// Help headings, in the order `--help` shows them; the global options come
// last because clap appends them to each subcommand's own.
const INPUT_OUTPUT: &str = "Input and output";
const S3: &str = "S3";
const CONCURRENCY: &str = "Concurrency";
const RETRIES: &str = "Retries";
const LIMITS: &str = "Limits";
const SECURITY: &str = "Security";
const DOWNLOADS: &str = "Downloads (proxy, headers)";
const REPORTS: &str = "Metrics and reports";
const LOGGING: &str = "Logging and display (global options)";

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

/// Parses the process's command line. Like `Cli::parse`, with the long
/// `--version` naming the linked image libraries (known only at run time),
/// and a bad value (`--max-download-bytes 50XB`) reported on one line.
pub fn parse() -> Cli {
    let command = Cli::command().long_version(crate::version::long());
    let matches = command.try_get_matches().unwrap_or_else(|e| exit_with(e));
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| exit_with(e))
}

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

/// What a `run` or `resume` reports besides its log: metrics while it runs,
/// its figures when it ends.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = REPORTS)]
pub struct ReportArgs {
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while running,
    /// e.g. `0.0.0.0:9090` in a pod, `127.0.0.1:9090` on a shared machine.
    #[arg(long, value_name = "HOST:PORT", env = "BATCHIMG_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Write the final figures (rows by outcome and reason, bytes, time,
    /// rate, peak memory, exit code) to FILE as JSON when the command ends.
    #[arg(long, value_name = "FILE", env = "BATCHIMG_SUMMARY_JSON")]
    pub summary_json: Option<PathBuf>,
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
#[command(next_help_heading = INPUT_OUTPUT)]
pub struct RunArgs {
    /// Input CSV: a header `url` and one image URL per row.
    #[arg(long, short = 'i', value_name = "CSV")]
    pub input: String,

    /// Output CSV with the columns url,input,output,s3url, one row per successful input row.
    #[arg(long, short = 'o', value_name = "CSV")]
    pub output: String,

    /// Write the rows that failed here, in the input format, ready to be run again.
    #[arg(long, value_name = "CSV")]
    pub output_failed: Option<String>,

    /// Discard an unfinished run in the state directory and start over.
    #[arg(long)]
    pub fresh: bool,

    /// Take the URL from this column of a wider CSV (default: the input must
    /// have exactly one column, `url`).
    #[arg(long, value_name = "NAME", env = "BATCHIMG_URL_COLUMN")]
    pub url_column: Option<String>,

    /// Copy the input's other columns, in order, after the output CSV's own
    /// and into the failed CSV (which stays an input for the same flags).
    #[arg(long, requires = "url_column", env = "BATCHIMG_KEEP_COLUMNS", value_parser = clap::builder::FalseyValueParser::new())]
    pub keep_columns: bool,

    /// Field delimiter of the input and output CSVs: one character, or `tab` [default: ,].
    #[arg(long, value_name = "CHAR", env = "BATCHIMG_DELIMITER")]
    pub delimiter: Option<String>,

    /// Process only shard K of N (K from 0): a deterministic share of the URLs.
    /// `{shard}` in --output, --output-failed and --state-dir becomes K.
    #[arg(
        long,
        value_name = "K/N",
        env = "BATCHIMG_SHARD",
        conflicts_with = "shard_count"
    )]
    pub shard: Option<String>,

    /// Number of shards, with K taken from JOB_COMPLETION_INDEX (Kubernetes
    /// Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array job).
    #[arg(long, value_name = "N", env = "BATCHIMG_SHARD_COUNT")]
    pub shard_count: Option<u32>,

    /// Validate the input and the bucket, record the rows in the journal, and
    /// stop before downloading anything; `batchimg resume` does the work.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub state: StateArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub object: ObjectArgs,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub report: ReportArgs,

    /// Name objects from the row instead of their content, e.g.
    /// `{prefix}{column:id}.{ext}` or `{prefix}{url_path}`. Placeholders:
    /// {prefix}, {column:NAME} (needs --url-column), {url_path}, {url_host},
    /// {url_stem}, {ext} (the output's extension), {row}. A name already
    /// holding other content fails the row instead of being overwritten.
    #[arg(long, help_heading = S3, value_name = "TEMPLATE", env = "BATCHIMG_KEY_TEMPLATE")]
    pub key_template: Option<String>,

    #[command(flatten)]
    pub tuning: TuningArgs,
}

/// How downloads reach web servers (HTTP and HTTPS rows; `s3://` rows use the SDK).
#[derive(Debug, Args, Default, Clone)]
pub struct HttpArgs {
    /// Send downloads through the proxies named by HTTPS_PROXY, HTTP_PROXY,
    /// ALL_PROXY and NO_PROXY (or their lower-case forms), which are ignored
    /// otherwise. The network policy still applies to each target, checked
    /// before the request goes to the proxy.
    #[arg(long, help_heading = DOWNLOADS, env = "BATCHIMG_PROXY_FROM_ENV", value_parser = clap::builder::FalseyValueParser::new())]
    pub proxy_from_env: bool,

    /// Read `https://BUCKET.s3.REGION.amazonaws.com/KEY` and path-style AWS
    /// object URLs through the SDK, signed with the credentials, like
    /// `s3://BUCKET/KEY` rows (URLs with a query, e.g. presigned, stay HTTP).
    #[arg(long, help_heading = S3, env = "BATCHIMG_SIGN_S3_URLS", value_parser = clap::builder::FalseyValueParser::new())]
    pub sign_s3_urls: bool,

    /// User-Agent of downloads [default: batchimg/VERSION].
    #[arg(long, help_heading = DOWNLOADS, value_name = "TEXT", env = "BATCHIMG_USER_AGENT")]
    pub user_agent: Option<String>,

    #[command(flatten)]
    pub headers: HeaderArgs,
}

/// Extra request headers of downloads. Never logged, never recorded in the
/// journal: `resume` needs them again (a header file is read again by itself).
#[derive(Args, Default, Clone)]
pub struct HeaderArgs {
    /// A request header for every download, `Name: value`, e.g.
    /// `Authorization: Bearer …`; repeat it for more. Not sent on after a
    /// redirect to another host.
    #[arg(long = "header", short = 'H', help_heading = DOWNLOADS, value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// A file of request headers, one `Name: value` per line (`#` starts a comment).
    #[arg(long, help_heading = DOWNLOADS, value_name = "FILE", env = "BATCHIMG_HEADER_FILE")]
    pub header_file: Option<PathBuf>,
}

/// What the destination bucket demands of each object, named as `aws s3 cp`
/// names it. Options that describe the object (all but the last two) are part
/// of its key: a run with other options uploads new objects.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = S3)]
pub struct ObjectArgs {
    /// Storage class of uploaded images, e.g. STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR.
    #[arg(long, value_name = "CLASS", env = "BATCHIMG_STORAGE_CLASS")]
    pub storage_class: Option<String>,

    /// Server-side encryption of every object written: AES256 (SSE-S3) or aws:kms (SSE-KMS).
    #[arg(long, value_enum, value_name = "ALGORITHM", env = "BATCHIMG_SSE")]
    pub sse: Option<crate::settings::Sse>,

    /// The KMS key for --sse aws:kms (ID, ARN or alias); default: the account's S3 key.
    #[arg(long, value_name = "KEY", env = "BATCHIMG_SSE_KMS_KEY_ID")]
    pub sse_kms_key_id: Option<String>,

    /// Use an S3 Bucket Key for SSE-KMS (fewer KMS requests).
    #[arg(long, env = "BATCHIMG_BUCKET_KEY_ENABLED", value_parser = clap::builder::FalseyValueParser::new())]
    pub bucket_key_enabled: bool,

    /// Canned ACL of every object written, e.g. bucket-owner-full-control.
    #[arg(long, value_name = "ACL", env = "BATCHIMG_ACL")]
    pub acl: Option<String>,

    /// Cache-Control of uploaded images, e.g. `max-age=31536000`.
    #[arg(long, value_name = "VALUE", env = "BATCHIMG_CACHE_CONTROL")]
    pub cache_control: Option<String>,

    /// Content-Disposition of uploaded images, e.g. `inline`.
    #[arg(long, value_name = "VALUE", env = "BATCHIMG_CONTENT_DISPOSITION")]
    pub content_disposition: Option<String>,

    /// User metadata of uploaded images, KEY=VALUE; repeat it or separate pairs with commas.
    #[arg(
        long,
        value_name = "KEY=VALUE",
        env = "BATCHIMG_METADATA",
        value_delimiter = ','
    )]
    pub metadata: Vec<String>,

    /// Tags of uploaded images as a query string, e.g. `project=x&team=data`.
    #[arg(long, value_name = "TAGS", env = "BATCHIMG_TAGGING")]
    pub tagging: Option<String>,

    /// Fail every request unless the bucket belongs to this account ID.
    #[arg(long, value_name = "ACCOUNT", env = "BATCHIMG_EXPECTED_BUCKET_OWNER")]
    pub expected_bucket_owner: Option<String>,

    /// `requester`: this account pays for requests to a Requester Pays bucket
    /// (the destination, and any s3:// source).
    #[arg(long, value_enum, value_name = "WHO", env = "BATCHIMG_REQUEST_PAYER")]
    pub request_payer: Option<RequestPayer>,
}

/// Header values are often credentials: Debug shows their count only.
impl std::fmt::Debug for HeaderArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderArgs")
            .field("headers", &format_args!("[{} hidden]", self.headers.len()))
            .field("header_file", &self.header_file)
            .finish()
    }
}

/// Who pays for requests to a Requester Pays bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RequestPayer {
    Requester,
}

/// Where `s3://` rows are read from, when not from the destination's endpoint.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = S3)]
pub struct SourceArgs {
    /// S3-compatible endpoint for `s3://` rows [default: the destination's].
    #[arg(long, help_heading = S3, value_name = "URL", env = "BATCHIMG_SOURCE_ENDPOINT_URL")]
    pub source_endpoint_url: Option<String>,

    /// Region of the `s3://` rows' buckets [default: the destination's].
    #[arg(long, help_heading = S3, value_name = "REGION", env = "BATCHIMG_SOURCE_REGION")]
    pub source_region: Option<String>,
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
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The input CSV the shards were run on (local or s3://).
    #[arg(long, short = 'i', value_name = "CSV")]
    pub input: String,

    /// Number of shards.
    #[arg(long, value_name = "N")]
    pub shard_count: u32,

    /// The shards' output CSVs, with `{shard}` where the index goes.
    #[arg(long, value_name = "PATTERN")]
    pub from: String,

    /// The shards' failed CSVs, with `{shard}` where the index goes.
    #[arg(long, value_name = "PATTERN")]
    pub from_failed: Option<String>,

    /// The merged output CSV.
    #[arg(long, short = 'o', value_name = "CSV")]
    pub output: String,

    /// The merged failed CSV.
    #[arg(long, value_name = "CSV", requires = "from_failed")]
    pub output_failed: Option<String>,

    /// Region for s3:// paths.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// S3-compatible endpoint for s3:// paths (also AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = INPUT_OUTPUT)]
pub struct StateArgs {
    /// Directory holding the journal (and, by default, the work directory).
    #[arg(
        long,
        value_name = "DIR",
        env = "BATCHIMG_STATE_DIR",
        default_value = ".batchimg"
    )]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
#[command(next_help_heading = S3)]
pub struct StoreArgs {
    /// Bucket to upload to.
    #[arg(long, env = "S3_BUCKET")]
    pub bucket: Option<String>,

    /// Region of the bucket. Falls back to AWS_DEFAULT_REGION and the AWS profile.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// Key prefix for uploaded objects, e.g. `gray/`.
    #[arg(long, env = "S3_PREFIX", default_value = "")]
    pub prefix: String,

    /// S3-compatible endpoint (MinIO, R2, s3s…); uses path-style addressing.
    /// Also read from AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// IAM role to assume through STS before talking to S3.
    #[arg(long, env = "AWS_ROLE_ARN", value_name = "ARN")]
    pub role_arn: Option<String>,
}

/// Limits and knobs. All optional so `resume` can override what the run recorded.
#[derive(Debug, Args, Default, Clone)]
pub struct TuningArgs {
    /// Where downloaded and converted files are kept [default: <state-dir>/work].
    #[arg(long, help_heading = INPUT_OUTPUT, value_name = "DIR", env = "BATCHIMG_WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// Keep no local files: downloads and outputs stay in memory until their
    /// row is uploaded and are never written (otherwise the work directory
    /// keeps about twice each image's size). A resume downloads those rows again.
    #[arg(long, help_heading = INPUT_OUTPUT, env = "BATCHIMG_DELETE_LOCAL", value_parser = clap::builder::FalseyValueParser::new())]
    pub delete_local: bool,

    /// How JPEGs become grayscale: `lossless` keeps the JPEG's own luma
    /// (Rec. 601) bit for bit, without decoding; `imagemagick` decodes and
    /// computes Rec. 709 luma, as every other format is [default: lossless].
    #[arg(long, help_heading = INPUT_OUTPUT, value_enum, value_name = "ENGINE", env = "BATCHIMG_JPEG_ENGINE")]
    pub jpeg_engine: Option<crate::settings::JpegEngine>,

    /// Whether a HEAD checks for an object before its conditional PUT
    /// (`If-None-Match: *`). `auto`: not against AWS S3, which honours the
    /// condition; always against other endpoints, some of which ignore it [default: auto].
    #[arg(
        long,
        help_heading = S3,
        value_enum,
        value_name = "WHEN",
        env = "BATCHIMG_HEAD_BEFORE_PUT"
    )]
    pub head_before_put: Option<crate::settings::HeadBeforePut>,

    /// Whether image uploads sign their body. `auto`: over HTTPS the body is
    /// sent as `UNSIGNED-PAYLOAD` with its CRC32 in a signed
    /// `x-amz-checksum-crc32` header, as the AWS CLI and rclone send it
    /// (TLS protects it in transit, and hashing a 20 MB image with SHA-256
    /// costs 15 ms of CPU); over plain HTTP it is always signed. `always`:
    /// sign its SHA-256 over HTTPS too, for a store that refuses unsigned
    /// bodies [default: auto].
    #[arg(
        long,
        help_heading = S3,
        value_enum,
        value_name = "WHEN",
        env = "BATCHIMG_SIGN_PAYLOAD"
    )]
    pub sign_payload: Option<crate::settings::SignPayload>,

    /// Concurrent downloads [default: 32].
    #[arg(long, help_heading = CONCURRENCY, value_name = "N")]
    pub downloads: Option<usize>,

    /// Concurrent downloads from any one host [default: 8].
    #[arg(long, help_heading = CONCURRENCY, value_name = "N")]
    pub per_host: Option<usize>,

    /// Most requests per second to any one host, retries and redirects
    /// included, e.g. `10` or `0.5`, so that a CDN's rate limit is not hit [default: none].
    #[arg(long, help_heading = CONCURRENCY, value_name = "RATE", env = "BATCHIMG_PER_HOST_RPS")]
    pub per_host_rps: Option<f64>,

    /// Concurrent conversions [default: number of cores].
    #[arg(long, help_heading = CONCURRENCY, value_name = "N")]
    pub converts: Option<usize>,

    /// Concurrent uploads and existence checks [default: 32].
    #[arg(long, help_heading = CONCURRENCY, value_name = "N")]
    pub uploads: Option<usize>,

    /// Attempts per network operation, the first included [default: 4].
    #[arg(long, help_heading = RETRIES, value_name = "N", env = "BATCHIMG_ATTEMPTS")]
    pub attempts: Option<u32>,

    /// First retry delay, e.g. `500ms`, `2s`; a bare number is milliseconds
    /// (the old --retry-delay-ms); 0 retries at once [default: 500ms].
    #[arg(long, help_heading = RETRIES, alias = "retry-delay-ms", value_name = "DURATION", env = "BATCHIMG_RETRY_DELAY_MS", value_parser = crate::units::millis)]
    pub retry_delay: Option<Duration>,

    /// Longest retry delay, also the cap on a server's Retry-After, e.g.
    /// `30s`; a bare number is milliseconds [default: 30s].
    #[arg(long, help_heading = RETRIES, alias = "max-retry-delay-ms", value_name = "DURATION", env = "BATCHIMG_MAX_RETRY_DELAY_MS", value_parser = crate::units::millis)]
    pub max_retry_delay: Option<Duration>,

    /// Memory that images in flight may use, e.g. `1GiB`, `700MB`: downloads,
    /// conversions and uploads wait for room in it, and ImageMagick keeps a
    /// larger image's pixels on disk [default: half of the container's memory
    /// limit, else of physical memory].
    #[arg(long, help_heading = LIMITS, value_name = "SIZE", env = "BATCHIMG_MEMORY_BUDGET", value_parser = crate::units::size)]
    pub memory_budget: Option<u64>,

    /// After SIGTERM or the first Ctrl-C, how long rows in flight may take to
    /// finish before they are left for `resume` (e.g. `10s`, `1m`) [default: 10s].
    #[arg(long, help_heading = LIMITS, value_name = "DURATION", env = "BATCHIMG_STOP_GRACE", value_parser = crate::units::seconds)]
    pub stop_grace: Option<Duration>,

    /// Largest image to download, e.g. `50MiB`, `500KB`; a bare number is
    /// bytes [default: 50MiB].
    #[arg(long, help_heading = LIMITS, value_name = "SIZE", value_parser = crate::units::size)]
    pub max_download_bytes: Option<u64>,

    /// Widest image to convert, in pixels [default: 20000].
    #[arg(long, help_heading = LIMITS, value_name = "PX")]
    pub max_width: Option<u32>,

    /// Tallest image to convert, in pixels [default: 20000].
    #[arg(long, help_heading = LIMITS, value_name = "PX")]
    pub max_height: Option<u32>,

    /// Most pixels in one image, all frames together [default: 100000000].
    #[arg(long, help_heading = LIMITS, value_name = "PX")]
    pub max_pixels: Option<u64>,

    /// Time limit for one conversion, e.g. `90s`, `2m`; a bare number is
    /// seconds [default: 60s].
    #[arg(long, help_heading = LIMITS, value_name = "DURATION", value_parser = crate::units::seconds)]
    pub convert_timeout: Option<Duration>,

    /// Time limit for one download attempt, connection included, e.g. `2m`;
    /// a bare number is seconds [default: 2m].
    #[arg(long, help_heading = LIMITS, value_name = "DURATION", value_parser = crate::units::seconds)]
    pub download_timeout: Option<Duration>,

    /// Allow URLs on private and loopback networks (link-local and metadata
    /// addresses stay blocked).
    #[arg(long, help_heading = SECURITY, env = "BATCHIMG_ALLOW_PRIVATE_NETWORKS", value_parser = clap::builder::FalseyValueParser::new())]
    pub allow_private_networks: bool,

    /// Don't read or write the URL index in the bucket (which object each URL
    /// produced), which lets a rerun without its journal skip downloads.
    #[arg(long, help_heading = S3)]
    pub no_url_markers: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        for code in ["0 ", "1 ", "2 ", "3 ", "130"] {
            assert!(
                help.contains(&format!("  {code}")),
                "exit code {code} missing"
            );
        }
    }

    #[test]
    fn every_subcommand_help_has_exit_codes_and_the_global_options_last() {
        let mut cli = Cli::command();
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
}
