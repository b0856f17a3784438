//! The fetch stage's errors, what class of failure each one is, and which
//! are worth another attempt.

use std::path::PathBuf;
use std::time::Duration;

use super::hosts::Outcome;
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
    /// The host's name does not resolve: it has no address (final), or
    /// the resolver did not answer (`unanswered`).
    #[error("DNS: {message}")]
    Dns { message: String, unanswered: bool },
    /// The host was down longer than the outage wait.
    #[error("{} did not answer for {}", .0.host, humantime::format_duration(std::time::Duration::from_secs(.0.down_for.as_secs())))]
    HostGone(super::hosts::HostGone),
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
            FetchError::Dns { .. } => FailureClass::Dns,
            FetchError::Redirects(_)
            | FetchError::Timeout(_)
            | FetchError::Connect(_)
            | FetchError::Body(_)
            | FetchError::Request(_)
            | FetchError::Store(..)
            | FetchError::HostGone(_) => FailureClass::Network,
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
            FetchError::HostGone(gone) => Some(Systemic::HostDown {
                host: gone.host.clone(),
                reason: self.error.to_string(),
            }),
            _ => None,
        }
    }
}

impl FetchError {
    /// Whether the error says the host failed (refused, reset, timed out,
    /// 5xx), not the row: what the host's breaker counts.
    pub fn is_outage(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => (500..600).contains(status) && *status != 501,
            FetchError::Timeout(_)
            | FetchError::Connect(_)
            | FetchError::Body(_)
            | FetchError::Request(_) => true,
            FetchError::Store(_, status) => status.is_none_or(|s| s >= 500),
            _ => false,
        }
    }

    /// Whether the error would go away with the network: an outage, or a
    /// resolver that did not answer.
    pub fn is_network(&self) -> bool {
        self.is_outage()
            || matches!(
                self,
                FetchError::Dns {
                    unanswered: true,
                    ..
                }
            )
    }

    /// What the request tells the host's limit and breaker.
    pub fn outcome(&self) -> Outcome {
        match self {
            FetchError::Status {
                status: 429,
                retry_after,
            } => Outcome::Pushback(*retry_after),
            FetchError::Status {
                status: 503,
                retry_after,
            } => Outcome::Overloaded(*retry_after),
            e if e.is_outage() => Outcome::Failed,
            FetchError::Dns {
                unanswered: true, ..
            } => Outcome::Unresolved,
            _ => Outcome::RowFault,
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
            // Not DNS either: the resolver retries a failing server itself,
            // and remembers the failure for a few seconds (`netguard::Dns`).
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
