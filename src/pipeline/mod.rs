//! The run: its limits, the feeder, cancellation, and the one loop that moves
//! each row from state to state.
//!
//! Each row is one task running [`Pipeline::drive`]: a `match` on the row's
//! recorded state calls the stage for that state, records the state the stage
//! returns, and repeats until the row is uploaded or failed. That loop is the
//! only code that changes a row's state and the only caller of the journal
//! writer for rows, so "what does resume do with a Downloaded row?" is answered
//! by reading one arm of [`Pipeline::step`]. Shortcuts (the URL index knows the
//! URL, identical content is in flight, a killed run left files behind) are
//! what a stage returns, not branches around the loop.
//!
//! Limits follow uv's model: each stage takes a permit from its own semaphore
//! only while it works (many downloads and uploads at once, one conversion per
//! core on dedicated threads), and a cap on rows in flight keeps memory flat
//! whatever the input size. Semaphores rather than channels between stages: a
//! row holds nothing while it waits, and the cap on rows is the back-pressure.
//! The feeder reads rows that need work from the journal in input order, in
//! small batches, and stops feeding on the first Ctrl-C.
//!
//! Every step is idempotent, which is what makes a crash at any moment safe: a
//! download or output under its final name is whole (written to `.part`, then
//! renamed), and an upload is keyed by content and made with a conditional PUT
//! after a HEAD.

pub mod convert;
pub mod fetch;
pub mod identical;
pub mod jmem;
pub mod keys;
pub mod lossless;
pub mod magick;
pub mod memory;
pub mod quarantine;
pub mod upload;
pub mod url_index;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::job::{
    Classify, Failure, FailureClass, JobRecord, JobState, RetryFailed, Uploaded, now_ms,
};
use crate::journal::{Journal, Writer};
use crate::progress::Reporter;
use crate::redact::RawUrl;
use crate::settings::Settings;
use crate::store::{ObjectStore, PutOutcome};
use convert::{Converter, Input};
use fetch::Fetcher;
use identical::{Claim, Entry, Shared};
use memory::{Budget, Lease};
use quarantine::Quarantine;
use upload::Uploader;
use url_index::UrlIndex;

/// How a systemic disk failure's reason starts (see [`disk_full`]).
const DISK_FULL: &str = "the disk is full";

/// Whether an I/O error means the disk (or quota) is full, and if so why.
pub fn disk_full(path: &std::path::Path, e: &std::io::Error) -> Option<String> {
    // ENOSPC, EDQUOT: no room; EROFS: the volume went read-only.
    matches!(e.raw_os_error(), Some(28 | 122 | 30))
        .then(|| format!("{DISK_FULL} ({}: {e})", path.display()))
}

/// Rows read from the journal per batch.
const FEED_BATCH: usize = 256;
/// Steps after which a row that has not settled is failed as a bug. A row
/// needs at most five (a file gone twice, a follower whose leader vanished).
const MAX_STEPS: u32 = 16;

/// Stripes of the locks rows naming one object take (`--key-template`).
const NAME_LOCKS: usize = 256;

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

/// Why a step did not reach a new state.
enum Setback {
    /// The row's own fault: it is failed with this reason.
    Failed(Failure),
    /// Not the row's fault (the store is down, the disk is full): the row is
    /// left in its last recorded state, which `resume` continues from.
    Abandoned(String),
}

impl<E: Classify> From<E> for Setback {
    fn from(e: E) -> Setback {
        match e.systemic() {
            Some(why) => Setback::Abandoned(why),
            None => Setback::Failed(Failure::of(&e)),
        }
    }
}

/// How the run is told to stop, shared with the stages that can decide it
/// (the upload stage's breaker, the journal writer's failure).
#[derive(Default)]
pub struct Control {
    stop: CancellationToken,
    fatal: Mutex<Option<String>>,
    /// Rows left unfinished because something they all need failed.
    abandoned: AtomicU64,
}

impl Control {
    /// Stops feeding rows and records why the run cannot go on; the first reason wins.
    pub fn set_fatal(&self, reason: String) {
        let mut fatal = self.fatal.lock().expect("fatal lock");
        if fatal.is_none() {
            tracing::error!("{reason}");
            *fatal = Some(reason);
        }
        self.stop.cancel();
    }

    fn fatal(&self) -> Option<String> {
        self.fatal.lock().expect("fatal lock").clone()
    }
}

/// The stages and the run state every row task shares.
pub struct Pipeline<S> {
    settings: Arc<Settings>,
    fetch: Fetcher,
    convert: Converter,
    upload: Uploader<S>,
    budget: Budget,
    identical: Arc<identical::Table>,
    index: UrlIndex,
    /// The fingerprint of the object options that are part of every key.
    key_options: Option<String>,
    /// With `--key-template`: rows naming one object check and upload it one
    /// at a time. The conditional PUT settles races across processes on
    /// AWS; within one, this settles them on every server, including those
    /// (s3s-fs) whose If-None-Match is a check and then a write. Striped, so
    /// a million names cost a fixed 256 locks.
    name_locks: Vec<tokio::sync::Mutex<()>>,
    writer: Writer,
    reporter: Arc<dyn Reporter>,
    control: Arc<Control>,
}

/// What a row keeps between its steps within this process. None of it is
/// needed after a crash: it saves reading back a file just written, holds the
/// row's lead on identical content, and gathers its log line's figures.
#[derive(Default)]
struct Carry {
    /// The source's bytes and the budget they hold, when this process fetched them.
    source: Option<(Bytes, Lease)>,
    /// The output's bytes and the budget they hold, when this process converted them.
    output: Option<(Bytes, Lease)>,
    /// A crash suspect: it converts alone.
    alone: bool,
    /// This row leads the rows with identical content.
    claim: Option<Claim>,
    /// A HEAD in this process found the key absent, so the upload needs none.
    checked_absent: bool,
    figures: Figures,
}

/// What each stage did for one row, for its log line. A stage's `_ms` is
/// its work alone; the time it waited for a slot (memory and a core for a
/// conversion, an upload slot for an upload) is its `_wait_ms`, so a slow
/// stage and a busy one read differently.
#[derive(Debug, Default)]
struct Figures {
    download_bytes: u64,
    download_ms: u64,
    download_wait_ms: u64,
    convert_ms: u64,
    convert_wait_ms: u64,
    output_bytes: u64,
    upload_ms: u64,
    upload_wait_ms: u64,
}

impl<S: ObjectStore> Pipeline<S> {
    pub fn new(
        settings: Arc<Settings>,
        store: S,
        writer: Writer,
        reporter: Arc<dyn Reporter>,
        quarantine: Arc<Quarantine>,
    ) -> anyhow::Result<Pipeline<S>> {
        let work_in = settings.work_dir.join("in");
        let work_out = settings.work_dir.join("out");
        for dir in [&work_in, &work_out] {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            fetch::remove_parts(dir);
        }
        let c = settings.concurrency;
        let budget = Budget::new(settings.memory_budget());
        let work_dir = std::path::absolute(&settings.work_dir)?;
        magick::set_memory(budget.total(), &work_dir).map_err(|e| anyhow::anyhow!(e))?;
        let fetch = Fetcher::new(std::path::absolute(&work_in)?, budget.clone(), &settings)?;
        let control = Arc::new(Control::default());
        let key_options = settings.store.object.fingerprint();
        Ok(Pipeline {
            fetch,
            convert: Converter::new(
                std::path::absolute(&work_out)?,
                c.converts,
                settings.limits,
                budget.clone(),
                quarantine,
                settings.jpeg_engine,
                !settings.delete_local,
            ),
            budget,
            upload: Uploader::new(store, c.uploads, Arc::clone(&control)),
            identical: Arc::default(),
            // The URL index names content keys; a chosen name is its own index.
            index: UrlIndex::new(
                settings.url_markers && settings.key_template.is_none(),
                &settings.store.prefix,
                settings.jpeg_engine,
                key_options.clone(),
            ),
            key_options,
            name_locks: if settings.key_template.is_some() {
                (0..NAME_LOCKS)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect()
            } else {
                Vec::new()
            },
            writer,
            reporter,
            control,
            settings,
        })
    }

    /// The memory budget the stages share, for the metrics endpoint.
    pub fn budget(&self) -> Budget {
        self.budget.clone()
    }

    /// The token that stops feeding new rows (Ctrl-C, fatal errors).
    pub fn stop_token(&self) -> CancellationToken {
        self.control.stop.clone()
    }

    /// Processes every row of the journal that still needs work (`rows` of them).
    pub async fn run(
        self: Arc<Self>,
        journal: Arc<Journal>,
        retry: RetryFailed,
        rows: u64,
    ) -> Stop {
        tracing::info!(
            memory_budget = %bytesize::ByteSize::b(self.budget.total()).display().iec(),
            "images in flight share the memory budget"
        );
        self.index.load(&self.upload, rows).await;
        let flushing = CancellationToken::new();
        let flusher = {
            let (me, done) = (Arc::clone(&self), flushing.clone());
            tokio::spawn(async move { me.index.keep_flushing(&me.upload, done).await })
        };
        let c = self.settings.concurrency;
        // Enough rows in flight that downloads run ahead of the converters and
        // uploads trail behind them, and no more: each may hold an image in memory.
        let rows_in_flight = Arc::new(Semaphore::new(c.downloads + c.uploads + 2 * c.converts));
        let stop = self.control.stop.clone();
        let mut tasks = JoinSet::new();
        // Crash suspects first, one at a time with nothing else running.
        let j = Arc::clone(&journal);
        match tokio::task::spawn_blocking(move || j.suspects()).await {
            Ok(Ok(suspects)) => {
                for (row, rec) in suspects {
                    if stop.is_cancelled() {
                        break;
                    }
                    tracing::info!(row, url = %RawUrl(&rec.url), "converting a crash suspect alone");
                    let permit = Arc::clone(&rows_in_flight)
                        .acquire_owned()
                        .await
                        .expect("never closed");
                    tasks.spawn(Arc::clone(&self).drive(row, rec, permit, true));
                    self.drain(&mut tasks).await;
                }
            }
            Ok(Err(e)) => self.control.set_fatal(format!(
                "cannot read the journal: {:#}",
                anyhow::Error::from(e)
            )),
            Err(e) => self
                .control
                .set_fatal(format!("journal reader failed: {e}")),
        }
        let mut after = None;
        'feed: loop {
            let (j, retry) = (Arc::clone(&journal), retry.clone());
            let batch =
                tokio::task::spawn_blocking(move || j.next_jobs(after, FEED_BATCH, &retry)).await;
            let batch = match batch {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => {
                    let e = anyhow::Error::from(e);
                    self.control
                        .set_fatal(format!("cannot read the journal: {e:#}"));
                    break;
                }
                Err(e) => {
                    self.control
                        .set_fatal(format!("journal reader failed: {e}"));
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
                    _ = stop.cancelled() => break 'feed,
                    p = Arc::clone(&rows_in_flight).acquire_owned() => p.expect("never closed"),
                };
                tasks.spawn(Arc::clone(&self).drive(row, rec, permit, false));
                while tasks.try_join_next().is_some() {}
            }
        }
        self.drain(&mut tasks).await;
        flushing.cancel();
        let _ = flusher.await;
        let fatal = self.control.fatal();
        // A store that just failed would only make the exit wait for retries.
        if fatal.is_none() || !self.upload.failing() {
            self.index.flush(&self.upload).await;
        }
        let abandoned = self.control.abandoned.load(Ordering::Relaxed);
        match fatal {
            Some(reason) => Stop::Fatal(reason),
            None if stop.is_cancelled() => Stop::Interrupted,
            None if abandoned > 0 => Stop::Fatal(format!(
                "{abandoned} row(s) could not be finished because the object store failed \
                 them; nothing is lost: `batchimg resume` continues them"
            )),
            None => Stop::Completed,
        }
    }

    /// Waits for the rows in flight. Once the run is told to stop, they get
    /// the stop grace; what is still running then is dropped where it is: its
    /// journal state is the last one recorded, which `resume` continues from
    /// (a download or conversion is redone, an upload is checked by HEAD).
    async fn drain(&self, tasks: &mut JoinSet<()>) {
        let stop = self.control.stop.clone();
        loop {
            if stop.is_cancelled() {
                break;
            }
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { return },
                _ = stop.cancelled() => {}
            }
        }
        let grace = self.settings.stop_grace;
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { return },
                _ = &mut deadline => break,
            }
        }
        let left = tasks.len();
        tracing::warn!(
            rows = left,
            "{left} row(s) still in flight after the {} stop grace; leaving them for `batchimg resume`",
            humantime::format_duration(grace)
        );
        self.control
            .abandoned
            .fetch_add(left as u64, Ordering::Relaxed);
        tasks.shutdown().await;
    }

    /// Moves one row until it is uploaded or failed, recording every state it reaches.
    async fn drive(
        self: Arc<Self>,
        row: u64,
        mut rec: JobRecord,
        _permit: OwnedSemaphorePermit,
        alone: bool,
    ) {
        let started = Instant::now();
        rec.attempts += 1;
        // A failed row picked up again (`--retry-failed`) starts over.
        if let JobState::Failed(_) = rec.state {
            rec.state = JobState::Pending;
        }
        let mut carry = Carry {
            alone,
            ..Carry::default()
        };
        for steps in 1.. {
            let step = std::panic::AssertUnwindSafe(self.step(row, &rec, &mut carry))
                .catch_unwind()
                .await;
            rec.state = match step {
                Ok(Ok(next)) => next,
                Ok(Err(Setback::Failed(failure))) => JobState::Failed(failure),
                Ok(Err(Setback::Abandoned(why))) => {
                    // The breaker (store) or this arm (disk) stops the run;
                    // the row keeps what the journal last recorded for it.
                    if why.starts_with(DISK_FULL) {
                        self.control.set_fatal(format!("{why}; stopping. Nothing is lost: free some space, then `batchimg resume`"));
                    }
                    tracing::debug!(row, url = %RawUrl(&rec.url), reason = %why, "left for resume");
                    self.control.abandoned.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(panic) => JobState::Failed(Failure::new(
                    FailureClass::Internal,
                    format!("internal error: {}", panic_message(panic.as_ref())),
                )),
            };
            if steps >= MAX_STEPS && !matches!(rec.state, JobState::Uploaded(_)) {
                rec.state = JobState::Failed(Failure::new(
                    FailureClass::Internal,
                    format!("internal error: no final state after {steps} steps"),
                ));
            }
            rec.updated_ms = now_ms();
            if matches!(rec.state, JobState::Uploaded(_) | JobState::Failed(_)) {
                rec.suspect = false;
            }
            if self.writer.record(row, rec.clone()).await.is_err() {
                self.control
                    .set_fatal("the journal writer stopped; see the error above".into());
                return;
            }
            match &rec.state {
                JobState::Uploaded(done) => {
                    return self.uploaded(row, &rec.url, done, carry, started).await;
                }
                JobState::Failed(failure) => return self.failed(row, &rec.url, failure, carry),
                _ => {}
            }
        }
    }

    /// One step of a row's life: the stage for its state, and the state it reaches.
    async fn step(
        &self,
        row: u64,
        rec: &JobRecord,
        carry: &mut Carry,
    ) -> Result<JobState, Setback> {
        match &rec.state {
            // Nothing recorded: an earlier run may have uploaded this URL
            // (the URL index says so); else fetch it, or take the whole
            // download a killed run left behind.
            JobState::Pending => {
                if let Some(Err(why)) = &rec.name {
                    let failure = Failure::new(FailureClass::ObjectName, why.clone());
                    return Err(Setback::Failed(failure));
                }
                if let Some(key) = self.index.lookup(&rec.url, &self.upload).await? {
                    let input = self.fetch.left_behind_path(&rec.url);
                    let output = self.convert.output_path(&key);
                    return Ok(self.reused(&key, input, output.exists().then_some(output)));
                }
                let fetched = self.fetch.fetch(&rec.url).await?;
                carry.figures.download_bytes = fetched.body.len() as u64;
                carry.figures.download_ms = fetched.elapsed.as_millis() as u64;
                carry.figures.download_wait_ms = fetched.wait.as_millis() as u64;
                let m = crate::metrics::get();
                if fetched.attempts > 0 {
                    m.downloaded_bytes.inc_by(fetched.body.len() as u64);
                    m.stage_time("download", fetched.elapsed);
                    m.stage_wait("download", fetched.wait);
                }
                carry.source = Some((fetched.body, fetched.lease));
                Ok(JobState::Downloaded {
                    source: fetched.source,
                })
            }
            // The source is here (or must be fetched again if its file is
            // gone or changed). Identical content in flight, or an object
            // already in the bucket, ends the row; else convert.
            JobState::Downloaded { source } => {
                let (key, tag, content) = self.target(rec, source);
                let input = Some(source.path.clone());
                if let Some(shared) = self.lead_or_follow(&key, tag.as_deref(), carry).await {
                    return shared
                        .map(|output| self.reused(&key, input, output))
                        .map_err(Setback::Failed);
                }
                // Without the HEAD (a store that honours `If-None-Match`),
                // the conditional PUT finds an object that is already there.
                let head = self.settings.heads_before_put();
                if head && !carry.checked_absent && self.present(&key, tag.as_deref()).await? {
                    let output = self.convert.output_path(&content);
                    return Ok(self.reused(&key, input, output.exists().then_some(output)));
                }
                carry.checked_absent = true;
                let (body, lease) = carry.source.take().unzip();
                let input = Input {
                    row,
                    source,
                    body,
                    lease,
                    alone: carry.alone,
                };
                // The work file is named by the content key, never by a
                // chosen name, which other rows may share.
                let Some(out) = self.convert.convert(input, &content).await? else {
                    // The source file is gone or changed: fetch it again.
                    return Ok(JobState::Pending);
                };
                carry.figures.convert_ms = out.elapsed.as_millis() as u64;
                carry.figures.convert_wait_ms = out.wait.as_millis() as u64;
                if !out.elapsed.is_zero() {
                    crate::metrics::get().stage_time("convert", out.elapsed);
                    crate::metrics::get().stage_wait("convert", out.wait);
                }
                carry.figures.output_bytes = out.body.len() as u64;
                carry.output = Some((out.body, out.lease));
                Ok(JobState::Processed {
                    source: source.clone(),
                    output: out.path,
                    key,
                })
            }
            // The output is here (or is made again from the source if its
            // file is gone): upload it unless it is in the bucket already.
            JobState::Processed {
                source,
                output,
                key,
            } => {
                let fresh = carry.checked_absent;
                let input = || (fresh || source.path.exists()).then(|| source.path.clone());
                // The output file is named by the content key it was made
                // under, which is the tag (not the key of today's engine,
                // should a resume have changed it).
                let tag = matches!(rec.name, Some(Ok(_)))
                    .then(|| output.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .flatten();
                if let Some(shared) = self.lead_or_follow(key, tag.as_deref(), carry).await {
                    return shared
                        .map(|output| self.reused(key, input(), output))
                        .map_err(Setback::Failed);
                }
                let _named = match tag {
                    Some(_) => Some(self.name_lock(key).await),
                    None => None,
                };
                let (body, _lease) = match carry.output.take() {
                    Some(held) => held,
                    None => match self.convert.reuse(output).await {
                        Some(out) => (out.body, out.lease),
                        None => {
                            return Ok(JobState::Downloaded {
                                source: source.clone(),
                            });
                        }
                    },
                };
                // A chosen name is checked again under its lock: another row
                // may have taken it since this row's first check, and a store
                // that ignores If-None-Match would let this PUT overwrite it.
                if self.settings.heads_before_put()
                    && (!fresh || tag.is_some())
                    && self.present(key, tag.as_deref()).await?
                {
                    return Ok(self.reused(key, input(), Some(output.clone())));
                }
                let size = body.len() as u64;
                let (put, timing) = self
                    .upload
                    .put_if_absent(key, body, source.format.mime(), tag.as_deref())
                    .await?;
                // A chosen name already taken: by this content (a rerun), or
                // by other content, which is not overwritten.
                if put == PutOutcome::AlreadyPresent
                    && tag.is_some()
                    && !self.present(key, tag.as_deref()).await?
                {
                    return Err(Setback::Failed(name_taken(&self.upload.object_url(key))));
                }
                carry.figures.upload_ms = timing.busy.as_millis() as u64;
                carry.figures.upload_wait_ms = timing.wait.as_millis() as u64;
                let m = crate::metrics::get();
                m.stage_time("upload", timing.busy);
                m.stage_wait("upload", timing.wait);
                if put == PutOutcome::Created {
                    m.uploaded_bytes.inc_by(size);
                }
                Ok(JobState::Uploaded(Uploaded {
                    key: key.clone(),
                    s3url: self.upload.object_url(key),
                    reused: put == PutOutcome::AlreadyPresent,
                    input: input(),
                    output: Some(output.clone()),
                }))
            }
            // Final states are never stepped; returning them ends the loop.
            JobState::Uploaded(_) | JobState::Failed(_) => Ok(rec.state.clone()),
        }
    }

    /// Where a row's object goes: its key; for a `--key-template` name the
    /// tag that says what the object holds; and the content key, which names
    /// the work file.
    fn target(
        &self,
        rec: &JobRecord,
        source: &crate::job::SourceFile,
    ) -> (String, Option<String>, String) {
        let content = keys::object_key(
            &self.settings.store.prefix,
            &source.hash,
            source.format,
            self.settings.jpeg_engine,
            self.key_options.as_deref(),
        );
        match &rec.name {
            Some(Ok(name)) => (
                name.key(source.format.extension()),
                Some(keys::content_tag(&content).to_string()),
                content,
            ),
            _ => (content.clone(), None, content),
        }
    }

    /// The lock of the stripe `key` falls in (see `name_locks`).
    async fn name_lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        self.name_locks[(h.finish() % self.name_locks.len() as u64) as usize]
            .lock()
            .await
    }

    /// Whether the row's object is in the bucket. A content key holds its
    /// content by construction; a chosen name must hold this row's (its
    /// tag), and other content under it fails the row.
    async fn present(&self, key: &str, tag: Option<&str>) -> Result<bool, Setback> {
        let Some(tag) = tag else {
            return Ok(self.upload.exists(key).await?);
        };
        match self.upload.tag_of(key).await? {
            None => Ok(false),
            Some(Some(found)) if found == tag => Ok(true),
            Some(_) => Err(Setback::Failed(name_taken(&self.upload.object_url(key)))),
        }
    }

    /// Makes this row the leader for `key` (with its tag, for a chosen name:
    /// rows naming one object with different content are not identical), or
    /// waits for the row that is. `Some` is the leader's outcome: the output
    /// it kept, or its failure.
    async fn lead_or_follow(
        &self,
        key: &str,
        tag: Option<&str>,
        carry: &mut Carry,
    ) -> Option<Result<Option<PathBuf>, Failure>> {
        if carry.claim.is_some() {
            return None;
        }
        let claim_key = match tag {
            Some(tag) => format!("{key}\0{tag}"),
            None => key.to_string(),
        };
        loop {
            let waiter = match self.identical.enter(&claim_key) {
                Entry::Lead(claim) => {
                    carry.claim = Some(claim);
                    return None;
                }
                Entry::Follow(waiter) => waiter,
            };
            // Nothing held while waiting: the leader may need the room.
            carry.source = None;
            match waiter.outcome().await {
                Some(Shared::Stored { output }) => return Some(Ok(output)),
                Some(Shared::Failed(f)) => return Some(Err(f)),
                // The leader vanished (a panic): try to lead.
                None => continue,
            }
        }
    }

    /// The state of a row whose object was already in the bucket.
    fn reused(&self, key: &str, input: Option<PathBuf>, output: Option<PathBuf>) -> JobState {
        JobState::Uploaded(Uploaded {
            key: key.to_string(),
            s3url: self.upload.object_url(key),
            reused: true,
            input,
            output,
        })
    }

    async fn uploaded(&self, row: u64, url: &str, done: &Uploaded, carry: Carry, started: Instant) {
        if let Some(claim) = carry.claim {
            claim.finish(Shared::Stored {
                output: done.output.clone(),
            });
        }
        self.index.note(url, &done.key, &self.upload).await;
        if self.settings.delete_local {
            for p in [&done.input, &done.output].into_iter().flatten() {
                let _ = tokio::fs::remove_file(p).await;
            }
        }
        let f = &carry.figures;
        crate::metrics::get().row_finished(if done.reused { "reused" } else { "uploaded" });
        tracing::info!(
            target: crate::logging::ROWS,
            row,
            url = %RawUrl(url),
            key = done.key,
            reused = done.reused,
            download_bytes = f.download_bytes,
            download_ms = f.download_ms,
            download_wait_ms = f.download_wait_ms,
            convert_ms = f.convert_ms,
            convert_wait_ms = f.convert_wait_ms,
            output_bytes = f.output_bytes,
            upload_ms = f.upload_ms,
            upload_wait_ms = f.upload_wait_ms,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "{}",
            if done.reused { "already in the bucket" } else { "uploaded" }
        );
        self.reporter.row_finished(true);
    }

    fn failed(&self, row: u64, url: &str, failure: &Failure, carry: Carry) {
        match (carry.claim, failure.class) {
            // A bug is not the content's fault: rows with the same bytes try themselves.
            (Some(claim), FailureClass::Internal) => drop(claim),
            (Some(claim), _) => claim.finish(Shared::Failed(failure.clone())),
            (None, _) => {}
        }
        crate::metrics::get().row_finished("failed");
        tracing::warn!(
            row,
            url = %RawUrl(url),
            reason = failure.class.name(),
            error = %failure.message,
            "failed"
        );
        self.reporter.row_finished(false);
    }
}

/// The failure of a row whose chosen name holds other content.
fn name_taken(object_url: &str) -> Failure {
    Failure::new(
        FailureClass::ObjectName,
        format!(
            "{object_url} already holds other content (another row's, or another run's with \
             other options); not overwritten: give rows distinct names with --key-template"
        ),
    )
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Items per second; zero when no time has passed.
pub fn rate(done: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { done as f64 / secs } else { 0.0 }
}
