//! The fetch stage: turns a row's URL into a source image, in memory and (not
//! with `--delete-local`) in the work directory.
//!
//! It owns everything about getting the bytes: the URL checks (`url`), the
//! network policy and redirects (`client`), each host's share (`hosts`), the
//! size bound, hash and sniffing while the body streams in (`body`), retries
//! of transient failures, reusing a download that an earlier (killed) run
//! left behind, and the class of each of its errors (`error`).
//!
//! The body is collected in memory (bounded by the download limit), then
//! written whole to the work directory in one blocking call (unless
//! `--delete-local` keeps it in memory only), so a file under
//! its final name is always whole (`resume` relies on that) and a download
//! costs one hop to the blocking pool instead of one per chunk. The blake3 of
//! the body is computed on the way, so the content key costs no second pass.

mod body;
mod client;
mod error;
mod hosts;
pub mod network;
mod url;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::format::ImageFormat;
use crate::job::SourceFile;
use crate::memory::{Budget, Lease};
use crate::netguard::NetPolicy;
use crate::options::Limits;
use crate::retry::{RetryPolicy, with_retry};
use crate::settings::{Settings, StoreSettings};
use crate::store::s3::S3Store;
use crate::workfile::{read_file, write_whole};
use body::{Body, Collector};
use client::{HttpClient, request_error};
pub use error::{FetchError, FetchFailure};
use hosts::{Hosts, Outcome};
pub use url::{MAX_URL_LEN, Origin, check_target, parse_url, s3_object_of};

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

/// The fetch stage.
pub struct Fetcher {
    http: HttpClient,
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
    hosts: Hosts,
    /// How long a host may be down before its rows are left (`--host-outage-wait`).
    outage_wait: Duration,
    /// `https://…amazonaws.com` URLs of objects are read through the SDK
    /// with the credentials (`--sign-s3-urls`).
    sign_s3_urls: bool,
    /// `dir` held no file when this process started, so no earlier run left
    /// a download in it: the search for one (a failing stat per image
    /// format, six per row) is skipped.
    nothing_left: bool,
    /// The bucket settings `s3://` rows are read with, and the client for
    /// them, made at the first such row.
    store: StoreSettings,
    source: tokio::sync::OnceCell<S3Store>,
}

impl Fetcher {
    /// The fetch stage for `settings`, keeping downloads in `dir`.
    pub fn new(
        dir: PathBuf,
        budget: Budget,
        settings: &Settings,
    ) -> Result<Fetcher, reqwest::Error> {
        let c = settings.concurrency;
        let downloads = c.downloads_for(budget.total());
        let nothing_left = std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none());
        let hosts = Hosts::new(c.per_host, downloads, c.per_host_rps);
        Ok(Fetcher {
            http: HttpClient::new(settings, hosts.most_per_host())?,
            store: settings.store.clone(),
            source: tokio::sync::OnceCell::new(),
            nothing_left,
            dir,
            keep_files: !settings.delete_local,
            budget,
            policy: NetPolicy {
                allow_private: settings.allow_private_networks,
            },
            limits: settings.limits,
            retry: settings.retry,
            slots: Semaphore::new(downloads),
            hosts,
            outage_wait: settings.host_outage_wait,
            sign_s3_urls: settings.http.sign_s3_urls,
        })
    }

    /// The hosts as one: whether the network itself seems down.
    pub fn network(&self) -> std::sync::Arc<network::Network> {
        self.hosts.network()
    }

    /// The hosts' adapted limits that moved, now and as they move.
    pub fn host_limits(&self) -> tokio::sync::watch::Receiver<hosts::Limits> {
        self.hosts.limits()
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
        let tls = matches!(&origin, Origin::Http(u) if u.scheme() == "https");
        let host = self.hosts.get(&url::origin_key(&origin), tls);
        let row = u64::from_le_bytes(
            blake3::hash(raw.as_bytes()).as_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        );
        // Microseconds spent in requests, the waits for a slot and between retries excluded.
        let busy = AtomicU64::new(0);
        let asked = Instant::now();
        let mut attempts = 0;
        let body = loop {
            let (result, made) = with_retry(&self.retry, "download", || async {
                // The host's place first: rows waiting on a busy (or down)
                // host must not hold the download slots other hosts could use.
                let permit = host
                    .admit(row, self.outage_wait)
                    .await
                    .map_err(FetchError::HostGone)?;
                // The host's pace before a download slot too, for the same reason.
                host.pace().await;
                let _slot = self.slots.acquire().await.expect("semaphore never closed");
                let _counted = crate::metrics::get().in_flight("download");
                let started = Instant::now();
                let result = match &origin {
                    Origin::Http(url) => self.attempt(url).await,
                    Origin::S3 { bucket, key } => self.attempt_s3(bucket, key).await,
                };
                busy.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                permit.done(match &result {
                    Ok(_) => Outcome::Answered(started.elapsed()),
                    Err(e) => e.outcome(),
                });
                result
            })
            .await;
            attempts += made;
            match result {
                // The host (or the network) is down, not this row: it waits
                // for the host (in `admit`), with its attempts anew once the
                // host answers.
                Err(e) if e.is_network() && host.is_down() => continue,
                other => break other.map_err(|e| fail(e, attempts))?,
            }
        };
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
        let fetched = Fetched {
            source: SourceFile {
                path,
                hash: body.hash,
                format: body.format,
                bytes: body.bytes.len() as u64,
            },
            body: body.bytes,
            lease: body.lease,
            attempts,
            elapsed: Duration::from_micros(busy.load(Ordering::Relaxed)),
            wait: asked
                .elapsed()
                .saturating_sub(Duration::from_micros(busy.into_inner())),
        };
        let m = crate::metrics::get();
        m.downloaded_bytes.inc_by(fetched.body.len() as u64);
        m.stage_time("download", fetched.elapsed);
        m.stage_wait("download", fetched.wait);
        Ok(fetched)
    }

    /// A download of `raw` that a run killed before recording it left in the
    /// work directory. Files appear under their final name only when whole.
    async fn left_behind(&self, raw: &str) -> Option<(SourceFile, Bytes)> {
        let path = self.left_behind_path(raw)?;
        let format = ImageFormat::ALL
            .into_iter()
            .find(|f| path.extension().is_some_and(|e| e == f.extension()))?;
        let body = read_file(path.clone()).await?;
        let hash = *blake3::hash(&body).as_bytes();
        let bytes = body.len() as u64;
        Some((
            SourceFile {
                path,
                hash,
                format,
                bytes,
            },
            body,
        ))
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
        self.dir.join(crate::keys::download_stem(raw))
    }

    /// One GET of an HTTP(S) URL, under the size limit and memory budget.
    async fn attempt(&self, url: &::url::Url) -> Result<Body, FetchError> {
        let mut response = self.http.get(url, &self.hosts).await?;
        let limit = self.limits.max_download_bytes;
        let length = response.content_length();
        if length.is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        let mut body = Collector::new(&self.budget, length, limit, content_type).await;
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            body.push(&chunk, &self.budget)?;
        }
        body.finish()
    }

    /// One GET of `s3://bucket/key` through the SDK, under the same size
    /// limit, sniffing and memory budget as an HTTP download.
    async fn attempt_s3(&self, bucket: &str, key: &str) -> Result<Body, FetchError> {
        let store = self
            .source
            .get_or_init(|| S3Store::connect_source(&self.store, self.retry))
            .await;
        // A missing key is a 404, as it is over HTTP.
        let mut object = store.open(bucket, key).await?.ok_or(FetchError::Status {
            status: 404,
            retry_after: None,
        })?;
        let limit = self.limits.max_download_bytes;
        if object.length.is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let mut body = Collector::new(&self.budget, object.length, limit, "none".into()).await;
        while let Some(chunk) = object.next_chunk().await? {
            body.push(&chunk, &self.budget)?;
        }
        body.finish()
    }
}
