//! What went wrong talking to the store, kept coarse enough to decide on:
//! retry it, stop the run, or fail the row.

use std::fmt;
use std::time::Duration;

use crate::retry::Transient;

/// What went wrong talking to the store, kept coarse enough to decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Slow down / 429 / 503: retried.
    Throttled,
    /// Other 5xx and 409 conflicts: retried.
    Unavailable,
    /// The request or a connection timed out: retried.
    Timeout,
    /// Connection refused, reset or a broken response: retried.
    Network,
    /// 403: the credentials may not do this. Never read as "missing".
    PermissionDenied,
    /// The bucket does not exist.
    NoSuchBucket,
    /// Bad credentials or a signature the server rejects.
    BadCredentials,
    /// Anything else the server refused.
    Rejected,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreErrorKind::Throttled => "throttled",
            StoreErrorKind::Unavailable => "service unavailable",
            StoreErrorKind::Timeout => "timed out",
            StoreErrorKind::Network => "network error",
            StoreErrorKind::PermissionDenied => "permission denied",
            StoreErrorKind::NoSuchBucket => "no such bucket",
            StoreErrorKind::BadCredentials => "invalid credentials",
            StoreErrorKind::Rejected => "request rejected",
        })
    }
}

/// A failed store operation: what was tried, on what, and why.
#[derive(Debug, thiserror::Error)]
#[error("{op} {key}: {kind}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
pub struct StoreError {
    pub op: &'static str,
    pub key: String,
    pub kind: StoreErrorKind,
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A failure of `op` on `key` that no HTTP answer came with (a request
    /// that could not be built, a body that broke off, a local write): no
    /// status, no `Retry-After`.
    pub fn new(
        op: &'static str,
        key: &str,
        kind: StoreErrorKind,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError {
            op,
            key: key.to_string(),
            kind,
            status: None,
            retry_after: None,
            source,
        }
    }
}

impl Transient for StoreError {
    fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Throttled
                | StoreErrorKind::Unavailable
                | StoreErrorKind::Timeout
                | StoreErrorKind::Network
        )
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// What a service error means for the pipeline, by its code and status.
pub fn kind_of(code: Option<&str>, status: Option<u16>) -> StoreErrorKind {
    match (code, status) {
        (Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded"), _)
        | (_, Some(429 | 503)) => StoreErrorKind::Throttled,
        (Some("RequestTimeout"), _) | (_, Some(408)) => StoreErrorKind::Timeout,
        (Some("NoSuchBucket"), _) => StoreErrorKind::NoSuchBucket,
        (
            Some(
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken"
                | "TokenRefreshRequired",
            ),
            _,
        ) => StoreErrorKind::BadCredentials,
        (_, Some(403)) => StoreErrorKind::PermissionDenied,
        (_, Some(409)) => StoreErrorKind::Unavailable,
        (_, Some(s)) if s >= 500 => StoreErrorKind::Unavailable,
        _ => StoreErrorKind::Rejected,
    }
}

/// A `Retry-After` header in seconds (S3 sends no dates there).
pub fn retry_after_secs(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}
