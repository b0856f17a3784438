//! Names derived from content and URLs: object keys and download file names.
//!
//! An object's key is derived with blake3 from the source image's bytes under a
//! versioned context that names the recipe, so the same image always lands on
//! the same key, a HEAD answers "already done" without any database, and a
//! future change of recipe gets new keys instead of colliding with old ones.
//!
//! Which object a URL produced is kept in the bucket's URL index.
//! `--key-template` names objects from the row instead ([`KeyTemplate`]);
//! such an object carries its content key as a tag, so a name that holds
//! other content is told apart from a rerun's.
//!
//! Both names are cross-version contracts: a change to either makes every
//! existing bucket look empty to the next run, so the tests pin known answers.

use crate::format::ImageFormat;
use crate::options::JpegEngine;

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

/// The recipe of an image under a transform (`--resize`, `--format`…): the
/// transform's canonical text goes into the key material, so no two
/// transforms share a key, and neither do they with the grayscale engines.
const TRANSFORM_KEY_CONTEXT: &str =
    "batchimg 2026-12-06 object key: transform v1 (decoded, resampled, encoded)";

/// The key of the image whose bytes hash to `source_hash` under a
/// transform: `transform` is its canonical text, `output` the format it
/// writes (the key's extension), `options` as for [`object_key`].
pub fn transformed_key(
    prefix: &str,
    source_hash: &[u8; 32],
    output: ImageFormat,
    transform: &str,
    options: Option<&str>,
) -> String {
    let mut material = source_hash.to_vec();
    material.extend_from_slice(b"\0transform\0");
    material.extend_from_slice(transform.as_bytes());
    if let Some(options) = options {
        material.extend_from_slice(b"\0object options\0");
        material.extend_from_slice(options.as_bytes());
    }
    let derived = blake3::derive_key(TRANSFORM_KEY_CONTEXT, &material);
    join_key(prefix, &format!("{}.{}", hex(&derived), output.extension()))
}

/// Joins the user's prefix and a name into a key.
pub fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        format!("{prefix}{name}")
    } else {
        format!("{prefix}/{name}")
    }
}

/// Where a row's object goes: its key; for a `--key-template` name, the tag
/// that says what the object holds; and the content key, which names the
/// work file (never a chosen name, which other rows may share).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTarget {
    pub key: String,
    pub tag: Option<String>,
    pub content: String,
}

impl ObjectTarget {
    /// The target of content key `content`, under the row's chosen name if it has one.
    pub fn new(content: String, name: Option<&ObjectName>, output: &Output) -> ObjectTarget {
        match name {
            Some(name) => ObjectTarget {
                key: name.key_for(output),
                tag: Some(content_tag(&content).to_string()),
                content,
            },
            None => ObjectTarget {
                key: content.clone(),
                tag: None,
                content,
            },
        }
    }

    /// The target of a row recorded as processed under `key`, its work file
    /// named `output_name`: for a chosen name, the tag is the content key the
    /// output was made under (not the key of today's engine, should a resume
    /// have changed it).
    pub fn recorded(key: &str, named: bool, output_name: Option<&str>) -> ObjectTarget {
        let tag = output_name.filter(|_| named).map(String::from);
        ObjectTarget {
            key: key.to_string(),
            content: tag.clone().unwrap_or_else(|| key.to_string()),
            tag,
        }
    }

    /// What rows with identical work share: the key, and for a chosen name
    /// its content too (rows naming one object with other bytes are not identical).
    pub fn claim(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}\0{tag}", self.key),
            None => self.key.clone(),
        }
    }
}

/// `--key-template`: object names a user chooses, from the row instead of
/// the content. Parsed once; recorded in the journal as its text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyTemplate {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Prefix,
    Column(String),
    UrlPath,
    UrlHost,
    UrlStem,
    Ext,
    Row,
    /// The output's format and size, known once the image's header is read.
    Format,
    Width,
    Height,
}

/// Where `{format}`, `{width}` and `{height}` stand in a rendered name until
/// the output is known: NUL-delimited, so no value a row gives (control
/// characters are refused in them) can look like one.
const FORMAT_MARK: &str = "\0format\0";
const WIDTH_MARK: &str = "\0width\0";
const HEIGHT_MARK: &str = "\0height\0";

/// The most a key may be, in bytes (S3's limit).
const MAX_KEY_LEN: usize = 1024;

impl KeyTemplate {
    pub fn parse(text: &str) -> Result<KeyTemplate, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(['{', '}']) {
            literal.push_str(&rest[..at]);
            let tail = &rest[at..];
            // `{{` and `}}` are a brace.
            if tail.starts_with("{{") || tail.starts_with("}}") {
                literal.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if tail.starts_with('}') {
                return Err(format!(
                    "{text:?}: a `}}` without its `{{` (write `}}}}` for a brace)"
                ));
            }
            let Some(end) = tail.find('}') else {
                return Err(format!("{text:?}: a `{{` without its `}}`"));
            };
            let name = &tail[1..end];
            let part = match name {
                "prefix" => Part::Prefix,
                "url_path" => Part::UrlPath,
                "url_host" => Part::UrlHost,
                "url_stem" => Part::UrlStem,
                "ext" => Part::Ext,
                "row" => Part::Row,
                "format" => Part::Format,
                "width" => Part::Width,
                "height" => Part::Height,
                _ => match name.strip_prefix("column:") {
                    Some(column) if !column.is_empty() => Part::Column(column.to_string()),
                    _ => {
                        return Err(format!(
                            "{text:?}: unknown placeholder {{{name}}}; known: {{prefix}}, \
                             {{column:NAME}}, {{url_path}}, {{url_host}}, {{url_stem}}, {{ext}}, {{row}}, \
                             {{format}}, {{width}}, {{height}}"
                        ));
                    }
                },
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &tail[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        if parts.iter().filter(|p| **p == Part::Ext).count() > 1 {
            return Err(format!("{text:?}: {{ext}} may appear once"));
        }
        if !parts.iter().any(|p| {
            matches!(
                p,
                Part::Column(_) | Part::UrlPath | Part::UrlStem | Part::Row
            )
        }) {
            return Err(format!(
                "{text:?} gives every row the same name; use {{column:NAME}}, {{url_path}}, \
                 {{url_stem}} or {{row}}"
            ));
        }
        Ok(KeyTemplate {
            text: text.to_string(),
            parts,
        })
    }

    /// The input columns the template reads.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Column(c) => Some(c.as_str()),
            _ => None,
        })
    }

    /// The name of one row, its extension left for when the output's format
    /// is known. `column` gives the row's value of a column the template
    /// reads. An error is the row's: its failure message.
    pub fn render(
        &self,
        prefix: &str,
        row: u64,
        url: &str,
        column: impl Fn(&str) -> Option<String>,
    ) -> Result<ObjectName, String> {
        let parsed = url::Url::parse(url).ok();
        let (mut head, mut tail) = (String::new(), None::<String>);
        for part in &self.parts {
            let value = match part {
                Part::Text(t) => t.clone(),
                // As for content keys: a missing `/` is added after it.
                Part::Prefix if prefix.is_empty() || prefix.ends_with('/') => prefix.to_string(),
                Part::Prefix => format!("{prefix}/"),
                Part::Row => row.to_string(),
                Part::Column(c) => match column(c).map(|v| v.trim().to_string()) {
                    Some(v) if !v.is_empty() => v,
                    _ => return Err(format!("--key-template: column {c:?} is empty on this row")),
                },
                Part::UrlHost => {
                    url_part(url, parsed.as_ref(), |u| u.host_str().map(String::from))?
                }
                Part::UrlPath => url_part(url, parsed.as_ref(), |u| url_path(url, u))?,
                Part::UrlStem => url_part(url, parsed.as_ref(), |u| {
                    let path = url_path(url, u)?;
                    let name = path.rsplit('/').next()?;
                    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
                    (!stem.is_empty()).then(|| stem.to_string())
                })?,
                Part::Ext => {
                    tail = Some(String::new());
                    continue;
                }
                Part::Format => FORMAT_MARK.to_string(),
                Part::Width => WIDTH_MARK.to_string(),
                Part::Height => HEIGHT_MARK.to_string(),
            };
            let from_row = !matches!(
                part,
                Part::Text(_) | Part::Format | Part::Width | Part::Height
            );
            if from_row && value.chars().any(char::is_control) {
                return Err("--key-template gives a name with control characters".into());
            }
            match &mut tail {
                Some(t) => t.push_str(&value),
                None => head.push_str(&value),
            }
        }
        let name = ObjectName { head, tail };
        // The longest the output's parts can make it.
        let key = name.key_for(&Output {
            extension: "jpeg",
            format: "jpeg",
            size: Some((99_999, 99_999)),
        });
        if key.len() > MAX_KEY_LEN {
            return Err(format!(
                "--key-template gives a name of {} bytes, over S3's {MAX_KEY_LEN}",
                key.len()
            ));
        }
        if key.chars().any(char::is_control) {
            return Err("--key-template gives a name with control characters".into());
        }
        if key.starts_with('/') || key.split('/').any(|s| s == "." || s == "..") {
            return Err(format!(
                "--key-template gives {key:?}, which has an empty, `.` or `..` path segment"
            ));
        }
        Ok(name)
    }
}

/// A row's URL part, or the row's error when the URL has none.
fn url_part(
    raw: &str,
    url: Option<&url::Url>,
    part: impl Fn(&url::Url) -> Option<String>,
) -> Result<String, String> {
    url.and_then(part).ok_or_else(|| {
        format!(
            "--key-template: {} has no such part for the name",
            crate::redact::RawUrl(raw)
        )
    })
}

/// A URL's path without the leading slash, percent-decoded (as rclone names
/// a download after its URL), or an `s3://` URL's key as written (as the
/// fetch stage reads it); `None` when empty.
fn url_path(raw: &str, url: &url::Url) -> Option<String> {
    if let Some(rest) = raw.strip_prefix("s3://") {
        let key = rest.split_once('/').map_or("", |(_, key)| key);
        return (!key.is_empty()).then(|| key.to_string());
    }
    let path = url.path().trim_start_matches('/');
    let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    (!path.is_empty()).then(|| path.into_owned())
}

impl TryFrom<String> for KeyTemplate {
    type Error = String;
    fn try_from(text: String) -> Result<KeyTemplate, String> {
        KeyTemplate::parse(&text)
    }
}

impl From<KeyTemplate> for String {
    fn from(t: KeyTemplate) -> String {
        t.text
    }
}

/// A row's object name from `--key-template`: `head`, then, if the template
/// has `{ext}`, the output's extension and `tail`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectName {
    head: String,
    tail: Option<String>,
}

/// What a chosen name takes from the output: `{ext}`, `{format}`, and
/// `{width}` and `{height}` (0 when the size could not be read).
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    pub extension: &'a str,
    pub format: &'a str,
    pub size: Option<(u32, u32)>,
}

impl ObjectName {
    /// The key, for a template without `{format}`, `{width}` or `{height}`.
    pub fn key(&self, extension: &str) -> String {
        self.key_for(&Output {
            extension,
            format: extension,
            size: None,
        })
    }

    /// The key of the name for an output.
    pub fn key_for(&self, out: &Output) -> String {
        let raw = match &self.tail {
            Some(tail) => format!("{}{}{tail}", self.head, out.extension),
            None => self.head.clone(),
        };
        if !raw.contains('\0') {
            return raw;
        }
        let (w, h) = out.size.unwrap_or((0, 0));
        raw.replace(FORMAT_MARK, out.format)
            .replace(WIDTH_MARK, &w.to_string())
            .replace(HEIGHT_MARK, &h.to_string())
    }

    /// Whether the name holds the output's size, which is then read from
    /// the image's header before the key is known.
    pub fn needs_size(&self) -> bool {
        let has = |t: &str| t.contains(WIDTH_MARK) || t.contains(HEIGHT_MARK);
        has(&self.head) || self.tail.as_deref().is_some_and(has)
    }
}

/// The tag stored with an object named by `--key-template`: its content key
/// without prefix, which names the source's bytes and the recipe. An object
/// under the name with another tag (or none) is other content.
pub fn content_tag(content_key: &str) -> &str {
    content_key.rsplit('/').next().unwrap_or(content_key)
}

/// Stable file name for a URL's download in the work directory (no extension).
pub fn download_stem(url: &str) -> String {
    hex(&blake3::hash(url.as_bytes()).as_bytes()[..16])
}

/// Lower-case hex, as keys and file names spell hashes.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IM: JpegEngine = JpegEngine::ImageMagick;

    #[test]
    fn keys_depend_on_content_and_format_only() {
        let a = object_key("p/", &[1; 32], ImageFormat::Jpeg, IM, None);
        // The prefix is only where the object goes: the name is the content's.
        let elsewhere = object_key("q", &[1; 32], ImageFormat::Jpeg, IM, None);
        assert_eq!(a["p/".len()..], elsewhere["q/".len()..]);
        assert_ne!(a, object_key("p/", &[2; 32], ImageFormat::Jpeg, IM, None));
        let png = object_key("p/", &[1; 32], ImageFormat::Png, IM, None);
        assert_eq!(png, a.replace(".jpg", ".png"));
        assert!(a.starts_with("p/") && a.ends_with(".jpg"));
        assert_eq!(a.len(), "p/".len() + 64 + ".jpg".len());
    }

    #[test]
    fn keys_join_with_one_slash() {
        assert_eq!(join_key("", "a.jpg"), "a.jpg");
        assert_eq!(join_key("gray", "a.jpg"), "gray/a.jpg");
        assert_eq!(join_key("gray/", "a.jpg"), "gray/a.jpg");
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
    fn templates_take_the_outputs_format_and_size() {
        let t = KeyTemplate::parse("{prefix}{column:id}-{width}x{height}.{format}/{ext}").unwrap();
        let name = t
            .render("p", 1, "https://h/a.jpg", |_| Some("7".into()))
            .unwrap();
        assert!(name.needs_size());
        let out = Output {
            extension: "webp",
            format: "webp",
            size: Some((512, 384)),
        };
        assert_eq!(name.key_for(&out), "p/7-512x384.webp/webp");
        // A row's value may not smuggle in a placeholder's mark.
        let evil = t.render("p", 1, "https://h/a.jpg", |_| Some("a\0width\0".into()));
        assert!(evil.unwrap_err().contains("control characters"));
        let plain = KeyTemplate::parse("{row}.{ext}").unwrap();
        assert!(
            !plain
                .render("", 1, "https://h/a", |_| None)
                .unwrap()
                .needs_size()
        );
    }

    #[test]
    fn transformed_keys_are_pinned_and_differ_by_transform() {
        use crate::transform::{Size, Transform};
        let hash = *blake3::hash(b"batchimg known-answer image").as_bytes();
        let thumb = Transform {
            resize: Some(Size::parse("512x").unwrap()),
            ..Transform::default()
        };
        let key = |t: &Transform, out, options| {
            transformed_key("t/", &hash, out, &t.canonical(), options)
        };
        assert_eq!(
            key(&thumb, ImageFormat::Jpeg, None),
            "t/92da20cc8034e4fafb00f8d1f6452949288bcc560359beb3c44f7ea192f00ed6.jpg"
        );
        let other = Transform {
            resize: Some(Size::parse("256x").unwrap()),
            ..thumb
        };
        assert_ne!(
            key(&thumb, ImageFormat::Jpeg, None)[..66],
            key(&other, ImageFormat::Jpeg, None)[..66]
        );
        assert_ne!(
            key(&thumb, ImageFormat::Jpeg, None),
            key(&thumb, ImageFormat::Jpeg, Some("acl=private"))
        );
        assert!(key(&thumb, ImageFormat::Webp, None).ends_with(".webp"));
        // Never a grayscale engine's key for the same source.
        assert_ne!(
            key(&thumb, ImageFormat::Jpeg, None)[2..],
            object_key("", &hash, ImageFormat::Jpeg, JpegEngine::Lossless, None)
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

    #[test]
    fn key_templates_render_rows_to_pinned_names() {
        let t = KeyTemplate::parse("{prefix}{column:id}/{url_stem}.{ext}").unwrap();
        let id = |c: &str| (c == "id").then(|| " 42 ".to_string());
        let name = t
            .render(
                "gray/",
                7,
                "https://cdn.example.com/a/b/Photo%20One.JPG?x=1",
                id,
            )
            .unwrap();
        assert_eq!(name.key("jpg"), "gray/42/Photo One.jpg");
        // A prefix without its `/` gets one, as content keys do.
        let bare = t.render("gray", 7, "https://h/x.png", id).unwrap();
        assert_eq!(bare.key("png"), "gray/42/x.png");
        let t = KeyTemplate::parse("m/{url_host}/{url_path}").unwrap();
        let name = t
            .render("", 0, "https://cdn.example.com/a/b.png", |_| None)
            .unwrap();
        assert_eq!(name.key("png"), "m/cdn.example.com/a/b.png");
        // An s3:// key is taken as written, as the fetch stage reads it.
        let name = t
            .render("", 0, "s3://photos/raw/a%41.jpg", |_| None)
            .unwrap();
        assert_eq!(name.key("jpg"), "m/photos/raw/a%41.jpg");
        let t = KeyTemplate::parse("{{{row}}}.{ext}").unwrap();
        assert_eq!(
            t.render("", 3, "http://h/x", |_| None).unwrap().key("gif"),
            "{3}.gif"
        );
        // Recorded as its text, and read back the same.
        let text: String = t.clone().into();
        assert_eq!(KeyTemplate::try_from(text).unwrap(), t);
    }

    #[test]
    fn key_templates_refuse_what_cannot_name_rows_apart() {
        for bad in [
            "all.{ext}",
            "{prefix}{ext}",
            "{column:id}.{ext}.{ext}",
            "{nope}",
            "{column:}",
            "{row",
            "row}",
        ] {
            assert!(KeyTemplate::parse(bad).is_err(), "{bad}");
        }
        let t = KeyTemplate::parse("{column:id}.{ext}").unwrap();
        let empty = t.render("", 0, "http://h/x", |_| Some("  ".into()));
        assert!(empty.unwrap_err().contains("empty"));
        let dots = t.render("", 0, "http://h/x", |_| Some("../etc".into()));
        assert!(dots.is_err());
        let long = t.render("", 0, "http://h/x", |_| Some("x".repeat(1100)));
        assert!(long.unwrap_err().contains("1024"));
    }
}
