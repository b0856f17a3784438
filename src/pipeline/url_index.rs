//! Which object each URL produced, kept in the bucket, so a rerun that has lost
//! its journal and work directory still skips every download.
//!
//! The entries are written in batches: one small text object per 1000 URLs
//! (or per 30 seconds, and at the end of a run) under
//! `<prefix>.batchimg/url-index/`, one line `<URL id> <object name>` per URL.
//! Batched, because a marker object per URL would cost one more PUT per image
//! (see docs/design.md). The price of batching: a run killed with SIGKILL
//! loses the entries it had not flushed, so a rerun without the journal
//! downloads those URLs again (the content-key HEAD still prevents a second
//! upload). With the journal, nothing is lost.
//!
//! At start a run reads the index (a LIST per 1000 objects, one GET each) when
//! it is small enough to pay off for the rows it has to do; a bucket holding
//! the index of millions of URLs is not read for a run of ten. The index alone
//! is not proof, since an object may have been deleted since, so when it has
//! entries the run also lists the objects themselves (one LIST per 1000, within
//! a budget) and sends a HEAD only for names the listing did not reach: a
//! journal-less rerun of a million URLs makes two thousand requests, not a
//! million.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::format::ImageFormat;
use crate::keys::{hex, join_key};
use crate::options::JpegEngine;
use crate::pipeline::upload::Uploader;
use crate::store::{ObjectStore, StoreError};

/// Entries per index object.
pub const FLUSH_ENTRIES: usize = 1000;
/// Longest time an entry waits in memory before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(30);
/// Index objects read at once when a run starts.
const READ_CONCURRENCY: usize = 8;
/// Names the URL id's derivation; a cross-version contract like the object keys.
const ID_CONTEXT: &str = "batchimg 2026-11-28 url marker v1";

/// Where the index objects live under `prefix`.
fn index_dir(prefix: &str) -> String {
    join_key(prefix, ".batchimg/url-index/")
}

/// A URL's id in the index: 128 bits of its derived blake3 hash.
fn url_id(url: &str) -> u128 {
    let hash = blake3::derive_key(ID_CONTEXT, url.as_bytes());
    u128::from_be_bytes(hash[..16].try_into().expect("16 bytes"))
}

/// An object name, `<64 hex digits>.<extension>`, kept in 33 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ObjectName {
    hash: [u8; 32],
    format: ImageFormat,
}

impl ObjectName {
    fn parse(name: &str) -> Option<ObjectName> {
        let (hex, ext) = name.split_once('.')?;
        let format = ImageFormat::ALL
            .into_iter()
            .find(|f| f.extension() == ext)?;
        // Exactly the names batchimg writes: `from_str_radix` alone would also
        // take "+f" or upper case, and two keys would map to one name.
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut hash = [0u8; 32];
        for (i, byte) in hash.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(ObjectName { hash, format })
    }

    fn render(&self) -> String {
        format!("{}.{}", hex(&self.hash), self.format.extension())
    }
}

/// The URL index as a stage of the run: what it read at the start, what this
/// run adds, and when it writes.
pub struct UrlIndex {
    enabled: bool,
    prefix: String,
    /// Entries are per JPEG engine: a URL's object under one engine is not
    /// its object under the other (see [`UrlIndex::id_url`]).
    engine: JpegEngine,
    /// The fingerprint of the transform, when there is one: entries are
    /// per transform, as keys are.
    transform: Option<String>,
    /// The fingerprint of the object options, when set: entries are per
    /// options too, as keys are.
    options: Option<String>,
    snapshot: tokio::sync::OnceCell<Snapshot>,
    /// Objects listed at start, when the snapshot had entries to check.
    listing: tokio::sync::OnceCell<Existing>,
    additions: Additions,
    /// After a failed write, the next one waits for the timer rather than
    /// being retried (with an ever larger batch) on every row.
    quiet_until: Mutex<Option<Instant>>,
}

impl UrlIndex {
    pub fn new(
        enabled: bool,
        prefix: &str,
        engine: JpegEngine,
        transform: Option<String>,
        options: Option<String>,
    ) -> UrlIndex {
        UrlIndex {
            enabled,
            prefix: prefix.to_string(),
            engine,
            transform,
            options,
            snapshot: tokio::sync::OnceCell::new(),
            listing: tokio::sync::OnceCell::new(),
            additions: Additions::default(),
            quiet_until: Mutex::new(None),
        }
    }

    /// The string a URL's id is derived from. ImageMagick's engine uses the
    /// URL itself, as every index written before the lossless engine did;
    /// the lossless engine prefixes it (a NUL, which no accepted URL holds),
    /// so switching engines never takes the other engine's object for a URL.
    /// Object options add their fingerprint the same way, and a transform its own.
    fn id_url<'a>(&self, url: &'a str) -> std::borrow::Cow<'a, str> {
        let engine = match self.engine {
            JpegEngine::ImageMagick => "",
            JpegEngine::Lossless => "lossless\0",
        };
        let id: std::borrow::Cow<'a, str> = match &self.options {
            None if engine.is_empty() => url.into(),
            None => format!("{engine}{url}").into(),
            Some(options) => format!("{engine}options\0{options}\0{url}").into(),
        };
        // A transform's objects are its own, whatever the engine and options.
        match &self.transform {
            None => id,
            Some(t) => format!("transform\0{t}\0{id}").into(),
        }
    }

    /// Reads the index, if it is small enough to pay off for `rows` rows to do.
    pub async fn load<S: ObjectStore>(&self, up: &Uploader<S>, rows: u64) {
        if !self.enabled {
            return;
        }
        // One index object (up to 1000 URLs) per 100 rows to do, at most:
        // past that, downloading the few rows again is cheaper. The objects
        // the index names are listed too, one LIST per 1000 rows to do at
        // most; names past the listing get a HEAD each.
        let max_objects = usize::try_from(rows / 100).unwrap_or(usize::MAX) + 16;
        let (snapshot, listing) =
            load(up.store(), &self.prefix, max_objects, rows / 1000 + 2).await;
        if let Some(listing) = listing {
            let _ = self.listing.set(listing);
        }
        let _ = self.snapshot.set(snapshot);
    }

    /// The key of the object an earlier run made from `url`, if it is still
    /// in the bucket.
    pub async fn lookup<S: ObjectStore>(
        &self,
        url: &str,
        up: &Uploader<S>,
    ) -> Result<Option<String>, StoreError> {
        let url = &*self.id_url(url);
        let Some(name) = self.snapshot.get().and_then(|s| s.lookup(url)) else {
            return Ok(None);
        };
        let key = join_key(&self.prefix, &name);
        // The index alone is not proof: the object may have been deleted since.
        match self.listing.get().and_then(|e| e.check(&name)) {
            Some(true) => Ok(Some(key)),
            Some(false) => Ok(None),
            None => Ok(up.exists(&key).await?.then_some(key)),
        }
    }

    /// Notes that `url` produced `key`; a full batch is written at once.
    pub async fn note<S: ObjectStore>(&self, url: &str, key: &str, up: &Uploader<S>) {
        let url = &*self.id_url(url);
        if !self.enabled || !self.additions.add(self.snapshot.get(), url, key) {
            return;
        }
        let quiet = *self.quiet_until.lock().expect("URL index lock");
        if quiet.is_none_or(|until| Instant::now() >= until) {
            self.flush(up).await;
        }
    }

    /// Writes what this run added and has not written yet.
    pub async fn flush<S: ObjectStore>(&self, up: &Uploader<S>) {
        if !self.enabled {
            return;
        }
        // A lost entry only costs a download next time, so this is not a row failure.
        match self.additions.flush(up, &self.prefix).await {
            Ok(()) => *self.quiet_until.lock().expect("URL index lock") = None,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "could not write the URL index");
                *self.quiet_until.lock().expect("URL index lock") =
                    Some(Instant::now() + FLUSH_EVERY);
            }
        }
    }

    /// Writes what is pending every [`FLUSH_EVERY`] until `done`.
    pub async fn keep_flushing<S: ObjectStore>(&self, up: &Uploader<S>, done: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = done.cancelled() => return,
                _ = tick.tick() => self.flush(up).await,
            }
        }
    }
}

/// The index as read at the start of a run: a sorted vector rather than a
/// hash map, a third of the memory per URL (49 bytes an entry).
#[derive(Debug, Default)]
struct Snapshot {
    entries: Vec<([u8; 16], ObjectName)>,
}

impl Snapshot {
    /// Adds the entries of one index object; lines that do not parse are skipped.
    fn add_text(&mut self, text: &str) {
        for line in text.lines() {
            let Some((id, name)) = line.split_once(' ') else {
                continue;
            };
            if let (Ok(id), Some(name)) = (u128::from_str_radix(id, 16), ObjectName::parse(name)) {
                self.entries.push((id.to_be_bytes(), name));
            }
        }
    }

    /// Sorts the entries, keeping for each URL the one added last.
    fn finish(&mut self) {
        // Stable: entries for the same URL stay in the order they were added.
        self.entries.sort_by_key(|e| e.0);
        self.entries.reverse();
        self.entries.dedup_by_key(|e| e.0);
        self.entries.reverse();
        self.entries.shrink_to_fit();
    }

    fn get(&self, url: &str) -> Option<&ObjectName> {
        let id = url_id(url).to_be_bytes();
        let i = self.entries.binary_search_by_key(&id, |e| e.0).ok()?;
        Some(&self.entries[i].1)
    }

    /// The name of the object `url` produced, if the index has it.
    fn lookup(&self, url: &str) -> Option<String> {
        self.get(url).map(ObjectName::render)
    }

    fn knows(&self, url: &str, name: &ObjectName) -> bool {
        self.get(url) == Some(name)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Reads the index under `prefix`, unless it has more than `max_objects`
/// objects, and when it has entries, lists the objects too (at most
/// `max_pages` requests) while the index objects are read. Whatever cannot be
/// read is left out: those URLs are downloaded.
async fn load<S: ObjectStore>(
    store: &S,
    prefix: &str,
    max_objects: usize,
    max_pages: u64,
) -> (Snapshot, Option<Existing>) {
    let dir = index_dir(prefix);
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        match store.list(&dir, after.as_deref(), 1000).await {
            Ok((page, more)) => {
                keys.extend(page);
                if keys.len() > max_objects {
                    tracing::debug!(
                        objects = keys.len(),
                        max_objects,
                        "the URL index is too large to be worth reading for this run"
                    );
                    return (Snapshot::default(), None);
                }
                if !more {
                    break;
                }
                after = keys.last().cloned();
            }
            Err(e) => {
                tracing::debug!(error = %crate::error::chain(&e), "cannot list the URL index");
                return (Snapshot::default(), None);
            }
        }
    }
    if keys.is_empty() {
        return (Snapshot::default(), None);
    }
    tokio::join!(
        read_index(store, &keys),
        list_existing(store, prefix, max_pages)
    )
}

async fn read_index<S: ObjectStore>(store: &S, keys: &[String]) -> Snapshot {
    let mut index = Snapshot::default();
    // In listing order, which is the order they were written: a later entry
    // for a URL replaces an earlier one.
    let mut reads = futures::stream::iter(keys)
        .map(|k| async move { (k, store.get(k).await) })
        .buffered(READ_CONCURRENCY);
    while let Some((key, read)) = reads.next().await {
        match read {
            Ok(Some(body)) => index.add_text(&String::from_utf8_lossy(&body)),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(key, error = %crate::error::chain(&e), "cannot read a URL index object")
            }
        }
    }
    index.finish();
    tracing::debug!(
        objects = keys.len(),
        urls = index.len(),
        "read the URL index"
    );
    index
}

/// Which objects exist under the prefix, as far as a listing went.
#[derive(Debug, Default)]
struct Existing {
    /// Sorted, 33 bytes an object.
    present: Vec<ObjectName>,
    /// Names up to and including this one were listed; `None`: all of them.
    covered_to: Option<String>,
}

impl Existing {
    /// Whether the object `name` exists, or `None` when the listing stopped
    /// before it (ask the store).
    fn check(&self, name: &str) -> Option<bool> {
        match &self.covered_to {
            Some(end) if name > end.as_str() => None,
            _ => Some(
                ObjectName::parse(name).is_some_and(|n| self.present.binary_search(&n).is_ok()),
            ),
        }
    }
}

/// Lists the objects under `prefix`, at most `max_pages` requests of 1000
/// keys; `None` when the listing fails.
async fn list_existing<S: ObjectStore>(
    store: &S,
    prefix: &str,
    max_pages: u64,
) -> Option<Existing> {
    let dir = join_key(prefix, "");
    let mut existing = Existing::default();
    // Object names start with a hex digit; "/" sorts after "." and before "0",
    // so the listing starts past `.batchimg/`.
    let mut after = format!("{dir}/");
    for _ in 0..max_pages {
        match store.list(&dir, Some(&after), 1000).await {
            Ok((keys, more)) => {
                for key in &keys {
                    if let Some(name) = key.strip_prefix(&dir).and_then(ObjectName::parse) {
                        existing.present.push(name);
                    }
                }
                match keys.last() {
                    Some(last) if more => after = last.clone(),
                    _ => {
                        tracing::debug!(objects = existing.present.len(), "listed every object");
                        existing.present.sort_unstable();
                        existing.present.shrink_to_fit();
                        return Some(existing);
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %crate::error::chain(&e), "cannot list the objects; asking per URL");
                return None;
            }
        }
    }
    existing.present.sort_unstable();
    existing.present.shrink_to_fit();
    existing.covered_to = Some(after.strip_prefix(&dir).unwrap_or(&after).to_string());
    tracing::debug!(
        objects = existing.present.len(),
        up_to = existing.covered_to.as_deref().unwrap_or(""),
        "listed objects within the budget"
    );
    Some(existing)
}

/// Entries of this run not yet written.
struct Additions {
    pending: Mutex<Vec<(u128, ObjectName)>>,
    /// `<unix ns>-<random>`: index objects of concurrent runs and shards never
    /// collide, and list in the order they were started.
    run_tag: String,
    written: AtomicU64,
}

impl Default for Additions {
    fn default() -> Self {
        let ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Additions {
            pending: Mutex::new(Vec::new()),
            run_tag: format!("{ns:020}-{:016x}", fastrand::u64(..)),
            written: AtomicU64::new(0),
        }
    }
}

impl Additions {
    /// Notes that `url` produced `key`, unless `index` already says so.
    /// Returns true when a full batch is waiting to be flushed.
    fn add(&self, index: Option<&Snapshot>, url: &str, key: &str) -> bool {
        let name = key.rsplit('/').next().unwrap_or(key);
        let Some(name) = ObjectName::parse(name) else {
            return false;
        };
        if index.is_some_and(|i| i.knows(url, &name)) {
            return false;
        }
        let mut pending = self.pending.lock().expect("URL index lock");
        pending.push((url_id(url), name));
        pending.len() >= FLUSH_ENTRIES
    }

    /// Writes what is pending as one index object. On failure the entries
    /// are kept for the next flush.
    async fn flush<S: ObjectStore>(
        &self,
        up: &Uploader<S>,
        prefix: &str,
    ) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut *self.pending.lock().expect("URL index lock"));
        if batch.is_empty() {
            return Ok(());
        }
        let mut text = String::with_capacity(batch.len() * 102);
        for (id, name) in &batch {
            text.push_str(&format!("{id:032x} {}\n", name.render()));
        }
        let seq = self.written.fetch_add(1, Ordering::Relaxed);
        let key = format!("{}{}-{seq:06}.txt", index_dir(prefix), self.run_tag);
        match up.put(&key, Bytes::from(text), "text/plain").await {
            Ok(()) => {
                tracing::debug!(key, urls = batch.len(), "wrote a URL index object");
                Ok(())
            }
            Err(e) => {
                self.pending.lock().expect("URL index lock").extend(batch);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::object_key;
    use crate::store::memory::MemoryStore;

    fn uploader() -> Uploader<MemoryStore> {
        Uploader::new(MemoryStore::default(), 4, Default::default())
    }

    fn key(i: u8) -> String {
        object_key(
            "p/",
            &[i; 32],
            ImageFormat::Jpeg,
            JpegEngine::ImageMagick,
            None,
        )
    }

    #[tokio::test]
    async fn a_flushed_log_is_read_back_by_the_next_run() {
        let up = uploader();
        let store = up.store();
        let log = Additions::default();
        for i in 0..5u8 {
            assert!(!log.add(None, &format!("https://a/{i}.jpg"), &key(i)));
        }
        log.flush(&up, "p/").await.unwrap();
        // One object for five URLs, and nothing more to write.
        assert_eq!(store.puts.lock().unwrap().len(), 1);
        log.flush(&up, "p/").await.unwrap();
        assert_eq!(store.puts.lock().unwrap().len(), 1);

        let index = load(store, "p/", 10, 10).await.0;
        assert_eq!(index.len(), 5);
        for i in 0..5u8 {
            let name = key(i).strip_prefix("p/").unwrap().to_string();
            assert_eq!(index.lookup(&format!("https://a/{i}.jpg")), Some(name));
        }
        assert_eq!(index.lookup("https://a/new.jpg"), None);
        // Another prefix has its own index.
        assert!(load(store, "q/", 10, 10).await.0.is_empty());
    }

    #[tokio::test]
    async fn two_runs_write_separate_objects_and_known_entries_are_not_repeated() {
        let up = uploader();
        let store = up.store();
        let (first, second) = (Additions::default(), Additions::default());
        first.add(None, "https://a/1.jpg", &key(1));
        second.add(None, "https://a/2.jpg", &key(2));
        first.flush(&up, "").await.unwrap();
        second.flush(&up, "").await.unwrap();
        assert_eq!(store.objects.lock().unwrap().len(), 2);

        let index = load(store, "", 10, 10).await.0;
        assert_eq!(index.len(), 2);
        let third = Additions::default();
        // Already in the index under the same object: nothing to write.
        third.add(Some(&index), "https://a/1.jpg", &key(1));
        third.flush(&up, "").await.unwrap();
        assert_eq!(store.objects.lock().unwrap().len(), 2);
        // The same URL now gives other bytes: the new entry is written and wins.
        third.add(Some(&index), "https://a/1.jpg", &key(9));
        third.flush(&up, "").await.unwrap();
        let name = key(9).strip_prefix("p/").unwrap().to_string();
        assert_eq!(
            load(store, "", 10, 10).await.0.lookup("https://a/1.jpg"),
            Some(name)
        );
    }

    /// A cross-version contract: a run reads the index objects earlier
    /// versions wrote, so their lines, the URL ids, and the ids' inputs for
    /// each engine and with object options are pinned.
    #[tokio::test]
    async fn the_index_lines_and_url_ids_are_pinned() {
        let url = "https://example.com/a.jpg";
        let mut lines = vec![format!("url_id {:032x}", url_id(url))];
        for (engine, options) in [
            (JpegEngine::ImageMagick, None),
            (JpegEngine::Lossless, None),
            (
                JpegEngine::Lossless,
                Some("storage-class=STANDARD_IA".to_string()),
            ),
        ] {
            let up = uploader();
            let index = UrlIndex::new(true, "gray/", engine, None, options.clone());
            index.load(&up, 10).await;
            index
                .note(
                    url,
                    &format!("gray/{}", key(1).strip_prefix("p/").unwrap()),
                    &up,
                )
                .await;
            index.flush(&up).await;
            let objects = up.store().objects.lock().unwrap().clone();
            let (name, body) = objects.iter().next().expect("one index object");
            assert!(name.starts_with("gray/.batchimg/url-index/"), "{name}");
            lines.push(format!(
                "{engine:?} {options:?}: {}",
                String::from_utf8_lossy(body).trim_end()
            ));
        }
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn a_full_batch_asks_for_a_flush() {
        let log = Additions::default();
        let full = (0..FLUSH_ENTRIES)
            .map(|i| log.add(None, &format!("https://a/{i}"), &key(1)))
            .filter(|full| *full)
            .count();
        assert_eq!(full, 1);
    }

    #[tokio::test]
    async fn an_index_too_large_for_the_run_is_not_read() {
        let up = uploader();
        let store = up.store();
        for i in 0..12u8 {
            let log = Additions::default();
            log.add(None, &format!("https://a/{i}.jpg"), &key(i));
            log.flush(&up, "").await.unwrap();
        }
        assert_eq!(load(store, "", 12, 10).await.0.len(), 12);
        assert!(load(store, "", 11, 10).await.0.is_empty());
    }

    #[tokio::test]
    async fn a_listing_finds_the_objects_and_skips_everything_else() {
        let up = uploader();
        let store = up.store();
        let mut names = Vec::new();
        for i in 0..25u8 {
            store.put(&key(i), Bytes::new(), "").await.unwrap();
            names.push(key(i).strip_prefix("p/").unwrap().to_string());
        }
        // Index objects and other files under the prefix are not objects.
        let log = Additions::default();
        log.add(None, "https://a/1.jpg", &key(1));
        log.flush(&up, "p/").await.unwrap();
        store.put("p/notes.txt", Bytes::new(), "").await.unwrap();

        let all = list_existing(store, "p/", 10).await.unwrap();
        assert_eq!(all.present.len(), 25);
        assert!(names.iter().all(|n| all.check(n) == Some(true)));
        assert_eq!(all.check(key(99).strip_prefix("p/").unwrap()), Some(false));
    }

    #[tokio::test]
    async fn a_partial_listing_leaves_the_rest_to_a_head() {
        let up = uploader();
        let store = up.store();
        let mut keys: Vec<String> = (0..1500u32)
            .map(|i| {
                object_key(
                    "",
                    blake3::hash(&i.to_le_bytes()).as_bytes(),
                    ImageFormat::Png,
                    JpegEngine::ImageMagick,
                    None,
                )
            })
            .collect();
        for k in &keys {
            store.put(k, Bytes::new(), "").await.unwrap();
        }
        keys.sort();
        // One request of 1000 keys: the first thousand are known, the rest are not.
        let partial = list_existing(store, "", 1).await.unwrap();
        assert_eq!(partial.present.len(), 1000);
        assert_eq!(partial.check(&keys[0]), Some(true));
        assert_eq!(partial.check(&keys[999]), Some(true));
        assert_eq!(partial.check(&keys[1000]), None);
        assert_eq!(partial.check(&keys[1499]), None);
        // A name inside the listed range that was not listed is known to be absent.
        let absent = format!("{}.png", "0".repeat(64));
        assert_eq!(partial.check(&absent), Some(false));
        assert_eq!(
            list_existing(store, "", 2).await.unwrap().present.len(),
            1500
        );
    }

    #[test]
    fn damaged_lines_are_skipped() {
        let good = key(4);
        let good = good.strip_prefix("p/").unwrap();
        let mut index = Snapshot::default();
        let id = url_id("https://a/4.jpg");
        index.add_text(&format!(
            "garbage\n{id:032x} {good}\n{id:x}zz {good}\n00 nothex.jpg\n01 {}.exe\n",
            &good[..64]
        ));
        index.finish();
        assert_eq!(index.len(), 1);
        // Names batchimg would not write are not taken for the ones it would.
        let upper = good.replacen(|c: char| c.is_ascii_lowercase(), "A", 1);
        let plus = format!("+{}", &good[1..]);
        for odd in [upper, plus] {
            assert!(ObjectName::parse(&odd).is_none(), "{odd}");
        }
        assert_eq!(index.lookup("https://a/4.jpg").as_deref(), Some(good));
    }
}
