//! What a run nobody watches tells the machines around it: progress lines
//! at an interval, JSON to the last line in JSON mode, a Prometheus endpoint
//! during the run, and the final figures as a JSON file.

use std::time::Duration;

use crate::support::{Env, Reply, images};

/// 40 rows on a slow host: 35 images, 5 missing; each answers after 60 ms.
fn slow_rows(env: &Env) -> Vec<String> {
    (0..40)
        .map(|i| {
            let reply = if i % 8 == 7 {
                Reply::Status(404)
            } else {
                Reply::jpeg(images::jpeg(24, 16, 300 + i))
            };
            env.http.route(
                &format!("/slow{i}.jpg"),
                Reply::Delay(Duration::from_millis(60), Box::new(reply)),
            )
        })
        .collect()
}

fn field(line: &serde_json::Value, name: &str) -> u64 {
    line[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwatched_run_logs_progress_lines_with_correct_counts_and_only_json() {
    let env = Env::new().await;
    let rows = slow_rows(&env);
    let input = env.input("in.csv", &rows);
    let mut cmd = env.command();
    // The default log levels (the tests otherwise ask for debug).
    cmd.env_remove("RUST_LOG");
    let run = env
        .run_with(
            cmd,
            &[
                "--log-format",
                "json",
                "--progress-interval",
                "300ms",
                "run",
                "--input",
                input.to_str().unwrap(),
                "--output",
                "out.csv",
                "--output-failed",
                "failed.csv",
                "--per-host",
                "2",
            ],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let progress: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("progress:"))
        })
        .collect();
    assert!(
        progress.len() >= 2,
        "{} progress lines:\n{}",
        progress.len(),
        run.stderr
    );
    let smallest = (0..40)
        .map(|i| images::jpeg(24, 16, 300 + i).len() as u64)
        .min()
        .unwrap();
    let mut last = 0;
    for line in &progress {
        let done = field(line, "done");
        assert_eq!(field(line, "total"), 40, "{line}");
        // The bucket was empty, and each row the journal counts as uploaded
        // was downloaded and uploaded first: the journal's counts and the
        // process's byte counters agree.
        assert_eq!(field(line, "already_present"), 0, "{line}");
        let uploaded = field(line, "uploaded");
        assert!(
            field(line, "downloaded_bytes") >= uploaded * smallest,
            "{line}"
        );
        assert!(uploaded == 0 || field(line, "uploaded_bytes") > 0, "{line}");
        assert!(field(line, "failed") <= 5, "{line}");
        assert!(done >= last, "progress went back: {line}");
        last = done;
    }
    assert!(last < 40, "a progress line came after the end? {last}");
    // Failures are logged one by one, successes are not (without -v or --log-rows).
    let failures = lines.iter().filter(|l| l["message"] == "failed").count();
    assert_eq!(failures, 5, "{}", run.stderr);
    assert!(
        !lines.iter().any(|l| l["message"] == "uploaded"),
        "per-row lines by default:\n{}",
        run.stderr
    );
    // The summary is JSON too, and the last line.
    let summary = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("summary:"))
        })
        .unwrap();
    assert_eq!(field(summary, "uploaded"), 35);
    assert_eq!(field(summary, "failed"), 5);

    // A fatal error is a JSON line as well, with the exit code.
    let mut cmd = env.command();
    cmd.env("S3_BUCKET", "no-such-bucket-here");
    let out = env
        .run_with(
            cmd,
            &[
                "--log-format",
                "json",
                "run",
                "--input",
                input.to_str().unwrap(),
                "--output",
                "o2.csv",
                "--state-dir",
                "other",
            ],
        )
        .await;
    assert_ne!(out.code, 0, "{out:?}");
    let last: serde_json::Value = serde_json::from_str(out.stderr.lines().last().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(last["level"], "ERROR", "{out:?}");
    assert_eq!(last["exit_code"].as_i64(), Some(out.code as i64));
}

/// `GET /metrics` on `port`, the body, once the server answers.
async fn scrape(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.lines()
        .next()?
        .contains(" 200 ")
        .then(|| body.to_string())
}

/// A sample's value, whatever type the parser gave it.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    use prometheus_parse::Value;
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)));
    match found.map(|s| &s.value) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        other => panic!("{name} {label:?}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_endpoint_parses_and_agrees_with_the_summary_file() {
    let env = Env::new().await;
    let mut rows = slow_rows(&env);
    // The last row hangs, then fails: while it hangs, every other row is
    // done, so a scrape then must show the final figures but for that row.
    rows.push(env.http.route(
        "/last.jpg",
        Reply::Delay(Duration::from_secs(3), Box::new(Reply::Status(404))),
    ));
    let input = env.input("in.csv", &rows);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = env.command();
    cmd.args([
        "run",
        "--input",
        input.to_str().unwrap(),
        "--output",
        "out.csv",
        "--per-host",
        "4",
        "--attempts",
        "1",
        "--metrics-addr",
        &addr,
        "--summary-json",
        "summary.json",
    ]);
    let child = cmd.spawn().unwrap();
    let mut during = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Some(text) = scrape(port).await {
            let parsed =
                prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
            let done = sample(&parsed, "batchimg_rows", Some(("state", "uploaded")))
                + sample(&parsed, "batchimg_rows", Some(("state", "failed")));
            if done == 40.0 {
                during = Some(parsed);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = during.expect("no scrape saw 40 rows done while the last one hung");
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["outcome"], "completed");
    assert_eq!(summary["exit_code"], 1);
    assert_eq!(summary["rows"], 41);
    assert_eq!(summary["uploaded"], 35);
    assert_eq!(summary["failed"], 6);
    assert_eq!(summary["failed_by_reason"]["http-status"], 6);
    let f = |name: &str| summary[name].as_f64().unwrap();
    assert_eq!(
        sample(&during, "batchimg_rows", Some(("state", "uploaded"))),
        f("uploaded")
    );
    assert_eq!(
        sample(
            &during,
            "batchimg_rows_failed",
            Some(("class", "http-status"))
        ),
        f("failed") - 1.0,
        "all failures but the hanging row's"
    );
    assert_eq!(
        sample(&during, "batchimg_downloaded_bytes_total", None),
        f("downloaded_bytes")
    );
    assert_eq!(
        sample(&during, "batchimg_uploaded_bytes_total", None),
        f("uploaded_bytes")
    );
    assert!(f("uploaded_bytes") > 0.0 && f("downloaded_bytes") > f("uploaded_bytes") / 10.0);
    assert_eq!(
        sample(
            &during,
            "batchimg_rows_finished_total",
            Some(("outcome", "uploaded"))
        ),
        35.0
    );
    assert_eq!(
        sample(
            &during,
            "batchimg_store_requests_total",
            Some(("kind", "PUT"))
        ),
        35.0,
        "one PUT per image"
    );
    assert_eq!(
        sample(&during, "batchimg_in_flight", Some(("stage", "download"))),
        1.0
    );
    assert!(sample(&during, "batchimg_memory_budget_bytes", None) > 0.0);
    // The histograms came through the parser as histograms.
    assert!(
        during
            .samples
            .iter()
            .any(|s| s.metric == "batchimg_stage_duration_seconds"
                && matches!(s.value, prometheus_parse::Value::Histogram(_)))
    );
}

/// Other programs read `--summary-json`, `status --json` and its failure
/// lines: their fields and what never varies are pinned; values that depend
/// on the machine or the moment are masked.
#[tokio::test(flavor = "multi_thread")]
async fn the_json_reports_are_pinned() {
    let env = Env::new().await;
    let rows = vec![
        env.http
            .route("/a.jpg", Reply::jpeg(images::jpeg(24, 16, 1))),
        env.http
            .route("/b.jpg", Reply::jpeg(images::jpeg(24, 16, 2))),
        env.http.route("/gone.jpg", Reply::Status(404)),
    ];
    let input = env.input("in.csv", &rows);
    let run = env
        .run_input(&input, &["--summary-json", "summary.json"])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("summary.json")).unwrap()).unwrap();
    let volatile = [
        "elapsed_s",
        "rows_per_s",
        "images_per_s",
        "downloaded_bytes",
        "uploaded_bytes",
        "peak_memory_bytes",
        "state_dir",
        "output",
    ];
    insta::assert_json_snapshot!("summary_json", masked(summary, &volatile));
    let status = crate::support::status_json(&env).await;
    let volatile = [
        "state_dir",
        "journal",
        "input",
        "output",
        "output_failed",
        "created_ms",
        "last_change_ms",
        "finished_ms",
        "session_started_ms",
        "rows_per_s",
        "images_per_second",
        "eta_seconds",
        "elapsed_s",
        "url",
        "message",
    ];
    insta::assert_json_snapshot!("status_json", masked(status, &volatile));
    let failures = env.run(&["status", "--failures", "--json"]).await;
    assert_eq!(failures.code, 0, "{failures:?}");
    let lines: Vec<serde_json::Value> = failures
        .stdout
        .lines()
        .map(|l| masked(serde_json::from_str(l).unwrap(), &["url"]))
        .collect();
    insta::assert_json_snapshot!("status_failures_json", lines);
}

/// `value` with the values of the `volatile` keys, wherever they are,
/// replaced by their JSON type.
fn masked(value: serde_json::Value, volatile: &[&str]) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if volatile.contains(&k.as_str()) {
                        Value::String(
                            match v {
                                Value::Null => "[null]",
                                Value::Bool(_) => "[bool]",
                                Value::Number(_) => "[number]",
                                Value::String(_) => "[string]",
                                Value::Array(_) => "[array]",
                                Value::Object(_) => "[object]",
                            }
                            .into(),
                        )
                    } else {
                        masked(v, volatile)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| masked(v, volatile)).collect())
        }
        other => other,
    }
}
