//! Where a CSV lives: a local path, or an object in S3 (`s3://bucket/key`).

use std::fmt;
use std::path::PathBuf;

use anyhow::bail;
use serde::{Deserialize, Serialize};

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
    pub fn parse(raw: &str) -> anyhow::Result<Location> {
        if raw.trim().is_empty() {
            bail!("empty path");
        }
        if let Some(rest) = raw.strip_prefix("s3://") {
            let Some((bucket, key)) = rest.split_once('/') else {
                bail!("{raw:?} has no key: use s3://bucket/path/file.csv");
            };
            if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                bail!("{raw:?} must name an object: s3://bucket/path/file.csv");
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        Ok(Location::Local(PathBuf::from(raw)))
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
    fn parses_local_and_s3() {
        assert_eq!(
            Location::parse("out/a.csv").unwrap(),
            Location::Local("out/a.csv".into())
        );
        assert_eq!(
            Location::parse("s3://b/dir/a.csv").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                key: "dir/a.csv".into()
            }
        );
        for bad in ["", "s3://b", "s3://b/", "s3:///k", "s3://b/dir/"] {
            assert!(Location::parse(bad).is_err(), "{bad:?}");
        }
    }
}
