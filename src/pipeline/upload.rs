//! Content-addressed uploads: how keys and per-URL markers are named.
//!
//! An object's key is derived with blake3 from the source image's bytes under a
//! versioned context that names the recipe, so the same image always lands on
//! the same key, a HEAD answers "already done" without any database, and a
//! future change of recipe gets new keys instead of colliding with old ones.
//!
//! An empty marker object per URL, `<prefix>.batchimg/url/<blake3 of the
//! URL>.<object name>`, records which object the URL's image produced, in its
//! name. (Flat names: one folder per marker made a local S3 server's PUT
//! several times dearer.) A rerun, even with the journal and the work directory gone, lists the
//! markers (one request per thousand URLs) and HEADs the objects they name
//! instead of downloading anything.

use std::collections::HashMap;

use crate::format::ImageFormat;
use crate::store::{ObjectStore, join_key};

/// Names the processing recipe. Change it whenever the output for a given
/// input could change, and every key changes with it.
const KEY_CONTEXT: &str = "batchimg 2026-11-28 object key: grayscale v1 (ImageMagick GRAY, same format, auto-orient, strip)";
const MARKER_CONTEXT: &str = "batchimg 2026-11-28 url marker v1";

/// The key of the grayscale version of an image whose bytes hash to `source_hash`.
pub fn object_key(prefix: &str, source_hash: &[u8; 32], format: ImageFormat) -> String {
    let derived = blake3::derive_key(KEY_CONTEXT, source_hash);
    join_key(prefix, &format!("{}.{}", hex(&derived), format.extension()))
}

/// Where markers live under `prefix`.
pub fn marker_dir(prefix: &str) -> String {
    join_key(prefix, ".batchimg/url/")
}

/// A URL's marker id: the derived blake3 of the URL, in hex.
pub fn marker_id(url: &str) -> String {
    hex(&blake3::derive_key(MARKER_CONTEXT, url.as_bytes()))
}

/// The marker saying that `url` produced the object `key`.
pub fn marker_key(prefix: &str, url: &str, key: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    format!("{}{}.{name}", marker_dir(prefix), marker_id(url))
}

/// Stable file name for a URL's download in the work directory (no extension).
pub fn download_stem(url: &str) -> String {
    hex(&blake3::hash(url.as_bytes()).as_bytes()[..16])
}

/// Markers found by listing, up to where the listing stopped.
#[derive(Debug, Default)]
pub struct MarkerIndex {
    /// Marker id → object name.
    found: HashMap<String, String>,
    /// The listing covered every id up to and including this one; `None`: all of them.
    covered_to: Option<String>,
}

/// What the index knows about one URL.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The object name its marker gives, or `None`: it has no marker.
    Known(Option<String>),
    /// Past the end of a partial listing: ask the store.
    Unknown,
}

impl MarkerIndex {
    /// Adds one listed key (`<dir><id>.<name>`).
    pub fn add(&mut self, dir: &str, listed: &str) {
        if let Some((id, name)) = listed.strip_prefix(dir).and_then(|r| r.split_once('.'))
            && !name.is_empty()
        {
            self.found.insert(id.to_string(), name.to_string());
        }
    }

    /// Records that the listing stopped after `last` (a key; "" when it
    /// covered nothing), or was complete (`None`).
    pub fn finish(&mut self, dir: &str, last: Option<&str>) {
        self.covered_to = last.map(|k| {
            let rest = k.strip_prefix(dir).unwrap_or("");
            rest.split('.').next().unwrap_or(rest).to_string()
        });
    }

    pub fn lookup(&self, id: &str) -> Lookup {
        match &self.covered_to {
            Some(end) if id > end.as_str() => Lookup::Unknown,
            // The id at the very end may have been cut between its keys; it has one marker anyway.
            _ => Lookup::Known(self.found.get(id).cloned()),
        }
    }

    pub fn len(&self) -> usize {
        self.found.len()
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }
}

/// Lists the markers under `prefix`, at most `pages` requests of `page` keys.
/// A listing cut short (or failed) still answers for the ids it covered.
pub async fn list_markers<S: ObjectStore>(
    store: &S,
    prefix: &str,
    pages: u64,
    page: i32,
) -> MarkerIndex {
    let dir = marker_dir(prefix);
    let mut index = MarkerIndex::default();
    let mut after: Option<String> = None;
    for _ in 0..pages {
        match store.list(&dir, after.as_deref(), page).await {
            Ok((keys, more)) => {
                for k in &keys {
                    index.add(&dir, k);
                }
                if !more {
                    index.finish(&dir, None);
                    tracing::debug!(markers = index.len(), "listed every URL marker");
                    return index;
                }
                after = keys.last().cloned();
            }
            Err(e) => {
                tracing::debug!(error = %crate::pipeline::error_chain(&e), "cannot list URL markers; asking per URL");
                break;
            }
        }
    }
    index.finish(&dir, Some(after.as_deref().unwrap_or("")));
    index
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_content_and_format_only() {
        let a = object_key("p/", &[1; 32], ImageFormat::Jpeg);
        assert_eq!(a, object_key("p/", &[1; 32], ImageFormat::Jpeg));
        assert_ne!(a, object_key("p/", &[2; 32], ImageFormat::Jpeg));
        assert!(a.starts_with("p/") && a.ends_with(".jpg"));
        assert_eq!(a.len(), "p/".len() + 64 + ".jpg".len());
    }

    #[test]
    fn the_recipe_context_changes_the_key() {
        // The key is not the plain hash of the source, so a new recipe can get new keys.
        let plain = hex(blake3::hash(&[1; 32]).as_bytes());
        assert!(!object_key("", &[1; 32], ImageFormat::Png).starts_with(&plain));
    }

    #[test]
    fn marker_names_carry_the_object_name() {
        let key = object_key("p/", &[3; 32], ImageFormat::Png);
        let marker = marker_key("p/", "http://a/x.png", &key);
        assert!(marker.starts_with("p/.batchimg/url/"));
        assert!(marker.ends_with(key.strip_prefix("p/").unwrap()));
        let mut index = MarkerIndex::default();
        index.add(&marker_dir("p/"), &marker);
        index.finish(&marker_dir("p/"), None);
        assert_eq!(
            index.lookup(&marker_id("http://a/x.png")),
            Lookup::Known(Some(key.strip_prefix("p/").unwrap().to_string()))
        );
        assert_eq!(
            index.lookup(&marker_id("http://a/other.png")),
            Lookup::Known(None)
        );
    }

    #[test]
    fn a_partial_listing_only_answers_for_what_it_covered() {
        let dir = marker_dir("");
        let mut index = MarkerIndex::default();
        index.add(&dir, &format!("{dir}5555.k.jpg"));
        index.finish(&dir, Some(&format!("{dir}5555.k.jpg")));
        assert_eq!(index.lookup("4444"), Lookup::Known(None));
        assert_eq!(index.lookup("5555"), Lookup::Known(Some("k.jpg".into())));
        assert_eq!(index.lookup("6666"), Lookup::Unknown);
    }

    #[tokio::test]
    async fn listing_pages_through_markers_within_its_budget() {
        use crate::store::memory::MemoryStore;
        let store = MemoryStore::default();
        let urls: Vec<String> = (0..25).map(|i| format!("https://a/{i}.jpg")).collect();
        for (i, u) in urls.iter().enumerate() {
            let key = object_key("p/", &[i as u8; 32], ImageFormat::Jpeg);
            store
                .put(&marker_key("p/", u, &key), bytes::Bytes::new(), "")
                .await
                .unwrap();
        }
        store
            .put("p/unrelated.jpg", bytes::Bytes::new(), "")
            .await
            .unwrap();

        // Enough budget: every marker is known, and so is every absence.
        let full = list_markers(&store, "p/", 10, 10).await;
        assert_eq!(full.len(), 25);
        for u in &urls {
            assert!(
                matches!(full.lookup(&marker_id(u)), Lookup::Known(Some(_))),
                "{u}"
            );
        }
        assert_eq!(
            full.lookup(&marker_id("https://a/new.jpg")),
            Lookup::Known(None)
        );

        // Two pages of ten: twenty known, the rest left to per-URL lookups.
        let partial = list_markers(&store, "p/", 2, 10).await;
        assert_eq!(partial.len(), 20);
        let unknown = urls
            .iter()
            .filter(|u| partial.lookup(&marker_id(u)) == Lookup::Unknown)
            .count();
        assert_eq!(unknown, 5);
    }
}
