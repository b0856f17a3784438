//! The image upload without the SDK's per-request machinery: one SigV4-signed
//! `PUT` per object, sent with reqwest.
//!
//! Why it exists: the SDK's `PutObject` costs measurably more CPU per image
//! than this path (docs/performance.md has the figures). The SDK runs its orchestrator for every request (runtime plugins,
//! a dozen interceptors at each of twenty hooks, S3's endpoint rules, auth
//! scheme resolution, type-erased config layers), and none of that changes
//! from one object to the next. What decides correctness still comes from the
//! SDK's own crates: the bucket's endpoint from the SDK's resolver (once per
//! run), the signature from aws-sigv4 (the SDK's signer, with S3's settings),
//! the credentials from the SDK's provider chain (cached here until five
//! minutes before they expire, and used until they do if a refresh fails).
//! Only what this path can send exactly as the SDK would takes it: a plain
//! SigV4 endpoint the SDK would also use (not one from an AWS profile) and a
//! key whose URL path is the key (no `.` or `..` segments, which URL parsing
//! folds away). Everything else, and every other operation, goes through the SDK.
//! Over HTTPS the body is left out of the signature and sent with its CRC32,
//! as the AWS CLI sends uploads (`--sign-payload`); the SDK for Rust would
//! hash every body with SHA-256. The object options' headers come from
//! `request::put_headers`, the mapping the SDK path sends too.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::config::SharedCredentialsProvider;
use aws_sdk_s3::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::Document;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::error::{kind_of, retry_after_secs};
use super::request::put_headers;
use super::{CONNECT_TIMEOUT, PutOutcome, REQUEST_TIMEOUT, StoreError, StoreErrorKind};
use crate::options::{ObjectOptions, SignPayload};
use crate::settings::StoreSettings;

/// Bytes of a key kept as they are in its URL path, as the SDK's greedy
/// label encoding keeps them (RFC 3986 unreserved, and `/`).
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
/// Credentials without an expiry are read again this often, as the SDK does
/// (a credentials file rotated mid-run is picked up).
const REREAD_UNEXPIRING: Duration = Duration::from_secs(15 * 60);
/// Credentials this close to expiry are not used, even when a refresh failed.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// An error body larger than this is not read for its code.
const ERROR_BODY_LIMIT: usize = 64 << 10;

/// Signed PUTs to one bucket.
pub struct DirectPut {
    http: reqwest::Client,
    /// The bucket's URL as the SDK's resolver gives it, without a trailing slash.
    base: String,
    signing_region: String,
    credentials: SharedCredentialsProvider,
    /// The credentials last provided, and when.
    cached: Mutex<Option<(Credentials, Instant)>>,
    /// One refresh at a time; PUTs meanwhile sign with what is cached.
    refreshing: tokio::sync::Mutex<()>,
    /// The object options, as every image PUT carries them.
    options: ObjectOptions,
    /// Send bodies as `UNSIGNED-PAYLOAD` with a CRC32 (HTTPS, `--sign-payload auto`).
    unsigned: bool,
}

/// The value of `x-amz-checksum-crc32` for `body`: its CRC32, big-endian, in base64.
fn crc32_header(body: &[u8]) -> String {
    aws_smithy_types::base64::encode(crc32fast::hash(body).to_be_bytes())
}

/// Where the SDK would send requests for the bucket, when that is a plain
/// SigV4 endpoint signed for S3: its URL and its signing region.
async fn plain_endpoint(
    bucket: &str,
    region: &str,
    custom: Option<&str>,
    use_fips: bool,
    use_dual_stack: bool,
) -> Option<(String, String)> {
    let params = Params::builder()
        .bucket(bucket)
        .region(region)
        .use_fips(use_fips)
        .use_dual_stack(use_dual_stack)
        .set_endpoint(custom.map(String::from))
        // As `S3Store::connect` configures the SDK: path style with a custom endpoint.
        .force_path_style(custom.is_some())
        .accelerate(false)
        .build()
        .ok()?;
    let endpoint = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .ok()?;
    if endpoint.headers().next().is_some() {
        return None;
    }
    // The first scheme is the one the SDK would sign with.
    let scheme = endpoint.auth_schemes().first()?;
    let text = |name: &str| match scheme.get(name) {
        Some(Document::String(s)) => Some(s.as_str()),
        _ => None,
    };
    if scheme.name() != "sigv4" || text("signingName").is_some_and(|n| n != "s3") {
        return None;
    }
    let signing_region = text("signingRegion").unwrap_or(region).to_string();
    Some((
        endpoint.url().trim_end_matches('/').to_string(),
        signing_region,
    ))
}

impl DirectPut {
    /// The signed-PUT path to the destination bucket, or `None` when the SDK
    /// must upload: an endpoint from an AWS profile (`endpoint_url`, also
    /// under `[services]`), which only the SDK knows; an endpoint that is not
    /// plain SigV4; an object option that cannot be a header (the SDK then
    /// reports it as it would).
    pub async fn connect(
        settings: &StoreSettings,
        sdk: &aws_types::SdkConfig,
        credentials: SharedCredentialsProvider,
    ) -> Option<DirectPut> {
        let profile_endpoint = settings.endpoint.is_none()
            && (sdk.endpoint_url().is_some()
                || sdk.service_config().is_some_and(|c| {
                    aws_types::service_config::ServiceConfigKey::builder()
                        .service_id("S3")
                        .env("AWS_ENDPOINT_URL")
                        .profile("endpoint_url")
                        .build()
                        .is_ok_and(|key| c.load_config(key).is_some())
                }));
        if profile_endpoint {
            return None;
        }
        let (base, region) = plain_endpoint(
            &settings.bucket,
            &settings.region,
            settings.endpoint.as_deref(),
            sdk.use_fips().unwrap_or(false),
            sdk.use_dual_stack().unwrap_or(false),
        )
        .await?;
        DirectPut::new(
            base,
            region,
            credentials,
            &settings.object,
            settings.sign_payload,
        )
    }

    /// The signed-PUT path for a bucket at `base`, or `None` when an object
    /// option cannot be a header.
    pub(super) fn new(
        base: String,
        signing_region: String,
        credentials: SharedCredentialsProvider,
        options: &ObjectOptions,
        sign_payload: SignPayload,
    ) -> Option<DirectPut> {
        // An option that cannot be a header is refused when the run starts.
        put_headers(
            options,
            true,
            options.expected_bucket_owner.as_deref(),
            None,
        )?;
        // As botocore decides it: the body's SHA-256 is left out of the
        // signature only where TLS already protects the body in transit and
        // a checksum lets the store verify it. On plain HTTP the signature is
        // the only protection, so it covers the body.
        let unsigned = sign_payload == SignPayload::Auto && base.starts_with("https://");
        crate::tls::install();
        let mut http = reqwest::Client::builder()
            // As the SDK's client: HTTP(S)_PROXY and NO_PROXY from the
            // environment (reqwest's default), and no redirect followed.
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(crate::version::USER_AGENT);
        // A client that never speaks TLS needs no trust roots (loading the
        // system's costs CPU in every process).
        if base.starts_with("http://") {
            http = http.tls_certs_only([]);
        }
        let http = http.build().ok()?;
        Some(DirectPut {
            http,
            base,
            signing_region,
            credentials,
            cached: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            options: options.clone(),
            unsigned,
        })
    }

    /// The URL of `key`, when its path is the key: URL parsing folds `.`
    /// and `..` segments, which would change the key, and an empty key would
    /// name the bucket. `None` sends the PUT through the SDK.
    pub fn url_for(&self, key: &str) -> Option<reqwest::Url> {
        if key.is_empty() {
            return None;
        }
        let encoded = utf8_percent_encode(key, KEY_PATH).to_string();
        let url = reqwest::Url::parse(&format!("{}/{encoded}", self.base)).ok()?;
        let kept = url
            .path()
            .strip_suffix(encoded.as_str())
            .is_some_and(|rest| rest.ends_with('/'));
        kept.then_some(url)
    }

    /// One conditional PUT (`If-None-Match: *`) of an image under `key`,
    /// with `tag` in its metadata. The caller retries.
    pub async fn put_if_absent(
        &self,
        url: &reqwest::Url,
        key: &str,
        body: Bytes,
        content_type: &str,
        tag: Option<(&str, &str)>,
    ) -> Result<PutOutcome, StoreError> {
        let error = |kind, source: Box<dyn std::error::Error + Send + Sync>| {
            StoreError::new("PUT", key, kind, Some(source))
        };
        let identity: Identity = self
            .credentials()
            .await
            .map_err(|e| {
                crate::metrics::get().store_request("PUT", None);
                error(credentials_kind(&e), Box::new(e))
            })?
            .into();
        let request = self
            .request(url, body, content_type, tag, &identity)
            .map_err(|e| error(StoreErrorKind::Rejected, e))?;
        let response = match self.http.execute(request).await {
            Ok(r) => r,
            Err(e) => {
                crate::metrics::get().store_request("PUT", None);
                let kind = if e.is_timeout() {
                    StoreErrorKind::Timeout
                } else if e.is_builder() {
                    StoreErrorKind::Rejected
                } else {
                    StoreErrorKind::Network
                };
                return Err(error(kind, Box::new(e)));
            }
        };
        let status = response.status().as_u16();
        crate::metrics::get().store_request("PUT", Some(status));
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after_secs);
        // The body is read in every case, so the connection can be reused.
        let text = match response.content_length() {
            Some(n) if n as usize > ERROR_BODY_LIMIT => String::new(),
            _ => response.text().await.unwrap_or_default(),
        };
        match status {
            200..=299 => return Ok(PutOutcome::Created),
            412 => return Ok(PutOutcome::AlreadyPresent),
            _ => {}
        }
        let service = ServiceError::parse(status, &text);
        let kind = kind_of(service.code.as_deref(), Some(status));
        Err(StoreError {
            status: Some(status),
            retry_after,
            ..error(kind, Box::new(service))
        })
    }

    /// The conditional PUT of `body` to `url`, with the object options'
    /// headers and `tag` in its metadata, signed.
    pub(super) fn request(
        &self,
        url: &reqwest::Url,
        body: Bytes,
        content_type: &str,
        tag: Option<(&str, &str)>,
        identity: &Identity,
    ) -> Result<reqwest::Request, Box<dyn std::error::Error + Send + Sync>> {
        let length = body.len().to_string();
        // CRC32 (the SDKs' default checksum): 7 to 15 times the speed of SHA-256
        // here, and every S3-compatible store that checks checksums knows it.
        let checksum = self.unsigned.then(|| crc32_header(&body));
        let options = put_headers(
            &self.options,
            true,
            self.options.expected_bucket_owner.as_deref(),
            tag,
        )
        .ok_or("an object option is not a valid header value")?;
        let mut headers: Vec<(&str, &str)> = options
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        headers.extend([
            ("content-type", content_type),
            ("content-length", length.as_str()),
            ("if-none-match", "*"),
        ]);
        if let Some(crc) = &checksum {
            headers.push(("x-amz-checksum-crc32", crc.as_str()));
        }
        self.signed(url, &headers, body, identity)
    }

    /// The request, signed as the SDK signs S3 requests: the payload's
    /// SHA-256 in `x-amz-content-sha256` (or `UNSIGNED-PAYLOAD`, see
    /// `unsigned`), the path encoded once, not normalised.
    fn signed(
        &self,
        url: &reqwest::Url,
        headers: &[(&str, &str)],
        body: Bytes,
        identity: &Identity,
    ) -> Result<reqwest::Request, Box<dyn std::error::Error + Send + Sync>> {
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(identity)
            .region(&self.signing_region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()?
            .into();
        // The URL as reqwest will send it (host lower-cased, IP literals in
        // their canonical form), so the signed Host is the one sent.
        let signable = SignableRequest::new(
            "PUT",
            url.as_str(),
            headers.iter().copied(),
            if self.unsigned {
                SignableBody::UnsignedPayload
            } else {
                SignableBody::Bytes(&body)
            },
        )?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        let mut request = reqwest::Request::new(reqwest::Method::PUT, url.clone());
        let map = request.headers_mut();
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            map.append(
                http::HeaderName::try_from(name)?,
                http::HeaderValue::from_str(value)?,
            );
        }
        *request.body_mut() = Some(reqwest::Body::from(body));
        Ok(request)
    }

    /// The provider's credentials: fetched once, again near their expiry
    /// (or every 15 minutes when they have none), and the cached ones used
    /// until they expire when a refresh fails.
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let now = (SystemTime::now(), Instant::now());
        let usable = |c: &Credentials, margin: Duration| match c.expiry() {
            Some(at) => at.duration_since(now.0).is_ok_and(|left| left > margin),
            None => true,
        };
        let fresh = |(c, at): &(Credentials, Instant)| match c.expiry() {
            Some(_) => usable(c, REFRESH_BEFORE_EXPIRY),
            None => now.1.duration_since(*at) < REREAD_UNEXPIRING,
        };
        let cached = self.cached.lock().expect("credentials lock").clone();
        if let Some(entry) = cached.as_ref().filter(|e| fresh(e)) {
            return Ok(entry.0.clone());
        }
        let still_valid = cached.map(|(c, _)| c).filter(|c| usable(c, EXPIRY_MARGIN));
        // Another PUT is refreshing: sign with the old ones while they last.
        let _refreshing = match self.refreshing.try_lock() {
            Ok(guard) => guard,
            Err(_) => match still_valid {
                Some(c) => return Ok(c),
                None => self.refreshing.lock().await,
            },
        };
        if let Some(entry) = self
            .cached
            .lock()
            .expect("credentials lock")
            .as_ref()
            .filter(|e| fresh(e))
        {
            return Ok(entry.0.clone());
        }
        match self.credentials.provide_credentials().await {
            Ok(c) => {
                *self.cached.lock().expect("credentials lock") = Some((c.clone(), Instant::now()));
                Ok(c)
            }
            Err(e) => match still_valid {
                Some(c) => {
                    tracing::debug!(error = %crate::error::chain(&e), "credentials refresh failed; signing with the cached ones until they expire");
                    Ok(c)
                }
                None => Err(e),
            },
        }
    }
}

/// How a failed credentials lookup counts: a missing or broken
/// configuration stops the run; anything else (a metadata service or STS
/// hiccup) is retried, as the SDK's dispatch failures are.
fn credentials_kind(e: &CredentialsError) -> StoreErrorKind {
    match e {
        CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_) => {
            StoreErrorKind::BadCredentials
        }
        _ => StoreErrorKind::Network,
    }
}

/// An S3 error response: its status, and the code and message of its XML body.
#[derive(Debug)]
pub struct ServiceError {
    pub status: u16,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ServiceError {
    fn parse(status: u16, body: &str) -> ServiceError {
        let element = |name: &str| {
            let open = format!("<{name}>");
            let start = body.find(&open)? + open.len();
            let end = body[start..].find(&format!("</{name}>"))? + start;
            Some(body[start..end].trim().to_string()).filter(|s| !s.is_empty())
        };
        ServiceError {
            status,
            code: element("Code"),
            message: element("Message"),
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServiceError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_as_the_sdk_encodes_them() {
        let encode = |k: &str| utf8_percent_encode(k, KEY_PATH).to_string();
        assert_eq!(encode("gray/ab12.jpg"), "gray/ab12.jpg");
        assert_eq!(encode("a b/ü+x=y&z.jpg"), "a%20b/%C3%BC%2Bx%3Dy%26z.jpg");
        assert_eq!(encode("~user/-_.jpg"), "~user/-_.jpg");
        let direct = DirectPut::new(
            "http://127.0.0.1:9000/photos".into(),
            "us-east-1".into(),
            SharedCredentialsProvider::new(Credentials::new("k", "s", None, None, "test")),
            &ObjectOptions::default(),
            SignPayload::Auto,
        )
        .unwrap();
        let path = |k: &str| direct.url_for(k).map(|u| u.path().to_string());
        assert_eq!(
            path("a/b.c/..d.jpg").as_deref(),
            Some("/photos/a/b.c/..d.jpg")
        );
        assert_eq!(path("a b.jpg").as_deref(), Some("/photos/a%20b.jpg"));
        assert_eq!(path("a/../b.jpg"), None);
        assert_eq!(path("./b.jpg"), None);
        assert_eq!(path(""), None);
        // A literal `%2e` is encoded as `%252e`: a name, not a dot segment.
        assert_eq!(path("%2e/b.jpg").as_deref(), Some("/photos/%252e/b.jpg"));
    }

    #[test]
    fn the_crc32_header_is_the_big_endian_crc_in_base64() {
        // The CRC-32 check value: CRC32("123456789") = 0xCBF43926.
        assert_eq!(crc32_header(b"123456789"), "y/Q5Jg==");
        assert_eq!(crc32_header(b""), "AAAAAA==");
    }

    #[test]
    fn bodies_are_signed_over_http_and_checksummed_over_https() {
        let identity: Identity = Credentials::new("k", "s", None, None, "test").into();
        let body = Bytes::from_static(b"123456789");
        let sha256 = "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225";
        for (base, sign, unsigned) in [
            ("http://127.0.0.1:9000/p", SignPayload::Auto, false),
            ("https://127.0.0.1:9000/p", SignPayload::Auto, true),
            ("https://127.0.0.1:9000/p", SignPayload::Always, false),
        ] {
            let direct = DirectPut::new(
                base.into(),
                "us-east-1".into(),
                SharedCredentialsProvider::new(Credentials::new("k", "s", None, None, "test")),
                &ObjectOptions::default(),
                sign,
            )
            .unwrap();
            let url = direct.url_for("a.jpg").unwrap();
            let req = direct
                .request(&url, body.clone(), "image/jpeg", None, &identity)
                .unwrap();
            let header = |n: &str| {
                req.headers()
                    .get(n)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            let content_sha = header("x-amz-content-sha256").unwrap();
            let signed_headers = header("authorization").unwrap();
            if unsigned {
                assert_eq!(content_sha, "UNSIGNED-PAYLOAD", "{base} {sign:?}");
                assert_eq!(header("x-amz-checksum-crc32").as_deref(), Some("y/Q5Jg=="));
                // The checksum is signed: no one can swap it with the body.
                assert!(
                    signed_headers.contains("x-amz-checksum-crc32"),
                    "{signed_headers}"
                );
            } else {
                assert_eq!(content_sha, sha256, "{base} {sign:?}");
                assert_eq!(header("x-amz-checksum-crc32"), None);
            }
            assert_eq!(
                req.body().and_then(|b| b.as_bytes()),
                Some(&b"123456789"[..])
            );
        }
    }

    #[test]
    fn an_error_body_gives_its_code_and_message() {
        let e = ServiceError::parse(
            403,
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        );
        assert_eq!(e.code.as_deref(), Some("AccessDenied"));
        assert_eq!(e.to_string(), "HTTP 403 AccessDenied: Access Denied");
        let e = ServiceError::parse(502, "<html>bad gateway</html>");
        assert_eq!((e.code, e.message), (None, None));
    }

    /// Credentials expiring in `left`, the first time only; then failures.
    #[derive(Debug)]
    struct Once {
        left: Duration,
        calls: std::sync::atomic::AtomicU32,
    }

    impl ProvideCredentials for Once {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            aws_credential_types::provider::future::ProvideCredentials::ready(if n == 0 {
                Ok(Credentials::new(
                    "k",
                    "s",
                    Some("t".into()),
                    Some(SystemTime::now() + self.left),
                    "test",
                ))
            } else {
                Err(CredentialsError::provider_error("STS is down"))
            })
        }
    }

    #[tokio::test]
    async fn a_failed_refresh_signs_with_the_cached_credentials_until_they_expire() {
        let direct = |left| {
            let provider = Once {
                left,
                calls: Default::default(),
            };
            DirectPut::new(
                "http://127.0.0.1:9000/photos".into(),
                "us-east-1".into(),
                SharedCredentialsProvider::new(provider),
                &ObjectOptions::default(),
                SignPayload::Auto,
            )
            .unwrap()
        };
        // Two minutes left: due for a refresh, which fails; still usable.
        let d = direct(Duration::from_secs(120));
        assert_eq!(d.credentials().await.unwrap().session_token(), Some("t"));
        assert_eq!(d.credentials().await.unwrap().session_token(), Some("t"));
        // Five seconds left: not usable, so the provider's failure shows, as
        // a transient one (a metadata service or STS hiccup is retried).
        let d = direct(Duration::from_secs(5));
        d.credentials().await.unwrap();
        let e = d.credentials().await.unwrap_err();
        assert_eq!(credentials_kind(&e), StoreErrorKind::Network);
    }

    #[tokio::test]
    async fn plain_endpoints_are_found_and_others_left_to_the_sdk() {
        let (url, region) = plain_endpoint("photos", "eu-west-1", None, false, false)
            .await
            .unwrap();
        assert_eq!(url, "https://photos.s3.eu-west-1.amazonaws.com");
        assert_eq!(region, "eu-west-1");
        let (url, _) = plain_endpoint(
            "photos",
            "us-east-1",
            Some("http://127.0.0.1:9000"),
            false,
            false,
        )
        .await
        .unwrap();
        assert_eq!(url, "http://127.0.0.1:9000/photos");
        let (url, _) = plain_endpoint("photos", "us-east-1", None, true, false)
            .await
            .unwrap();
        assert_eq!(url, "https://photos.s3-fips.us-east-1.amazonaws.com");
        // A directory bucket (S3 Express One Zone) signs with its own scheme.
        assert!(
            plain_endpoint("photos--use1-az4--x-s3", "us-east-1", None, false, false)
                .await
                .is_none()
        );
    }
}
