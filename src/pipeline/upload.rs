//! Content-addressed uploads: how object keys and download names are derived.
//!
//! An object's key is derived with blake3 from the source image's bytes under a
//! versioned context that names the recipe, so the same image always lands on
//! the same key, a HEAD answers "already done" without any database, and a
//! future change of recipe gets new keys instead of colliding with old ones.
//!
//! Which object a URL produced is kept in the bucket's URL index (`markers`).

use crate::format::ImageFormat;
use crate::store::join_key;

/// Names the processing recipe. Change it whenever the output for a given
/// input could change, and every key changes with it.
const KEY_CONTEXT: &str = "batchimg 2026-11-28 object key: grayscale v1 (ImageMagick GRAY, same format, auto-orient, strip)";

/// The key of the grayscale version of an image whose bytes hash to `source_hash`.
pub fn object_key(prefix: &str, source_hash: &[u8; 32], format: ImageFormat) -> String {
    let derived = blake3::derive_key(KEY_CONTEXT, source_hash);
    join_key(prefix, &format!("{}.{}", hex(&derived), format.extension()))
}

/// Stable file name for a URL's download in the work directory (no extension).
pub fn download_stem(url: &str) -> String {
    hex(&blake3::hash(url.as_bytes()).as_bytes()[..16])
}

/// Lower-case hex, as keys and file names spell hashes.
pub(crate) fn hex(bytes: &[u8]) -> String {
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
}
