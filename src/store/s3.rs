//! Amazon S3, or any S3-compatible server, through aws-sdk-s3.
//!
//! Decisions worth knowing:
//! - The SDK's retries are disabled; `retry::with_retry` is the one layer, so
//!   `--attempts` means what it says.
//! - A custom endpoint implies path-style addressing: bucket names as host names
//!   do not resolve on MinIO, s3s or a loopback address.
//! - HEAD answers 403 for a missing key when the caller lacks `s3:ListBucket`
//!   (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html), so a
//!   403 is reported as a permission problem, never as "not there".

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::direct::DirectPut;
use super::error::{kind_of, retry_after_secs};
use super::request::put_headers;
use super::{
    CONNECT_TIMEOUT, ObjectStore, PutOutcome, REQUEST_TIMEOUT, StoreError, StoreErrorKind,
    TAG_METADATA,
};
use crate::options::ObjectOptions;
use crate::retry::RetryPolicy;
use crate::retry::with_retry;
use crate::settings::StoreSettings;
use aws_sdk_s3::types::RequestPayer;

const NO_CREDENTIALS: &str = "no AWS credentials found: set AWS_ACCESS_KEY_ID and \
    AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (with ~/.aws/credentials), or run with an instance or \
    pod role";

/// An S3 bucket with batchimg's retry policy around every call.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    /// What signs the requests, resolved once up front by `check_credentials`.
    credentials: Option<aws_sdk_s3::config::SharedCredentialsProvider>,
    bucket: String,
    url_base: String,
    retry: RetryPolicy,
    /// What the bucket demands of the objects and requests.
    options: ObjectOptions,
    /// The image PUTs' lean path, when the bucket's endpoint is plain SigV4.
    direct: Option<Arc<DirectPut>>,
}

impl S3Store {
    /// Builds a client from the standard AWS configuration chain (environment,
    /// profiles, SSO, instance roles) plus the resolved settings.
    pub async fn connect(settings: &StoreSettings, retry: RetryPolicy) -> S3Store {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .http_client(crate::tls::sdk_http_client())
            .region(Region::new(settings.region.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(REQUEST_TIMEOUT)
                    .build(),
            )
            .load()
            .await;
        // Signed payloads already carry a SHA-256 that S3 verifies, so the
        // SDK's default extra CRC32 (sent as an aws-chunked trailer, which
        // some S3-compatible servers reject) adds work and nothing else.
        let mut config = aws_sdk_s3::config::Builder::from(&base)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint).force_path_style(true);
        }
        // With a web identity token (EKS IRSA, GitHub OIDC), the default chain
        // already assumes AWS_ROLE_ARN; assuming it again would need the role
        // to trust itself.
        let web_identity =
            std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE").is_some_and(|v| !v.is_empty());
        let mut credentials = base.credentials_provider();
        if let Some(arn) = settings.role_arn.as_ref().filter(|_| !web_identity) {
            let provider = AssumeRoleProvider::builder(arn)
                .session_name("batchimg")
                .configure(&base)
                .build()
                .await;
            let provider = aws_sdk_s3::config::SharedCredentialsProvider::new(provider);
            config = config.credentials_provider(provider.clone());
            credentials = Some(provider);
        }
        let direct = match &credentials {
            Some(provider) => DirectPut::connect(settings, &base, provider.clone()).await,
            None => None,
        };
        if direct.is_none() {
            tracing::debug!("image uploads go through the SDK (see store/direct.rs for when)");
        }
        S3Store {
            client: Client::from_conf(config.build()),
            credentials,
            bucket: settings.bucket.clone(),
            url_base: url_base(settings),
            retry,
            options: settings.object.clone(),
            direct: direct.map(Arc::new),
        }
    }

    /// The store `s3://` source rows are read from: the destination's
    /// credentials, with the source endpoint and region where they are set.
    pub async fn connect_source(settings: &StoreSettings, retry: RetryPolicy) -> S3Store {
        S3Store::connect(&source_settings(settings), retry).await
    }

    /// Sends a GET of `key` in any bucket, with the expected owner when the
    /// bucket is the destination (see `owner_of`) and the payer:
    /// the one opener, for source rows, inputs and the store's own reads.
    /// `None` when there is no such key.
    pub async fn open(&self, bucket: &str, key: &str) -> Result<Option<S3Object>, StoreError> {
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner_of(bucket))
            .set_request_payer(self.request_payer());
        match request.send().await {
            Ok(out) => {
                answered("GET");
                Ok(Some(S3Object {
                    length: out.content_length().and_then(|n| u64::try_from(n).ok()),
                    key: key.to_string(),
                    body: out.body,
                }))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => {
                crate::metrics::get().store_request("GET", Some(404));
                Ok(None)
            }
            Err(e) => Err(classify("GET", key, e)),
        }
    }

    /// `--expected-bucket-owner` is about the destination bucket, not about
    /// other buckets (`s3://` inputs, outputs and source rows elsewhere).
    fn owner_of(&self, bucket: &str) -> Option<String> {
        (bucket == self.bucket)
            .then(|| self.options.expected_bucket_owner.clone())
            .flatten()
    }

    fn request_payer(&self) -> Option<RequestPayer> {
        self.options
            .request_payer
            .then_some(RequestPayer::Requester)
    }

    /// One PUT of `body` to `bucket`/`key` through the SDK, with the object
    /// options' headers (`image`: also those that describe an image, and
    /// `tag`), conditional when `if_absent`.
    async fn put_once(
        &self,
        bucket: &str,
        key: &str,
        body: &Bytes,
        content_type: &str,
        image: Option<Option<&str>>,
    ) -> Result<(), StoreError> {
        let tag = image.flatten().map(|t| (TAG_METADATA, t));
        let headers = put_headers(
            &self.options,
            image.is_some(),
            self.owner_of(bucket).as_deref(),
            tag,
        )
        .ok_or_else(|| StoreError::new("PUT", key, StoreErrorKind::Rejected, None))?;
        let mut put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body.clone()));
        if image.is_some() {
            put = put.if_none_match("*");
        }
        put.customize()
            .mutate_request(move |request| {
                for (name, value) in &headers {
                    request.headers_mut().insert(name.clone(), value.clone());
                }
            })
            .send()
            .await
            .map(|_| answered("PUT"))
            .map_err(|e| classify("PUT", key, e))
    }

    /// Resolves the credentials once, before any request, so that none at all,
    /// a profile that does not exist, or a broken credential process is one
    /// clear error instead of a request retried with nothing to sign it.
    pub async fn check_credentials(&self) -> Result<(), String> {
        use aws_sdk_s3::config::ProvideCredentials;
        let Some(provider) = &self.credentials else {
            return Err(NO_CREDENTIALS.into());
        };
        match provider.provide_credentials().await {
            Ok(_) => Ok(()),
            Err(e) => {
                use aws_credential_types::provider::error::CredentialsError;
                Err(match &e {
                    CredentialsError::CredentialsNotLoaded(_) => NO_CREDENTIALS.to_string(),
                    _ => format!(
                        "cannot load the AWS credentials: {}",
                        crate::error::chain(&e)
                    ),
                })
            }
        }
    }

    /// Checks before any work that the bucket exists and these credentials reach it.
    pub async fn check_bucket(&self) -> Result<(), StoreError> {
        let (result, _) = with_retry(&self.retry, "check bucket", || async {
            self.client
                .head_bucket()
                .bucket(&self.bucket)
                .set_expected_bucket_owner(self.options.expected_bucket_owner.clone())
                .send()
                .await
                .map(|_| answered("HEAD bucket"))
                .map_err(|e| classify("HEAD bucket", &self.bucket, e))
        })
        .await;
        result.map_err(|mut e| {
            // HeadBucket has no body, so the 404 arrives without an error code.
            if e.status == Some(404) {
                e.kind = StoreErrorKind::NoSuchBucket;
            }
            e
        })
    }

    /// Reads an object of another bucket (`--input s3://…`).
    pub async fn get_from(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, StoreError> {
        let (result, _) = with_retry(&self.retry, "download", || async {
            match self.open(bucket, key).await? {
                Some(object) => object.collect().await.map(Some),
                None => Ok(None),
            }
        })
        .await;
        result
    }

    /// Every object under `prefix` of another bucket (`--input s3://…/`),
    /// with its size, in key order.
    pub async fn list_from(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (result, _) = with_retry(&self.retry, "LIST", || async {
                self.client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone())
                    .set_expected_bucket_owner(self.owner_of(bucket))
                    .set_request_payer(self.request_payer())
                    .send()
                    .await
                    .inspect(|_| answered("LIST"))
                    .map_err(|e| classify("LIST", prefix, e))
            })
            .await;
            let out = result?;
            all.extend(out.contents().iter().filter_map(|o| {
                let size = o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                Some((o.key()?.to_string(), size))
            }));
            token = out.next_continuation_token().map(String::from);
            if token.is_none() || !out.is_truncated().unwrap_or(false) {
                break;
            }
        }
        all.sort();
        Ok(all)
    }

    /// Streams an object of another bucket into `path`, so a large input
    /// part never sits in memory; false when there is no such object.
    pub async fn download_to(
        &self,
        bucket: &str,
        key: &str,
        path: &std::path::Path,
    ) -> Result<bool, StoreError> {
        let (result, _) = with_retry(&self.retry, "download", || async {
            let Some(mut object) = self.open(bucket, key).await? else {
                return Ok(false);
            };
            let local = |e: std::io::Error| {
                StoreError::new("GET", key, StoreErrorKind::Rejected, Some(Box::new(e)))
            };
            let mut file = tokio::fs::File::create(path).await.map_err(local)?;
            while let Some(chunk) = object.next_chunk().await? {
                tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                    .await
                    .map_err(local)?;
            }
            tokio::io::AsyncWriteExt::flush(&mut file)
                .await
                .map_err(local)?;
            Ok(true)
        })
        .await;
        result
    }

    /// Writes an object of another bucket (`--output s3://…`).
    pub async fn put_to(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StoreError> {
        let (result, _) = with_retry(&self.retry, "upload", || {
            self.put_once(bucket, key, &body, content_type, None)
        })
        .await;
        result
    }
}

impl ObjectStore for S3Store {
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.tag_of(key).await?.is_some())
    }

    async fn tag_of(&self, key: &str) -> Result<Option<Option<String>>, StoreError> {
        let (result, _) = with_retry(&self.retry, "HEAD", || async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .set_expected_bucket_owner(self.options.expected_bucket_owner.clone())
                .set_request_payer(self.request_payer())
                .send()
                .await
            {
                Ok(head) => {
                    answered("HEAD");
                    Ok(Some(
                        head.metadata().and_then(|m| m.get(TAG_METADATA)).cloned(),
                    ))
                }
                Err(SdkError::ServiceError(e))
                    if matches!(e.err(), HeadObjectError::NotFound(_)) =>
                {
                    crate::metrics::get().store_request("HEAD", Some(404));
                    Ok(None)
                }
                Err(e) => Err(classify("HEAD", key, e)),
            }
        })
        .await;
        result
    }

    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        tag: Option<&str>,
    ) -> Result<PutOutcome, StoreError> {
        if let Some(direct) = &self.direct
            && let Some(url) = direct.url_for(key)
        {
            let tag = tag.map(|t| (TAG_METADATA, t));
            let (result, _) = with_retry(&self.retry, "PUT", || {
                direct.put_if_absent(&url, key, body.clone(), content_type, tag)
            })
            .await;
            return result;
        }
        let (result, _) = with_retry(&self.retry, "PUT", || async {
            match self
                .put_once(&self.bucket, key, &body, content_type, Some(tag))
                .await
            {
                Ok(()) => Ok(PutOutcome::Created),
                Err(e) if e.status == Some(412) => Ok(PutOutcome::AlreadyPresent),
                Err(e) => Err(e),
            }
        })
        .await;
        result
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.get_from(&self.bucket, key).await
    }

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError> {
        self.put_to(&self.bucket, key, body, content_type).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max: i32,
    ) -> Result<(Vec<String>, bool), StoreError> {
        let (result, _) = with_retry(&self.retry, "LIST", || async {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .set_expected_bucket_owner(self.options.expected_bucket_owner.clone())
                .set_request_payer(self.request_payer())
                .prefix(prefix)
                .set_start_after(start_after.map(String::from))
                .max_keys(max)
                .send()
                .await
                .inspect(|_| answered("LIST"))
                .map_err(|e| classify("LIST", prefix, e))?;
            let keys = out
                .contents()
                .iter()
                .filter_map(|o| o.key().map(String::from))
                .collect();
            Ok((keys, out.is_truncated().unwrap_or(false)))
        })
        .await;
        result
    }

    fn object_url(&self, key: &str) -> String {
        let encoded: Vec<String> = key
            .split('/')
            .map(|s| {
                url::form_urlencoded::byte_serialize(s.as_bytes())
                    .collect::<String>()
                    .replace('+', "%20")
            })
            .collect();
        format!("{}/{}", self.url_base, encoded.join("/"))
    }
}

/// An object [`S3Store::open`] found: its length if announced, and its body
/// as it arrives. A body that breaks off is a network failure, retried.
pub struct S3Object {
    pub length: Option<u64>,
    key: String,
    body: ByteStream,
}

impl S3Object {
    /// The body's next chunk; `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        self.body
            .try_next()
            .await
            .map_err(|e| broke_off(&self.key, e))
    }

    /// The whole body.
    pub async fn collect(self) -> Result<Bytes, StoreError> {
        let S3Object { key, body, .. } = self;
        match body.collect().await {
            Ok(body) => Ok(body.into_bytes()),
            Err(e) => Err(broke_off(&key, e)),
        }
    }
}

/// A GET of `key` whose body broke off: a network failure, retried.
fn broke_off(key: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::new("GET", key, StoreErrorKind::Network, Some(Box::new(e)))
}

/// The settings `s3://` source rows are read with: the source endpoint and
/// region where they are set, the destination's otherwise. Of the object
/// options only those about requests apply: the payer the sources ask for,
/// and the expected owner, which `owner_of` sends only to the destination
/// bucket, so it is kept only when the sources are read from the
/// destination's endpoint (a bucket of that name elsewhere is another one).
fn source_settings(settings: &StoreSettings) -> StoreSettings {
    let mut source = settings.clone();
    if let Some(e) = &settings.source.endpoint {
        source.endpoint = Some(e.clone());
    }
    if let Some(r) = &settings.source.region {
        source.region = r.clone();
    }
    source.object = ObjectOptions {
        request_payer: settings.source.request_payer,
        expected_bucket_owner: settings
            .object
            .expected_bucket_owner
            .clone()
            .filter(|_| source.endpoint == settings.endpoint),
        ..ObjectOptions::default()
    };
    source
}

/// `https://BUCKET.s3.REGION.amazonaws.com` on AWS, `ENDPOINT/BUCKET` elsewhere.
fn url_base(settings: &StoreSettings) -> String {
    match &settings.endpoint {
        Some(endpoint) => format!("{endpoint}/{}", settings.bucket),
        None => format!(
            "https://{}.s3.{}.amazonaws.com",
            settings.bucket, settings.region
        ),
    }
}

/// Counts a request the store answered with success.
fn answered(kind: &'static str) {
    crate::metrics::get().store_request(kind, Some(200));
}

/// Maps an SDK error onto the few cases the pipeline decides on (and counts
/// the request by its status).
fn classify<E, R>(op: &'static str, key: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static + HasStatus,
{
    let status = err.raw_response().map(|r| r.status_code());
    crate::metrics::get().store_request(op, status);
    let retry_after = err.raw_response().and_then(|r| r.retry_after());
    let code = err.code().map(str::to_owned);
    let kind = match &err {
        SdkError::TimeoutError(_) => StoreErrorKind::Timeout,
        SdkError::DispatchFailure(f) if f.is_timeout() => StoreErrorKind::Timeout,
        SdkError::DispatchFailure(f) if f.is_user() => StoreErrorKind::Rejected,
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => StoreErrorKind::Network,
        SdkError::ConstructionFailure(_) => StoreErrorKind::Rejected,
        _ => kind_of(code.as_deref(), status),
    };
    StoreError {
        op,
        key: key.to_string(),
        kind,
        status,
        retry_after,
        source: Some(Box::new(err)),
    }
}

/// The two things `classify` needs from a raw HTTP response.
trait HasStatus {
    fn status_code(&self) -> u16;
    fn retry_after(&self) -> Option<Duration>;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
    fn retry_after(&self) -> Option<Duration> {
        self.headers().get("retry-after").and_then(retry_after_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: Option<&str>) -> StoreSettings {
        StoreSettings {
            bucket: "photos".into(),
            region: "eu-west-1".into(),
            prefix: String::new(),
            endpoint: endpoint.map(String::from),
            role_arn: None,
            object: Default::default(),
            source: Default::default(),
            sign_payload: Default::default(),
        }
    }

    #[test]
    fn urls_are_virtual_hosted_on_aws_and_path_style_elsewhere() {
        assert_eq!(
            url_base(&settings(None)),
            "https://photos.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            url_base(&settings(Some("http://127.0.0.1:9000"))),
            "http://127.0.0.1:9000/photos"
        );
    }

    /// Records the headers of the request about to be sent, as signed.
    #[derive(Debug, Clone, Default)]
    struct Recorded(std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>);

    impl aws_smithy_runtime_api::client::interceptors::Intercept for Recorded {
        fn name(&self) -> &'static str {
            "Recorded"
        }

        fn read_before_transmit(
            &self,
            ctx: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
            _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
            _: &mut aws_smithy_types::config_bag::ConfigBag,
        ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
            *self.0.lock().unwrap() = ctx
                .request()
                .headers()
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect();
            Ok(())
        }
    }

    /// Nothing listens on port 1: a request fails once recorded.
    const NOWHERE: &str = "http://127.0.0.1:1";

    /// A store of the bucket `photos` with `options`, whose requests go
    /// nowhere once their headers are recorded.
    fn recording(options: &ObjectOptions) -> (S3Store, Recorded) {
        use aws_credential_types::Credentials;
        let recorded = Recorded::default();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(crate::tls::sdk_http_client())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("k", "s", None, None, "test"))
            .endpoint_url(NOWHERE)
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .retry_config(RetryConfig::disabled())
            .interceptor(recorded.clone())
            .build();
        let store = S3Store {
            client: Client::from_conf(config),
            credentials: None,
            bucket: "photos".into(),
            url_base: url_base(&settings(Some(NOWHERE))),
            retry: RetryPolicy {
                attempts: 1,
                ..RetryPolicy::default()
            },
            options: options.clone(),
            direct: None,
        };
        (store, recorded)
    }

    /// Every GET goes through `open`: to the destination bucket it sends the
    /// expected owner (and the payer), to any other bucket only the payer.
    #[tokio::test]
    async fn every_get_of_the_destination_names_its_expected_owner() {
        let options = ObjectOptions {
            expected_bucket_owner: Some("111122223333".into()),
            request_payer: true,
            ..ObjectOptions::default()
        };
        let (store, recorded) = recording(&options);
        // The owner and payer headers of the request `get` sent.
        let sent = |get: Result<(), StoreError>| {
            assert!(get.is_err(), "nothing listens");
            let headers = std::mem::take(&mut *recorded.0.lock().unwrap());
            assert!(!headers.is_empty(), "the request was not recorded");
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            (
                header("x-amz-expected-bucket-owner"),
                header("x-amz-request-payer"),
            )
        };
        let owner = Some("111122223333".to_string());
        let payer = Some("requester".to_string());
        let path = std::env::temp_dir().join("batchimg-s3-test-never-written");

        let get = store.open("photos", "a.jpg").await.map(|_| ());
        assert_eq!(sent(get), (owner.clone(), payer.clone()));
        let get = store.get("index/0").await.map(|_| ());
        assert_eq!(sent(get), (owner.clone(), payer.clone()));
        let get = store
            .download_to("photos", "in.csv", &path)
            .await
            .map(|_| ());
        assert_eq!(sent(get), (owner, payer.clone()));

        let get = store.open("elsewhere", "a.jpg").await.map(|_| ());
        assert_eq!(sent(get), (None, payer.clone()));
        let get = store.get_from("elsewhere", "a.csv").await.map(|_| ());
        assert_eq!(sent(get), (None, payer));
    }

    /// Source rows read from the destination's endpoint may name the
    /// destination bucket, and then carry its expected owner; from another
    /// endpoint, a bucket of the same name is not the destination.
    #[test]
    fn sources_keep_the_expected_owner_only_on_the_destinations_endpoint() {
        let mut s = settings(Some("http://127.0.0.1:9000"));
        s.object = ObjectOptions {
            expected_bucket_owner: Some("111122223333".into()),
            storage_class: Some("STANDARD_IA".into()),
            ..ObjectOptions::default()
        };
        s.source.request_payer = true;
        let same = source_settings(&s);
        assert_eq!(
            same.object.expected_bucket_owner.as_deref(),
            Some("111122223333")
        );
        assert!(same.object.request_payer);
        assert_eq!(same.object.storage_class, None);
        s.source.endpoint = Some("http://127.0.0.1:9100".into());
        let other = source_settings(&s);
        assert_eq!(other.object.expected_bucket_owner, None);
        assert_eq!(other.endpoint.as_deref(), Some("http://127.0.0.1:9100"));
    }

    /// The SDK's `PutObject` and the direct PUT send the object options the
    /// same way: one mapping (`request::put_headers`), checked on the wire
    /// format of both for every option at once.
    #[tokio::test]
    async fn both_put_paths_send_the_same_option_headers() {
        use crate::options::{SignPayload, Sse};
        use aws_credential_types::Credentials;
        let options = ObjectOptions {
            storage_class: Some("STANDARD_IA".into()),
            sse: Some(Sse::Kms),
            sse_kms_key_id: Some("alias/k".into()),
            bucket_key_enabled: true,
            acl: Some("bucket-owner-full-control".into()),
            cache_control: Some("max-age=60".into()),
            content_disposition: Some("inline".into()),
            metadata: vec![("team".into(), "data".into())],
            tagging: Some("project=x&team=data".into()),
            expected_bucket_owner: Some("111122223333".into()),
            request_payer: true,
        };
        let credentials = Credentials::new("k", "s", None, None, "test");
        let (store, recorded) = recording(&options);
        let body = Bytes::from_static(b"123456789");
        let tag = "0123abcd.jpg";
        assert!(
            store
                .put_once("photos", "gray/k.jpg", &body, "image/jpeg", Some(Some(tag)))
                .await
                .is_err()
        );
        let sdk = recorded.0.lock().unwrap().clone();
        assert!(!sdk.is_empty(), "the SDK's request was not recorded");

        let direct = DirectPut::new(
            format!("{NOWHERE}/photos"),
            "us-east-1".into(),
            aws_sdk_s3::config::SharedCredentialsProvider::new(credentials.clone()),
            &options,
            SignPayload::Always,
        )
        .unwrap();
        let identity = credentials.into();
        let url = direct.url_for("gray/k.jpg").unwrap();
        let request = direct
            .request(
                &url,
                body,
                "image/jpeg",
                Some((TAG_METADATA, tag)),
                &identity,
            )
            .unwrap();
        let wanted = put_headers(
            &options,
            true,
            Some("111122223333"),
            Some((TAG_METADATA, tag)),
        )
        .unwrap();
        let names = wanted.iter().map(|(n, _)| n.as_str()).chain([
            "content-type",
            "if-none-match",
            "content-length",
        ]);
        for name in names {
            let from_sdk: Vec<&str> = sdk
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            let from_direct: Vec<&str> = request
                .headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(from_sdk, from_direct, "{name}");
            assert_eq!(from_sdk.len(), 1, "{name}: {sdk:?}");
        }
    }
}
