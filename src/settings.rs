//! Everything a run needs to know, resolved: plain data.
//!
//! `resolve` builds it from the command line, the environment and the run
//! recorded in the journal; everything downstream takes a `&Settings` and
//! never looks at the environment again, except the AWS credential chain,
//! which the SDK owns, and with `--proxy-from-env` the proxy variables,
//! which reqwest reads itself. Recorded in the journal, so that `resume`
//! continues with the same choices.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::keys::KeyTemplate;
use crate::location::Location;
use crate::options::{
    Concurrency, HeadBeforePut, JpegEngine, Limits, ObjectOptions, Shard, SignPayload,
};
use crate::retry::RetryPolicy;
use crate::table::TableFormat;
use crate::transform::Transform;

/// Everything a run needs to know, resolved. Recorded in the journal so that
/// `resume` continues with the same choices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    /// Where the input is read from: a file, a directory of part files, or
    /// an `s3://` object or prefix.
    pub input: Location,
    /// How the input is read (and the output CSVs written).
    pub shape: InputShape,
    /// Where the output file (url,input,output,s3url) is written; its
    /// extension chooses CSV, Parquet or JSON Lines.
    pub output: Location,
    /// Where the failed rows are written, as an input for the same flags.
    pub output_failed: Option<Location>,
    /// Where the per-row manifest is written (`--manifest`).
    #[serde(default)]
    pub manifest: Option<Location>,
    /// The object store to upload to.
    pub store: StoreSettings,
    /// Local directory for downloaded (`in/`) and converted (`out/`) files.
    pub work_dir: PathBuf,
    /// Remove local files once their row is uploaded.
    pub delete_local: bool,
    /// How many operations of each stage run at once.
    pub concurrency: Concurrency,
    /// How transient failures are retried.
    pub retry: RetryPolicy,
    /// Limits on what one URL may cost.
    pub limits: Limits,
    /// Allow downloads from private and loopback addresses.
    pub allow_private_networks: bool,
    /// Keep the URL index in the bucket so a rerun can skip downloads.
    pub url_markers: bool,
    /// This process's share of a sharded run.
    pub shard: Option<Shard>,
    /// After SIGTERM or Ctrl-C, how long rows in flight may take to finish
    /// before they are left for `resume`.
    pub stop_grace: Duration,
    /// How JPEGs become grayscale.
    pub jpeg_engine: JpegEngine,
    /// What is done to each image besides grayscale (`--resize`, `--format`…);
    /// part of every key.
    pub transform: Transform,
    /// Whether a HEAD checks for the object before its conditional PUT.
    pub head_before_put: HeadBeforePut,
    /// What rows may hold in memory at once, in bytes; `None`: a share of the
    /// memory limit of the machine `run` or `resume` runs on, decided at start.
    pub memory_budget: Option<u64>,
    /// How downloads talk to web servers: proxy, headers, User-Agent.
    pub http: HttpSettings,
    /// `--key-template`: object names from the row instead of the content.
    pub key_template: Option<KeyTemplate>,
    /// How long a source host may fail every request before the rows that
    /// wait for it are left for `resume` (`--host-outage-wait`).
    pub host_outage_wait: Duration,
}

/// How downloads reach web servers (`--proxy-from-env`, `--header`,
/// `--header-file`, `--user-agent`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HttpSettings {
    /// Send downloads through the proxies the environment names.
    pub proxy_from_env: bool,
    /// Read `https://…amazonaws.com` object URLs through the SDK.
    pub sign_s3_urls: bool,
    /// The User-Agent of downloads; `None`: `batchimg/<version>`.
    pub user_agent: Option<String>,
    /// The header file, read again by `resume`.
    pub header_file: Option<PathBuf>,
    /// The names of the headers sent (lower case, sorted), so that `resume`
    /// can tell when they were not given again.
    pub header_names: Vec<String>,
    /// The headers themselves. Often credentials, so they are never recorded
    /// in the journal (skipped), and their values print as `Sensitive`.
    #[serde(skip)]
    pub headers: reqwest::header::HeaderMap,
    /// The DNS server names are resolved with (`--dns-server`); `None`: the
    /// system's (`/etc/resolv.conf`).
    pub dns_server: Option<std::net::SocketAddr>,
    /// The names of the proxies the environment configures, which the
    /// network policy leaves to the operator; read by each process, as the
    /// variables may differ where `resume` runs.
    #[serde(skip)]
    pub proxy_hosts: Vec<String>,
}

/// The bucket and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoreSettings {
    /// Bucket name.
    pub bucket: String,
    /// Region used to sign requests and to build `s3url`.
    pub region: String,
    /// Prefix put in front of every key batchimg writes.
    pub prefix: String,
    /// A custom S3-compatible endpoint; `None` means AWS itself.
    pub endpoint: Option<String>,
    /// Role to assume through STS before calling S3.
    pub role_arn: Option<String>,
    /// What the bucket demands of every object batchimg writes.
    #[serde(default)]
    pub object: ObjectOptions,
    /// Where `s3://` rows are read from: another endpoint or region, if set.
    #[serde(default)]
    pub source: SourceSettings,
    /// Whether image PUTs sign their body's SHA-256 (`--sign-payload`).
    #[serde(default)]
    pub sign_payload: SignPayload,
}

/// The shape of the input (`--input-format`, `--url-column`,
/// `--keep-columns`, `--delimiter`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputShape {
    /// The format of every input file; `None`: each file's name says (CSV
    /// when it does not).
    pub format: Option<TableFormat>,
    /// The column holding the URL; `None`: the column `url` (for CSV, the
    /// input's only column).
    pub url_column: Option<String>,
    /// Copy the other columns into the output files and the manifest.
    pub keep_columns: bool,
    /// The CSV delimiter (TSV files use a tab).
    pub delimiter: u8,
}

impl Settings {
    /// The files a session writes at its end: output, failed and manifest.
    pub fn outputs(&self) -> impl Iterator<Item = &Location> {
        std::iter::once(&self.output)
            .chain(self.output_failed.as_ref())
            .chain(self.manifest.as_ref())
    }
}

impl Default for InputShape {
    fn default() -> Self {
        InputShape {
            format: None,
            url_column: None,
            keep_columns: false,
            delimiter: b',',
        }
    }
}

/// How `s3://` source rows are read. Unset fields take the destination's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceSettings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Send `x-amz-request-payer: requester` with every read of a source.
    pub request_payer: bool,
}

impl Settings {
    /// The settings of a run of `input` into `output`, everything else at
    /// its default; `resolve` fills them from the command line.
    pub fn new(
        input: Location,
        output: Location,
        store: StoreSettings,
        state_dir: &Path,
    ) -> Settings {
        Settings {
            input,
            shape: InputShape::default(),
            output,
            output_failed: None,
            manifest: None,
            store,
            work_dir: default_work_dir(state_dir),
            delete_local: false,
            concurrency: Concurrency::default(),
            retry: RetryPolicy::default(),
            limits: Limits::default(),
            allow_private_networks: false,
            url_markers: true,
            shard: None,
            stop_grace: DEFAULT_STOP_GRACE,
            jpeg_engine: JpegEngine::default(),
            transform: Transform::default(),
            head_before_put: HeadBeforePut::default(),
            memory_budget: None,
            http: HttpSettings::default(),
            key_template: None,
            host_outage_wait: DEFAULT_HOST_OUTAGE_WAIT,
        }
    }

    /// Whether to HEAD before each conditional PUT.
    pub fn heads_before_put(&self) -> bool {
        self.head_before_put.heads(self.store.endpoint.is_some())
    }
}

/// After SIGTERM or Ctrl-C, how long rows in flight may take by default.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// How long a source host may be down before its rows are left for `resume`.
pub const DEFAULT_HOST_OUTAGE_WAIT: Duration = Duration::from_secs(5 * 60);

/// The state directory a run uses unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = ".batchimg";

/// The state directory, with `{shard}` expanded; shards left at the default
/// directory get one each, so several can run from one directory.
pub fn state_dir(dir: &Path, shard: Option<Shard>) -> PathBuf {
    match shard {
        Some(s) if dir == Path::new(DEFAULT_STATE_DIR) => dir.join(format!("shard-{}", s.index)),
        _ => PathBuf::from(Shard::expand(shard, &dir.to_string_lossy())),
    }
}

/// The work directory sits inside the state directory unless moved.
pub fn default_work_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("work")
}

impl StoreSettings {
    /// The bucket `bucket` in `region`, reached at `endpoint` (AWS when
    /// `None`), with nothing else set.
    pub fn new(bucket: String, region: String, endpoint: Option<String>) -> StoreSettings {
        StoreSettings {
            bucket,
            region,
            prefix: String::new(),
            endpoint,
            role_arn: None,
            object: ObjectOptions::default(),
            source: SourceSettings::default(),
            sign_payload: SignPayload::default(),
        }
    }
}
