//! The command line as the user types it; `settings.rs` turns it into `Settings`.
//!
//! Only parsing lives here. Options that also come from the environment name
//! their variable with clap's `env`, so `--help` shows both, and defaults that
//! depend on other options (the work directory, the number of cores) are left
//! as `None` for `settings.rs` to resolve.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0    every row was uploaded or was already in the bucket
  1    the run finished but some rows failed (see --output-failed and the log)
  2    usage, configuration or input-file error; nothing was processed
  3    fatal error (object store unreachable, disk full); resume later
  130  interrupted by Ctrl-C or SIGTERM; `batchimg resume` continues";

/// Resumable batch image processing: download, convert to grayscale, upload to S3.
#[derive(Debug, Parser)]
#[command(name = "batchimg", version, after_long_help = EXIT_CODES, after_help = EXIT_CODES)]
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
    Run(Box<RunArgs>),
    /// Continue the run recorded in the state directory where it stopped.
    Resume(ResumeArgs),
    /// Show where the run in the state directory stands (read-only; safe during a run).
    Status(StatusArgs),
    /// Merge the output and failed CSVs of a sharded run back into input order.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Args)]
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
    pub tuning: TuningArgs,
}

/// What the destination bucket demands of each object, named as `aws s3 cp`
/// names it. Options that describe the object (all but the last two) are part
/// of its key: a run with other options uploads new objects.
#[derive(Debug, Args, Default, Clone)]
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

/// Who pays for requests to a Requester Pays bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RequestPayer {
    Requester,
}

/// Where `s3://` rows are read from, when not from the destination's endpoint.
#[derive(Debug, Args, Default, Clone)]
pub struct SourceArgs {
    /// S3-compatible endpoint for `s3://` rows [default: the destination's].
    #[arg(long, value_name = "URL", env = "BATCHIMG_SOURCE_ENDPOINT_URL")]
    pub source_endpoint_url: Option<String>,

    /// Region of the `s3://` rows' buckets [default: the destination's].
    #[arg(long, value_name = "REGION", env = "BATCHIMG_SOURCE_REGION")]
    pub source_region: Option<String>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub state: StateArgs,

    /// Also retry the rows that failed: all of them, or only those failed for
    /// the reasons named (comma-separated, e.g. `--retry-failed network,http-status`).
    /// Rows stopped by a store outage or a full disk are not failed and need no flag.
    #[arg(long, value_name = "REASONS", num_args = 0..=1, require_equals = false, value_delimiter = ',')]
    pub retry_failed: Option<Vec<String>>,

    #[command(flatten)]
    pub tuning: TuningArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArgs,

    /// List every failed row (row, URL with secrets redacted, reason,
    /// message) instead of the summary, streaming from the journal.
    #[arg(long)]
    pub failures: bool,

    /// JSON on stdout: one object for the summary; with --failures, one
    /// object per line (JSON lines), so the list streams into `jq`.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,

    /// With --failures: CSV with the header row,url,reason,message.
    #[arg(long, requires = "failures")]
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
    #[arg(long, value_name = "DIR", env = "BATCHIMG_WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// Keep no local files: downloads and outputs stay in memory until their
    /// row is uploaded and are never written (otherwise the work directory
    /// keeps about twice each image's size). A resume downloads those rows again.
    #[arg(long, env = "BATCHIMG_DELETE_LOCAL", value_parser = clap::builder::FalseyValueParser::new())]
    pub delete_local: bool,

    /// After SIGTERM or the first Ctrl-C, how long rows in flight may take to
    /// finish before they are left for `resume` (e.g. `10s`, `1m`) [default: 10s].
    #[arg(long, value_name = "DURATION", env = "BATCHIMG_STOP_GRACE")]
    pub stop_grace: Option<humantime::Duration>,

    /// How JPEGs become grayscale: `lossless` keeps the JPEG's own luma
    /// (Rec. 601) bit for bit, without decoding; `imagemagick` decodes and
    /// computes Rec. 709 luma, as every other format is [default: lossless].
    #[arg(long, value_enum, value_name = "ENGINE", env = "BATCHIMG_JPEG_ENGINE")]
    pub jpeg_engine: Option<crate::settings::JpegEngine>,

    /// Whether a HEAD checks for an object before its conditional PUT
    /// (`If-None-Match: *`). `auto`: not against AWS S3, which honours the
    /// condition; always against other endpoints, some of which ignore it [default: auto].
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        env = "BATCHIMG_HEAD_BEFORE_PUT"
    )]
    pub head_before_put: Option<crate::settings::HeadBeforePut>,

    /// Memory that images in flight may use, e.g. `1GiB`, `700MB`: downloads,
    /// conversions and uploads wait for room in it, and ImageMagick keeps a
    /// larger image's pixels on disk [default: half of the container's memory
    /// limit, else of physical memory].
    #[arg(long, value_name = "SIZE", env = "BATCHIMG_MEMORY_BUDGET")]
    pub memory_budget: Option<bytesize::ByteSize>,

    /// Concurrent downloads [default: 32].
    #[arg(long, value_name = "N")]
    pub downloads: Option<usize>,

    /// Concurrent downloads from any one host [default: 8].
    #[arg(long, value_name = "N")]
    pub per_host: Option<usize>,

    /// Concurrent conversions [default: number of cores].
    #[arg(long, value_name = "N")]
    pub converts: Option<usize>,

    /// Concurrent uploads and existence checks [default: 32].
    #[arg(long, value_name = "N")]
    pub uploads: Option<usize>,

    /// Attempts per network operation, the first included [default: 4].
    #[arg(long, value_name = "N", env = "BATCHIMG_ATTEMPTS")]
    pub attempts: Option<u32>,

    /// First retry delay in milliseconds; 0 retries at once [default: 500].
    #[arg(long, value_name = "MS", env = "BATCHIMG_RETRY_DELAY_MS")]
    pub retry_delay_ms: Option<u64>,

    /// Longest retry delay in milliseconds, also the cap on a server's Retry-After [default: 30000].
    #[arg(long, value_name = "MS", env = "BATCHIMG_MAX_RETRY_DELAY_MS")]
    pub max_retry_delay_ms: Option<u64>,

    /// Largest image to download, in bytes [default: 52428800 (50 MiB)].
    #[arg(long, value_name = "BYTES")]
    pub max_download_bytes: Option<u64>,

    /// Widest image to convert, in pixels [default: 20000].
    #[arg(long, value_name = "PX")]
    pub max_width: Option<u32>,

    /// Tallest image to convert, in pixels [default: 20000].
    #[arg(long, value_name = "PX")]
    pub max_height: Option<u32>,

    /// Most pixels in one image, all frames together [default: 100000000].
    #[arg(long, value_name = "PX")]
    pub max_pixels: Option<u64>,

    /// Time limit for one conversion, in seconds [default: 60].
    #[arg(long, value_name = "SECS")]
    pub convert_timeout: Option<u64>,

    /// Time limit for one download, in seconds [default: 120].
    #[arg(long, value_name = "SECS")]
    pub download_timeout: Option<u64>,

    /// Allow URLs on private and loopback networks (link-local and metadata
    /// addresses stay blocked).
    #[arg(long, env = "BATCHIMG_ALLOW_PRIVATE_NETWORKS", value_parser = clap::builder::FalseyValueParser::new())]
    pub allow_private_networks: bool,

    /// Don't read or write the URL index in the bucket (which object each URL
    /// produced), which lets a rerun without its journal skip downloads.
    #[arg(long)]
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
}
