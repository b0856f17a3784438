//! The object store as the pipeline sees it: a few idempotent operations on keys.
//!
//! The trait keeps the upload stage and the URL index free of SDK types and
//! lets them be unit-tested against an in-memory store; the real
//! implementation is [`s3::S3Store`], which every end-to-end test drives
//! against a real S3-compatible server. Reads of other buckets (`s3://`
//! source rows, inputs and outputs) call `S3Store` itself, without SDK types
//! either ([`s3::S3Object`]).

pub mod direct;
mod error;
pub mod request;
pub mod s3;

use std::time::Duration;

use bytes::Bytes;

pub use error::{StoreError, StoreErrorKind};

/// How long a store request may take to connect, and in all: one place for
/// both upload paths (the SDK's and the direct PUT).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The user metadata (`x-amz-meta-batchimg-content`) that says what an
/// object named by `--key-template` holds: its content key. A cross-version
/// contract: a run reads the tags earlier runs wrote.
pub const TAG_METADATA: &str = "batchimg-content";

/// What a conditional upload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// This call created the object.
    Created,
    /// The key already existed (the server answered 412 to `If-None-Match: *`).
    AlreadyPresent,
}

/// Operations batchimg needs; each implementation retries transient failures itself.
pub trait ObjectStore: Send + Sync + 'static {
    /// Whether `key` exists. A permission error is an error, never "missing".
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Uploads `body` unless `key` already exists, with `tag` (what the
    /// object holds, for names that do not say it) in its metadata.
    fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        tag: Option<&str>,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// The tag `put_if_absent` stored with `key`: `None` when there is no
    /// object, `Some(None)` for an object without one.
    fn tag_of(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Option<String>>, StoreError>> + Send;

    /// An object's bytes, or `None` when there is no such key.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;

    /// Uploads `body`, replacing what is there (URL index objects and CSV files).
    fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `max` keys under `prefix` after `start_after`, in order, and
    /// whether more follow.
    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max: i32,
    ) -> impl Future<Output = Result<(Vec<String>, bool), StoreError>> + Send;

    /// The URL users see in the output CSV.
    fn object_url(&self, key: &str) -> String;
}

/// A shared store is a store (the pipeline's unit tests keep a handle to count requests).
impl<S: ObjectStore> ObjectStore for std::sync::Arc<S> {
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).exists(key)
    }
    fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        tag: Option<&str>,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send {
        (**self).put_if_absent(key, body, content_type, tag)
    }
    fn tag_of(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Option<String>>, StoreError>> + Send {
        (**self).tag_of(key)
    }
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send {
        (**self).get(key)
    }
    fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put(key, body, content_type)
    }
    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max: i32,
    ) -> impl Future<Output = Result<(Vec<String>, bool), StoreError>> + Send {
        (**self).list(prefix, start_after, max)
    }
    fn object_url(&self, key: &str) -> String {
        (**self).object_url(key)
    }
}

#[cfg(test)]
pub mod memory {
    //! An in-memory store for unit tests of the pipeline's logic.

    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct MemoryStore {
        pub objects: Mutex<HashMap<String, Bytes>>,
        /// Keys of every PUT, conditional or not, in order.
        pub puts: Mutex<Vec<String>>,
        /// Keys of every HEAD, in order.
        pub heads: Mutex<Vec<String>>,
        pub tags: Mutex<HashMap<String, String>>,
    }

    impl ObjectStore for MemoryStore {
        async fn exists(&self, key: &str) -> Result<bool, StoreError> {
            self.heads.lock().unwrap().push(key.to_string());
            Ok(self.objects.lock().unwrap().contains_key(key))
        }
        async fn put_if_absent(
            &self,
            key: &str,
            body: Bytes,
            _: &str,
            tag: Option<&str>,
        ) -> Result<PutOutcome, StoreError> {
            self.puts.lock().unwrap().push(key.to_string());
            let mut objects = self.objects.lock().unwrap();
            if objects.contains_key(key) {
                return Ok(PutOutcome::AlreadyPresent);
            }
            objects.insert(key.to_string(), body);
            if let Some(tag) = tag {
                self.tags
                    .lock()
                    .unwrap()
                    .insert(key.to_string(), tag.to_string());
            }
            Ok(PutOutcome::Created)
        }
        async fn tag_of(&self, key: &str) -> Result<Option<Option<String>>, StoreError> {
            self.heads.lock().unwrap().push(key.to_string());
            if !self.objects.lock().unwrap().contains_key(key) {
                return Ok(None);
            }
            Ok(Some(self.tags.lock().unwrap().get(key).cloned()))
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
            Ok(self.objects.lock().unwrap().get(key).cloned())
        }
        async fn put(&self, key: &str, body: Bytes, _: &str) -> Result<(), StoreError> {
            self.puts.lock().unwrap().push(key.to_string());
            self.objects.lock().unwrap().insert(key.to_string(), body);
            Ok(())
        }
        async fn list(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            max: i32,
        ) -> Result<(Vec<String>, bool), StoreError> {
            let mut keys: Vec<String> = self
                .objects
                .lock()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with(prefix) && start_after.is_none_or(|a| k.as_str() > a))
                .cloned()
                .collect();
            keys.sort();
            let more = keys.len() > max as usize;
            keys.truncate(max as usize);
            Ok((keys, more))
        }
        fn object_url(&self, key: &str) -> String {
            format!("memory:///{key}")
        }
    }
}
