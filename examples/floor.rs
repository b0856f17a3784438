//! The floor under batchimg's CPU per image: the least a pipeline built on the
//! same crates can spend, for `make bench`'s A/B mode to measure batchimg against.
//!
//! Why it exists: issue 13's target is batchimg's own CPU at most 1.0 ms per
//! image above the lossless ceiling. This program does only what every image
//! needs and nothing batchimg adds for resumability or operation: a GET with
//! reqwest, blake3 of the body (the content key), the lossless transform on
//! two dedicated threads that keep libjpeg's blocks (batchimg's own
//! `lossless` and `jmem`), and one conditional PUT signed with aws-sigv4 as
//! batchimg signs it. No journal, no work files, no URL index, no metrics, no
//! logging, no retries, no memory budget. What it spends above the lossless
//! ceiling is what the transport stack costs by itself.
//!
//! It accepts the command line the bench gives batchimg (`-qq run --input
//! CSV --output F --state-dir D --summary-json F ...`) and reads the same
//! environment (AWS_ENDPOINT_URL, S3_BUCKET, AWS_ACCESS_KEY_ID,
//! AWS_SECRET_ACCESS_KEY, AWS_REGION), so:
//!
//! ```text
//! cargo build --release --example floor
//! BENCH_AB=target/release/examples/floor BENCH_ROUNDS=16 make bench
//! ```
//!
//! reports, per pair, the floor's CPU per image minus batchimg's (B − A):
//! what batchimg adds to the floor. `docs/performance.md` (tenth sitting) has
//! the figures.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::exit,
    reason = "a program of its own, whose output is its report"
)]

use std::sync::{Arc, Mutex, mpsc};
use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use batchimg::image::{jmem, lossless};
use batchimg::options::Limits;
use futures::StreamExt;

type Reply = tokio::sync::oneshot::Sender<Vec<u8>>;

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// One conversion thread per core, as batchimg's default `--converts`, each
/// keeping libjpeg's blocks between images as batchimg's do: 64 MiB a thread,
/// batchimg's share in the shipped 1 GiB pod, which holds a 12 MP photo's.
fn conversion_threads(threads: usize) -> mpsc::Sender<(bytes::Bytes, Reply)> {
    let (tx, rx) = mpsc::channel::<(bytes::Bytes, Reply)>();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..threads {
        let rx = Arc::clone(&rx);
        std::thread::spawn(move || {
            jmem::keep_blocks(64 << 20);
            let limits = Limits::default();
            while let Ok((body, reply)) = rx.lock().unwrap().recv() {
                let lossless::Plan::Lossless(h) = lossless::plan(&body, &limits).unwrap() else {
                    panic!("not a JPEG the lossless path takes");
                };
                let out = lossless::gray(&body, &h).unwrap().unwrap();
                jmem::settle();
                let _ = reply.send(out);
            }
        });
    }
    tx
}

struct Signer {
    base: String,
    region: String,
    identity: aws_smithy_runtime_api::client::identity::Identity,
}

impl Signer {
    /// A PUT of `body` at `key`, signed as batchimg signs it over plain HTTP:
    /// the body's SHA-256 in the signature, `If-None-Match: *`.
    fn put(&self, http: &reqwest::Client, key: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
        let url = format!("{}/{key}", self.base);
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let headers = [
            ("content-type", "image/jpeg".to_string()),
            ("content-length", body.len().to_string()),
            ("if-none-match", "*".to_string()),
        ];
        let signable = SignableRequest::new(
            "PUT",
            &url,
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(&body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut req = http.put(&url);
        for (k, v) in &headers {
            if *k != "content-length" {
                req = req.header(*k, v);
            }
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        req.body(body)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let input = arg_after(&args, "--input").expect("--input");
    let summary = arg_after(&args, "--summary-json");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let convert = conversion_threads(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .build()
        .unwrap();
    let endpoint = env("AWS_ENDPOINT_URL");
    let credentials = aws_credential_types::Credentials::new(
        env("AWS_ACCESS_KEY_ID"),
        env("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "floor",
    );
    let signer = Arc::new(Signer {
        base: format!("{}/{}", endpoint.trim_end_matches('/'), env("S3_BUCKET")),
        region: env("AWS_REGION"),
        identity: credentials.into(),
    });
    let text = std::fs::read_to_string(&input).unwrap();
    let urls: Vec<String> = text.lines().skip(1).map(String::from).collect();
    runtime.block_on(async {
        futures::stream::iter(urls)
            .map(|url| {
                let (http, signer, convert) = (http.clone(), Arc::clone(&signer), convert.clone());
                async move {
                    let body = http
                        .get(&url)
                        .send()
                        .await
                        .unwrap()
                        .error_for_status()
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap();
                    let key = format!("{}.jpg", blake3::hash(&body).to_hex());
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    convert.send((body, tx)).unwrap();
                    let gray = rx.await.unwrap();
                    let status = signer.put(&http, &key, gray).send().await.unwrap().status();
                    // 412: already there (the bench's rerun).
                    assert!(
                        status.is_success() || status.as_u16() == 412,
                        "PUT: {status}"
                    );
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    });
    if let Some(path) = summary {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        std::fs::write(path, format!("{{\"peak_memory_bytes\": {}}}", kb * 1024)).unwrap();
    }
}
