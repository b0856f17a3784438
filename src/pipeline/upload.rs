//! The upload stage: existence checks and conditional PUTs under their slots,
//! and the breaker that tells a store outage from one row's bad luck.
//!
//! Every store request of a run goes through here, URL index objects included,
//! so the breaker sees them all: after [`STORE_DOWN_AFTER`] consecutive
//! failures, or at once for a failure no other row could escape (no such
//! bucket, rejected credentials), the run is stopped instead of failing every
//! remaining row one by one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::Control;
use crate::job::{Classify, FailureClass};
use crate::store::{ObjectStore, PutOutcome, StoreError, StoreErrorKind};

/// Consecutive failed store requests after which the store is taken to be down.
const STORE_DOWN_AFTER: u32 = 8;

impl Classify for StoreError {
    fn class(&self) -> FailureClass {
        FailureClass::Upload
    }

    /// Only a request the store refused for this object is the row's fault;
    /// throttling, outages, timeouts and permission or credential trouble
    /// would fail every row alike.
    fn systemic(&self) -> Option<String> {
        (self.kind != StoreErrorKind::Rejected).then(|| {
            format!(
                "the object store is failing ({})",
                crate::error::chain(self)
            )
        })
    }
}

/// Where a stage's time went: waiting for its slot, and working once it had it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub wait: Duration,
    pub busy: Duration,
}

/// The upload stage: the store, its slots and its breaker.
pub struct Uploader<S> {
    store: S,
    /// Uploads, HEADs and index writes in flight.
    slots: Semaphore,
    /// Consecutive failed requests.
    failures: AtomicU32,
    control: Arc<Control>,
}

impl<S: ObjectStore> Uploader<S> {
    pub fn new(store: S, slots: usize, control: Arc<Control>) -> Uploader<S> {
        Uploader {
            store,
            slots: Semaphore::new(slots),
            failures: AtomicU32::new(0),
            control,
        }
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
    pub async fn put_if_absent(
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
