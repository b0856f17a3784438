//! The fetch stage's errors, what class of failure each one is, and which
//! are worth another attempt.

use std::path::PathBuf;
use std::time::Duration;

use crate::job::{Classify, FailureClass, Systemic};
use crate::retry::Transient;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("blocked: {0}")]
    Blocked(String),
    #[error("server answered HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("body is larger than the download limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("not an image: the body starts with {head} (Content-Type {content_type})")]
    NotAnImage { content_type: String, head: String },
    #[error("more than {0} redirects")]
    Redirects(usize),
    #[error("request timed out")]
    Timeout(#[source] reqwest::Error),
    #[error("connection failed")]
    Connect(#[source] reqwest::Error),
    #[error("body ended early or broke off")]
    Body(#[source] reqwest::Error),
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    /// An `s3://` read failed without an HTTP status (connection, timeout).
    #[error("{0}")]
    Store(String, Option<u16>),
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for FetchError {
    fn class(&self) -> FailureClass {
        match self {
            FetchError::InvalidUrl(_) => FailureClass::InvalidUrl,
            FetchError::Blocked(_) => FailureClass::Blocked,
            FetchError::Status { .. } => FailureClass::HttpStatus,
            FetchError::TooLarge { .. } => FailureClass::TooLarge,
            FetchError::NotAnImage { .. } => FailureClass::NotAnImage,
            FetchError::Io { .. } => FailureClass::LocalIo,
            FetchError::Redirects(_)
            | FetchError::Timeout(_)
            | FetchError::Connect(_)
            | FetchError::Body(_)
            | FetchError::Request(_)
            | FetchError::Store(..) => FailureClass::Network,
        }
    }
}

/// An S3 read's error: a status is a status, as for HTTP (404 for a
/// missing key, 403 for a bucket the credentials cannot read, 503 to retry).
impl From<StoreError> for FetchError {
    fn from(e: StoreError) -> FetchError {
        match e.status {
            Some(status) => FetchError::Status {
                status,
                retry_after: e.retry_after,
            },
            None => FetchError::Store(crate::error::chain(&e), None),
        }
    }
}

/// A fetch error and how many requests were made before it.
#[derive(Debug, thiserror::Error)]
#[error("{error}{}", if *.attempts > 1 { format!(" (after {} attempts)", .attempts) } else { String::new() })]
pub struct FetchFailure {
    #[source]
    pub error: FetchError,
    pub attempts: u32,
}

impl Classify for FetchFailure {
    fn class(&self) -> FailureClass {
        self.error.class()
    }

    fn systemic(&self) -> Option<Systemic> {
        match &self.error {
            FetchError::Io { path, source } => Systemic::disk_full(path, source),
            _ => None,
        }
    }
}

impl Transient for FetchError {
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => {
                matches!(*status, 408 | 425 | 429) || (500..600).contains(status)
            }
            FetchError::Timeout(_) | FetchError::Connect(_) | FetchError::Body(_) => true,
            FetchError::Request(_) | FetchError::Store(..) => true,
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_split_into_transient_and_permanent() {
        let s = |status| FetchError::Status {
            status,
            retry_after: None,
        };
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(s(code).is_transient(), "{code}");
        }
        for code in [400, 401, 403, 404, 410] {
            assert!(!s(code).is_transient(), "{code}");
        }
    }
}
