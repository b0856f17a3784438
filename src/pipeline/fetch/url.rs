//! A row's URL: what it names (a web server's file or an S3 object), which
//! host it counts against, and whether the network policy lets it be fetched.

use url::Url;

use super::error::FetchError;
use crate::location::S3Object;
use crate::netguard::NetPolicy;

/// Longest URL accepted, in bytes; longer rows fail with a clear reason.
pub const MAX_URL_LEN: usize = 8192;

/// What counts as one host for the per-host limits: name and port.
pub fn host_key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// The host of a row: a web server, or a bucket for `s3://` rows.
pub fn origin_key(origin: &Origin) -> String {
    match origin {
        Origin::Http(url) => host_key(url),
        Origin::S3 { bucket, .. } => format!("s3://{bucket}"),
    }
}

/// Where a row's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Http(Url),
    /// An object read through the SDK, from the configured source endpoint
    /// only: nothing in the row names an address to connect to.
    S3 {
        bucket: String,
        key: String,
    },
}

/// Checks a row's URL before anything is fetched: http(s), or `s3://bucket/key`.
pub fn parse_url(raw: &str) -> Result<Origin, FetchError> {
    let invalid = |why: String| FetchError::InvalidUrl(why);
    if raw.is_empty() {
        return Err(invalid(
            "no URL: the value is null, missing or empty".into(),
        ));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(invalid(format!(
            "URL is {} bytes long, over the {MAX_URL_LEN}-byte limit",
            raw.len()
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(invalid("URL contains control characters".into()));
    }
    if let Some(o) = S3Object::parse(raw).map_err(|e| invalid(e.0))? {
        return Ok(Origin::S3 {
            bucket: o.bucket,
            key: o.key,
        });
    }
    let url = Url::parse(raw).map_err(|e| invalid(format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not allowed (only http, https and s3)",
            url.scheme()
        )));
    }
    Ok(Origin::Http(url))
}

/// The bucket and key of an AWS S3 object URL, virtual-hosted
/// (`https://BUCKET.s3.REGION.amazonaws.com/KEY`) or path-style
/// (`https://s3.REGION.amazonaws.com/BUCKET/KEY`). A URL with a query (a
/// presigned URL, a version) is left to HTTP, which it is made for.
pub fn s3_object_of(url: &Url) -> Option<(String, String)> {
    if url.query().is_some() || url.scheme() != "https" && url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let labels: Vec<&str> = host.strip_suffix(".amazonaws.com")?.split('.').collect();
    let is_s3 = |l: &str| l == "s3" || l.starts_with("s3-");
    let path = percent_encoding::percent_decode_str(url.path().trim_start_matches('/'))
        .decode_utf8()
        .ok()?
        .into_owned();
    let (bucket, key) = if is_s3(labels[0]) {
        let (bucket, key) = path.split_once('/')?;
        (bucket.to_string(), key.to_string())
    } else {
        let at = labels.iter().position(|l| is_s3(l))?;
        (labels[..at].join("."), path)
    };
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// Refuses schemes other than http(s) and IP literals the policy forbids.
/// Names are checked later, after resolution, by [`crate::netguard::GuardedResolver`].
pub fn check_target(url: &Url, policy: NetPolicy) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {:?} is not allowed (only http and https)",
            url.scheme()
        ));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => std::net::IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => std::net::IpAddr::V6(v6),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err("URL has no host".into()),
    };
    match policy.refusal(ip) {
        None => Ok(()),
        Some(why) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_are_fetched() {
        let open = NetPolicy {
            allow_private: true,
        };
        for bad in [
            "file:///etc/passwd",
            "ftp://example.com/a.jpg",
            "gopher://x/",
        ] {
            assert!(
                check_target(&Url::parse(bad).unwrap(), open).is_err(),
                "{bad}"
            );
        }
        assert!(check_target(&Url::parse("https://example.com/a.jpg").unwrap(), open).is_ok());
    }

    #[test]
    fn ip_literals_are_checked_before_any_request() {
        let closed = NetPolicy {
            allow_private: false,
        };
        let open = NetPolicy {
            allow_private: true,
        };
        let metadata = Url::parse("http://169.254.169.254/latest/meta-data/").unwrap();
        assert!(check_target(&metadata, open).is_err());
        let v6 = Url::parse("http://[fd00:ec2::254]/").unwrap();
        assert!(check_target(&v6, open).is_err());
        let local = Url::parse("http://127.0.0.1:8080/a.jpg").unwrap();
        assert!(check_target(&local, closed).is_err());
        assert!(check_target(&local, open).is_ok());
    }

    #[test]
    fn aws_object_urls_are_recognised_in_both_styles() {
        let of = |u: &str| s3_object_of(&Url::parse(u).unwrap());
        let pair = |b: &str, k: &str| Some((b.to_string(), k.to_string()));
        assert_eq!(
            of("https://photos.s3.eu-west-1.amazonaws.com/2026/a%20b.jpg"),
            pair("photos", "2026/a b.jpg")
        );
        assert_eq!(
            of("https://my.dotted.bucket.s3.amazonaws.com/x.png"),
            pair("my.dotted.bucket", "x.png")
        );
        assert_eq!(
            of("https://s3.us-east-2.amazonaws.com/photos/raw/x.jpg"),
            pair("photos", "raw/x.jpg")
        );
        assert_eq!(of("https://s3-us-west-2.amazonaws.com/b/k"), pair("b", "k"));
        for other in [
            "https://photos.s3.amazonaws.com/x.jpg?X-Amz-Signature=abc",
            "https://example.com/photos/x.jpg",
            "https://ec2.amazonaws.com/x",
            "https://photos.s3.amazonaws.com/",
            "https://s3.amazonaws.com/photos",
        ] {
            assert_eq!(of(other), None, "{other}");
        }
    }
}
