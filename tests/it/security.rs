//! Hostile input: SSRF, proxies, redirects, size limits, decompression bombs,
//! secrets in logs, and malformed CSVs.

use std::io::Write;

use bytes::Bytes;

use crate::support::{Env, Reply, images};

fn failure_line<'a>(stderr: &'a str, needle: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.contains("failed") && l.contains(needle))
        .unwrap_or_else(|| panic!("no failure logged for {needle}:\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_and_link_local_addresses_are_always_refused() {
    let env = Env::new().await;
    let good = env
        .http
        .route("/ok.jpg", Reply::jpeg(images::jpeg(16, 16, 1)));
    let to_metadata = env.http.route(
        "/hop",
        Reply::Redirect("http://169.254.169.254/latest/meta-data/".into()),
    );
    let to_file = env
        .http
        .route("/file", Reply::Redirect("file:///etc/passwd".into()));
    let rows = [
        "http://169.254.169.254/latest/meta-data/iam/".to_string(),
        "http://[fd00:ec2::254]/latest/".to_string(),
        "http://[::ffff:169.254.169.254]/".to_string(),
        to_metadata.clone(),
        to_file.clone(),
        good.clone(),
    ];
    let input = env.input("in.csv", &rows);
    // Even with private networks allowed (the test default).
    let run = env.run_input(&input, &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    for row in 0..5 {
        let line = failure_line(&run.stderr, &format!("row={row} "));
        assert!(line.contains("blocked"), "{line}");
    }
    assert_eq!(env.csv("out.csv").len(), 2, "only the good row");
}

#[tokio::test(flavor = "multi_thread")]
async fn private_and_loopback_addresses_need_the_switch_even_through_dns() {
    let env = Env::new().await;
    let by_ip = env
        .http
        .route("/a.jpg", Reply::jpeg(images::jpeg(16, 16, 2)));
    let by_name = by_ip.replace("127.0.0.1", "localhost");
    let input = env.input("in.csv", &[by_ip.clone(), by_name.clone()]);
    let mut cmd = env.command();
    cmd.env_remove("BATCHIMG_ALLOW_PRIVATE_NETWORKS");
    let run = env
        .run_with(
            cmd,
            &[
                "run",
                "--input",
                input.to_str().unwrap(),
                "--output",
                "out.csv",
            ],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(failure_line(&run.stderr, &by_ip).contains("--allow-private-networks"));
    assert!(failure_line(&run.stderr, &by_name).contains("blocked"));
    assert_eq!(env.http.total_hits(), 0, "no request left the process");

    let allowed = env.run_input(&input, &["--fresh"]).await;
    assert_eq!(allowed.code, 0, "{allowed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_variables_are_ignored_and_redirects_are_limited() {
    let env = Env::new().await;
    let proxy = crate::support::ImageServer::start().await;
    let good = env
        .http
        .route("/a.jpg", Reply::jpeg(images::jpeg(16, 16, 3)));
    for i in 0..8 {
        env.http.route(
            &format!("/r{i}"),
            Reply::Redirect(env.http.url(&format!("/r{}", i + 1))),
        );
    }
    env.http.route("/r8", Reply::jpeg(images::jpeg(16, 16, 4)));
    let loop_start = env.http.url("/r0");
    let input = env.input("in.csv", &[good.clone(), loop_start.clone()]);
    let mut cmd = env.command();
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env(var, proxy.url(""));
    }
    // S3 may legitimately go through a proxy; keep it direct here, by name,
    // so only image downloads (by IP) could be tempted by the proxy.
    cmd.env("NO_PROXY", "localhost")
        .env("no_proxy", "localhost");
    cmd.env(
        "AWS_ENDPOINT_URL",
        env.s3.endpoint().replace("127.0.0.1", "localhost"),
    );
    let run = env
        .run_with(
            cmd,
            &[
                "run",
                "--input",
                input.to_str().unwrap(),
                "--output",
                "out.csv",
            ],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(proxy.total_hits(), 0, "the proxy saw nothing");
    assert_eq!(env.http.hits("/a.jpg"), 1);
    assert!(failure_line(&run.stderr, &loop_start).contains("redirect"));
    assert_eq!(env.http.hits("/r8"), 0, "stopped after 5 redirects");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_downloads_and_decompression_bombs_are_refused_quickly_in_flat_memory() {
    let env = Env::new().await;
    let big = env
        .http
        .route("/big.jpg", Reply::jpeg(images::jpeg(400, 300, 5)));
    let bomb = env
        .http
        .route("/bomb.png", Reply::png(Bytes::from(bomb_png())));
    let input = env.input("big.csv", std::slice::from_ref(&big));
    let run = env
        .run_into(
            input.to_str().unwrap(),
            "out.csv",
            &["--max-download-bytes", "20000"],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(failure_line(&run.stderr, &big).contains("too-large"));

    let input = env.input("bomb.csv", std::slice::from_ref(&bomb));
    let started = std::time::Instant::now();
    let (run, rss_mb) = env
        .run_measured(&[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--output",
            "out.csv",
            "--fresh",
        ])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    let line = failure_line(&run.stderr, &bomb);
    assert!(
        line.contains("image-too-large") && line.contains("60000x60000"),
        "{line}"
    );
    // Process start and the bucket check included: the image itself is refused
    // from its header, before a pixel is decoded (3.6 billion of them).
    assert!(
        started.elapsed().as_secs_f64() < 3.0,
        "{:?}",
        started.elapsed()
    );
    assert!(
        rss_mb < 300.0,
        "peak RSS {rss_mb:.0} MB: the bomb was decoded: {run:?}"
    );
}

/// The 60000×60000 1-bit PNG: a few hundred kilobytes, 3.6 billion pixels.
fn bomb_png() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let (w, h) = (60_000u32, 60_000u32);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    let row = vec![0u8; 1 + (w as usize).div_ceil(8)];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..h {
        z.write_all(&row).unwrap();
    }
    chunk(&mut png, b"IDAT", &z.finish().unwrap());
    chunk(&mut png, b"IEND", &[]);
    png
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_the_logs() {
    let env = Env::new().await;
    let url = env
        .http
        .route("/secret.jpg", Reply::jpeg(images::jpeg(16, 16, 6)));
    let with_user = url.replace("http://", "http://alice:hunter2@");
    let presigned = format!("{url}?X-Amz-Signature=deadbeefcafe&w=1");
    env.http.route("/missing.jpg", Reply::Status(404));
    let failing = env
        .http
        .url("/missing.jpg")
        .replace("http://", "http://bob:tiger@");
    let input = env.input("in.csv", &[with_user.clone(), presigned.clone(), failing]);
    let run = env.run_input(&input, &["-vv"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    for secret in [
        "hunter2",
        "tiger",
        "deadbeefcafe",
        crate::support::SECRET_KEY,
    ] {
        assert!(!run.stderr.contains(secret), "{secret} leaked into the log");
    }
    assert!(run.stderr.contains("REDACTED"), "{run:?}");
    // The CSV keeps the URL exactly as given: it is the user's data.
    assert_eq!(env.csv("out.csv")[1][0], with_user);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_csv_content_fails_clearly_without_a_panic() {
    let env = Env::new().await;
    let good = env
        .http
        .route("/ok.jpg", Reply::jpeg(images::jpeg(16, 16, 7)));
    let huge = format!("http://127.0.0.1/{}", "a".repeat(10 * 1024 * 1024));
    let text = format!("url\r\n\"{good}\"\r\n\r\n  {good}  \r\n{huge}\r\nhttp://x/\0nul.jpg\r\n");
    std::fs::write(env.path("in.csv"), text).unwrap();
    let run = env.run_input(&env.path("in.csv"), &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!run.stderr.contains("panicked"));
    assert!(
        run.stderr.contains("over the 8192-byte limit"),
        "{}",
        &run.stderr[..run.stderr.len().min(3000)]
    );
    assert!(run.stderr.contains("control characters"));
    assert_eq!(
        env.csv("out.csv").len(),
        3,
        "the quoted and the padded copies of the good URL"
    );
    assert_eq!(env.csv("failed.csv").len(), 3);

    std::fs::write(env.path("bad-utf8.csv"), b"url\nhttp://x/\xff\xfe.jpg\n").unwrap();
    let run = env.run_into("bad-utf8.csv", "out2.csv", &["--fresh"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("line 2") && run.stderr.contains("UTF-8"),
        "{run:?}"
    );
}
