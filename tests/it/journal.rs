//! The journal: resume after any interruption, `status`, signals, and the
//! crash test (kill -9 at random moments, resume, compare with a clean run).

use std::time::Duration;

use crate::support::{Env, RUN, Reply, Run, images, signal, wait_for};

/// Serves `n` distinct small JPEGs, each after `delay`, plus some bad rows;
/// returns the input URLs (with a repeated URL and a shared-content pair).
fn populate(env: &Env, n: usize, delay: Duration) -> Vec<String> {
    let mut urls = Vec::new();
    let shared = images::jpeg(40, 30, 9_999);
    for i in 0..n {
        let reply = match i % 25 {
            7 => Reply::Status(404),
            13 => Reply::Ok {
                content_type: "image/jpeg",
                body: bytes::Bytes::from_static(b"<html>not an image</html>"),
            },
            19 => Reply::jpeg(shared.clone()),
            _ => Reply::jpeg(images::jpeg(48, 32, i as u64)),
        };
        urls.push(env.http.route(
            &format!("/img/{i}.jpg"),
            Reply::Delay(delay, Box::new(reply)),
        ));
        if i % 50 == 10 {
            urls.push(urls[i / 2].clone());
        }
    }
    urls
}

fn url_and_s3url(env: &Env, name: &str) -> Vec<(String, String)> {
    env.csv(name)
        .into_iter()
        .skip(1)
        .map(|r| (r[0].clone(), r[3].clone()))
        .collect()
}

/// Replaces the store-specific part of an s3url, to compare runs on two servers.
fn keys(env: &Env, rows: Vec<(String, String)>) -> Vec<(String, String)> {
    rows.into_iter()
        .map(|(u, s)| (u, env.key_of_s3url(&s)))
        .collect()
}

async fn spawn(env: &Env, args: &[&str]) -> tokio::process::Child {
    let mut cmd = env.command();
    cmd.args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd.spawn().unwrap()
}

fn journal_exists(env: &Env) -> bool {
    env.path(".batchimg/journal.redb").exists()
}

/// Kills batchimg with SIGKILL `rounds` times at random moments, resuming each time.
async fn crash_and_resume(rounds: usize, rows: usize, extra: &[&str]) {
    let delay = Duration::from_millis(100);
    // The reference: one uninterrupted run on its own servers.
    let clean = Env::new().await;
    let urls = populate(&clean, rows, delay);
    clean.input("in.csv", &urls);
    let reference = clean.run(&[&RUN[..], extra].concat()).await;
    assert_eq!(
        reference.code, 1,
        "some rows fail on purpose: {reference:?}"
    );

    let env = Env::new().await;
    let urls2 = populate(&env, rows, delay);
    assert_eq!(urls2.len(), urls.len());
    env.input("in.csv", &urls2);
    let mut rng = fastrand::Rng::with_seed(42);
    let mut kills = 0;
    while kills < rounds {
        let mut args: Vec<&str> = if journal_exists(&env) {
            vec!["resume"]
        } else {
            [&RUN[..], extra].concat()
        };
        args.extend(["--downloads", "4"]);
        let mut child = spawn(&env, &args).await;
        let wait = Duration::from_millis(rng.u64(30..250));
        match tokio::time::timeout(wait, child.wait()).await {
            Ok(status) => {
                panic!("the run ended ({status:?}) before {rounds} kills; slow the server down")
            }
            Err(_) => {
                child.start_kill().unwrap();
                child.wait().await.unwrap();
                kills += 1;
            }
        }
    }
    let last: Run = if journal_exists(&env) {
        env.run(&["resume"]).await
    } else {
        env.run(&RUN).await
    };
    assert_eq!(last.code, 1, "{last:?}");

    // Same rows, same order, same objects as the clean run.
    let got = keys(&env, url_and_s3url(&env, "out.csv"));
    let want = keys(&clean, url_and_s3url(&clean, "out.csv"));
    let strip = |rows: Vec<(String, String)>, e: &Env| -> Vec<(String, String)> {
        rows.into_iter()
            .map(|(u, k)| (u.replace(&e.http.url(""), ""), k))
            .collect()
    };
    assert_eq!(strip(got, &env), strip(want, &clean), "after {kills} kills");
    let failed: Vec<String> = env
        .csv("failed.csv")
        .into_iter()
        .skip(1)
        .map(|r| r[0].replace(&env.http.url(""), ""))
        .collect();
    let failed_want: Vec<String> = clean
        .csv("failed.csv")
        .into_iter()
        .skip(1)
        .map(|r| r[0].replace(&clean.http.url(""), ""))
        .collect();
    assert_eq!(failed, failed_want);

    // No image was uploaded twice, whatever the kills interrupted.
    let mut puts = env.s3.image_puts();
    let total = puts.len();
    puts.sort();
    puts.dedup();
    assert_eq!(
        total,
        puts.len(),
        "an object was PUT twice after {kills} kills"
    );
    assert_eq!(env.s3.image_keys(), clean.s3.image_keys());
    eprintln!(
        "crash test: {kills} kills, {total} image PUTs, {} rows",
        urls.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_short_kill_9_and_resume_loses_and_repeats_nothing() {
    let rounds = std::env::var("BATCHIMG_CRASH_ROUNDS").map_or(6, |v| v.parse().unwrap());
    let rows = std::env::var("BATCHIMG_CRASH_ROWS").map_or(80, |v| v.parse().unwrap());
    crash_and_resume(rounds, rows, &[]).await;
}

/// With --delete-local nothing is written to the work directory: a kill loses
/// the bytes in memory, and resume must download them again, never upload twice.
#[tokio::test(flavor = "multi_thread")]
async fn crash_with_delete_local_loses_and_repeats_nothing() {
    crash_and_resume(4, 60, &["--delete-local"]).await;
}

/// A transform (resize to WebP) is recorded with the run: resume continues
/// it, and no object is uploaded twice or under another transform's key.
#[tokio::test(flavor = "multi_thread")]
async fn crash_with_a_transform_loses_and_repeats_nothing() {
    crash_and_resume(4, 60, &["--resize", "64x", "--format", "webp"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_refuses_an_unfinished_journal_and_points_at_resume() {
    let env = Env::new().await;
    let urls = populate(&env, 30, Duration::from_millis(300));
    env.input("in.csv", &urls);
    let mut child = spawn(
        &env,
        &[
            "run",
            "--input",
            "in.csv",
            "--output",
            "out.csv",
            "--downloads",
            "2",
        ],
    )
    .await;
    wait_for(|| journal_exists(&env)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    let again = env
        .run(&["run", "--input", "in.csv", "--output", "out.csv"])
        .await;
    assert_eq!(again.code, 2, "{again:?}");
    assert!(again.stderr.contains("batchimg resume"), "{again:?}");
    assert!(again.stderr.contains("--fresh"), "{again:?}");

    let status = env.run(&["status"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.contains("stopped before the end"),
        "{status:?}"
    );

    let fresh = env.run_into("in.csv", "out.csv", &["--fresh"]).await;
    assert_eq!(fresh.code, 1, "{fresh:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_a_running_run_read_only_and_its_failures() {
    let env = Env::new().await;
    let urls = populate(&env, 40, Duration::from_millis(150));
    env.input("in.csv", &urls);
    let child = spawn(
        &env,
        &[
            "run",
            "--input",
            "in.csv",
            "--output",
            "out.csv",
            "--downloads",
            "2",
        ],
    )
    .await;
    wait_for(|| journal_exists(&env)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let during = env.run(&["status", "--json"]).await;
    assert_eq!(during.code, 0, "{during:?}");
    let json: serde_json::Value = serde_json::from_str(&during.stdout).unwrap();
    assert_eq!(json["state"], "running", "{json}");
    assert_eq!(json["rows"], urls.len());
    let counts = json["counts"].as_object().unwrap();
    let sum: u64 = counts.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(
        sum,
        json["urls"].as_u64().unwrap(),
        "every distinct URL is in one state: {json}"
    );

    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let after = env.run(&["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(&after.stdout).unwrap();
    assert_eq!(json["state"], "finished");
    assert_eq!(json["percent"], 100.0);
    assert_eq!(json["failed_by_reason"]["http-status"], 2);
    assert_eq!(json["failed_by_reason"]["not-an-image"], 2);
    let first = &json["failures"][0];
    assert_eq!(first["reason"], "http-status");
    assert!(
        first["message"].as_str().unwrap().contains("404"),
        "{first}"
    );

    let text = env.run(&["status"]).await;
    assert!(
        text.stdout.contains("finished") && text.stdout.contains("not-an-image"),
        "{text:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly_with_130_and_resume_finishes_the_job() {
    let env = Env::new().await;
    let urls = populate(&env, 40, Duration::from_millis(100));
    env.input("in.csv", &urls);
    let mut cmd = env.command();
    cmd.args(RUN).args(["--downloads", "2"]);
    let child = cmd.spawn().unwrap();
    let pid = child.id().unwrap() as i32;
    wait_for(|| journal_exists(&env)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(pid, "TERM");
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("batchimg resume"), "{stderr}");
    // The CSVs hold what was done so far.
    let partial = env.csv("out.csv").len() - 1;
    assert!(partial < urls.len(), "stopped early: {partial}");

    let resumed = env.run(&["resume"]).await;
    assert_eq!(resumed.code, 1, "{resumed:?}");
    let done = env.csv("out.csv").len() - 1 + env.csv("failed.csv").len() - 1;
    assert_eq!(done, urls.len(), "every row is in one of the two files");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_at_once() {
    let env = Env::new().await;
    let urls = populate(&env, 10, Duration::from_secs(30));
    env.input("in.csv", &urls);
    let mut cmd = env.command();
    cmd.args(RUN);
    let child = cmd.spawn().unwrap();
    let pid = child.id().unwrap() as i32;
    wait_for(|| journal_exists(&env)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(pid, "INT");
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(pid, "INT");
    let out = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .expect("the second Ctrl-C does not wait for 30 s downloads")
        .unwrap();
    assert_eq!(out.status.code(), Some(130));
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_records_the_rows_and_resume_does_the_work() {
    let env = Env::new().await;
    let urls = populate(&env, 10, Duration::ZERO);
    env.input("in.csv", &urls);
    let dry = env.run_into("in.csv", "out.csv", &["--dry-run"]).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert_eq!(env.http.total_hits(), 0);
    let status = env.run(&["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["counts"]["pending"], 10);
    let resumed = env.run(&["resume"]).await;
    assert_eq!(resumed.code, 1, "{resumed:?}");
    assert_eq!(
        env.csv("out.csv").len() - 1,
        9,
        "10 rows, one of them a 404"
    );
}
