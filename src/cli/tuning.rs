//! Limits and knobs, shared by `run` and `resume`. Every one is optional, so
//! that `resume` overrides only what it is given; the help shows the default
//! each falls back to, taken from the `Default` impls that settings start from.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::help::{CONCURRENCY, INPUT_OUTPUT, LIMITS, RETRIES, S3, SECURITY};

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
    /// computes Rec. 709 luma, as every other format is.
    #[arg(long, help_heading = INPUT_OUTPUT, value_enum, value_name = "ENGINE", env = "BATCHIMG_JPEG_ENGINE")]
    pub jpeg_engine: Option<crate::options::JpegEngine>,

    /// Whether a HEAD checks for an object before its conditional PUT
    /// (`If-None-Match: *`). `auto`: not against AWS S3, which honours the
    /// condition; always against other endpoints, some of which ignore it.
    #[arg(
        long,
        help_heading = S3,
        value_enum,
        value_name = "WHEN",
        env = "BATCHIMG_HEAD_BEFORE_PUT"
    )]
    pub head_before_put: Option<crate::options::HeadBeforePut>,

    /// Whether image uploads sign their body. `auto`: over HTTPS the body is
    /// sent as `UNSIGNED-PAYLOAD` with its CRC32 in a signed
    /// `x-amz-checksum-crc32` header, as the AWS CLI and rclone send it
    /// (TLS protects it in transit, and SHA-256 of every body is the
    /// upload's largest CPU cost); over plain HTTP it is always signed. `always`:
    /// sign its SHA-256 over HTTPS too, for a store that refuses unsigned
    /// bodies.
    #[arg(
        long,
        help_heading = S3,
        value_enum,
        value_name = "WHEN",
        env = "BATCHIMG_SIGN_PAYLOAD"
    )]
    pub sign_payload: Option<crate::options::SignPayload>,

    /// Concurrent downloads, all hosts together.
    #[arg(long, help_heading = CONCURRENCY, value_name = "N", env = "BATCHIMG_DOWNLOADS")]
    pub downloads: Option<usize>,

    /// Pin the downloads in flight to any one host to N. Without it each
    /// host's limit adapts: it starts at 8, grows while the host answers
    /// as fast and does not push back, and shrinks on 429, 503, resets and
    /// timeouts; a Retry-After pauses the whole host.
    #[arg(long, help_heading = CONCURRENCY, value_name = "N", env = "BATCHIMG_PER_HOST")]
    pub per_host: Option<usize>,

    /// Most requests per second to any one host, retries and redirects
    /// included, e.g. `10` or `0.5`, so that a CDN's rate limit is not hit [default: none].
    #[arg(long, help_heading = CONCURRENCY, value_name = "RATE", env = "BATCHIMG_PER_HOST_RPS")]
    pub per_host_rps: Option<f64>,

    /// Concurrent conversions.
    #[arg(long, help_heading = CONCURRENCY, value_name = "N")]
    pub converts: Option<usize>,

    /// Concurrent uploads and existence checks.
    #[arg(long, help_heading = CONCURRENCY, value_name = "N", env = "BATCHIMG_UPLOADS")]
    pub uploads: Option<usize>,

    /// Time to connect to an image host, e.g. `10s`; a bare number is seconds.
    #[arg(long, help_heading = LIMITS, value_name = "DURATION", env = "BATCHIMG_CONNECT_TIMEOUT", value_parser = crate::units::seconds)]
    pub connect_timeout: Option<Duration>,

    /// Time an image host may take to send the first byte, or between two
    /// reads of a body, e.g. `30s`, `2m`; a bare number is seconds.
    #[arg(long, help_heading = LIMITS, value_name = "DURATION", env = "BATCHIMG_READ_TIMEOUT", value_parser = crate::units::seconds)]
    pub read_timeout: Option<Duration>,

    /// How long an image host may fail every request (refused, reset,
    /// timeouts, 5xx, across rows) before its waiting rows are left for
    /// `batchimg resume` and the run exits 3. Meanwhile its rows wait, and
    /// one request at a time probes it; they are never failed for the outage.
    /// When no host answers at all (the network is down), no new row starts
    /// until one does, for as long.
    #[arg(long, help_heading = RETRIES, value_name = "DURATION", env = "BATCHIMG_HOST_OUTAGE_WAIT", value_parser = crate::units::seconds)]
    pub host_outage_wait: Option<Duration>,

    /// Resolve image hosts' names with this DNS server (`IP` or `IP:PORT`)
    /// instead of the system's (`/etc/resolv.conf`). Answers are cached, and
    /// every address is still checked by the network policy.
    #[arg(long, help_heading = SECURITY, value_name = "ADDR", env = "BATCHIMG_DNS_SERVER", value_parser = crate::units::socket_addr_53)]
    pub dns_server: Option<std::net::SocketAddr>,

    /// Attempts per network operation, the first included.
    #[arg(long, help_heading = RETRIES, value_name = "N", env = "BATCHIMG_ATTEMPTS")]
    pub attempts: Option<u32>,

    /// First retry delay, e.g. `500ms`, `2s`; a bare number is milliseconds
    /// (the old --retry-delay-ms); 0 retries at once.
    #[arg(long, help_heading = RETRIES, alias = "retry-delay-ms", value_name = "DURATION", env = "BATCHIMG_RETRY_DELAY_MS", value_parser = crate::units::millis)]
    pub retry_delay: Option<Duration>,

    /// Longest retry delay, also the cap on a server's Retry-After, e.g.
    /// `30s`; a bare number is milliseconds.
    #[arg(long, help_heading = RETRIES, alias = "max-retry-delay-ms", value_name = "DURATION", env = "BATCHIMG_MAX_RETRY_DELAY_MS", value_parser = crate::units::millis)]
    pub max_retry_delay: Option<Duration>,

    /// Memory that images in flight may use, e.g. `1GiB`, `700MB`: downloads,
    /// conversions and uploads wait for room in it, and ImageMagick keeps a
    /// larger image's pixels on disk [default: half of the container's memory
    /// limit, else of physical memory].
    #[arg(long, help_heading = LIMITS, value_name = "SIZE", env = "BATCHIMG_MEMORY_BUDGET", value_parser = crate::units::size)]
    pub memory_budget: Option<u64>,

    /// After SIGTERM or the first Ctrl-C, how long rows in flight may take to
    /// finish before they are left for `resume` (e.g. `10s`, `1m`).
    #[arg(long, help_heading = LIMITS, value_name = "DURATION", env = "BATCHIMG_STOP_GRACE", value_parser = crate::units::seconds)]
    pub stop_grace: Option<Duration>,

    /// Largest image to download, e.g. `50MiB`, `500KB`; a bare number is
    /// bytes.
    #[arg(long, help_heading = LIMITS, value_name = "SIZE", value_parser = crate::units::size)]
    pub max_download_bytes: Option<u64>,

    /// Widest image to convert, in pixels.
    #[arg(long, help_heading = LIMITS, value_name = "PX")]
    pub max_width: Option<u32>,

    /// Tallest image to convert, in pixels.
    #[arg(long, help_heading = LIMITS, value_name = "PX")]
    pub max_height: Option<u32>,

    /// Most pixels in one image, all frames together.
    #[arg(long, help_heading = LIMITS, value_name = "PX")]
    pub max_pixels: Option<u64>,

    /// Time limit for one conversion, e.g. `90s`, `2m`; a bare number is
    /// seconds.
    #[arg(long, help_heading = LIMITS, value_name = "DURATION", value_parser = crate::units::seconds)]
    pub convert_timeout: Option<Duration>,

    /// Time limit for one download attempt, connection included, e.g. `2m`;
    /// a bare number is seconds.
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
