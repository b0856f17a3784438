//! Where a file lives: a local path, or an object in S3 (`s3://bucket/key`),
//! and the one parser of `s3://` addresses, for files and input rows alike.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A place that does not parse, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// Whether `name` can be a bucket's: 3 to 63 lower-case letters, digits,
/// dots and hyphens, as AWS names buckets (and as they must be to be a host
/// name in a virtual-hosted URL).
pub fn is_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// An object named by `s3://bucket/key`. The key is taken as written, as the
/// AWS CLI takes it: no percent decoding, any character a key may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
}

impl S3Object {
    /// `Ok(None)` when `raw` is not an `s3://` address; an error when it is
    /// one without a valid bucket or with no key.
    pub fn parse(raw: &str) -> Result<Option<S3Object>, Invalid> {
        let Some(rest) = raw.strip_prefix("s3://") else {
            return Ok(None);
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if !is_bucket_name(bucket) {
            return Err(Invalid(format!("{bucket:?} is not a bucket name")));
        }
        if key.is_empty() {
            return Err(Invalid("an s3:// URL needs a key after the bucket".into()));
        }
        Ok(Some(S3Object {
            bucket: bucket.to_string(),
            key: key.to_string(),
        }))
    }
}

/// A CSV file's place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Location {
    /// A file on this machine.
    Local(PathBuf),
    /// An object, read or written whole.
    S3 { bucket: String, key: String },
}

impl Location {
    /// Reads `s3://bucket/key` or a local path.
    pub fn parse(raw: &str) -> Result<Location, Invalid> {
        if raw.trim().is_empty() {
            return Err(Invalid("empty path".into()));
        }
        if let Some(rest) = raw.strip_prefix("s3://") {
            if !rest.contains('/') {
                return Err(Invalid(format!(
                    "{raw:?} has no key: use s3://bucket/path/file.csv"
                )));
            }
            let named = S3Object::parse(raw).map_err(|e| Invalid(format!("{raw:?}: {e}")))?;
            return match named {
                Some(o) if !o.key.ends_with('/') => Ok(Location::S3 {
                    bucket: o.bucket,
                    key: o.key,
                }),
                _ => Err(Invalid(format!(
                    "{raw:?} must name an object: s3://bucket/path/file.csv"
                ))),
            };
        }
        Ok(Location::Local(PathBuf::from(raw)))
    }

    /// Reads an input's place: like [`Location::parse`], and also
    /// `s3://bucket/prefix/` (or `s3://bucket`), the part files under it.
    pub fn parse_input(raw: &str) -> Result<Location, Invalid> {
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if key.is_empty() || key.ends_with('/') {
                if !is_bucket_name(bucket) {
                    return Err(Invalid(format!("{raw:?}: {bucket:?} is not a bucket name")));
                }
                return Ok(Location::S3 {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                });
            }
        }
        Location::parse(raw)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_may_be_a_prefix() {
        assert_eq!(
            Location::parse_input("s3://bkt/exports/run1/").unwrap(),
            Location::S3 {
                bucket: "bkt".into(),
                key: "exports/run1/".into()
            }
        );
        assert_eq!(
            Location::parse_input("s3://bkt").unwrap(),
            Location::S3 {
                bucket: "bkt".into(),
                key: String::new()
            }
        );
        assert!(Location::parse_input("s3://Not_A_Bucket/").is_err());
        assert!(Location::parse("s3://bkt/exports/").is_err());
    }

    #[test]
    fn parses_local_and_s3() {
        assert_eq!(
            Location::parse("out/a.csv").unwrap(),
            Location::Local("out/a.csv".into())
        );
        assert_eq!(
            Location::parse("s3://bkt/dir/a.csv").unwrap(),
            Location::S3 {
                bucket: "bkt".into(),
                key: "dir/a.csv".into()
            }
        );
        for bad in ["", "s3://b", "s3://b/", "s3:///k", "s3://b/dir/"] {
            assert!(Location::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_and_rows_share_one_bucket_rule() {
        for bad in [
            "s3://Not_A_Bucket/x.jpg",
            "s3://ab/x.jpg",
            "s3://a_b_c/x.jpg",
        ] {
            let row = S3Object::parse(bad).unwrap_err().to_string();
            assert!(row.contains("not a bucket name"), "{row}");
            let file = Location::parse(bad).unwrap_err().to_string();
            assert!(file.contains("not a bucket name"), "{file}");
        }
        assert_eq!(S3Object::parse("https://h/x.jpg"), Ok(None));
        let o = S3Object::parse("s3://photos.v2-src/a b%41.jpg")
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.bucket.as_str(), o.key.as_str()),
            ("photos.v2-src", "a b%41.jpg")
        );
        assert!(
            S3Object::parse("s3://photos")
                .unwrap_err()
                .0
                .contains("needs a key")
        );
    }
}
