//! Flags, environment and recorded runs resolved once into `Settings`.
//!
//! Precedence, highest first: a command-line flag, its environment variable
//! (clap reads those), the settings recorded in the journal (for `resume`), then
//! the built-in default. Everything downstream takes a `&Settings` and never
//! looks at the environment again, except the AWS credential chain, which the
//! SDK owns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_config::meta::region::ProvideRegion;
use serde::{Deserialize, Serialize};

use crate::cli::{RunArgs, StoreArgs, TuningArgs};
use crate::location::Location;

/// Everything a run needs to know, resolved. Recorded in the journal so that
/// `resume` continues with the same choices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    /// Where the input CSV is read from.
    pub input: Location,
    /// How the input CSV is read (and the output CSVs written).
    pub csv: CsvFormat,
    /// Where the output CSV (url,input,output,s3url) is written.
    pub output: Location,
    /// Where the failed rows are written, in the input format.
    pub output_failed: Option<Location>,
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
    /// Whether a HEAD checks for the object before its conditional PUT.
    pub head_before_put: HeadBeforePut,
    /// What rows may hold in memory at once, in bytes; `None`: a share of the
    /// memory limit of the machine `run` or `resume` runs on, decided at start.
    pub memory_budget: Option<u64>,
    /// How downloads talk to web servers: proxy, headers, User-Agent.
    pub http: HttpSettings,
    /// `--key-template`: object names from the row instead of the content.
    pub key_template: Option<crate::pipeline::keys::KeyTemplate>,
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
    /// The names of the proxies the environment configures, which the
    /// network policy leaves to the operator; read by each process, as the
    /// variables may differ where `resume` runs.
    #[serde(skip)]
    pub proxy_hosts: Vec<String>,
}

impl HttpSettings {
    fn resolve(args: &crate::cli::HttpArgs) -> anyhow::Result<HttpSettings> {
        let user_agent = match args.user_agent.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(ua) => {
                reqwest::header::HeaderValue::from_str(ua).map_err(|_| {
                    anyhow::anyhow!("--user-agent {ua:?}: not a valid header value")
                })?;
                Some(ua.to_string())
            }
        };
        let mut http = HttpSettings {
            proxy_from_env: args.proxy_from_env,
            sign_s3_urls: args.sign_s3_urls,
            user_agent,
            ..HttpSettings::default()
        };
        http.load_headers(&args.headers)?;
        http.header_names = header_names(&http.headers);
        http.proxy_hosts = crate::netguard::proxy_hosts();
        Ok(http)
    }

    /// Reads the headers of `args`, or (for `resume`, given none) those of the
    /// recorded header file.
    fn load_headers(&mut self, args: &crate::cli::HeaderArgs) -> anyhow::Result<()> {
        if args.header_file.is_some() {
            self.header_file = args.header_file.clone();
        }
        let mut lines = Vec::new();
        if let Some(file) = &self.header_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("--header-file {}: {e}", file.display()))?;
            for (n, line) in text.lines().enumerate() {
                let place = format!("--header-file {} line {}", file.display(), n + 1);
                lines.push((place, line.to_string()));
            }
        }
        for (n, header) in args.headers.iter().enumerate() {
            lines.push((format!("--header number {}", n + 1), header.clone()));
        }
        self.headers = parse_headers(&lines)?;
        Ok(())
    }

    /// For `resume`: what is not recorded, again. The headers, which the
    /// journal does not keep (it refuses to go on without one the run sent),
    /// and the proxies' names.
    pub fn reload(&mut self, args: &crate::cli::HeaderArgs) -> anyhow::Result<()> {
        self.proxy_hosts = crate::netguard::proxy_hosts();
        self.load_headers(args)?;
        let given = header_names(&self.headers);
        let missing: Vec<&str> = self
            .header_names
            .iter()
            .filter(|n| !given.contains(n))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            bail!(
                "the run sent the request header(s) {}, which the journal does not keep (they \
                 may be secrets): give them again with --header or --header-file",
                missing.join(", ")
            );
        }
        Ok(())
    }
}

/// `Name: value` lines, each with where it came from, into headers; blank
/// lines and `#` comments are skipped. Values are marked sensitive, so no
/// Debug output or log line shows them, and errors name the place, never
/// the text (a line without its name may be a bare token).
fn parse_headers(lines: &[(String, String)]) -> anyhow::Result<reqwest::header::HeaderMap> {
    use reqwest::header::{HeaderName, HeaderValue};
    let mut map = reqwest::header::HeaderMap::new();
    for (place, line) in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            bail!("{place}: expected `Name: value`");
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| anyhow::anyhow!("{place}: not a header name before the `:`"))?;
        if matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            bail!("request header {name}: set by batchimg itself, it cannot be given");
        }
        let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
            anyhow::anyhow!("request header {name}: the value is not a valid header value")
        })?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

fn header_names(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_string()).collect();
    names.sort();
    names.dedup();
    names
}

/// How JPEGs become grayscale (`--jpeg-engine`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
pub enum JpegEngine {
    /// The JPEG's own luma, by a lossless transform of its coefficients
    /// (libjpeg-turbo); ImageMagick for the JPEGs it cannot take.
    Lossless,
    /// Decode, convert to ImageMagick's Gray (Rec. 709 luma) and encode again.
    #[value(name = "imagemagick")]
    ImageMagick,
}

/// Whether a HEAD precedes each conditional PUT (`--head-before-put`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
pub enum HeadBeforePut {
    /// Never against AWS S3, which honours `If-None-Match: *`; always
    /// against another endpoint, since some (Garage) ignore it.
    Auto,
    Always,
    /// Trust the store's conditional PUT: one request per new image fewer.
    Never,
}

/// Whether an image PUT's body is part of its signature (`--sign-payload`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
pub enum SignPayload {
    /// Over HTTPS, as the AWS CLI and rclone send it: `UNSIGNED-PAYLOAD`,
    /// with the body's CRC32 in a signed `x-amz-checksum-crc32` header and
    /// TLS for the rest; over plain HTTP the body's SHA-256 is signed.
    #[default]
    Auto,
    /// Always sign the body's SHA-256, as the AWS SDK for Rust does.
    Always,
}

/// Shard `index` of `count`: the URLs whose blake3 falls in it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The shard a URL belongs to, stable across runs, machines and versions.
    pub fn of(url: &str, count: u32) -> u32 {
        let hash = blake3::hash(url.as_bytes());
        let head: [u8; 8] = hash.as_bytes()[..8].try_into().expect("8 bytes");
        (u64::from_le_bytes(head) % u64::from(count)) as u32
    }

    pub fn contains(&self, url: &str) -> bool {
        Shard::of(url, self.count) == self.index
    }

    /// Reads `K/N`, or N with K from the batch engine's index variable.
    pub fn resolve(spec: Option<&str>, count: Option<u32>) -> anyhow::Result<Option<Shard>> {
        let (index, count) = match (spec, count) {
            (Some(spec), _) => {
                let (k, n) = spec
                    .split_once('/')
                    .with_context(|| format!("--shard {spec:?}: expected K/N, e.g. 0/4"))?;
                let k: u32 = k
                    .trim()
                    .parse()
                    .with_context(|| format!("--shard {spec:?}: K is not a number"))?;
                let n: u32 = n
                    .trim()
                    .parse()
                    .with_context(|| format!("--shard {spec:?}: N is not a number"))?;
                (k, n)
            }
            (None, Some(n)) => {
                let var = ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"]
                    .into_iter()
                    .find_map(|v| non_empty_env(v).map(|k| (v, k)));
                let Some((var, k)) = var else {
                    bail!(
                        "--shard-count {n} needs the shard index: pass --shard K/{n}, or set \
                         JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX"
                    );
                };
                let k: u32 = k
                    .trim()
                    .parse()
                    .with_context(|| format!("{var}={k:?} is not a number"))?;
                (k, n)
            }
            (None, None) => return Ok(None),
        };
        if count == 0 || index >= count {
            bail!("shard {index}/{count}: the index must be below the count, counting from 0");
        }
        Ok(Some(Shard { index, count }))
    }

    /// Replaces `{shard}` in a path or URL with the index.
    pub fn expand(shard: Option<Shard>, text: &str) -> String {
        match shard {
            Some(s) => text.replace("{shard}", &s.index.to_string()),
            None => text.to_string(),
        }
    }
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

/// The shape of the input CSV (`--url-column`, `--keep-columns`, `--delimiter`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CsvFormat {
    /// The column holding the URL; `None`: the input is the single column `url`.
    pub url_column: Option<String>,
    /// Copy the other columns into the output CSVs.
    pub keep_columns: bool,
    pub delimiter: u8,
}

impl Default for CsvFormat {
    fn default() -> Self {
        CsvFormat {
            url_column: None,
            keep_columns: false,
            delimiter: b',',
        }
    }
}

impl CsvFormat {
    fn resolve(args: &RunArgs) -> anyhow::Result<CsvFormat> {
        let delimiter = match args.delimiter.as_deref() {
            None => b',',
            Some("tab" | "\\t" | "\t") => b'\t',
            Some(d) if d.len() == 1 && d != "\"" && d != "\n" && d != "\r" => d.as_bytes()[0],
            Some(d) => bail!(
                "--delimiter {d:?}: expected one ASCII character (not a quote or line break), or `tab`"
            ),
        };
        let url_column = args
            .url_column
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        Ok(CsvFormat {
            url_column: url_column.map(String::from),
            keep_columns: args.keep_columns,
            delimiter,
        })
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

/// Server-side encryption of uploaded objects (`--sse`), as `aws s3 cp` names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
pub enum Sse {
    /// SSE-S3: keys managed by S3.
    #[value(name = "AES256")]
    Aes256,
    /// SSE-KMS, with `--sse-kms-key-id` or the account's default key.
    #[value(name = "aws:kms")]
    Kms,
}

impl Sse {
    pub fn header_value(self) -> &'static str {
        match self {
            Sse::Aes256 => "AES256",
            Sse::Kms => "aws:kms",
        }
    }
}

/// Options of the objects batchimg uploads, named as `aws s3 cp` names them.
/// All of them describe the object except the last two, which are about the
/// requests: the describing ones are part of the object key (see `keys.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ObjectOptions {
    pub storage_class: Option<String>,
    pub sse: Option<Sse>,
    pub sse_kms_key_id: Option<String>,
    pub bucket_key_enabled: bool,
    pub acl: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    /// User metadata (`x-amz-meta-*`), sorted by name.
    pub metadata: Vec<(String, String)>,
    /// Tags as a URL query string (`k1=v1&k2=v2`).
    pub tagging: Option<String>,
    pub expected_bucket_owner: Option<String>,
    /// Send `x-amz-request-payer: requester` with every request to the bucket.
    pub request_payer: bool,
}

impl ObjectOptions {
    /// A canonical text of what describes the objects themselves, or `None`
    /// when nothing is set (then keys are what they always were). Two runs
    /// whose objects would differ in any stored property never share a key.
    pub fn fingerprint(&self) -> Option<String> {
        let mut parts = Vec::new();
        let mut add = |name: &str, value: Option<&str>| {
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        };
        add("storage-class", self.storage_class.as_deref());
        add("sse", self.sse.map(Sse::header_value));
        add("sse-kms-key-id", self.sse_kms_key_id.as_deref());
        add("bucket-key", self.bucket_key_enabled.then_some("true"));
        add("acl", self.acl.as_deref());
        add("cache-control", self.cache_control.as_deref());
        add("content-disposition", self.content_disposition.as_deref());
        add("tagging", self.tagging.as_deref());
        for (k, v) in &self.metadata {
            parts.push(format!("meta:{k}={v}"));
        }
        (!parts.is_empty()).then(|| parts.join("\n"))
    }
}

/// Per-stage concurrency, after uv's `Concurrency`: the network stages get many
/// slots, the CPU stage one per core.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Concurrency {
    /// Downloads in flight.
    pub downloads: usize,
    /// Downloads in flight to any one host.
    pub per_host: usize,
    /// Conversions running at once.
    pub converts: usize,
    /// Uploads and existence checks in flight.
    pub uploads: usize,
    /// Most requests per second to any one host; `None`: no pace.
    pub per_host_rps: Option<f64>,
}

/// Exponential backoff with full jitter for transient failures.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub attempts: u32,
    /// Ceiling of the first delay; each retry doubles it.
    pub base_delay: Duration,
    /// Largest delay, and the most a server's Retry-After is honoured.
    pub max_delay: Duration,
}

/// What one URL may cost.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// Largest body downloaded, enforced while streaming.
    pub max_download_bytes: u64,
    /// Widest image decoded.
    pub max_width: u32,
    /// Tallest image decoded.
    pub max_height: u32,
    /// Most pixels decoded, summed over frames.
    pub max_pixels: u64,
    /// Time allowed for one conversion.
    pub convert_timeout: Duration,
    /// Time allowed for one download attempt, connection included.
    pub download_timeout: Duration,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed between two reads of a body.
    pub read_timeout: Duration,
    /// Redirects followed per download.
    pub max_redirects: usize,
}

impl Limits {
    /// Whether an image of this size (all frames' pixels together) is over
    /// the decode limits: checked from the header, before any decoding.
    pub fn exceeded_by(&self, width: usize, height: usize, pixels: u64) -> bool {
        width as u64 > u64::from(self.max_width)
            || height as u64 > u64::from(self.max_height)
            || pixels > self.max_pixels
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_download_bytes: 50 * 1024 * 1024,
            max_width: 20_000,
            max_height: 20_000,
            max_pixels: 100_000_000,
            convert_timeout: Duration::from_secs(60),
            download_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_redirects: 5,
        }
    }
}

impl Settings {
    /// Resolves `batchimg run`'s flags and environment.
    pub async fn for_run(args: &RunArgs) -> anyhow::Result<Settings> {
        let shard = Shard::resolve(args.shard.as_deref(), args.shard_count)?;
        let mut store = resolve_store(&args.store).await?;
        store.object = object_options(&args.object)?;
        store.source = SourceSettings {
            endpoint: args
                .source
                .source_endpoint_url
                .as_deref()
                .map(check_endpoint)
                .transpose()?,
            region: args
                .source
                .source_region
                .clone()
                .filter(|r| !r.trim().is_empty()),
            request_payer: store.object.request_payer,
        };
        let input = Location::parse(&args.input).context("--input")?;
        let output = Location::parse(&Shard::expand(shard, &args.output)).context("--output")?;
        let output_failed = args
            .output_failed
            .as_deref()
            .map(|o| Location::parse(&Shard::expand(shard, o)))
            .transpose()
            .context("--output-failed")?;
        if Some(&output) == output_failed.as_ref() || output == input {
            bail!("--input, --output and --output-failed must be different files");
        }
        let mut settings = Settings {
            input,
            csv: CsvFormat::resolve(args)?,
            output,
            output_failed,
            store,
            work_dir: default_work_dir(&state_dir(&args.state.state_dir, shard)),
            delete_local: false,
            concurrency: Concurrency {
                downloads: 32,
                per_host: 8,
                converts: std::thread::available_parallelism().map_or(2, |n| n.get()),
                uploads: 32,
                per_host_rps: None,
            },
            retry: RetryPolicy {
                attempts: 4,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(30),
            },
            limits: Limits::default(),
            allow_private_networks: false,
            url_markers: true,
            shard,
            stop_grace: Duration::from_secs(10),
            jpeg_engine: JpegEngine::Lossless,
            head_before_put: HeadBeforePut::Auto,
            memory_budget: None,
            http: HttpSettings::resolve(&args.http)?,
            key_template: args
                .key_template
                .as_deref()
                .map(crate::pipeline::keys::KeyTemplate::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--key-template {e}"))?,
        };
        settings.apply(&args.tuning)?;
        Ok(settings)
    }

    /// Overlays tuning flags on recorded or default settings (used by `run` and `resume`).
    pub fn apply(&mut self, t: &TuningArgs) -> anyhow::Result<()> {
        fn set<T: Copy>(slot: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *slot = v;
            }
        }
        if let Some(dir) = &t.work_dir {
            self.work_dir = dir.clone();
        }
        self.delete_local |= t.delete_local;
        set(&mut self.stop_grace, t.stop_grace);
        set(&mut self.jpeg_engine, t.jpeg_engine);
        set(&mut self.head_before_put, t.head_before_put);
        set(&mut self.store.sign_payload, t.sign_payload);
        if let Some(budget) = t.memory_budget {
            self.memory_budget = Some(budget);
        }
        self.allow_private_networks |= t.allow_private_networks;
        self.url_markers &= !t.no_url_markers;
        let c = &mut self.concurrency;
        set(&mut c.downloads, t.downloads);
        set(&mut c.per_host, t.per_host);
        set(&mut c.converts, t.converts);
        set(&mut c.uploads, t.uploads);
        if t.per_host_rps.is_some() {
            c.per_host_rps = t.per_host_rps;
        }
        let r = &mut self.retry;
        set(&mut r.attempts, t.attempts);
        set(&mut r.base_delay, t.retry_delay);
        set(&mut r.max_delay, t.max_retry_delay);
        let l = &mut self.limits;
        set(&mut l.max_download_bytes, t.max_download_bytes);
        set(&mut l.max_width, t.max_width);
        set(&mut l.max_height, t.max_height);
        set(&mut l.max_pixels, t.max_pixels);
        set(&mut l.convert_timeout, t.convert_timeout);
        set(&mut l.download_timeout, t.download_timeout);
        self.validate()
    }

    fn validate(&self) -> anyhow::Result<()> {
        let c = &self.concurrency;
        for (name, n) in [
            ("--downloads", c.downloads),
            ("--per-host", c.per_host),
            ("--converts", c.converts),
            ("--uploads", c.uploads),
        ] {
            if n == 0 {
                bail!("{name} must be at least 1");
            }
        }
        if let Some(rps) = c.per_host_rps
            && !(rps.is_finite() && rps > 0.0 && rps <= 1e6)
        {
            bail!("--per-host-rps must be a positive number of requests per second");
        }
        if self.retry.attempts == 0 {
            bail!("--attempts must be at least 1");
        }
        let l = &self.limits;
        if l.max_width == 0 || l.max_height == 0 || l.max_pixels == 0 || l.max_download_bytes == 0 {
            bail!("size limits must be positive");
        }
        if l.convert_timeout.is_zero() || l.download_timeout.is_zero() {
            bail!("time limits must be positive");
        }
        if self.memory_budget.is_some_and(|b| b < 64 << 20) {
            bail!("--memory-budget must be at least 64MiB");
        }
        Ok(())
    }
}

impl Settings {
    /// Whether to HEAD before each conditional PUT.
    pub fn heads_before_put(&self) -> bool {
        match self.head_before_put {
            HeadBeforePut::Always => true,
            HeadBeforePut::Never => false,
            HeadBeforePut::Auto => self.store.endpoint.is_some(),
        }
    }

    /// The memory budget in force: the one set, else a share of the memory
    /// limit (the container's, else physical memory).
    pub fn memory_budget(&self) -> u64 {
        self.memory_budget.unwrap_or_else(|| {
            let limit = crate::pipeline::memory::memory_limit().unwrap_or(2 << 30);
            (limit as f64 * crate::pipeline::memory::DEFAULT_SHARE) as u64
        })
    }
}

/// The state directory, with `{shard}` expanded; shards left at the default
/// directory get one each, so several can run from one directory.
pub fn state_dir(dir: &Path, shard: Option<Shard>) -> PathBuf {
    match shard {
        Some(s) if dir == Path::new(".batchimg") => dir.join(format!("shard-{}", s.index)),
        _ => PathBuf::from(Shard::expand(shard, &dir.to_string_lossy())),
    }
}

/// The work directory sits inside the state directory unless moved.
pub fn default_work_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("work")
}

/// The store settings for reading and writing `s3://` CSVs of `bucket` only.
pub async fn store_for_paths(
    bucket: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
) -> anyhow::Result<StoreSettings> {
    resolve_store(&StoreArgs {
        bucket: Some(bucket.to_string()),
        region: region.map(String::from),
        prefix: String::new(),
        endpoint_url: endpoint.map(String::from),
        role_arn: non_empty_env("AWS_ROLE_ARN"),
    })
    .await
}

async fn resolve_store(args: &StoreArgs) -> anyhow::Result<StoreSettings> {
    let bucket = match args.bucket.as_deref().map(str::trim) {
        Some(b) if !b.is_empty() => b.to_string(),
        _ => bail!("no bucket: set S3_BUCKET or pass --bucket"),
    };
    if !(3..=63).contains(&bucket.len()) || bucket.contains('/') {
        bail!("{bucket:?} is not a valid bucket name");
    }
    let region = match args.region.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => match region_from_default_or_profile().await {
            Some(r) => r,
            None => bail!(
                "no region: set AWS_REGION, pass --region, or set a region in your AWS profile"
            ),
        },
    };
    let endpoint = args
        .endpoint_url
        .clone()
        .or_else(|| non_empty_env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| non_empty_env("AWS_ENDPOINT_URL"))
        .as_deref()
        .map(check_endpoint)
        .transpose()?;
    Ok(StoreSettings {
        bucket,
        region,
        prefix: args.prefix.trim().to_string(),
        endpoint,
        role_arn: args.role_arn.clone().filter(|a| !a.trim().is_empty()),
        object: ObjectOptions::default(),
        source: SourceSettings::default(),
        sign_payload: SignPayload::default(),
    })
}

/// An endpoint URL, checked, without a trailing slash.
fn check_endpoint(e: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(e).with_context(|| format!("endpoint {e:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("endpoint {e:?} must be http or https");
    }
    Ok(e.trim_end_matches('/').to_string())
}

/// The object options, checked the way S3 would check them, so a typo is one
/// clear error before the run instead of a million failed uploads.
fn object_options(args: &crate::cli::ObjectArgs) -> anyhow::Result<ObjectOptions> {
    use aws_sdk_s3::types::{ObjectCannedAcl, StorageClass};
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    let storage_class = text(&args.storage_class);
    if let Some(c) = &storage_class
        && !StorageClass::values().contains(&c.as_str())
    {
        bail!(
            "--storage-class {c:?} is not a storage class; one of: {}",
            StorageClass::values().join(", ")
        );
    }
    let acl = text(&args.acl);
    if let Some(a) = &acl
        && !ObjectCannedAcl::values().contains(&a.as_str())
    {
        bail!(
            "--acl {a:?} is not a canned ACL; one of: {}",
            ObjectCannedAcl::values().join(", ")
        );
    }
    let sse_kms_key_id = text(&args.sse_kms_key_id);
    if sse_kms_key_id.is_some() && args.sse != Some(Sse::Kms) {
        bail!("--sse-kms-key-id needs --sse aws:kms");
    }
    if args.bucket_key_enabled && args.sse != Some(Sse::Kms) {
        bail!("--bucket-key-enabled needs --sse aws:kms");
    }
    let mut metadata = Vec::new();
    for pair in args.metadata.iter().filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--metadata {pair:?}: expected KEY=VALUE");
        };
        let k = k.trim().to_ascii_lowercase();
        let valid = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            bail!("--metadata {pair:?}: a key is letters, digits, '-', '_' and '.'");
        }
        if metadata
            .iter()
            .any(|(seen, _): &(String, String)| *seen == k)
        {
            bail!("--metadata: {k:?} is given twice");
        }
        metadata.push((k, v.trim().to_string()));
    }
    metadata.sort();
    let tagging = text(&args.tagging);
    if let Some(t) = &tagging {
        let tags: Vec<(String, String)> = url::form_urlencoded::parse(t.as_bytes())
            .into_owned()
            .collect();
        if tags.is_empty() || tags.iter().any(|(k, _)| k.is_empty()) || tags.len() > 10 {
            bail!("--tagging {t:?}: expected up to 10 KEY=VALUE pairs joined by '&'");
        }
    }
    Ok(ObjectOptions {
        storage_class,
        sse: args.sse,
        sse_kms_key_id,
        bucket_key_enabled: args.bucket_key_enabled,
        acl,
        cache_control: text(&args.cache_control),
        content_disposition: text(&args.content_disposition),
        metadata,
        tagging,
        expected_bucket_owner: text(&args.expected_bucket_owner),
        request_payer: args.request_payer.is_some(),
    })
}

/// The SDK's own fallbacks without its instance-metadata lookup, which can hang
/// for seconds off EC2.
async fn region_from_default_or_profile() -> Option<String> {
    if let Some(r) = non_empty_env("AWS_DEFAULT_REGION") {
        return Some(r);
    }
    aws_config::profile::ProfileFileRegionProvider::new()
        .region()
        .await
        .map(|r| r.to_string())
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_pinned_to_known_answers() {
        // A silent change here would re-shard every run in progress.
        let got: Vec<u32> = ["https://a/0.jpg", "https://a/1.jpg", "https://a/2.jpg"]
            .iter()
            .map(|u| Shard::of(u, 4))
            .collect();
        assert_eq!(got, [0, 0, 3]);
        assert_eq!(Shard::of("https://example.com/photo.jpg", 1000), 817);
    }

    #[test]
    fn shards_partition_urls_and_balance() {
        let mut sizes = [0; 4];
        for i in 0..1000 {
            let u = format!("https://a/{i}.jpg");
            let owners: Vec<u32> = (0..4)
                .filter(|&k| Shard { index: k, count: 4 }.contains(&u))
                .collect();
            assert_eq!(owners.len(), 1, "{u} belongs to exactly one shard");
            sizes[owners[0] as usize] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 200), "balanced: {sizes:?}");
    }

    #[test]
    fn shard_specs_are_checked() {
        assert_eq!(
            Shard::resolve(Some("1/4"), None).unwrap(),
            Some(Shard { index: 1, count: 4 })
        );
        for bad in ["4/4", "a/4", "1", "1/0"] {
            assert!(Shard::resolve(Some(bad), None).is_err(), "{bad}");
        }
        assert_eq!(
            Shard::expand(Some(Shard { index: 3, count: 4 }), "out-{shard}.csv"),
            "out-3.csv"
        );
    }
}
