//! The stages, their limits, and how a row moves through them.
//!
//! Each row is one task that walks fetch → convert → upload, taking a permit
//! from its stage's semaphore only while it works in that stage (uv's model):
//! many downloads and uploads at once, one conversion per core on dedicated
//! threads, and a cap on rows in flight so memory stays flat whatever the
//! input size. (Semaphores rather than channels between stages: a row holds
//! nothing while it waits, and the cap on rows is the back-pressure.) The feeder reads pending rows from the journal in input order, in
//! small batches, and stops feeding on the first Ctrl-C.
//!
//! Every step is idempotent, which is what makes a crash at any moment safe:
//! a download under its final name is whole (written to `.part`, then renamed),
//! a converted file likewise, and an upload is keyed by content and preceded by
//! a HEAD. Rows whose bytes are identical share one conversion and one PUT.

pub mod convert;
pub mod fetch;
pub mod markers;
pub mod upload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::format::ImageFormat;
use crate::journal::{Failure, FailureClass, JobRecord, JobState, Journal, Writer, now_ms};
use crate::netguard::NetPolicy;
use crate::progress::Reporter;
use crate::redact::{RawUrl, Redacted};
use crate::settings::Settings;
use crate::store::{ObjectStore, PutOutcome, StoreError, StoreErrorKind};
use fetch::{FetchError, Fetcher};
use markers::{Existing, MarkerIndex, MarkerLog};
use upload::object_key;

/// Rows read from the journal per batch.
const FEED_BATCH: usize = 256;
/// Longest URL accepted, in bytes; longer rows fail with a clear reason.
pub const MAX_URL_LEN: usize = 8192;
/// Consecutive failed uploads after which the store is taken to be down.
const STORE_DOWN_AFTER: u32 = 8;

/// Why a run stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Every pending row was processed.
    Completed,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// Something every row depends on failed.
    Fatal(String),
}

/// Shared by every row task.
pub struct Pipeline<S> {
    settings: Arc<Settings>,
    store: S,
    fetcher: Fetcher,
    writer: Writer,
    reporter: Arc<dyn Reporter>,
    converts: Arc<Semaphore>,
    /// The threads conversions run on.
    pool: ConvertPool,
    uploads: Semaphore,
    work_in: PathBuf,
    work_out: PathBuf,
    /// Keys being converted or uploaded right now, so identical images that
    /// arrive together are converted and uploaded once.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Shared>>>>>,
    /// The URL index as it was when the run started.
    markers: tokio::sync::OnceCell<MarkerIndex>,
    /// Objects listed at start, when the index had entries to check.
    existing: tokio::sync::OnceCell<Existing>,
    /// This run's additions to the URL index, written in batches.
    marker_log: MarkerLog,
    store_failures: AtomicU32,
    fatal: Mutex<Option<String>>,
    stop: CancellationToken,
}

/// What each stage did for one row, for its log line.
#[derive(Debug, Default)]
struct Stages {
    download_bytes: u64,
    download_ms: u64,
    convert_ms: u64,
    output_bytes: u64,
    upload_ms: u64,
}

/// A downloaded image, ready to convert.
struct Source {
    path: PathBuf,
    format: ImageFormat,
    /// Blake3 of `body`.
    hash: [u8; 32],
    body: Bytes,
}

/// What the row that did the work leaves for identical rows waiting on it.
#[derive(Clone)]
enum Shared {
    Stored { output: Option<PathBuf> },
    Failed(Failure),
}

impl<S: ObjectStore> Pipeline<S> {
    pub fn new(
        settings: Arc<Settings>,
        store: S,
        writer: Writer,
        reporter: Arc<dyn Reporter>,
    ) -> anyhow::Result<Pipeline<S>> {
        let work_in = settings.work_dir.join("in");
        let work_out = settings.work_dir.join("out");
        for dir in [&work_in, &work_out] {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
        let policy = NetPolicy {
            allow_private: settings.allow_private_networks,
        };
        let c = settings.concurrency;
        let fetcher = Fetcher::new(
            policy,
            settings.limits,
            settings.retry,
            c.downloads,
            c.per_host,
        )?;
        Ok(Pipeline {
            store,
            fetcher,
            writer,
            reporter,
            converts: Arc::new(Semaphore::new(c.converts)),
            pool: ConvertPool::new(c.converts),
            uploads: Semaphore::new(c.uploads),
            work_in: std::path::absolute(&work_in)?,
            work_out: std::path::absolute(&work_out)?,
            in_flight: Mutex::new(HashMap::new()),
            markers: tokio::sync::OnceCell::new(),
            existing: tokio::sync::OnceCell::new(),
            marker_log: MarkerLog::default(),
            store_failures: AtomicU32::new(0),
            fatal: Mutex::new(None),
            stop: CancellationToken::new(),
            settings,
        })
    }

    /// The token that stops feeding new rows (Ctrl-C, fatal errors).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Processes every row of the journal that still needs work (`rows` of them).
    pub async fn run(
        self: Arc<Self>,
        journal: Arc<Journal>,
        retry_failed: bool,
        rows: u64,
    ) -> Stop {
        if self.settings.url_markers {
            // One index object (up to 1000 URLs) per 100 rows to do, at most:
            // past that, downloading the few rows again is cheaper.
            let max_objects = usize::try_from(rows / 100).unwrap_or(usize::MAX) + 16;
            // The objects the index names are listed too, one LIST per 1000
            // rows to do at most; names past the listing get a HEAD each.
            let prefix = &self.settings.store.prefix;
            let (index, existing) =
                markers::load(&self.store, prefix, max_objects, rows / 1000 + 2).await;
            if let Some(existing) = existing {
                let _ = self.existing.set(existing);
            }
            let _ = self.markers.set(index);
        }
        let flushing = CancellationToken::new();
        let flusher = {
            let (me, done) = (Arc::clone(&self), flushing.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(markers::FLUSH_EVERY);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = done.cancelled() => break,
                        _ = tick.tick() => me.flush_markers().await,
                    }
                }
            })
        };
        let c = self.settings.concurrency;
        // Enough rows in flight that downloads run ahead of the converters and
        // uploads trail behind them, and no more: each may hold an image in memory.
        let rows_in_flight = Arc::new(Semaphore::new(c.downloads + c.uploads + 2 * c.converts));
        let mut tasks = JoinSet::new();
        let mut after = None;
        'feed: loop {
            let j = Arc::clone(&journal);
            let batch = match tokio::task::spawn_blocking(move || {
                j.next_jobs(after, FEED_BATCH, retry_failed)
            })
            .await
            {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => {
                    self.set_fatal(format!(
                        "cannot read the journal: {:#}",
                        anyhow::Error::from(e)
                    ));
                    break;
                }
                Err(e) => {
                    self.set_fatal(format!("journal reader failed: {e}"));
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            for (row, rec) in batch {
                after = Some(row);
                let permit = tokio::select! {
                    biased;
                    _ = self.stop.cancelled() => break 'feed,
                    p = Arc::clone(&rows_in_flight).acquire_owned() => p.expect("never closed"),
                };
                let me = Arc::clone(&self);
                tasks.spawn(async move { me.process_row(row, rec, permit).await });
                while tasks.try_join_next().is_some() {}
            }
        }
        while tasks.join_next().await.is_some() {}
        flushing.cancel();
        let _ = flusher.await;
        let fatal = self.fatal.lock().expect("fatal lock").clone();
        // A store that just failed would only make the exit wait for retries.
        if fatal.is_none() || self.store_failures.load(Ordering::Relaxed) == 0 {
            self.flush_markers().await;
        }
        if let Some(reason) = fatal {
            return Stop::Fatal(reason);
        }
        if self.stop.is_cancelled() {
            Stop::Interrupted
        } else {
            Stop::Completed
        }
    }

    fn set_fatal(&self, reason: String) {
        let mut fatal = self.fatal.lock().expect("fatal lock");
        if fatal.is_none() {
            tracing::error!("{reason}");
            *fatal = Some(reason);
        }
        self.stop.cancel();
    }

    async fn process_row(
        self: Arc<Self>,
        row: u64,
        mut rec: JobRecord,
        _permit: OwnedSemaphorePermit,
    ) {
        let started = Instant::now();
        rec.attempts += 1;
        let original = rec.clone();
        let mut stages = Stages::default();
        let outcome = std::panic::AssertUnwindSafe(self.advance(row, &mut rec, &mut stages))
            .catch_unwind()
            .await;
        let outcome = outcome.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            rec = original;
            Err(Failure {
                class: FailureClass::LocalIo,
                message: format!("internal error: {what}"),
            })
        });
        match outcome {
            Ok(()) => {
                tracing::info!(
                    row,
                    url = %RawUrl(&rec.url),
                    key = rec.key.as_deref().unwrap_or(""),
                    reused = rec.reused,
                    download_bytes = stages.download_bytes,
                    download_ms = stages.download_ms,
                    convert_ms = stages.convert_ms,
                    output_bytes = stages.output_bytes,
                    upload_ms = stages.upload_ms,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "{}",
                    if rec.reused { "already in the bucket" } else { "uploaded" }
                );
                self.reporter.row_finished(true);
            }
            Err(failure) => {
                tracing::warn!(
                    row,
                    url = %RawUrl(&rec.url),
                    reason = failure.class.name(),
                    error = %failure.message,
                    "failed"
                );
                rec.state = JobState::Failed;
                rec.error = Some(failure);
                self.reporter.row_finished(false);
            }
        }
        self.record(row, &rec);
    }

    fn record(&self, row: u64, rec: &JobRecord) {
        let mut rec = rec.clone();
        rec.updated_ms = now_ms();
        if self.writer.record(row, rec).is_err() {
            self.set_fatal("the journal writer stopped; see the error above".into());
        }
    }

    /// Moves a row as far as it goes; `Ok` means it is in the bucket.
    async fn advance(
        &self,
        row: u64,
        rec: &mut JobRecord,
        stages: &mut Stages,
    ) -> Result<(), Failure> {
        rec.error = None;
        let url = parse_url(&rec.url)?;
        let log_url = Redacted(&url).to_string();

        // A rerun with the journal gone: the URL index says which object this URL made.
        if matches!(rec.state, JobState::Pending | JobState::Failed)
            && let Some(key) = self.marked_key(&rec.url).await?
        {
            rec.state = JobState::Uploaded;
            rec.reused = true;
            rec.s3url = Some(self.store.object_url(&key));
            // Files a killed run left behind still belong in the output CSV.
            if let Some(found) = self.intact_download(rec).await {
                (rec.input_path, rec.format, rec.input_hash) =
                    (Some(found.path), Some(found.format), Some(found.hash));
            }
            let output = self
                .work_out
                .join(Path::new(&key).file_name().expect("keys have a file name"));
            rec.output_path = output.exists().then_some(output);
            rec.key = Some(key);
            return Ok(());
        }

        let source = match self.intact_download(rec).await {
            Some(found) => found,
            None => {
                let stem = self.work_in.join(upload::download_stem(&rec.url));
                let d = self.fetcher.fetch(&url, &stem).await;
                let d = d.map_err(|(e, attempts)| fetch_failure(e, attempts))?;
                stages.download_bytes = d.bytes;
                stages.download_ms = d.elapsed.as_millis() as u64;
                tracing::debug!(
                    row, url = %log_url, bytes = d.bytes, attempts = d.attempts,
                    ms = d.elapsed.as_millis() as u64, format = %d.format, "download done"
                );
                rec.state = JobState::Downloaded;
                rec.input_path = Some(d.path.clone());
                rec.input_hash = Some(d.hash);
                rec.format = Some(d.format);
                self.record(row, rec);
                Source {
                    path: d.path,
                    format: d.format,
                    hash: d.hash,
                    body: d.body,
                }
            }
        };
        let key = object_key(&self.settings.store.prefix, &source.hash, source.format);
        rec.key = Some(key.clone());
        rec.s3url = Some(self.store.object_url(&key));

        // Identical bytes from another row in flight: wait for it, share its result.
        let slot = {
            let mut map = self.in_flight.lock().expect("in-flight lock");
            match map.get(&key) {
                Some(slot) => Err(Arc::clone(slot)),
                None => {
                    let slot = Arc::new(tokio::sync::Mutex::new(None));
                    let guard = Arc::clone(&slot).try_lock_owned().expect("fresh mutex");
                    map.insert(key.clone(), slot);
                    Ok(guard)
                }
            }
        };
        let mut guard = match slot {
            Ok(guard) => guard,
            Err(slot) => {
                let shared = slot.lock().await.clone();
                return match shared {
                    Some(Shared::Stored { output }) => {
                        rec.state = JobState::Uploaded;
                        rec.reused = true;
                        rec.output_path = output;
                        self.write_marker(&rec.url, &key).await;
                        Ok(())
                    }
                    Some(Shared::Failed(f)) => Err(f),
                    // The leader was cancelled by a panic; treat as not done.
                    None => Err(Failure {
                        class: FailureClass::LocalIo,
                        message: "the row with identical content did not finish".into(),
                    }),
                };
            }
        };
        let result = self
            .convert_and_upload(row, rec, source, &key, stages)
            .await;
        *guard = Some(match &result {
            Ok(()) => Shared::Stored {
                output: rec.output_path.clone(),
            },
            Err(f) => Shared::Failed(f.clone()),
        });
        drop(guard);
        self.in_flight.lock().expect("in-flight lock").remove(&key);
        result?;
        self.write_marker(&rec.url, &key).await;
        if self.settings.delete_local {
            for p in [&rec.input_path, &rec.output_path].into_iter().flatten() {
                let _ = tokio::fs::remove_file(p).await;
            }
        }
        Ok(())
    }

    async fn convert_and_upload(
        &self,
        row: u64,
        rec: &mut JobRecord,
        source: Source,
        key: &str,
        stages: &mut Stages,
    ) -> Result<(), Failure> {
        let format = source.format;
        let exists = {
            let _slot = self.uploads.acquire().await.expect("never closed");
            self.store.exists(key).await
        };
        let exists = self.store_result(exists).map_err(store_failure)?;
        let output_path = self
            .work_out
            .join(Path::new(key).file_name().expect("keys have a file name"));
        if exists {
            rec.state = JobState::Uploaded;
            rec.reused = true;
            rec.output_path = output_path.exists().then_some(output_path);
            return Ok(());
        }

        let body = match self.intact_output(rec, &output_path).await {
            Some(body) => {
                // A conversion an earlier run left in the work directory.
                stages.output_bytes = body.len() as u64;
                body
            }
            None => {
                let started = Instant::now();
                let body = self.convert(row, source, &output_path).await?;
                stages.convert_ms = started.elapsed().as_millis() as u64;
                stages.output_bytes = body.len() as u64;
                rec.state = JobState::Processed;
                rec.output_path = Some(output_path.clone());
                self.record(row, rec);
                body
            }
        };

        let started = Instant::now();
        let put = {
            let _slot = self.uploads.acquire().await.expect("never closed");
            self.store
                .put_if_absent(key, body.clone(), format.mime())
                .await
        };
        let outcome = self.store_result(put).map_err(store_failure)?;
        stages.upload_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(
            row,
            key,
            bytes = body.len(),
            ms = started.elapsed().as_millis() as u64,
            ?outcome,
            "upload done"
        );
        rec.state = JobState::Uploaded;
        rec.reused = outcome == PutOutcome::AlreadyPresent;
        rec.output_path = Some(output_path);
        Ok(())
    }

    async fn convert(&self, row: u64, source: Source, output: &Path) -> Result<Bytes, Failure> {
        let (data, format) = (source.body, source.format);
        let output_path = output.to_path_buf();
        let limits = self.settings.limits;
        let permit = Arc::clone(&self.converts)
            .acquire_owned()
            .await
            .expect("never closed");
        let started = Instant::now();
        // The permit moves into the blocking task, so a conversion that outlives
        // its time limit still holds its core until ImageMagick returns.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let forget = permit;
        // The output file is written in the same blocking call: one hop per image.
        self.pool.run(move || {
            let _held = forget;
            let result = convert::grayscale(&data, format, &limits).map(|c| {
                let written = fetch::write_whole(&output_path, &c.bytes);
                (c, written)
            });
            let _ = done_tx.send(result);
        });
        let (converted, written) = match tokio::time::timeout(limits.convert_timeout, done_rx).await
        {
            Err(_) => {
                return Err(Failure {
                    class: FailureClass::ConvertTimeout,
                    message: format!("conversion took longer than {:?}", limits.convert_timeout),
                });
            }
            Ok(Err(_)) => {
                return Err(Failure {
                    class: FailureClass::CorruptImage,
                    message: "the conversion crashed".into(),
                });
            }
            Ok(Ok(result)) => result.map_err(|e| Failure {
                class: match e {
                    convert::ConvertError::TooLarge { .. } => FailureClass::ImageTooLarge,
                    _ => FailureClass::CorruptImage,
                },
                message: e.to_string(),
            })?,
        };
        tracing::debug!(
            row,
            width = converted.width,
            height = converted.height,
            frames = converted.frames,
            bytes = converted.bytes.len(),
            ms = started.elapsed().as_millis() as u64,
            "convert done"
        );
        written.map_err(|e| Failure {
            class: FailureClass::LocalIo,
            message: format!("cannot write {}: {e}", output.display()),
        })?;
        Ok(Bytes::from(converted.bytes))
    }

    /// The downloaded file recorded in the journal, or left by a run killed
    /// before it could record it, when it is present and whole.
    async fn intact_download(&self, rec: &JobRecord) -> Option<Source> {
        let candidates: Vec<(PathBuf, ImageFormat)> = match (&rec.input_path, rec.format) {
            (Some(path), Some(format)) => vec![(path.clone(), format)],
            _ => {
                let stem = self.work_in.join(upload::download_stem(&rec.url));
                ImageFormat::ALL
                    .iter()
                    .map(|f| (stem.with_extension(f.extension()), *f))
                    .filter(|(p, _)| p.exists())
                    .collect()
            }
        };
        let (path, format) = candidates.into_iter().next()?;
        let p = path.clone();
        let body = tokio::task::spawn_blocking(move || std::fs::read(p))
            .await
            .ok()?
            .ok()?;
        let hash = *blake3::hash(&body).as_bytes();
        if rec.input_hash.is_some_and(|recorded| recorded != hash) {
            tracing::debug!(path = %path.display(), "recorded download changed; fetching again");
            return None;
        }
        Some(Source {
            path,
            format,
            hash,
            body: Bytes::from(body),
        })
    }

    /// The converted file of an earlier attempt, if whole.
    async fn intact_output(&self, rec: &JobRecord, path: &Path) -> Option<Bytes> {
        if rec.state != JobState::Processed && !path.exists() {
            return None;
        }
        tokio::fs::read(path).await.ok().map(Bytes::from)
    }

    async fn marked_key(&self, url: &str) -> Result<Option<String>, Failure> {
        let Some(name) = self.markers.get().and_then(|index| index.lookup(url)) else {
            return Ok(None);
        };
        let key = crate::store::join_key(&self.settings.store.prefix, &name);
        // The index alone is not proof: the object may have been deleted since.
        match self.existing.get().and_then(|e| e.check(&name)) {
            Some(true) => return Ok(Some(key)),
            Some(false) => return Ok(None),
            None => {}
        }
        let _slot = self.uploads.acquire().await.expect("never closed");
        let exists = self.store.exists(&key).await;
        Ok(self
            .store_result(exists)
            .map_err(store_failure)?
            .then_some(key))
    }

    /// Notes in the URL index that `url` produced `key`; a full batch is
    /// written at once.
    async fn write_marker(&self, url: &str, key: &str) {
        if self.settings.url_markers && self.marker_log.add(self.markers.get(), url, key) {
            self.flush_markers().await;
        }
    }

    async fn flush_markers(&self) {
        if !self.settings.url_markers {
            return;
        }
        let _slot = self.uploads.acquire().await.expect("never closed");
        // A lost entry only costs a download next time, so this is not a row failure.
        if let Err(e) = self
            .marker_log
            .flush(&self.store, &self.settings.store.prefix)
            .await
        {
            tracing::warn!(error = %error_chain(&e), "could not write the URL index");
        }
    }

    /// Counts consecutive store failures; past a threshold the store is down
    /// and the run stops instead of failing every remaining row.
    fn store_result<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => self.store_failures.store(0, Ordering::Relaxed),
            Err(e) => {
                let n = self.store_failures.fetch_add(1, Ordering::Relaxed) + 1;
                let systemic = matches!(
                    e.kind,
                    StoreErrorKind::NoSuchBucket
                        | StoreErrorKind::BadCredentials
                        | StoreErrorKind::PermissionDenied
                );
                if n >= STORE_DOWN_AFTER || systemic {
                    self.set_fatal(format!(
                        "the object store is failing ({}); stopping. Nothing is lost: fix it, \
                         then `batchimg resume --retry-failed`",
                        error_chain(e)
                    ));
                }
            }
        }
        result
    }
}

fn parse_url(raw: &str) -> Result<Url, Failure> {
    let invalid = |message: String| Failure {
        class: FailureClass::InvalidUrl,
        message,
    };
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
    let url = Url::parse(raw).map_err(|e| invalid(format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not allowed (only http and https)",
            url.scheme()
        )));
    }
    Ok(url)
}

fn fetch_failure(e: FetchError, attempts: u32) -> Failure {
    let class = match &e {
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
        | FetchError::Request(_) => FailureClass::Network,
    };
    let mut message = error_chain(&e);
    if attempts > 1 {
        message.push_str(&format!(" (after {attempts} attempts)"));
    }
    Failure { class, message }
}

fn store_failure(e: StoreError) -> Failure {
    Failure {
        class: FailureClass::Upload,
        message: error_chain(&e),
    }
}

/// An error and its causes on one line, as `a: b: c`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// A fixed set of threads for conversions. Compared with tokio's blocking
/// pool, where any thread may take the next task, the same few threads keep
/// their caches and malloc arenas warm from image to image: in `make bench`
/// peak RSS fell from 140–270 MB to about 80 MB, and kernel time dropped.
struct ConvertPool {
    tx: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl ConvertPool {
    fn new(threads: usize) -> ConvertPool {
        let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("convert-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().map(|r| r.recv());
                        match job {
                            Ok(Ok(job)) => job(),
                            _ => return,
                        }
                    }
                })
                .expect("spawn a conversion thread");
        }
        ConvertPool { tx }
    }

    /// Queues `job`; callers bound the queue with the `converts` semaphore.
    fn run(&self, job: impl FnOnce() + Send + 'static) {
        // Sending fails only once every thread is gone, and then the job's
        // reply channel closes, which the caller reports.
        let _ = self.tx.send(Box::new(job));
    }
}

/// Items per second; zero when no time has passed.
pub fn rate(done: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { done as f64 / secs } else { 0.0 }
}
