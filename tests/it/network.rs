//! The network a company has: an HTTP proxy used only when asked for, with
//! the network policy still applied to each target; request headers a server
//! requires, never logged or recorded; a User-Agent; a per-host request rate;
//! a host that speaks HTTP/2.

use crate::support::proxy::LoggingProxy;
use crate::support::{Env, Reply, images};

const PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"];

/// The binary with every proxy variable pointing at `proxy`; S3 stays
/// direct, by name, through NO_PROXY.
fn proxied_command(env: &Env, proxy: &LoggingProxy) -> tokio::process::Command {
    let mut cmd = env.command();
    for var in PROXY_VARS {
        cmd.env(var, proxy.url());
    }
    cmd.env("NO_PROXY", "localhost")
        .env("no_proxy", "localhost");
    cmd.env(
        "AWS_ENDPOINT_URL",
        env.s3.endpoint().replace("127.0.0.1", "localhost"),
    );
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_go_through_the_proxy_only_when_asked_and_the_policy_still_holds() {
    let env = Env::new().await;
    let proxy = LoggingProxy::start().await;
    let rows: Vec<String> = (0..3)
        .map(|i| {
            env.http.route(
                &format!("/p{i}.jpg"),
                Reply::jpeg(images::jpeg(24, 16, 60 + i)),
            )
        })
        .collect();
    // A redirect to the metadata service is refused at the hop, before the
    // proxy could be asked for it.
    let to_metadata = env.http.route(
        "/hop",
        Reply::Redirect("http://169.254.169.254/latest/meta-data/".into()),
    );
    let mut all = rows.clone();
    all.push(to_metadata.clone());
    let input = env.input("in.csv", &all);

    // Not asked: the variables are ignored (the default).
    let direct = env
        .run_input_with(proxied_command(&env, &proxy), &input, &[])
        .await;
    assert_eq!(direct.code, 1, "{direct:?}");
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());

    // Asked: every download goes through the proxy, S3 (NO_PROXY) does not.
    // (Another state directory, so nothing of the first run is reused.)
    let via = env
        .run_input_with(
            proxied_command(&env, &proxy),
            &input,
            &[
                "--state-dir",
                "proxied",
                "--proxy-from-env",
                "--no-url-markers",
            ],
        )
        .await;
    assert_eq!(via.code, 1, "{via:?}");
    let seen = proxy.requests();
    for row in &rows {
        assert!(seen.contains(row), "{row} not proxied: {seen:?}");
    }
    assert!(seen.contains(&to_metadata));
    assert!(
        !seen.iter().any(|s| s.contains("169.254")),
        "the refused hop reached the proxy: {seen:?}"
    );
    assert!(
        !seen.iter().any(|s| s.contains(&env.s3.bucket)),
        "S3 went through the proxy"
    );
    let failed = env.csv("failed.csv");
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[1][0], to_metadata);
    assert!(via.stderr.contains("blocked"), "{via:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn through_a_proxy_names_are_resolved_and_checked_before_the_request() {
    let env = Env::new().await;
    let proxy = LoggingProxy::start().await;
    let by_name = env
        .http
        .route("/n.jpg", Reply::jpeg(images::jpeg(16, 16, 70)))
        .replace("127.0.0.1", "localhost");
    let input = env.input("in.csv", std::slice::from_ref(&by_name));
    let mut cmd = proxied_command(&env, &proxy);
    // Private networks not allowed: `localhost` resolves to loopback. NO_PROXY
    // must not exempt it either, so S3 goes by IP and NO_PROXY names it.
    cmd.env_remove("BATCHIMG_ALLOW_PRIVATE_NETWORKS")
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .env("AWS_ENDPOINT_URL", env.s3.endpoint());
    let run = env.run_input_with(cmd, &input, &["--proxy-from-env"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());
    assert_eq!(env.http.total_hits(), 0);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("failed") && l.contains("row=0"))
        .unwrap_or_else(|| panic!("{run:?}"));
    assert!(
        line.contains("blocked") && line.contains("localhost"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn required_headers_and_user_agent_are_sent_but_never_logged_or_recorded() {
    let env = Env::new().await;
    let secret = "Bearer s3cr3t-t0ken-for-the-test";
    let guarded = env.http.route(
        "/private.jpg",
        Reply::RequireHeader {
            name: "authorization",
            value: secret.into(),
            then: Box::new(Reply::jpeg(images::jpeg(20, 20, 71))),
        },
    );
    // A redirect to another host (another port) must not carry the credential.
    let other = crate::support::ImageServer::start().await;
    let elsewhere = other.route("/there.jpg", Reply::jpeg(images::jpeg(20, 20, 72)));
    let hop = env.http.route(
        "/hop.jpg",
        Reply::RequireHeader {
            name: "authorization",
            value: secret.into(),
            then: Box::new(Reply::Redirect(elsewhere.clone())),
        },
    );
    let input = env.input("in.csv", &[guarded.clone(), hop.clone()]);

    // Without the header the server says 401.
    let bare = env.run_input(&input, &[]).await;
    assert_eq!(bare.code, 1, "{bare:?}");
    assert!(bare.stderr.contains("401"), "{bare:?}");

    let header = format!("Authorization: {secret}");
    let run = env
        .run_input(
            &input,
            &[
                "--fresh",
                "-vv",
                "--header",
                &header,
                "--header",
                "X-Team: data",
                "--user-agent",
                "acme-ingest/2.1",
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let to_guarded: Vec<_> = env
        .http
        .seen()
        .into_iter()
        .filter(|s| s.path == "/private.jpg")
        .collect();
    let last = to_guarded.last().unwrap();
    assert_eq!(last.headers["user-agent"], "acme-ingest/2.1");
    assert_eq!(last.headers["x-team"], "data");
    let there = other.seen();
    assert_eq!(there.len(), 1, "{there:?}");
    assert!(
        there[0].headers.get("authorization").is_none(),
        "credential followed the redirect"
    );
    assert!(
        there[0].headers.get("x-team").is_none(),
        "a --header followed the redirect to another host"
    );
    assert_eq!(there[0].headers["user-agent"], "acme-ingest/2.1");
    // Never in the log (at -vv), never in the journal or the CSVs.
    assert!(!run.stderr.contains("s3cr3t"), "{run:?}");
    for entry in walk(env.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(6).any(|w| w == b"s3cr3t"),
            "the secret is in {}",
            entry.display()
        );
    }

    // A resume needs the header again, and says so without printing it.
    let retry = env.run(&["resume", "--retry-failed"]).await;
    assert_eq!(retry.code, 2, "{retry:?}");
    assert!(
        retry.stderr.contains("authorization") && retry.stderr.contains("--header"),
        "{retry:?}"
    );
    // From a header file (downloaded afresh: another state directory), and
    // a resume reads the file again by itself.
    let file = env.path("headers.txt");
    std::fs::write(&file, format!("# for the CDN\n{header}\n")).unwrap();
    let from_file = env
        .run_input(
            &input,
            &[
                "--state-dir",
                "by-file",
                "--header-file",
                file.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(from_file.code, 0, "{from_file:?}");
    let resumed = env.run(&["resume", "--state-dir", "by-file"]).await;
    assert_eq!(resumed.code, 0, "{resumed:?}");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_host_request_rate_is_held() {
    let env = Env::new().await;
    let rows: Vec<String> = (0..50)
        .map(|i| {
            env.http.route(
                &format!("/r{i}.jpg"),
                Reply::jpeg(images::jpeg(16, 16, 200 + i)),
            )
        })
        .collect();
    let input = env.input("in.csv", &rows);
    let rps = 20.0;
    let run = env
        .run_input(&input, &["--per-host-rps", "20", "--per-host", "8"])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let seen = env.http.seen();
    assert_eq!(seen.len(), 50);
    let span = seen.last().unwrap().at - seen[0].at;
    let rate = (seen.len() - 1) as f64 / span.as_secs_f64();
    assert!(
        (rate - rps).abs() <= rps * 0.10,
        "{rate:.1} requests/s against a limit of {rps}"
    );
    // No second has more than the limit.
    for (i, first) in seen.iter().enumerate() {
        let within = seen[i..]
            .iter()
            .take_while(|s| s.at - first.at < std::time::Duration::from_secs(1))
            .count();
        assert!(
            within as f64 <= rps + 1.0,
            "{within} requests within a second"
        );
    }
}

/// A host that offers HTTP/2 in its TLS handshake (ALPN), as CDNs do: many
/// rows' downloads share one connection instead of opening one each.
#[tokio::test(flavor = "multi_thread")]
async fn many_rows_to_an_http2_host_share_one_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let env = Env::new().await;
    let ca = env.path("h2-ca.pem");
    let acceptor = crate::support::tls::acceptor_offering(&ca, &[b"h2"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // (connection number, HTTP version) of each request.
    let seen: Arc<Mutex<Vec<(usize, hyper::Version)>>> = Arc::default();
    let connections = Arc::new(AtomicUsize::new(0));
    let images: Arc<Vec<bytes::Bytes>> = Arc::new(
        (0..30)
            .map(|i| images::jpeg(24, 16, 700 + i).into())
            .collect(),
    );
    {
        let (seen, connections, images) = (seen.clone(), connections.clone(), images.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let n = connections.fetch_add(1, Ordering::SeqCst);
                let (acceptor, seen, images) = (acceptor.clone(), seen.clone(), images.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        seen.lock().unwrap().push((n, req.version()));
                        let i: usize = req
                            .uri()
                            .path()
                            .trim_start_matches("/h2/")
                            .trim_end_matches(".jpg")
                            .parse()
                            .unwrap_or(0);
                        let body = http_body_util::Full::new(images[i % images.len()].clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "image/jpeg")
                                    .body(body)
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
    }
    let urls: Vec<String> = (0..30)
        .map(|i| format!("https://127.0.0.1:{port}/h2/{i}.jpg"))
        .collect();
    let input = env.input("h2.csv", &urls);
    let mut cmd = env.command();
    cmd.env("SSL_CERT_FILE", &ca);
    let run = env.run_input_with(cmd, &input, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env.s3.image_puts().len(), 30, "{run:?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 30, "one request per row: {seen:?}");
    assert!(
        seen.iter().all(|(_, v)| *v == hyper::Version::HTTP_2),
        "{seen:?}"
    );
    // The host's first request goes alone, so its handshake says "h2"
    // before any other row connects: all 30 share that one connection.
    let opened = connections.load(Ordering::SeqCst);
    assert_eq!(opened, 1, "{opened} connections for 30 rows: {seen:?}");
}
