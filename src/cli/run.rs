//! The options of `batchimg run`, and the groups `resume` shares with it.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::help::{DOWNLOADS, INPUT_OUTPUT, REPORTS, S3, TRANSFORM};
use super::tuning::TuningArgs;

#[derive(Debug, Args)]
#[command(next_help_heading = INPUT_OUTPUT)]
pub struct RunArgs {
    /// The image URLs: a CSV with the one column `url`, or a CSV, TSV,
    /// Parquet or JSON Lines file with a `url` column (or --url-column),
    /// plain or .gz/.zst; or a directory or `s3://bucket/prefix/` of part
    /// files, read in name order (`_SUCCESS`, `.crc` and hidden files are
    /// skipped).
    #[arg(long, short = 'i', value_name = "PATH")]
    pub input: String,

    /// The input's format when its name does not say (.csv, .tsv, .parquet,
    /// .jsonl, .ndjson, .json; default: CSV).
    #[arg(long, value_name = "FORMAT", env = "BATCHIMG_INPUT_FORMAT")]
    pub input_format: Option<crate::table::TableFormat>,

    /// Output file with the columns url,input,output,s3url, one row per
    /// successful input row: Parquet if it ends in .parquet, JSON Lines in
    /// .jsonl, else CSV.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: String,

    /// Write the rows that failed here (CSV, Parquet or JSON Lines, by
    /// extension), ready to be run again with the same flags.
    #[arg(long, value_name = "FILE")]
    pub output_failed: Option<String>,

    /// Write one row per input row, in input order, saying what became of it
    /// (state, reason, key, sizes, hash, engine…): Parquet, CSV or JSON Lines
    /// by extension. Written whole when the run ends; `status --manifest`
    /// writes one at any time.
    #[arg(long, value_name = "FILE", env = "BATCHIMG_MANIFEST")]
    pub manifest: Option<String>,

    /// Discard an unfinished run in the state directory and start over.
    #[arg(long)]
    pub fresh: bool,

    /// Take the URL from this column (default: `url`; a CSV without
    /// --url-column or --keep-columns must have exactly that one column).
    #[arg(long, value_name = "NAME", env = "BATCHIMG_URL_COLUMN")]
    pub url_column: Option<String>,

    /// Copy the input's other columns, in order and with their types (and a
    /// partitioned directory's `key=value` keys as columns), after the output
    /// file's own, into the failed file (which stays an input for the same
    /// flags) and into the manifest.
    #[arg(long, env = "BATCHIMG_KEEP_COLUMNS", value_parser = clap::builder::FalseyValueParser::new())]
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
    pub transform: TransformArgs,

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
    /// {prefix}, {column:NAME} (a column of a wider input), {url_path}, {url_host},
    /// {url_stem}, {ext} (the output's extension), {row}, {format}, {width}
    /// and {height} (the output's format and size). A name already
    /// holding other content fails the row instead of being overwritten.
    #[arg(long, help_heading = S3, value_name = "TEMPLATE", env = "BATCHIMG_KEY_TEMPLATE")]
    pub key_template: Option<String>,

    #[command(flatten)]
    pub tuning: TuningArgs,
}

/// What is done to each image besides grayscale. Recorded with the run:
/// `resume` continues with the same transform, which is part of every key.
#[derive(Debug, Args, Default, Clone)]
pub struct TransformArgs {
    /// Resize to fit a box of W x H pixels; either side may be left out
    /// (`512x`, `x512`). Never enlarges unless --upscale. JPEGs are decoded
    /// already shrunk (1/2, 1/4 or 1/8), then resampled with Lanczos3.
    #[arg(long, help_heading = TRANSFORM, value_name = "WxH", env = "BATCHIMG_RESIZE")]
    pub resize: Option<String>,

    /// How the image meets the --resize box: `contain` fits inside, keeping
    /// the aspect ratio; `cover` fills the box and crops the overflow from
    /// the centre; `fill` stretches to the box [default: contain].
    #[arg(long, help_heading = TRANSFORM, value_enum, value_name = "MODE", env = "BATCHIMG_FIT")]
    pub fit: Option<crate::transform::Fit>,

    /// Enlarge images smaller than the --resize box.
    #[arg(long, help_heading = TRANSFORM, env = "BATCHIMG_UPSCALE", value_parser = clap::builder::FalseyValueParser::new())]
    pub upscale: bool,

    /// The output's format; the key's extension and the Content-Type follow
    /// it. `same` keeps JPEG, PNG and WebP, writes GIF, TIFF and BMP as PNG
    /// and HEIC and AVIF as JPEG [default: same].
    #[arg(long, help_heading = TRANSFORM, value_enum, value_name = "FORMAT", env = "BATCHIMG_FORMAT")]
    pub format: Option<crate::transform::OutputFormat>,

    /// Quality of JPEG and WebP outputs, 1 to 100 [default: 85].
    #[arg(long, help_heading = TRANSFORM, value_name = "1-100", env = "BATCHIMG_QUALITY", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: Option<u8>,

    /// Keep the colours: no grayscale. The other transforms still apply.
    #[arg(long, help_heading = TRANSFORM, env = "BATCHIMG_KEEP_COLOR", value_parser = clap::builder::FalseyValueParser::new())]
    pub keep_color: bool,

    /// Keep a JPEG's EXIF (GPS included; the orientation tag reset, as the
    /// pixels are turned upright), XMP and comments in the output (WebP has
    /// no place for comments). By default a transformed image carries none
    /// of them.
    #[arg(long, help_heading = TRANSFORM, env = "BATCHIMG_KEEP_METADATA", value_parser = clap::builder::FalseyValueParser::new())]
    pub keep_metadata: bool,
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
    pub sse: Option<crate::options::Sse>,

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
