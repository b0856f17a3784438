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
use crate::settings::JpegEngine;
use crate::store::join_key;

/// Names the processing recipe. Change it whenever the output for a given
/// input could change, and every key changes with it.
const KEY_CONTEXT: &str = "batchimg 2026-11-28 object key: grayscale v1 (ImageMagick GRAY, same format, auto-orient, strip)";

/// The recipe of a JPEG under the lossless engine: its own luma, losslessly.
/// Another context, so the two engines never share a key.
const LOSSLESS_KEY_CONTEXT: &str = "batchimg 2026-12-01 object key: grayscale v1 (JPEG luma, lossless transform, orientation applied, no metadata)";

/// The key of the grayscale version of an image whose bytes hash to
/// `source_hash`. The JPEG engine counts for JPEGs only: no other format's
/// output depends on it. `options` is the fingerprint of the object options
/// that describe the object (`ObjectOptions::fingerprint`): objects stored
/// with another storage class, encryption or metadata are other objects, so
/// a run with other options uploads its own instead of silently keeping the
/// old ones. Without options the key is what it always was.
pub fn object_key(
    prefix: &str,
    source_hash: &[u8; 32],
    format: ImageFormat,
    engine: JpegEngine,
    options: Option<&str>,
) -> String {
    let context = match (format, engine) {
        (ImageFormat::Jpeg, JpegEngine::Lossless) => LOSSLESS_KEY_CONTEXT,
        _ => KEY_CONTEXT,
    };
    let derived = match options {
        None => blake3::derive_key(context, source_hash),
        Some(options) => {
            let mut material = source_hash.to_vec();
            material.extend_from_slice(b"\0object options\0");
            material.extend_from_slice(options.as_bytes());
            blake3::derive_key(context, &material)
        }
    };
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

    const IM: JpegEngine = JpegEngine::ImageMagick;

    #[test]
    fn keys_depend_on_content_and_format_only() {
        let a = object_key("p/", &[1; 32], ImageFormat::Jpeg, IM, None);
        assert_eq!(a, object_key("p/", &[1; 32], ImageFormat::Jpeg, IM, None));
        assert_ne!(a, object_key("p/", &[2; 32], ImageFormat::Jpeg, IM, None));
        assert!(a.starts_with("p/") && a.ends_with(".jpg"));
        assert_eq!(a.len(), "p/".len() + 64 + ".jpg".len());
    }

    #[test]
    fn keys_are_pinned_to_known_answers() {
        // The source hash of fixed bytes, as the fetch stage computes it.
        let hash = *blake3::hash(b"batchimg known-answer image").as_bytes();
        assert_eq!(
            object_key("gray/", &hash, ImageFormat::Jpeg, IM, None),
            "gray/15c7b848aa540b314092e6abfb8c406be92abd873b03e4df300e13fddeab27db.jpg"
        );
        assert_eq!(
            object_key("", &hash, ImageFormat::Png, IM, None),
            "15c7b848aa540b314092e6abfb8c406be92abd873b03e4df300e13fddeab27db.png"
        );
        // Not the plain source hash: the recipe's context is part of the key.
        assert_ne!(
            &object_key("", &hash, ImageFormat::Png, IM, None)[..64],
            hex(&hash)
        );
    }

    #[test]
    fn the_lossless_engine_has_keys_of_its_own_for_jpegs_only() {
        let hash = *blake3::hash(b"batchimg known-answer image").as_bytes();
        let lossless = object_key(
            "gray/",
            &hash,
            ImageFormat::Jpeg,
            JpegEngine::Lossless,
            None,
        );
        assert_eq!(
            lossless,
            "gray/da0214f13c5e9138a458e12f8301a3619f3437d36773628ab64ecf7d6fa05fcc.jpg"
        );
        assert_ne!(
            lossless,
            object_key("gray/", &hash, ImageFormat::Jpeg, IM, None)
        );
        // A PNG's output does not depend on the JPEG engine, nor its key.
        assert_eq!(
            object_key("", &hash, ImageFormat::Png, JpegEngine::Lossless, None),
            object_key("", &hash, ImageFormat::Png, IM, None)
        );
    }

    #[test]
    fn object_options_give_keys_of_their_own() {
        let hash = *blake3::hash(b"batchimg known-answer image").as_bytes();
        let plain = object_key("", &hash, ImageFormat::Jpeg, IM, None);
        let ia = object_key(
            "",
            &hash,
            ImageFormat::Jpeg,
            IM,
            Some("storage-class=STANDARD_IA"),
        );
        assert_eq!(
            ia,
            "d527fc8a34b36dab61fac9694a75c0a58ce4e5cf46d9db14e564bbfbfa8496ca.jpg"
        );
        assert_ne!(ia, plain);
        assert_ne!(
            ia,
            object_key(
                "",
                &hash,
                ImageFormat::Jpeg,
                IM,
                Some("storage-class=GLACIER_IR")
            )
        );
    }

    #[test]
    fn download_names_are_pinned_to_known_answers() {
        assert_eq!(
            download_stem("https://example.com/a.jpg"),
            "17207da83b7770fce81106ab583c940f"
        );
    }
}
