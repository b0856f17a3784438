//! The original specification: validation, per-row failures, the failed CSV,
//! retries, exit codes, and never doing the same work twice.

use bytes::Bytes;

use crate::support::{Env, Reply, images};

fn urls_of(rows: &[Vec<String>]) -> Vec<String> {
    rows.iter().skip(1).map(|r| r[0].clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_input_files_exit_2_before_any_work_and_write_nothing() {
    let env = Env::new().await;
    let url = env
        .http
        .route("/a.jpg", Reply::jpeg(images::jpeg(32, 32, 1)));
    let cases: [(&str, String, &str); 5] = [
        (
            "two-columns.csv",
            format!("url,name\n{url},a\n"),
            "exactly one column",
        ),
        (
            "no-header.csv",
            format!("{url}\n{url}\n"),
            "add a first line `url`",
        ),
        ("empty.csv", String::new(), "is empty"),
        ("wrong-name.csv", format!("link\n{url}\n"), "must be `url`"),
        (
            "extra-field.csv",
            format!("url\n{url}\n{url},x\n"),
            "line 3",
        ),
    ];
    for (name, text, message) in cases {
        std::fs::write(env.path(name), text).unwrap();
        let run = env
            .run_into(name, "out.csv", &["--output-failed", "failed.csv"])
            .await;
        assert_eq!(run.code, 2, "{name}: {run:?}");
        assert!(run.stderr.contains(message), "{name}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{name}: {run:?}");
        assert!(
            !env.path("out.csv").exists() && !env.path("failed.csv").exists(),
            "{name}"
        );
    }
    let missing = env
        .run(&["run", "--input", "nope.csv", "--output", "out.csv"])
        .await;
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("nope.csv"), "{missing:?}");
    assert_eq!(env.http.total_hits(), 0, "nothing was downloaded");
    assert!(env.s3.image_puts().is_empty());

    // The accepted variants: BOM, spaces, upper case, CRLF.
    std::fs::write(env.path("ok.csv"), format!("\u{feff} URL \r\n{url}\r\n")).unwrap();
    let ok = env
        .run(&["run", "--input", "ok.csv", "--output", "out.csv"])
        .await;
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(urls_of(&env.csv("out.csv")), [url]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_output_is_not_truncated_by_a_rejected_input() {
    let env = Env::new().await;
    std::fs::write(env.path("out.csv"), "precious\n").unwrap();
    std::fs::write(env.path("bad.csv"), "a,b\n").unwrap();
    let run = env
        .run(&["run", "--input", "bad.csv", "--output", "out.csv"])
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        std::fs::read_to_string(env.path("out.csv")).unwrap(),
        "precious\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_bucket_or_region_is_a_usage_error_before_any_download() {
    let env = Env::new().await;
    let url = env
        .http
        .route("/a.jpg", Reply::jpeg(images::jpeg(32, 32, 1)));
    let input = env.input("in.csv", &[url]);
    let input = input.to_str().unwrap();

    let mut cmd = env.command();
    cmd.env_remove("S3_BUCKET");
    let run = env
        .run_with(cmd, &["run", "--input", input, "--output", "out.csv"])
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("S3_BUCKET"), "{run:?}");

    let mut cmd = env.command();
    cmd.env_remove("AWS_REGION");
    let run = env
        .run_with(cmd, &["run", "--input", input, "--output", "out.csv"])
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("AWS_REGION"), "{run:?}");

    let mut cmd = env.command();
    cmd.env("S3_BUCKET", "no-such-bucket");
    let run = env
        .run_with(cmd, &["run", "--input", input, "--output", "out.csv"])
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("does not exist"), "{run:?}");

    let mut cmd = env.command();
    cmd.env("AWS_SECRET_ACCESS_KEY", "wrong");
    let run = env
        .run_with(cmd, &["run", "--input", input, "--output", "out.csv"])
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("denied"), "{run:?}");
    assert!(
        !run.stderr.contains("wrong"),
        "the secret must not be printed: {run:?}"
    );

    assert_eq!(env.http.total_hits(), 0);
    assert!(!env.path("out.csv").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rows_fail_alone_with_their_reason_and_the_run_goes_on() {
    let env = Env::new().await;
    let good = env
        .http
        .route("/good.jpg", Reply::jpeg(images::jpeg(64, 48, 2)));
    let jpeg = images::jpeg(200, 150, 3);
    let truncated = env.http.route(
        "/truncated.jpg",
        Reply::jpeg(Bytes::copy_from_slice(&jpeg[..jpeg.len() / 2])),
    );
    let html = env.http.route(
        "/page.jpg",
        Reply::Ok {
            content_type: "image/jpeg",
            body: Bytes::from_static(b"<!DOCTYPE html><html><body>Not found</body></html>"),
        },
    );
    let missing = env.http.url("/missing.jpg");
    let refused = "http://127.0.0.1:9/closed.jpg".to_string();
    let dns = "http://no-such-host.invalid/a.jpg".to_string();
    let ftp = "ftp://example.com/a.jpg".to_string();
    let garbage = "not a url".to_string();
    let corrupt = env.http.route(
        "/corrupt.png",
        Reply::png(Bytes::from_static(
            b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDRgarbagegarbage",
        )),
    );
    let rows = [
        good.clone(),
        truncated.clone(),
        html.clone(),
        missing.clone(),
        refused.clone(),
        dns.clone(),
        ftp.clone(),
        garbage.clone(),
        corrupt.clone(),
    ];
    let input = env.input("in.csv", &rows);
    let run = env.run_input(&input, &["--attempts", "2"]).await;
    assert_eq!(run.code, 1, "{run:?}");

    assert_eq!(urls_of(&env.csv("out.csv")), [good]);
    let failed = env.csv("failed.csv");
    assert_eq!(failed[0], ["url"]);
    assert_eq!(
        urls_of(&failed),
        rows[1..].to_vec(),
        "failed rows in input order"
    );
    for (url, reason) in [
        (&truncated, "corrupt-image"),
        (&html, "not-an-image"),
        (&missing, "http-status"),
        (&refused, "network"),
        (&dns, "dns"),
        (&ftp, "invalid-url"),
        (&garbage, "invalid-url"),
        (&corrupt, "corrupt-image"),
    ] {
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains("failed") && l.contains(url.as_str()))
            .unwrap_or_else(|| panic!("no failure logged for {url}: {run:?}"));
        assert!(
            line.contains(reason),
            "{url} should fail as {reason}: {line}"
        );
    }
    assert!(
        run.stderr.contains(
            "summary: 9 rows: 1 succeeded (1 uploaded, 0 already in the bucket), 8 failed"
        ),
        "{run:?}"
    );
    assert_eq!(env.http.hits("/missing.jpg"), 1, "a 404 is not retried");
    assert_eq!(env.http.hits("/page.jpg"), 1, "not-an-image is not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_http_errors_are_retried_and_permanent_ones_are_not() {
    let env = Env::new().await;
    let flaky = env.http.route(
        "/flaky.jpg",
        Reply::FailFirst {
            times: 2,
            status: 503,
            retry_after: None,
            then: Box::new(Reply::jpeg(images::jpeg(40, 30, 4))),
        },
    );
    let throttled = env.http.route(
        "/throttled.jpg",
        Reply::FailFirst {
            times: 1,
            status: 429,
            retry_after: Some(0),
            then: Box::new(Reply::jpeg(images::jpeg(40, 30, 5))),
        },
    );
    let jpeg = images::jpeg(100, 80, 6);
    let broken = env.http.route(
        "/broken.jpg",
        Reply::FailFirst {
            times: 0,
            status: 200,
            retry_after: None,
            then: Box::new(Reply::BreakOff {
                body: Bytes::from(jpeg),
                sent: 500,
            }),
        },
    );
    let gone = env.http.route("/gone.jpg", Reply::Status(404));
    let input = env.input("in.csv", &[flaky.clone(), throttled.clone(), broken, gone]);
    let run = env.run_input(&input, &["--attempts", "4"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(env.http.hits("/flaky.jpg"), 3, "503, 503, then 200");
    assert_eq!(env.http.hits("/throttled.jpg"), 2);
    assert_eq!(
        env.http.hits("/broken.jpg"),
        4,
        "a body cut short is transient"
    );
    assert_eq!(env.http.hits("/gone.jpg"), 1, "404 is permanent");
    assert_eq!(urls_of(&env.csv("out.csv")), [flaky, throttled]);
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_failures_are_retried_by_exactly_one_layer() {
    let env = Env::new().await;
    let url = env
        .http
        .route("/a.jpg", Reply::jpeg(images::jpeg(40, 30, 7)));
    let input = env.input("in.csv", &[url]);
    env.s3.set_objects_down(true);
    let run = env
        .run_input(&input, &["--attempts", "3", "--no-url-markers"])
        .await;
    // The store's failure is not the row's: exit 3, and the row is left for resume.
    assert_eq!(run.code, 3, "{run:?}");
    let heads: Vec<_> = env
        .s3
        .requests()
        .into_iter()
        .filter(|r| r.method == "HEAD" && !r.key.is_empty())
        .collect();
    assert_eq!(
        heads.len(),
        3,
        "--attempts 3 means 3 requests, not 3 x the SDK's 3: {heads:?}"
    );
    assert_eq!(env.csv("failed.csv").len(), 1, "no row failed: {run:?}");
    assert!(run.stderr.contains("object store failed"), "{run:?}");

    // Throttled twice, then fine: the row succeeds within its attempts.
    env.s3.set_objects_down(false);
    env.s3.clear_log();
    env.s3.fail_next(2);
    let again = env.run(&["resume"]).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(env.s3.image_puts().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_https_image_bodies_go_unsigned_with_a_crc32_as_the_aws_cli_sends_them() {
    let env = Env::with_tls_store().await;
    let route = |i: u64| {
        env.http
            .route(&format!("/{i}.jpg"), Reply::jpeg(images::jpeg(48, 32, i)))
    };
    let input = env.input("in.csv", &(0..3).map(route).collect::<Vec<_>>());
    let run = env.run_input(&input, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let puts = env.s3.image_put_requests();
    assert!(
        puts.len() == 3 && puts.iter().all(|r| r.status == 200),
        "{puts:?}"
    );
    for put in &puts {
        assert!(put.user_agent.starts_with("batchimg/"), "{put:?}");
        assert_eq!(put.content_sha256.as_deref(), Some("UNSIGNED-PAYLOAD"));
        // The checksum is the stored object's, and s3s-fs checked it against
        // the body it received (it answers BadDigest otherwise).
        let stored = env.s3.object(&put.key).unwrap();
        let crc = aws_smithy_types::base64::encode(crc32fast::hash(&stored).to_be_bytes());
        assert_eq!(put.checksum_crc32.as_deref(), Some(crc.as_str()), "{put:?}");
        assert_eq!(put.body_crc32, crc32fast::hash(&stored));
    }
    // The SDK's requests (HEAD, the URL index) reached the same endpoint,
    // trusting the same certificate.
    let others: Vec<_> = env
        .s3
        .requests()
        .into_iter()
        .filter(|r| r.user_agent.contains("aws-sdk-rust"))
        .collect();
    assert!(
        others.iter().any(|r| r.method == "HEAD") && others.iter().any(|r| r.method == "PUT"),
        "{others:?}"
    );

    // `--sign-payload always`: the body's SHA-256 signed over HTTPS too.
    env.s3.clear_log();
    let input = env.input("more.csv", &(3..5).map(route).collect::<Vec<_>>());
    let run = env
        .run_input(&input, &["--fresh", "--sign-payload", "always"])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let puts = env.s3.image_put_requests();
    assert!(
        puts.len() == 2
            && puts.iter().all(|r| r.status == 200
                && r.checksum_crc32.is_none()
                && r.content_sha256
                    .as_ref()
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))),
        "{puts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn image_puts_are_signed_directly_and_their_failures_classed_as_the_sdks() {
    let env = Env::new().await;
    let urls: Vec<String> = (0..2)
        .map(|i| {
            env.http
                .route(&format!("/{i}.jpg"), Reply::jpeg(images::jpeg(40, 30, i)))
        })
        .collect();
    let input = env.input("in.csv", &urls);
    // No HEAD first: the PUT itself meets the outage.
    let args = ["--attempts", "3", "--head-before-put", "never"];
    env.s3.set_objects_down(true);
    let run = env.run_input(&input, &args).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("object store failed"), "{run:?}");
    let failed = env.s3.image_put_requests();
    assert!(
        failed.iter().all(|r| r.status == 503) && failed.len() % 3 == 0 && !failed.is_empty(),
        "--attempts 3 per image PUT: {failed:?}"
    );
    assert_eq!(env.csv("failed.csv").len(), 1, "no row failed: {run:?}");

    // Image PUTs throttled twice (SlowDown), then fine: retried within the attempts.
    env.s3.set_objects_down(false);
    env.s3.clear_log();
    env.s3.fail_next_image_puts(2);
    let again = env.run(&["resume"]).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(env.s3.image_puts().len(), 2, "{:?}", env.s3.requests());
    let puts = env.s3.image_put_requests();
    assert_eq!(
        puts.iter().filter(|r| r.status == 503).count(),
        2,
        "the throttled PUTs were the signed ones: {puts:?}"
    );
    assert!(
        !puts.is_empty() && puts.iter().all(|r| r.user_agent.starts_with("batchimg/")),
        "image PUTs take the signed path: {puts:?}"
    );
    assert!(
        puts.iter().all(|r| r.checksum_crc32.is_none()
            && r.content_sha256.as_ref().is_some_and(|h| h.len() == 64)),
        "over plain HTTP the body's SHA-256 is signed: {puts:?}"
    );
    let others: Vec<_> = env
        .s3
        .requests()
        .into_iter()
        .filter(|r| !(r.method == "PUT" && puts.iter().any(|p| p.key == r.key)))
        .collect();
    assert!(
        !others.is_empty() && others.iter().all(|r| r.user_agent.contains("aws-sdk-rust")),
        "every other request goes through the SDK: {others:?}"
    );
    // A rerun without the journal or the URL index PUTs both again and
    // finds them there (412): nothing is overwritten.
    env.s3.clear_log();
    let rerun = env
        .run_input(
            &input,
            &["--fresh", "--no-url-markers", "--head-before-put", "never"],
        )
        .await;
    assert_eq!(rerun.code, 0, "{rerun:?}");
    let again = env.s3.image_put_requests();
    assert!(
        again.len() == 2 && again.iter().all(|r| r.status == 412),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_url_is_fetched_once_and_listed_on_every_row() {
    let env = Env::new().await;
    let url = env
        .http
        .route("/a.jpg", Reply::jpeg(images::jpeg(64, 64, 9)));
    let input = env.input("in.csv", &[url.clone(), url.clone(), url.clone()]);
    let run = env.run_input(&input, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env.http.hits("/a.jpg"), 1);
    let rows = env.csv("out.csv");
    assert_eq!(urls_of(&rows), [url.clone(), url.clone(), url]);
    assert!(rows[1..].iter().all(|r| r[3] == rows[1][3]));
    assert_eq!(env.s3.image_puts().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_bytes_at_two_urls_are_uploaded_once() {
    let env = Env::new().await;
    let bytes = images::jpeg(120, 90, 10);
    let a = env.http.route("/a.jpg", Reply::jpeg(bytes.clone()));
    let b = env.http.route("/copy-of-a.jpg", Reply::jpeg(bytes));
    let input = env.input("in.csv", &[a, b]);
    let run = env.run_input(&input, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env.s3.image_puts().len(), 1, "{:?}", env.s3.requests());
    let rows = env.csv("out.csv");
    assert_eq!(rows[1][3], rows[2][3], "both rows name the same object");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_without_journal_or_work_dir_redoes_only_what_the_bucket_lacks() {
    let env = Env::new().await;
    let urls: Vec<String> = (0..6)
        .map(|i| {
            env.http.route(
                &format!("/{i}.jpg"),
                Reply::jpeg(images::jpeg(48, 32, 100 + i)),
            )
        })
        .collect();
    let input = env.input("in.csv", &urls);
    let first = env.run_input(&input, &[]).await;
    assert_eq!(first.code, 0, "{first:?}");
    let first_rows = env.csv("out.csv");
    assert_eq!(env.http.total_hits(), 6);
    let index_puts = env
        .s3
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.key.contains(".batchimg/url-index/"))
        .count();
    assert_eq!(index_puts, 1, "six URLs, one URL index object");

    std::fs::remove_dir_all(env.path(".batchimg")).unwrap();
    env.s3.clear_log();
    let second = env.run_input(&input, &[]).await;
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(env.http.total_hits(), 6, "no image was downloaded again");
    assert_eq!(
        env.s3.all_puts(),
        0,
        "nothing was uploaded again: {:?}",
        env.s3.requests()
    );
    let second_rows = env.csv("out.csv");
    let s3urls = |rows: &[Vec<String>]| {
        rows.iter()
            .map(|r| (r[0].clone(), r[3].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(s3urls(&first_rows), s3urls(&second_rows));
    assert!(
        second.stderr.contains("6 already in the bucket"),
        "{second:?}"
    );
    // One listing proved the objects are there: no HEAD per URL.
    let heads = env
        .s3
        .requests()
        .iter()
        .filter(|r| r.method == "HEAD" && !r.key.is_empty())
        .count();
    assert_eq!(heads, 0, "{:?}", env.s3.requests());

    // An object deleted since: its row is done again, and only that one.
    let gone = env.s3.image_keys()[0].clone();
    env.s3.delete_object(&gone);
    std::fs::remove_dir_all(env.path(".batchimg")).unwrap();
    env.s3.clear_log();
    let third = env.run_input(&input, &[]).await;
    assert_eq!(third.code, 0, "{third:?}");
    assert_eq!(env.http.total_hits(), 7, "one image downloaded again");
    assert_eq!(env.s3.image_puts(), std::slice::from_ref(&gone));
    assert!(env.s3.object(&gone).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_failed_csv_is_a_valid_input_that_retries_exactly_those_rows() {
    let env = Env::new().await;
    let ok = env
        .http
        .route("/ok.jpg", Reply::jpeg(images::jpeg(32, 32, 11)));
    let later = env.http.route("/later.jpg", Reply::Status(500));
    let never = env.http.route("/never.jpg", Reply::Status(404));
    let input = env.input("in.csv", &[ok.clone(), later.clone(), never.clone()]);
    let first = env.run_input(&input, &["--attempts", "1"]).await;
    assert_eq!(first.code, 1, "{first:?}");
    assert_eq!(
        urls_of(&env.csv("failed.csv")),
        [later.clone(), never.clone()]
    );

    // The server recovers; feed failed.csv straight back in.
    env.http
        .route("/later.jpg", Reply::jpeg(images::jpeg(32, 32, 12)));
    std::fs::rename(env.path("failed.csv"), env.path("retry.csv")).unwrap();
    let before = env.http.hits("/ok.jpg");
    let second = env
        .run_into("retry.csv", "out2.csv", &["--output-failed", "failed2.csv"])
        .await;
    assert_eq!(second.code, 1, "{second:?}");
    assert_eq!(
        env.http.hits("/ok.jpg"),
        before,
        "the row that succeeded is not retried"
    );
    assert_eq!(urls_of(&env.csv("out2.csv")), [later]);
    assert_eq!(urls_of(&env.csv("failed2.csv")), [never]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_outage_stops_the_run_clearly_and_loses_nothing() {
    let env = Env::new().await;
    let urls: Vec<String> = (0..12)
        .map(|i| {
            env.http.route(
                &format!("/{i}.jpg"),
                Reply::jpeg(images::jpeg(40, 40, 200 + i)),
            )
        })
        .collect();
    let input = env.input("in.csv", &urls);
    env.s3.set_objects_down(true);
    let run = env
        .run_input(&input, &["--attempts", "2", "--uploads", "2"])
        .await;
    assert_eq!(
        run.code, 3,
        "the store is down: a fatal error, not 12 row failures: {run:?}"
    );
    assert!(run.stderr.contains("object store is failing"), "{run:?}");
    assert!(run.stderr.contains("batchimg resume"), "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    assert_eq!(
        env.csv("failed.csv").len(),
        1,
        "no row failed for the outage"
    );

    // The service is back: a plain resume completes every row, in input order.
    env.s3.set_objects_down(false);
    let resumed = env.run(&["resume"]).await;
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(urls_of(&env.csv("out.csv")), urls);
    assert_eq!(env.csv("failed.csv").len(), 1, "only the header");
    assert_eq!(env.s3.image_keys().len(), 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_host_does_not_starve_the_others() {
    let env = Env::new().await;
    // Same server, two host names: 127.0.0.1 is slow, localhost is fast.
    let slow: Vec<String> = (0..8)
        .map(|i| {
            let reply = Reply::Delay(
                std::time::Duration::from_millis(700),
                Box::new(Reply::jpeg(images::jpeg(16, 16, 300 + i))),
            );
            env.http.route(&format!("/slow/{i}.jpg"), reply)
        })
        .collect();
    let fast: Vec<String> = (0..4)
        .map(|i| {
            env.http
                .route(
                    &format!("/fast/{i}.jpg"),
                    Reply::jpeg(images::jpeg(16, 16, 400 + i)),
                )
                .replace("127.0.0.1", "localhost")
        })
        .collect();
    let input = env.input("in.csv", &[slow.clone(), fast.clone()].concat());
    let run = env
        .run_input(&input, &["--downloads", "4", "--per-host", "2"])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let finished: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains(" uploaded "))
        .collect();
    let first_four = finished[..4].join("\n");
    assert!(
        fast.iter().all(|u| first_four.contains(u.as_str())),
        "the fast host's rows finish first:\n{first_four}"
    );
}
