//! Real servers on loopback for the integration tests, and a way to run the
//! built binary against them.
//!
//! - [`ImageServer`]: an HTTP server whose routes can fail, truncate, redirect
//!   or stall on demand, and that counts every request per path.
//! - [`S3Server`]: the real s3s-fs binary (installed by `scripts/setup-s3s.sh`)
//!   behind a small recording proxy, so tests can count PUTs at the server and
//!   simulate an outage. The proxy forwards requests byte for byte, Host header
//!   included, so SigV4 signatures still verify.
//!   [`S3Server::start_tls`] puts the proxy behind TLS, with a certificate
//!   made for the test that the binary trusts through `SSL_CERT_FILE`.
//! - [`Env`]: one of each plus a temporary directory and the command line.

pub mod cgroup;
pub mod dns;
pub mod images;
pub mod moto;
pub mod proxy;
pub mod tls;
pub mod warehouse;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

/// What a route answers.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this body and Content-Type.
    Ok {
        content_type: &'static str,
        body: Bytes,
    },
    /// An empty response with this status.
    Status(u16),
    /// `status` for the first `times` requests (with an optional Retry-After), then `then`.
    FailFirst {
        times: u32,
        status: u16,
        retry_after: Option<u32>,
        then: Box<Reply>,
    },
    /// Announces the full length, sends `sent` bytes, then breaks the connection.
    BreakOff { body: Bytes, sent: usize },
    /// 302 to another URL.
    Redirect(String),
    /// Waits, then answers.
    Delay(Duration, Box<Reply>),
    /// 429 with `Retry-After: 1` when more than `room` requests are in
    /// flight at once (this one included), else `then`.
    Room { room: u32, then: Box<Reply> },
    /// 401 unless the request has this header with this value, else `then`.
    RequireHeader {
        name: &'static str,
        value: String,
        then: Box<Reply>,
    },
}

impl Reply {
    pub fn jpeg(body: impl Into<Bytes>) -> Reply {
        Reply::Ok {
            content_type: "image/jpeg",
            body: body.into(),
        }
    }
    pub fn png(body: impl Into<Bytes>) -> Reply {
        Reply::Ok {
            content_type: "image/png",
            body: body.into(),
        }
    }
}

#[derive(Default)]
struct Routes {
    replies: HashMap<String, Reply>,
    hits: HashMap<String, u32>,
    seen: Vec<Seen>,
    /// Requests being answered now, the most ever, and the 429s of `Room`.
    in_flight: u32,
    max_in_flight: u32,
    turned_away: u32,
    /// Stopped: requests on connections still open get a 503.
    down: bool,
}

/// One request the image server received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: axum::http::HeaderMap,
    pub at: std::time::Instant,
}

/// A loopback HTTP server with scripted routes.
pub struct ImageServer {
    addr: SocketAddr,
    routes: Arc<Mutex<Routes>>,
    serving: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl ImageServer {
    pub async fn start() -> ImageServer {
        let routes = Arc::new(Mutex::new(Routes::default()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ImageServer {
            addr,
            routes,
            serving: Mutex::new(None),
        };
        server.serve(listener);
        server
    }

    fn serve(&self, listener: TcpListener) {
        let app = axum::Router::new()
            .fallback(serve_route)
            .with_state(Arc::clone(&self.routes));
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        *self.serving.lock().unwrap() = Some(task);
    }

    /// Goes away: new connections are refused, and requests on the
    /// connections still open are answered 503, as by a load balancer
    /// whose origin is gone.
    pub fn stop(&self) {
        self.routes.lock().unwrap().down = true;
        if let Some(task) = self.serving.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Comes back on the same port.
    pub async fn restart(&self) {
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.routes.lock().unwrap().down = false;
        self.serve(listener);
    }

    /// The most requests it was answering at once.
    pub fn max_in_flight(&self) -> u32 {
        self.routes.lock().unwrap().max_in_flight
    }

    /// Requests a `Room` route turned away with 429.
    pub fn turned_away(&self) -> u32 {
        self.routes.lock().unwrap().turned_away
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves `reply` at `path` and returns its full URL.
    pub fn route(&self, path: &str, reply: Reply) -> String {
        self.routes
            .lock()
            .unwrap()
            .replies
            .insert(path.to_string(), reply);
        self.url(path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests received for `path`.
    pub fn hits(&self, path: &str) -> u32 {
        *self.routes.lock().unwrap().hits.get(path).unwrap_or(&0)
    }

    /// Requests received in all.
    pub fn total_hits(&self) -> u32 {
        self.routes.lock().unwrap().hits.values().sum()
    }

    /// Every request received, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        self.routes.lock().unwrap().seen.clone()
    }
}

/// Counts a request in flight for as long as it is being answered.
struct Answering(Arc<Mutex<Routes>>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.lock().unwrap().in_flight -= 1;
    }
}

async fn serve_route(State(routes): State<Arc<Mutex<Routes>>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let _answering = {
        let mut r = routes.lock().unwrap();
        r.in_flight += 1;
        r.max_in_flight = r.max_in_flight.max(r.in_flight);
        Answering(Arc::clone(&routes))
    };
    if routes.lock().unwrap().down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let in_flight = routes.lock().unwrap().in_flight;
    let (reply, n) = {
        let mut r = routes.lock().unwrap();
        r.seen.push(Seen {
            path: path.clone(),
            headers: headers.clone(),
            at: std::time::Instant::now(),
        });
        let n = {
            let hits = r.hits.entry(path.clone()).or_default();
            *hits += 1;
            *hits
        };
        (r.replies.get(&path).cloned(), n)
    };
    match reply {
        Some(Reply::Room { room, then }) => {
            if in_flight > room {
                routes.lock().unwrap().turned_away += 1;
                let mut resp = StatusCode::TOO_MANY_REQUESTS.into_response();
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1));
                resp
            } else {
                answer(*then, n, &headers).await
            }
        }
        Some(reply) => answer(reply, n, &headers).await,
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn answer(reply: Reply, n: u32, headers: &axum::http::HeaderMap) -> Response {
    match reply {
        // Room is counted where the request arrives (`serve_route`).
        Reply::Room { then, .. } => Box::pin(answer(*then, n, headers)).await,
        Reply::RequireHeader { name, value, then } => {
            if headers.get(name).and_then(|v| v.to_str().ok()) == Some(value.as_str()) {
                Box::pin(answer(*then, n, headers)).await
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        }
        Reply::Ok { content_type, body } => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::FailFirst {
            times,
            status,
            retry_after,
            then,
        } => {
            if n <= times {
                let mut resp = StatusCode::from_u16(status).unwrap().into_response();
                if let Some(s) = retry_after {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(s));
                }
                resp
            } else {
                Box::pin(answer(*then, n - times, headers)).await
            }
        }
        Reply::BreakOff { body, sent } => {
            let total = body.len();
            let head = body.slice(..sent);
            let stream = futures::stream::iter([
                Ok::<Bytes, std::io::Error>(head),
                Err(std::io::Error::other("connection broken on purpose")),
            ]);
            let mut resp = Response::new(Body::from_stream(stream));
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
            resp
        }
        Reply::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
        Reply::Delay(d, then) => {
            tokio::time::sleep(d).await;
            Box::pin(answer(*then, n, headers)).await
        }
    }
}

/// One request the S3 server answered.
#[derive(Debug, Clone)]
pub struct S3Request {
    pub method: String,
    /// The client's User-Agent: `batchimg/…` for the signed image PUTs,
    /// the SDK's for every other request.
    pub user_agent: String,
    /// The object key (path after the bucket), percent-decoded.
    pub key: String,
    pub status: u16,
    /// `x-amz-content-sha256`: the body's SHA-256, or `UNSIGNED-PAYLOAD`.
    pub content_sha256: Option<String>,
    /// `x-amz-checksum-crc32`, if sent.
    pub checksum_crc32: Option<String>,
    /// The CRC32 of the body as it arrived.
    pub body_crc32: u32,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
}

struct ProxyState {
    upstream: SocketAddr,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    log: Mutex<Vec<S3Request>>,
    down: AtomicBool,
    fail_next: AtomicU32,
    /// Like `fail_next`, for image PUTs only.
    fail_next_image_puts: AtomicU32,
}

/// The real s3s-fs server behind a recording proxy.
pub struct S3Server {
    pub root: tempfile::TempDir,
    pub bucket: String,
    proxy_addr: SocketAddr,
    /// With TLS: the directory of the certificate the clients trust.
    tls: Option<tempfile::TempDir>,
    state: Arc<ProxyState>,
    child: tokio::process::Child,
}

pub const ACCESS_KEY: &str = "batchimg-test";
pub const SECRET_KEY: &str = "batchimg-test-secret";

impl S3Server {
    pub async fn start() -> S3Server {
        S3Server::start_with(false).await
    }

    /// Like [`S3Server::start`], with the proxy speaking HTTPS.
    pub async fn start_tls() -> S3Server {
        S3Server::start_with(true).await
    }

    async fn start_with(tls: bool) -> S3Server {
        let root = tempfile::tempdir().unwrap();
        let bucket = "batchimg-test".to_string();
        std::fs::create_dir(root.path().join(&bucket)).unwrap();
        let mut child = tokio::process::Command::new(s3s_fs_binary())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--access-key",
                ACCESS_KEY,
            ])
            .args(["--secret-key", SECRET_KEY])
            .arg(root.path())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start s3s-fs");
        let upstream = read_listen_addr(child.stdout.take().unwrap()).await;
        let state = Arc::new(ProxyState {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
            log: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            fail_next: AtomicU32::new(0),
            fail_next_image_puts: AtomicU32::new(0),
        });
        let app = axum::Router::new()
            .fallback(proxy)
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        // With TLS, clients reach the proxy through a TLS pipe in front of it.
        let (proxy_addr, tls) = if tls {
            let dir = tempfile::tempdir().unwrap();
            let acceptor = tls::acceptor(&dir.path().join("ca.pem"));
            let port = tls::front(acceptor, proxy_addr.port()).await;
            (SocketAddr::from(([127, 0, 0, 1], port)), Some(dir))
        } else {
            (proxy_addr, None)
        };
        S3Server {
            root,
            bucket,
            proxy_addr,
            tls,
            state,
            child,
        }
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.proxy_addr)
    }

    /// The certificate file a client must trust, when the server speaks TLS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|d| d.path().join("ca.pem"))
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<S3Request> {
        self.state.log.lock().unwrap().clone()
    }

    /// Successful PUTs of images (URL index objects and CSVs excluded).
    pub fn image_puts(&self) -> Vec<String> {
        self.image_put_requests()
            .into_iter()
            .filter(|r| r.status == 200)
            .map(|r| r.key)
            .collect()
    }

    /// Every PUT of an image, however it ended.
    pub fn image_put_requests(&self) -> Vec<S3Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && is_image_key(&r.key))
            .collect()
    }

    /// All PUT requests, whatever they stored and however they ended.
    pub fn all_puts(&self) -> usize {
        self.requests().iter().filter(|r| r.method == "PUT").count()
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// Answers every object request with 503 while set (bucket requests still pass).
    pub fn set_objects_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Answers the next `n` requests with 503 SlowDown.
    /// The next `n` image PUTs are answered 503 SlowDown.
    pub fn fail_next_image_puts(&self, n: u32) {
        self.state.fail_next_image_puts.store(n, Ordering::SeqCst);
    }

    pub fn fail_next(&self, n: u32) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// An object's bytes, read straight from s3s-fs's directory.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.path().join(&self.bucket).join(key)).ok()
    }

    /// Removes an object behind the server's back, as a lifecycle rule or
    /// another tool would.
    pub fn delete_object(&self, key: &str) {
        std::fs::remove_file(self.root.path().join(&self.bucket).join(key)).unwrap();
    }

    /// Image keys in the bucket.
    pub fn image_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = std::fs::read_dir(self.root.path().join(&self.bucket))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|k| is_image_key(k))
            .collect();
        keys.sort();
        keys
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn is_image_key(key: &str) -> bool {
    !key.contains(".batchimg/") && !key.ends_with(".csv") && !key.is_empty()
}

async fn read_listen_addr(stdout: tokio::process::ChildStdout) -> SocketAddr {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(i) = line.find("http://") {
                let addr = line[i + 7..].trim().trim_end_matches('/');
                return addr.parse::<SocketAddr>().unwrap();
            }
        }
        panic!("s3s-fs exited before listening");
    })
    .await
    .expect("s3s-fs did not start in 10 s");
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    found
}

fn s3s_fs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BATCHIMG_S3S_FS") {
        return p.into();
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/s3s-fs");
    assert!(
        p.exists(),
        "{} is missing: run `make test` (or scripts/setup-s3s.sh) to install the local S3 server",
        p.display()
    );
    p
}

async fn proxy(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    // A client killed mid-request (the crash test) leaves a broken body.
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts.uri.path().to_string();
    let key = key_of(&path);
    let method = parts.method.to_string();
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let content_sha256 = header("x-amz-content-sha256");
    let checksum_crc32 = header("x-amz-checksum-crc32");
    let content_type = header("content-type");
    let body_crc32 = crc32fast::hash(&body);
    let injected = (st.down.load(Ordering::SeqCst) && !key.is_empty())
        || st
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        || (method == "PUT"
            && is_image_key(&key)
            && st
                .fail_next_image_puts
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok());
    if injected {
        st.log.lock().unwrap().push(S3Request {
            method,
            user_agent,
            key,
            status: 503,
            content_sha256,
            checksum_crc32,
            body_crc32,
            content_type,
        });
        let xml = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>";
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/xml")],
            xml,
        )
            .into_response();
    }
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = format!("http://{}{pq}", st.upstream).parse().unwrap();
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(header::CONNECTION);
    let upstream = hyper::Request::from_parts(parts, Full::new(body));
    match st.client.request(upstream).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            st.log.lock().unwrap().push(S3Request {
                method,
                user_agent,
                key,
                status,
                content_sha256,
                checksum_crc32,
                body_crc32,
                content_type,
            });
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Response::from_parts(parts, Body::from(body))
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// `/bucket/a/b.jpg` → `a/b.jpg`.
fn key_of(path: &str) -> String {
    let rest = path.trim_start_matches('/');
    let key = rest.split_once('/').map_or("", |(_, k)| k);
    percent_decode(key)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("k={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// What a finished `batchimg` process left.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A test's world: a temporary directory, an image server and an S3 server.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub http: ImageServer,
    pub s3: S3Server,
}

impl Env {
    pub async fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            http: ImageServer::start().await,
            s3: S3Server::start().await,
        }
    }

    /// Like [`Env::new`], with the S3 server behind HTTPS.
    pub async fn with_tls_store() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            http: ImageServer::start().await,
            s3: S3Server::start_tls().await,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an input CSV with the header `url`.
    pub fn input(&self, name: &str, urls: &[String]) -> PathBuf {
        let mut text = String::from("url\n");
        for u in urls {
            text.push_str(u);
            text.push('\n');
        }
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The binary, in the test's directory, configured for its servers.
    pub fn command(&self) -> tokio::process::Command {
        self.command_via(&[])
    }

    /// Like [`Env::command`], but started through `wrapper` (a program and
    /// its arguments, to which the binary and its arguments are appended).
    pub fn command_via(&self, wrapper: &[&str]) -> tokio::process::Command {
        let binary = env!("CARGO_BIN_EXE_batchimg");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(args).arg(binary);
                cmd
            }
            None => tokio::process::Command::new(binary),
        };
        cmd.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AWS_ENDPOINT_URL", self.s3.endpoint())
            .envs(self.s3.ca_file().map(|f| ("SSL_CERT_FILE", f)))
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("S3_BUCKET", &self.s3.bucket)
            .env("BATCHIMG_ALLOW_PRIVATE_NETWORKS", "1")
            .env("BATCHIMG_RETRY_DELAY_MS", "0")
            .env("RUST_LOG", "batchimg=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `batchimg <args>` to the end.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.command(), args).await
    }

    pub async fn run_with(&self, mut cmd: tokio::process::Command, args: &[&str]) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.args(args).output())
            .await
            .expect("batchimg took over 2 minutes")
            .expect("run batchimg");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `batchimg <args>` and returns its peak RSS in megabytes, as its
    /// summary line reports it from the kernel (`VmHWM`). Not `wait4`'s
    /// `ru_maxrss`: that counts the forked test process's pages before the
    /// exec, gigabytes while another test builds its 98-megapixel images.
    pub async fn run_measured(&self, args: &[&str]) -> (Run, f64) {
        let run = self.run(args).await;
        let peak = peak_memory_mib(&run.stderr)
            .unwrap_or_else(|| panic!("no peak memory in the summary: {run:?}"));
        (run, peak as f64 * 1.048_576)
    }

    /// `batchimg run --input <input> --output out.csv --output-failed failed.csv <extra>`.
    pub async fn run_input(&self, input: &Path, extra: &[&str]) -> Run {
        self.run_input_with(self.command(), input, extra).await
    }

    /// Like [`Env::run_input`], with a command of the test's own making.
    pub async fn run_input_with(
        &self,
        cmd: tokio::process::Command,
        input: &Path,
        extra: &[&str],
    ) -> Run {
        self.run_with(cmd, &run_input_args(input, extra)).await
    }

    /// Starts [`Env::run_input`]'s command line and returns at once, for a
    /// test that acts while the run goes on (its output is piped).
    pub fn spawn_input(&self, input: &Path, extra: &[&str]) -> tokio::process::Child {
        self.command()
            .args(run_input_args(input, extra))
            .spawn()
            .expect("start batchimg")
    }

    /// `batchimg run --input INPUT --output OUTPUT` and `extra`, the
    /// command line most tests start from.
    pub async fn run_into(&self, input: &str, output: &str, extra: &[&str]) -> Run {
        let mut args = vec!["run", "--input", input, "--output", output];
        args.extend_from_slice(extra);
        self.run(&args).await
    }

    /// Rows of a CSV in the test directory, header included.
    pub fn csv(&self, name: &str) -> Vec<Vec<String>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(self.path(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect()
    }

    /// The key an s3url points at.
    pub fn key_of_s3url(&self, s3url: &str) -> String {
        let prefix = format!("{}/{}/", self.s3.endpoint(), self.s3.bucket);
        s3url
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{s3url} is not under {prefix}"))
            .to_string()
    }
}

/// Sends signal `name` (TERM, INT, KILL) to `pid`.
pub fn signal(pid: i32, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}

/// Waits up to 10 s for `cond`.
pub async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in 10 s");
}

/// The input CSV, output and failed CSV arguments every test run uses.
pub const RUN: [&str; 7] = [
    "run",
    "--input",
    "in.csv",
    "--output",
    "out.csv",
    "--output-failed",
    "failed.csv",
];

/// `status --json` of the default state directory, parsed.
pub async fn status_json(env: &Env) -> serde_json::Value {
    let out = env.run(&["status", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The peak memory a run's summary line reports (`peak memory N MiB`).
pub fn peak_memory_mib(stderr: &str) -> Option<u64> {
    let at = stderr.rfind("peak memory ")?;
    stderr[at + "peak memory ".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// No image object was PUT twice in the whole test.
pub fn assert_no_key_put_twice(env: &Env) {
    let puts = env.s3.image_puts();
    let distinct: std::collections::HashSet<&String> = puts.iter().collect();
    assert_eq!(
        distinct.len(),
        puts.len(),
        "an object was PUT twice: {puts:?}"
    );
}

/// `run --input <input> --output out.csv --output-failed failed.csv <extra>`.
fn run_input_args<'a>(input: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--input",
        input.to_str().unwrap(),
        "--output",
        "out.csv",
        "--output-failed",
        "failed.csv",
    ];
    args.extend_from_slice(extra);
    args
}
