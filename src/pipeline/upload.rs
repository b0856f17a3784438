//! The upload stage: existence checks and conditional PUTs under their slots,
//! the HEAD policy, the locks of chosen names and their tag check, and the
//! breaker that tells a store outage from one row's bad luck.
//!
//! Every request the rows make to the destination bucket goes through here,
//! the URL index's lookups and flushes included, so the breaker sees them
//! all: after [`STORE_DOWN_AFTER`] consecutive failures, or at once for a
//! failure no other row could escape (no such bucket, rejected credentials),
//! the run is stopped instead of failing every remaining row one by one. Not
//! counted: the URL index's read at start ([`Uploader::store`], which falls
//! back to downloading), the `s3://` source rows (the fetch stage's own
//! reads, which fail their rows), and the commands' inputs and CSVs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::control::Control;
use crate::job::{Classify, FailureClass, Systemic};
use crate::keys::ObjectTarget;
use crate::store::{ObjectStore, PutOutcome, StoreError, StoreErrorKind};

/// Stripes of the locks rows naming one object take (`--key-template`).
const NAME_LOCKS: usize = 256;

/// Consecutive failed store requests after which the store is taken to be down.
const STORE_DOWN_AFTER: u32 = 8;

impl Classify for StoreError {
    fn class(&self) -> FailureClass {
        FailureClass::Upload
    }

    /// Only a request the store refused for this object is the row's fault;
    /// throttling, outages, timeouts and permission or credential trouble
    /// would fail every row alike.
    fn systemic(&self) -> Option<Systemic> {
        (self.kind != StoreErrorKind::Rejected).then(|| Systemic::Store {
            reason: crate::error::chain(self),
        })
    }
}

/// Why an upload did not store the row's object.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A chosen name holds other content, which is not overwritten.
    #[error(
        "{0} already holds other content (another row's, or another run's with other \
         options); not overwritten: give rows distinct names with --key-template"
    )]
    NameTaken(String),
}

impl Classify for UploadError {
    fn class(&self) -> FailureClass {
        match self {
            UploadError::Store(e) => e.class(),
            UploadError::NameTaken(_) => FailureClass::ObjectName,
        }
    }

    fn systemic(&self) -> Option<Systemic> {
        match self {
            UploadError::Store(e) => e.systemic(),
            UploadError::NameTaken(_) => None,
        }
    }
}

/// What storing a row's object came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The object was already there: nothing was uploaded for this row.
    pub reused: bool,
    pub timing: Timing,
}

/// Where a stage's time went: waiting for its slot, and working once it had it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub wait: Duration,
    pub busy: Duration,
}

/// The upload stage: the store, its slots, its HEAD policy, the locks of
/// chosen names and its breaker.
pub struct Uploader<S> {
    store: S,
    /// Uploads, HEADs and index writes in flight.
    slots: Semaphore,
    /// Consecutive failed requests.
    failures: AtomicU32,
    control: Arc<Control>,
    /// A HEAD precedes the conditional PUT (`--head-before-put`).
    heads: bool,
    /// With `--key-template`: rows naming one object check and upload it one
    /// at a time. The conditional PUT settles races across processes on
    /// AWS; within one, this settles them on every server, including those
    /// (s3s-fs) whose If-None-Match is a check and then a write. Striped, so
    /// a million names cost a fixed 256 locks.
    name_locks: Vec<tokio::sync::Mutex<()>>,
}

impl<S: ObjectStore> Uploader<S> {
    /// The stage with `slots` requests in flight, a HEAD before each PUT and
    /// no chosen names (see [`Uploader::with_policy`]).
    pub fn new(store: S, slots: usize, control: Arc<Control>) -> Uploader<S> {
        Uploader {
            store,
            slots: Semaphore::new(slots),
            failures: AtomicU32::new(0),
            control,
            heads: true,
            name_locks: Vec::new(),
        }
    }

    /// Whether a HEAD precedes each conditional PUT, and whether rows have
    /// chosen names (which then take their name's lock).
    pub fn with_policy(mut self, heads_before_put: bool, named: bool) -> Uploader<S> {
        self.heads = heads_before_put;
        self.name_locks = if named {
            (0..NAME_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect()
        } else {
            Vec::new()
        };
        self
    }

    /// Whether the target's object is already in the bucket, checked before
    /// its image is converted when the policy sends HEADs (without them, the
    /// conditional PUT finds an object that is already there).
    pub async fn stored_before(&self, target: &ObjectTarget) -> Result<bool, UploadError> {
        if !self.heads {
            return Ok(false);
        }
        self.present(target).await
    }

    /// Stores `body` as the target's object unless it is there already.
    /// `recovered`: the row's state was read from the journal, so a process
    /// that died may have uploaded it; a HEAD (when the policy sends them)
    /// then checks first, as it does for a chosen name, under its lock:
    /// another row may have taken the name since this row's first check,
    /// and a store that ignores If-None-Match would let this PUT overwrite it.
    pub async fn store_image(
        &self,
        target: &ObjectTarget,
        body: Bytes,
        content_type: &str,
        recovered: bool,
    ) -> Result<Stored, UploadError> {
        let _named = match &target.tag {
            Some(_) => Some(self.name_lock(&target.key).await),
            None => None,
        };
        if self.heads && (recovered || target.tag.is_some()) && self.present(target).await? {
            return Ok(Stored {
                reused: true,
                timing: Timing::default(),
            });
        }
        let size = body.len() as u64;
        let (put, timing) = self
            .put_if_absent(&target.key, body, content_type, target.tag.as_deref())
            .await?;
        // A chosen name already taken: by this content (a rerun), or by
        // other content, which is not overwritten.
        if put == PutOutcome::AlreadyPresent
            && target.tag.is_some()
            && !self.present(target).await?
        {
            return Err(UploadError::NameTaken(self.object_url(&target.key)));
        }
        let m = crate::metrics::get();
        m.stage_time("upload", timing.busy);
        m.stage_wait("upload", timing.wait);
        if put == PutOutcome::Created {
            m.uploaded_bytes.inc_by(size);
        }
        Ok(Stored {
            reused: put == PutOutcome::AlreadyPresent,
            timing,
        })
    }

    /// Whether the target's object is in the bucket. A content key holds its
    /// content by construction; a chosen name must hold this row's (its
    /// tag), and other content under it fails the row.
    async fn present(&self, target: &ObjectTarget) -> Result<bool, UploadError> {
        let Some(tag) = &target.tag else {
            return Ok(self.exists(&target.key).await?);
        };
        match self.tag_of(&target.key).await? {
            None => Ok(false),
            Some(Some(found)) if found == *tag => Ok(true),
            Some(_) => Err(UploadError::NameTaken(self.object_url(&target.key))),
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

    /// The store itself, for reads that are not the breaker's business (the
    /// URL index at start, which falls back to downloading when it fails).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Whether `key` is in the bucket.
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let _slot = self.slots.acquire().await.expect("never closed");
        self.count(self.store.exists(key).await)
    }

    /// The tag stored with `key`, if there is an object (see `ObjectStore::tag_of`).
    pub async fn tag_of(&self, key: &str) -> Result<Option<Option<String>>, StoreError> {
        let _slot = self.slots.acquire().await.expect("never closed");
        self.count(self.store.tag_of(key).await)
    }

    /// Uploads `body` to `key` unless an object is already there, and
    /// says how long it waited for an upload slot: `upload_ms` in the row's
    /// log line is the request alone, the wait is reported beside it.
    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        tag: Option<&str>,
    ) -> Result<(PutOutcome, Timing), StoreError> {
        let asked = Instant::now();
        let _slot = self.slots.acquire().await.expect("never closed");
        let _counted = crate::metrics::get().in_flight("upload");
        let started = Instant::now();
        let outcome = self.count(self.store.put_if_absent(key, body, content_type, tag).await)?;
        let timing = Timing {
            wait: started - asked,
            busy: started.elapsed(),
        };
        Ok((outcome, timing))
    }

    /// Writes `body` to `key`, replacing what is there (URL index objects).
    pub async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError> {
        let _slot = self.slots.acquire().await.expect("never closed");
        self.count(self.store.put(key, body, content_type).await)
    }

    pub fn object_url(&self, key: &str) -> String {
        self.store.object_url(key)
    }

    /// Whether the latest request failed.
    pub fn failing(&self) -> bool {
        self.failures.load(Ordering::Relaxed) > 0
    }

    fn count<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => self.failures.store(0, Ordering::Relaxed),
            Err(e) => {
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                let systemic = matches!(
                    e.kind,
                    StoreErrorKind::NoSuchBucket
                        | StoreErrorKind::BadCredentials
                        | StoreErrorKind::PermissionDenied
                );
                if n >= STORE_DOWN_AFTER || systemic {
                    self.control.set_fatal(format!(
                        "the object store is failing ({}); stopping. Nothing is lost: fix it, \
                         then `batchimg resume`",
                        crate::error::chain(e)
                    ));
                }
            }
        }
        result
    }
}
