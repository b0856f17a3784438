//! Names derived from content and URLs: object keys and download file names.
//!
//! An object's key is derived with blake3 from the source image's bytes under a
//! versioned context that names the recipe, so the same image always lands on
//! the same key, a HEAD answers "already done" without any database, and a
//! future change of recipe gets new keys instead of colliding with old ones.
//!
//! Which object a URL produced is kept in the bucket's URL index (`url_index`).
//!
//! Both names are cross-version contracts: a change to either makes every
//! existing bucket look empty to the next run, so the tests pin known answers.

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
    hex::encode(bytes)
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
    fn keys_are_pinned_to_known_answers() {
        // The source hash of fixed bytes, as the fetch stage computes it.
        let hash = *blake3::hash(b"batchimg known-answer image").as_bytes();
        assert_eq!(
            object_key("gray/", &hash, ImageFormat::Jpeg),
            "gray/15c7b848aa540b314092e6abfb8c406be92abd873b03e4df300e13fddeab27db.jpg"
        );
        assert_eq!(
            object_key("", &hash, ImageFormat::Png),
            "15c7b848aa540b314092e6abfb8c406be92abd873b03e4df300e13fddeab27db.png"
        );
        // Not the plain source hash: the recipe's context is part of the key.
        assert_ne!(&object_key("", &hash, ImageFormat::Png)[..64], hex(&hash));
    }

    #[test]
    fn download_names_are_pinned_to_known_answers() {
        assert_eq!(
            download_stem("https://example.com/a.jpg"),
            "17207da83b7770fce81106ab583c940f"
        );
    }
}
