//! The fetch stage: turns a row's URL into a source file in the work directory.
//!
//! It owns everything about getting the bytes: the URL checks, the network
//! policy, the size bound enforced while streaming, retries of transient
//! failures, sniffing the body as an image by its first bytes before the rest
//! is fetched, reusing a download that an earlier (killed) run left behind,
//! and the class of each of its errors.
//!
//! The body is collected in memory (bounded by the download limit), then
//! written to `<dest>.part` and renamed in one blocking call, so a file under
//! its final name is always whole (`resume` relies on that) and a download
//! costs one hop to the blocking pool instead of one per chunk. The blake3 of
//! the body is computed on the way, so the content key costs no second pass.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode, redirect};
use tokio::sync::Semaphore;
use url::Url;

use bytes::Bytes;

use super::memory::{Budget, Lease};
use crate::format::ImageFormat;
use crate::job::{Classify, FailureClass, SourceFile};
use crate::netguard::{Blocked, GuardedResolver, NetPolicy};
use crate::retry::{Transient, with_retry};
use crate::settings::{Limits, RetryPolicy, Settings};
use crate::store::s3::S3Store;

/// Longest URL accepted, in bytes; longer rows fail with a clear reason.
pub const MAX_URL_LEN: usize = 8192;

/// A source image, in the work directory and in memory.
pub struct Fetched {
    pub source: SourceFile,
    pub body: Bytes,
    /// The memory budget the body holds.
    pub lease: Lease,
    /// Requests it took (0: a file an earlier run left behind was reused).
    pub attempts: u32,
    /// Time spent downloading, the wait for a slot excluded.
    pub elapsed: Duration,
    /// Time spent waiting: for the host's and a download slot, the host's
    /// pace, and between retries.
    pub wait: Duration,
}

/// One downloaded body, before it has a place in the work directory.
struct Body {
    bytes: Bytes,
    format: ImageFormat,
    hash: [u8; 32],
    lease: Lease,
}

/// How a body of unannounced length is leased: a mebibyte at a time.
const GROW_BY: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("blocked: {0}")]
    Blocked(String),
    #[error("server answered HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("body is larger than the download limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("not an image: the body starts with {head} (Content-Type {content_type})")]
    NotAnImage { content_type: String, head: String },
    #[error("more than {0} redirects")]
    Redirects(usize),
    #[error("request timed out")]
    Timeout(#[source] reqwest::Error),
    #[error("connection failed")]
    Connect(#[source] reqwest::Error),
    #[error("body ended early or broke off")]
    Body(#[source] reqwest::Error),
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    /// An `s3://` read failed without an HTTP status (connection, timeout).
    #[error("{0}")]
    Store(String, Option<u16>),
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for FetchError {
    fn class(&self) -> FailureClass {
        match self {
            FetchError::InvalidUrl(_) => FailureClass::InvalidUrl,
            FetchError::Blocked(_) => FailureClass::Blocked,
            FetchError::Status { .. } => FailureClass::HttpStatus,
            FetchError::TooLarge { .. } => FailureClass::TooLarge,
            FetchError::NotAnImage { .. } => FailureClass::NotAnImage,
            FetchError::Io { .. } => FailureClass::LocalIo,
            FetchError::Redirects(_)
            | FetchError::Timeout(_)
            | FetchError::Connect(_)
            | FetchError::Body(_)
            | FetchError::Request(_)
            | FetchError::Store(..) => FailureClass::Network,
        }
    }
}

/// An S3 read's error: a status is a status, as for HTTP (404 for a
/// missing key, 403 for a bucket the credentials cannot read, 503 to retry).
impl From<crate::store::StoreError> for FetchError {
    fn from(e: crate::store::StoreError) -> FetchError {
        match e.status {
            Some(status) => FetchError::Status {
                status,
                retry_after: e.retry_after,
            },
            None => FetchError::Store(crate::error::chain(&e), None),
        }
    }
}

/// A fetch error and how many requests were made before it.
#[derive(Debug, thiserror::Error)]
#[error("{error}{}", if *.attempts > 1 { format!(" (after {} attempts)", .attempts) } else { String::new() })]
pub struct FetchFailure {
    #[source]
    pub error: FetchError,
    pub attempts: u32,
}

impl Classify for FetchFailure {
    fn class(&self) -> FailureClass {
        self.error.class()
    }

    fn systemic(&self) -> Option<String> {
        match &self.error {
            FetchError::Io { path, source } => super::disk_full(path, source),
            _ => None,
        }
    }
}

impl Transient for FetchError {
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => {
                matches!(*status, 408 | 425 | 429) || (500..600).contains(status)
            }
            FetchError::Timeout(_) | FetchError::Connect(_) | FetchError::Body(_) => true,
            FetchError::Request(_) | FetchError::Store(..) => true,
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The fetch stage: one HTTP client, shared by every download.
pub struct Fetcher {
    client: Client,
    /// Where downloads are kept (`<work dir>/in`).
    dir: PathBuf,
    /// Write downloads to `dir` (not with `--delete-local`).
    keep_files: bool,
    budget: Budget,
    policy: NetPolicy,
    limits: Limits,
    retry: RetryPolicy,
    /// Downloads in flight, all hosts together.
    slots: Semaphore,
    per_host_limit: usize,
    /// Each host's slots and pace, made at its first request.
    per_host: Mutex<HashMap<String, Arc<Host>>>,
    /// Least time between two requests to one host (`--per-host-rps`).
    pace: Option<Duration>,
    /// Downloads go through the environment's proxy (`--proxy-from-env`).
    proxied: bool,
    /// `https://…amazonaws.com` URLs of objects are read through the SDK
    /// with the credentials (`--sign-s3-urls`).
    sign_s3_urls: bool,
    /// Extra request headers (`--header`), values marked sensitive.
    headers: reqwest::header::HeaderMap,
    /// `dir` held no file when this process started, so no earlier run left
    /// a download in it: the search for one (a failing stat per image
    /// format, six per row) is skipped.
    nothing_left: bool,
    /// The bucket settings `s3://` rows are read with, and the client for
    /// them, made at the first such row.
    store: crate::settings::StoreSettings,
    source: tokio::sync::OnceCell<S3Store>,
}

/// One host's share of the downloads: its slots and its pace.
struct Host {
    slots: Semaphore,
    pace: Option<governor::DefaultDirectRateLimiter>,
}

impl Host {
    /// Waits until the host may be sent another request.
    async fn pace(&self) {
        if let Some(limiter) = &self.pace {
            limiter.until_ready().await;
        }
    }
}

/// What counts as one host for the per-host limits: name and port.
fn host_key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// The host of a row: a web server, or a bucket for `s3://` rows.
fn origin_key(origin: &Origin) -> String {
    match origin {
        Origin::Http(url) => host_key(url),
        Origin::S3 { bucket, .. } => format!("s3://{bucket}"),
    }
}

/// Where a row's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Http(Url),
    /// An object read through the SDK, from the configured source endpoint
    /// only: nothing in the row names an address to connect to.
    S3 {
        bucket: String,
        key: String,
    },
}

impl Fetcher {
    /// The fetch stage for `settings`, keeping downloads in `dir`.
    pub fn new(
        dir: PathBuf,
        budget: Budget,
        settings: &Settings,
    ) -> Result<Fetcher, reqwest::Error> {
        let policy = NetPolicy {
            allow_private: settings.allow_private_networks,
        };
        let (limits, retry) = (settings.limits, settings.retry);
        let (downloads, per_host_limit) = (
            settings.concurrency.downloads,
            settings.concurrency.per_host,
        );
        let keep_files = !settings.delete_local;
        let http = &settings.http;
        // Redirects are followed by `attempt`, hop by hop, so that each hop
        // is checked, paced and stripped of credentials like the first.
        let mut client = Client::builder()
            .user_agent(
                http.user_agent
                    .clone()
                    .unwrap_or_else(|| concat!("batchimg/", env!("CARGO_PKG_VERSION")).into()),
            )
            .redirect(redirect::Policy::none())
            .retry(reqwest::retry::never())
            .connect_timeout(limits.connect_timeout)
            .read_timeout(limits.read_timeout)
            .timeout(limits.download_timeout)
            .pool_max_idle_per_host(per_host_limit);
        client = if http.proxy_from_env {
            // reqwest reads the variables itself; the proxies' own names are
            // the operator's choice, so the resolver lets them through.
            client.dns_resolver(GuardedResolver::shared(policy, http.proxy_hosts.clone()))
        } else {
            client
                .no_proxy()
                .dns_resolver(GuardedResolver::shared(policy, Vec::new()))
        };
        let client = client.build()?;
        let nothing_left = std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none());
        Ok(Fetcher {
            store: settings.store.clone(),
            source: tokio::sync::OnceCell::new(),
            nothing_left,
            client,
            dir,
            keep_files,
            budget,
            policy,
            limits,
            retry,
            slots: Semaphore::new(downloads),
            per_host_limit,
            per_host: Mutex::new(HashMap::new()),
            pace: settings
                .concurrency
                .per_host_rps
                .map(|rps| Duration::from_secs_f64(1.0 / rps)),
            proxied: settings.http.proxy_from_env,
            sign_s3_urls: settings.http.sign_s3_urls,
            headers: settings.http.headers.clone(),
        })
    }

    /// The source image of the row with URL `raw`: a whole download that an
    /// earlier run left in the work directory, or a new one.
    pub async fn fetch(&self, raw: &str) -> Result<Fetched, FetchFailure> {
        let fail = |error, attempts| FetchFailure { error, attempts };
        let mut origin = parse_url(raw).map_err(|e| fail(e, 0))?;
        if self.sign_s3_urls
            && let Origin::Http(url) = &origin
            && let Some((bucket, key)) = s3_object_of(url)
        {
            origin = Origin::S3 { bucket, key };
        }
        if let Some((source, body)) = self.left_behind(raw).await {
            tracing::debug!(path = %source.path.display(), "reusing a download an earlier run left");
            let lease = self.budget.lease(body.len() as u64).await;
            return Ok(Fetched {
                source,
                body,
                lease,
                attempts: 0,
                elapsed: Duration::ZERO,
                wait: Duration::ZERO,
            });
        }
        if let Origin::Http(url) = &origin {
            check_target(url, self.policy).map_err(|why| fail(FetchError::Blocked(why), 0))?;
        }
        let host = self.host(&origin_key(&origin));
        // Microseconds spent in requests, the waits for a slot and between retries excluded.
        let busy = std::sync::atomic::AtomicU64::new(0);
        let asked = Instant::now();
        let (result, attempts) = with_retry(&self.retry, "download", || async {
            // The host's slot first: rows waiting on a busy host must not hold
            // the download slots that other hosts could use.
            let _host = host.slots.acquire().await.expect("semaphore never closed");
            // The host's pace before a download slot too, for the same reason.
            host.pace().await;
            let _slot = self.slots.acquire().await.expect("semaphore never closed");
            let _counted = crate::metrics::get().in_flight("download");
            let started = Instant::now();
            let result = match &origin {
                Origin::Http(url) => self.attempt(url).await,
                Origin::S3 { bucket, key } => self.attempt_s3(bucket, key).await,
            };
            let spent = started.elapsed().as_micros() as u64;
            busy.fetch_add(spent, std::sync::atomic::Ordering::Relaxed);
            result
        })
        .await;
        let body = result.map_err(|e| fail(e, attempts))?;
        let path = self.stem(raw).with_extension(body.format.extension());
        // With --delete-local the file would be deleted once the row is
        // uploaded, so it is not written at all: the bytes stay in memory
        // (leased from the budget), and a resume after a crash fetches them
        // again, which is what reading them back would have saved.
        if self.keep_files {
            let (file_body, file_path) = (body.bytes.clone(), path.clone());
            tokio::task::spawn_blocking(move || write_whole(&file_path, &file_body))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r)
                .map_err(|source| {
                    let path = path.clone();
                    fail(FetchError::Io { path, source }, attempts)
                })?;
        }
        tracing::debug!(url = %crate::redact::RawUrl(raw), bytes = body.bytes.len(), format = %body.format, path = %path.display(), "downloaded");
        Ok(Fetched {
            source: SourceFile {
                path,
                hash: body.hash,
                format: body.format,
            },
            body: body.bytes,
            lease: body.lease,
            attempts,
            elapsed: Duration::from_micros(busy.load(std::sync::atomic::Ordering::Relaxed)),
            wait: asked
                .elapsed()
                .saturating_sub(Duration::from_micros(busy.into_inner())),
        })
    }

    /// A download of `raw` that a run killed before recording it left in the
    /// work directory. Files appear under their final name only when whole.
    pub async fn left_behind(&self, raw: &str) -> Option<(SourceFile, Bytes)> {
        if self.nothing_left {
            return None;
        }
        let stem = self.stem(raw);
        let (path, format) = ImageFormat::ALL
            .iter()
            .map(|f| (stem.with_extension(f.extension()), *f))
            .find(|(p, _)| p.exists())?;
        let body = read_file(path.clone()).await?;
        let hash = *blake3::hash(&body).as_bytes();
        Some((SourceFile { path, hash, format }, body))
    }

    /// Where a download of `raw` left by an earlier run is, without reading it.
    pub fn left_behind_path(&self, raw: &str) -> Option<PathBuf> {
        if self.nothing_left {
            return None;
        }
        let stem = self.stem(raw);
        ImageFormat::ALL
            .iter()
            .map(|f| stem.with_extension(f.extension()))
            .find(|p| p.exists())
    }

    fn stem(&self, raw: &str) -> PathBuf {
        self.dir.join(super::keys::download_stem(raw))
    }

    /// The slots and pace of the host named `key` (see [`host_key`]).
    fn host(&self, key: &str) -> Arc<Host> {
        let mut map = self.per_host.lock().expect("per-host lock");
        if let Some(host) = map.get(key) {
            return Arc::clone(host);
        }
        let host = Arc::new(Host {
            slots: Semaphore::new(self.per_host_limit),
            pace: self.pace.map(|period| {
                // One request per period and no burst: a CDN that allows N
                // a second sees at most N in any second.
                let quota = governor::Quota::with_period(period).expect("positive period");
                governor::RateLimiter::direct(quota)
            }),
        });
        map.insert(key.to_string(), Arc::clone(&host));
        host
    }

    /// One download of `url`, following redirects hop by hop: each hop's
    /// target is checked by the network policy (resolved here first when a
    /// proxy would resolve it), paced as a request to its host, and sent
    /// without the `--header` headers once it leaves the origin (curl and
    /// reqwest drop only Authorization and Cookie; any of them may be a key).
    async fn attempt(&self, url: &Url) -> Result<Body, FetchError> {
        let mut url = url.clone();
        let mut headers = self.headers.clone();
        let mut hops = 0;
        let mut response = loop {
            if self.proxied {
                self.check_resolved(&url).await?;
            }
            let response = self
                .client
                .get(url.clone())
                .headers(headers.clone())
                .send()
                .await
                .map_err(request_error)?;
            if !response.status().is_redirection() {
                break response;
            }
            let Some(to) = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                break response;
            };
            let shown = crate::redact::RawUrl(to);
            let next = url
                .join(to)
                .map_err(|_| FetchError::Blocked(format!("redirect to {shown} is not a URL")))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(FetchError::Blocked(format!(
                    "redirect to {shown} not followed (only http and https)"
                )));
            }
            check_target(&next, self.policy).map_err(FetchError::Blocked)?;
            hops += 1;
            if hops > self.limits.max_redirects {
                return Err(FetchError::Redirects(self.limits.max_redirects));
            }
            // The headers were given for the row's host: an API key in
            // `X-Api-Key` is as secret as one in `Authorization`.
            if host_key(&next) != host_key(&url) || next.scheme() != url.scheme() {
                headers.clear();
            }
            self.host(&host_key(&next)).pace().await;
            url = next;
        };
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                status: status.as_u16(),
                retry_after: retry_after(&response, status),
            });
        }
        let limit = self.limits.max_download_bytes;
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();

        let mut body = self
            .collector(response.content_length(), content_type)
            .await;
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            body.push(&chunk, &self.budget)?;
        }
        body.finish()
    }

    /// With a proxy, the proxy resolves names, out of the resolver's sight:
    /// the target is resolved here first, and every address it has must pass
    /// the policy. A name this machine cannot resolve is left to the proxy
    /// (networks where only the proxy resolves names are common).
    async fn check_resolved(&self, url: &Url) -> Result<(), FetchError> {
        let Some(url::Host::Domain(name)) = url.host() else {
            return Ok(()); // literals are checked by `check_target`
        };
        let port = url.port_or_known_default().unwrap_or(80);
        match tokio::net::lookup_host((name, port)).await {
            Ok(addrs) => {
                for addr in addrs {
                    if let Some(why) = self.policy.refusal(addr.ip()) {
                        return Err(FetchError::Blocked(format!("{name} resolves to {why}")));
                    }
                }
            }
            Err(e) => {
                tracing::debug!(host = name, error = %e, "not resolvable here; left to the proxy")
            }
        }
        Ok(())
    }

    /// One GET of `s3://bucket/key` through the SDK, under the same size
    /// limit, sniffing and memory budget as an HTTP download.
    async fn attempt_s3(&self, bucket: &str, key: &str) -> Result<Body, FetchError> {
        let store = self
            .source
            .get_or_init(|| S3Store::connect_source(&self.store, self.retry))
            .await;
        let (length, mut stream) = store.open(bucket, key).await.map_err(FetchError::from)?;
        let limit = self.limits.max_download_bytes;
        if length.is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let mut body = self.collector(length, "none".into()).await;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| FetchError::Store(format!("reading the object broke off: {e}"), None))?
        {
            body.push(&chunk, &self.budget)?;
        }
        body.finish()
    }

    /// A body of `length` bytes (if announced) about to arrive.
    async fn collector(&self, length: Option<u64>, content_type: String) -> Collector {
        let limit = self.limits.max_download_bytes;
        // The body is leased from the memory budget as announced; without a
        // Content-Length it is leased as it grows, and over-committed rather
        // than stalled when the budget is full, so that partial bodies can
        // never wait on each other.
        Collector {
            lease: self.budget.lease(length.unwrap_or(GROW_BY)).await,
            body: Vec::with_capacity(length.unwrap_or(64 * 1024).min(limit) as usize),
            hasher: blake3::Hasher::new(),
            format: None,
            limit,
            content_type,
        }
    }
}

/// A body as it streams in: bounded, hashed, leased and sniffed on the way.
struct Collector {
    lease: Lease,
    body: Vec<u8>,
    hasher: blake3::Hasher,
    format: Option<ImageFormat>,
    limit: u64,
    content_type: String,
}

impl Collector {
    fn push(&mut self, chunk: &[u8], budget: &Budget) -> Result<(), FetchError> {
        if self.body.len() as u64 + chunk.len() as u64 > self.limit {
            return Err(FetchError::TooLarge { limit: self.limit });
        }
        self.body.extend_from_slice(chunk);
        self.hasher.update(chunk);
        if self.body.len() as u64 > self.lease.bytes()
            && let Some(more) = budget.try_lease(GROW_BY)
        {
            self.lease.absorb(more);
        }
        // Stop at the first bytes when they are not an image.
        if self.format.is_none() && self.body.len() >= ImageFormat::SNIFF_LEN {
            self.format = Some(sniff(&self.body, &self.content_type)?);
        }
        Ok(())
    }

    fn finish(self) -> Result<Body, FetchError> {
        let format = match self.format {
            Some(f) => f,
            None => sniff(&self.body, &self.content_type)?,
        };
        Ok(Body {
            bytes: Bytes::from(self.body),
            format,
            hash: *self.hasher.finalize().as_bytes(),
            lease: self.lease,
        })
    }
}

/// A whole file's bytes, read on the blocking pool; `None` if it cannot be read.
pub async fn read_file(path: PathBuf) -> Option<Bytes> {
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(body)) => Some(Bytes::from(body)),
        _ => None,
    }
}

/// The bytes of a recorded download, if the file is still there and unchanged.
pub async fn read_source(source: &SourceFile) -> Option<Bytes> {
    let body = read_file(source.path.clone()).await?;
    if *blake3::hash(&body).as_bytes() != source.hash {
        tracing::debug!(path = %source.path.display(), "recorded download changed; fetching again");
        return None;
    }
    Some(body)
}

/// Checks a row's URL before anything is fetched: http(s), or `s3://bucket/key`.
pub fn parse_url(raw: &str) -> Result<Origin, FetchError> {
    let invalid = |why: String| FetchError::InvalidUrl(why);
    if raw.is_empty() {
        return Err(invalid("empty URL".into()));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(invalid(format!(
            "URL is {} bytes long, over the {MAX_URL_LEN}-byte limit",
            raw.len()
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(invalid("URL contains control characters".into()));
    }
    // An S3 key is taken as written, as the AWS CLI takes it: no percent
    // decoding, any character a key may hold.
    if let Some(rest) = raw.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(invalid(format!("{bucket:?} is not a bucket name")));
        }
        if key.is_empty() {
            return Err(invalid("an s3:// URL needs a key after the bucket".into()));
        }
        return Ok(Origin::S3 {
            bucket: bucket.to_string(),
            key: key.to_string(),
        });
    }
    let url = Url::parse(raw).map_err(|e| invalid(format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not allowed (only http, https and s3)",
            url.scheme()
        )));
    }
    Ok(Origin::Http(url))
}

/// The bucket and key of an AWS S3 object URL, virtual-hosted
/// (`https://BUCKET.s3.REGION.amazonaws.com/KEY`) or path-style
/// (`https://s3.REGION.amazonaws.com/BUCKET/KEY`). A URL with a query (a
/// presigned URL, a version) is left to HTTP, which it is made for.
pub fn s3_object_of(url: &Url) -> Option<(String, String)> {
    if url.query().is_some() || url.scheme() != "https" && url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let labels: Vec<&str> = host.strip_suffix(".amazonaws.com")?.split('.').collect();
    let is_s3 = |l: &str| l == "s3" || l.starts_with("s3-");
    let path = percent_encoding::percent_decode_str(url.path().trim_start_matches('/'))
        .decode_utf8()
        .ok()?
        .into_owned();
    let (bucket, key) = if is_s3(labels[0]) {
        let (bucket, key) = path.split_once('/')?;
        (bucket.to_string(), key.to_string())
    } else {
        let at = labels.iter().position(|l| is_s3(l))?;
        (labels[..at].join("."), path)
    };
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// Writes a `.part` file beside `path`, then renames it to `path`, so `path`
/// is always whole. The part's name is unique (process and a counter): two
/// rows fetching one URL at once (rows that `--key-template` names apart)
/// write their own, and the second rename replaces a whole file with the
/// same bytes. Parts a killed process left are never read, and removed at
/// the next start ([`remove_parts`]). Plain `std::fs` calls, so that errors
/// keep their OS code (a full disk must be recognised as one).
pub fn write_whole(path: &Path, body: &[u8]) -> std::io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut part = path.as_os_str().to_owned();
    part.push(format!(".{}-{n}.part", std::process::id()));
    let part = PathBuf::from(part);
    std::fs::write(&part, body)
        .and_then(|()| std::fs::rename(&part, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&part);
        })
}

/// Removes the `.part` files a killed process left in `dir`: those not
/// written for a minute (a live write takes milliseconds), so a work
/// directory two processes share loses nothing in flight.
pub fn remove_parts(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let stale = |e: &std::fs::DirEntry| {
        e.metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(60))
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".part") && stale(&entry) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Refuses schemes other than http(s) and IP literals the policy forbids.
/// Names are checked later, after resolution, by [`GuardedResolver`].
pub fn check_target(url: &Url, policy: NetPolicy) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {:?} is not allowed (only http and https)",
            url.scheme()
        ));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => std::net::IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => std::net::IpAddr::V6(v6),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err("URL has no host".into()),
    };
    match policy.refusal(ip) {
        None => Ok(()),
        Some(why) => Err(why),
    }
}

fn sniff(head: &[u8], content_type: &str) -> Result<ImageFormat, FetchError> {
    ImageFormat::sniff(head).ok_or_else(|| FetchError::NotAnImage {
        content_type: content_type.to_string(),
        head: describe_head(head),
    })
}

/// The first bytes, printable, for an error message.
fn describe_head(head: &[u8]) -> String {
    if head.is_empty() {
        return "nothing (empty body)".into();
    }
    let text: String = head
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{text:?}")
}

fn retry_after(response: &reqwest::Response, status: StatusCode) -> Option<Duration> {
    if !(status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) {
        return None;
    }
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Sorts a reqwest error into the cases that are retried and those that are not.
fn request_error(e: reqwest::Error) -> FetchError {
    if let Some(b) = find_source::<Blocked>(&e) {
        return FetchError::Blocked(b.0.clone());
    }
    if e.is_timeout() {
        FetchError::Timeout(e)
    } else if e.is_connect() {
        FetchError::Connect(e)
    } else if e.is_body() || e.is_decode() {
        FetchError::Body(e)
    } else {
        FetchError::Request(e)
    }
}

fn find_source<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_are_fetched() {
        let open = NetPolicy {
            allow_private: true,
        };
        for bad in [
            "file:///etc/passwd",
            "ftp://example.com/a.jpg",
            "gopher://x/",
        ] {
            assert!(
                check_target(&Url::parse(bad).unwrap(), open).is_err(),
                "{bad}"
            );
        }
        assert!(check_target(&Url::parse("https://example.com/a.jpg").unwrap(), open).is_ok());
    }

    #[test]
    fn ip_literals_are_checked_before_any_request() {
        let closed = NetPolicy {
            allow_private: false,
        };
        let open = NetPolicy {
            allow_private: true,
        };
        let metadata = Url::parse("http://169.254.169.254/latest/meta-data/").unwrap();
        assert!(check_target(&metadata, open).is_err());
        let v6 = Url::parse("http://[fd00:ec2::254]/").unwrap();
        assert!(check_target(&v6, open).is_err());
        let local = Url::parse("http://127.0.0.1:8080/a.jpg").unwrap();
        assert!(check_target(&local, closed).is_err());
        assert!(check_target(&local, open).is_ok());
    }

    #[test]
    fn aws_object_urls_are_recognised_in_both_styles() {
        let of = |u: &str| s3_object_of(&Url::parse(u).unwrap());
        let pair = |b: &str, k: &str| Some((b.to_string(), k.to_string()));
        assert_eq!(
            of("https://photos.s3.eu-west-1.amazonaws.com/2026/a%20b.jpg"),
            pair("photos", "2026/a b.jpg")
        );
        assert_eq!(
            of("https://my.dotted.bucket.s3.amazonaws.com/x.png"),
            pair("my.dotted.bucket", "x.png")
        );
        assert_eq!(
            of("https://s3.us-east-2.amazonaws.com/photos/raw/x.jpg"),
            pair("photos", "raw/x.jpg")
        );
        assert_eq!(of("https://s3-us-west-2.amazonaws.com/b/k"), pair("b", "k"));
        for other in [
            "https://photos.s3.amazonaws.com/x.jpg?X-Amz-Signature=abc",
            "https://example.com/photos/x.jpg",
            "https://ec2.amazonaws.com/x",
            "https://photos.s3.amazonaws.com/",
            "https://s3.amazonaws.com/photos",
        ] {
            assert_eq!(of(other), None, "{other}");
        }
    }

    #[test]
    fn status_codes_split_into_transient_and_permanent() {
        let s = |status| FetchError::Status {
            status,
            retry_after: None,
        };
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(s(code).is_transient(), "{code}");
        }
        for code in [400, 401, 403, 404, 410] {
            assert!(!s(code).is_transient(), "{code}");
        }
    }
}
