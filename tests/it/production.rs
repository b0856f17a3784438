//! Production reality: shutdown within a bound, outages and full disks that
//! fail no row, one process per state directory, credentials, and the input
//! and staging files a killed run leaves.

use std::time::{Duration, Instant};

use crate::support::{
    Env, RUN, Reply, assert_no_key_put_twice, images, signal, status_json, wait_for,
};

fn jpegs(env: &Env, n: usize, delay: Duration) -> Vec<String> {
    (0..n)
        .map(|i| {
            let reply = Reply::jpeg(images::jpeg(48, 32, 700 + i as u64));
            env.http
                .route(&format!("/p/{i}.jpg"), Reply::Delay(delay, Box::new(reply)))
        })
        .collect()
}

/// Serves the same images again, at once.
fn unstall(env: &Env, n: usize) {
    for i in 0..n {
        let reply = Reply::jpeg(images::jpeg(48, 32, 700 + i as u64));
        env.http.route(&format!("/p/{i}.jpg"), reply);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_within_the_grace_even_with_slow_hosts_and_resume_completes() {
    let env = Env::new().await;
    let urls = jpegs(&env, 30, Duration::from_secs(30));
    env.input("in.csv", &urls);
    let mut cmd = env.command();
    cmd.args(RUN);
    let child = cmd.spawn().unwrap();
    let pid = child.id().unwrap() as i32;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let signalled = Instant::now();
    signal(pid, "TERM");
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("exits well before a pod's SIGKILL")
        .unwrap();
    let took = signalled.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(took < Duration::from_secs(12), "took {took:?}: {stderr}");
    assert!(stderr.contains("batchimg resume"), "{stderr}");
    assert_eq!(
        env.csv("out.csv").len(),
        1,
        "nothing finished, the header only"
    );

    unstall(&env, urls.len());
    let resumed = env.run(&["resume"]).await;
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(env.csv("out.csv").len() - 1, urls.len());
    assert_no_key_put_twice(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_outage_mid_run_fails_no_row_and_plain_resume_completes() {
    let env = Env::new().await;
    let urls = jpegs(&env, 40, Duration::from_millis(150));
    env.input("in.csv", &urls);
    let mut cmd = env.command();
    cmd.args(RUN).args(["--downloads", "4", "--attempts", "2"]);
    let child = cmd.spawn().unwrap();
    wait_for(|| env.s3.image_puts().len() >= 3).await;
    env.s3.set_objects_down(true);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the run stops")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("object store is failing"), "{stderr}");

    let status = status_json(&env).await;
    assert_eq!(status["counts"]["failed"], 0, "{status}");
    assert!(
        status["counts"]["uploaded"].as_u64().unwrap() < 40,
        "{status}"
    );

    env.s3.set_objects_down(false);
    let resumed = env.run(&["resume"]).await;
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(env.csv("out.csv").len() - 1, urls.len());
    assert_no_key_put_twice(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_failed_takes_only_the_reasons_named() {
    let env = Env::new().await;
    let missing = env.http.route("/gone.jpg", Reply::Status(404));
    let flaky = env.http.route("/flaky.jpg", Reply::Status(503));
    env.input("in.csv", &[missing, flaky]);
    let first = env.run(&RUN).await;
    assert_eq!(first.code, 1, "{first:?}");
    env.http
        .route("/flaky.jpg", Reply::jpeg(images::jpeg(20, 20, 5)));
    env.http
        .route("/gone.jpg", Reply::jpeg(images::jpeg(20, 20, 6)));
    let bad = env.run(&["resume", "--retry-failed", "nonsense"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr.contains("http-status"),
        "names the reasons: {bad:?}"
    );

    // 503 after every attempt is `http-status` too; a 404 as well. Retry
    // network failures only: neither is taken up.
    let none = env.run(&["resume", "--retry-failed", "network"]).await;
    assert_eq!(none.code, 1, "{none:?}");
    assert_eq!(env.http.hits("/gone.jpg"), 1);
    let all = env.run(&["resume", "--retry-failed", "http-status"]).await;
    assert_eq!(all.code, 0, "{all:?}");
    assert_eq!(env.csv("out.csv").len() - 1, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_runs_started_together_exactly_one_works() {
    let env = Env::new().await;
    // Slow enough that the two processes always overlap.
    let urls = jpegs(&env, 2, Duration::from_millis(800));
    env.input("in.csv", &urls);
    for round in 0..20 {
        let state = format!("state-{round}");
        let start = |out: &str| {
            let mut cmd = env.command();
            cmd.args(["run", "--input", "in.csv", "--output", out])
                .args(["--state-dir", &state]);
            cmd.spawn().unwrap()
        };
        let (a, b) = (start("a.csv"), start("b.csv"));
        let (a, b) = tokio::join!(a.wait_with_output(), b.wait_with_output());
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut codes = [a.status.code().unwrap(), b.status.code().unwrap()];
        codes.sort();
        let loser = if a.status.code() == Some(2) { &a } else { &b };
        let text = String::from_utf8_lossy(&loser.stderr);
        assert_eq!(codes, [0, 2], "round {round}: {text}");
        assert!(
            text.contains("another batchimg process"),
            "round {round}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_credentials_is_one_clear_line_and_exit_2() {
    let env = Env::new().await;
    let urls = jpegs(&env, 1, Duration::ZERO);
    env.input("in.csv", &urls);
    for profile in [None, Some("no-such-profile")] {
        let mut cmd = env.command();
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("RUST_LOG")
            .env("AWS_CONFIG_FILE", env.path("no-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", env.path("no-credentials"));
        if let Some(p) = profile {
            cmd.env("AWS_PROFILE", p);
        }
        let started = Instant::now();
        let run = env.run_with(cmd, &RUN).await;
        assert_eq!(run.code, 2, "{profile:?}: {run:?}");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert!(lines.len() <= 2, "{profile:?}: {run:?}");
        assert!(run.stderr.contains("credentials"), "{profile:?}: {run:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "no retries");
        assert_eq!(env.http.total_hits(), 0, "nothing downloaded");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unterminated_quote_is_a_line_numbered_input_error() {
    let env = Env::new().await;
    std::fs::write(
        env.path("in.csv"),
        "url\n\"http://127.0.0.1:1/a.jpg\nhttp://127.0.0.1:1/b.jpg\n",
    )
    .unwrap();
    let run = env.run(&RUN).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("line 2"), "{run:?}");
    assert!(!env.path("out.csv").exists());
    assert!(!env.path(".batchimg/journal.redb").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn staging_files_of_killed_writes_are_removed_on_the_next_start() {
    let env = Env::new().await;
    let urls = jpegs(&env, 1, Duration::ZERO);
    env.input("in.csv", &urls);
    // A pid that is not running, and this test's own, which is.
    let dead = env.path(".batchimg-4000000-abc123.csv.tmp");
    let live = env.path(&format!(".batchimg-{}-def456.csv.tmp", std::process::id()));
    std::fs::write(&dead, "url\n").unwrap();
    std::fs::write(&live, "url\n").unwrap();
    let run = env.run(&RUN).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!dead.exists(), "left by a dead process: removed");
    assert!(live.exists(), "another live process's file is left alone");
}

/// A tmpfs of `size` at `dir`, or `None` (with a message) where mounting is not allowed.
fn small_disk(dir: &std::path::Path, size: &str) -> Option<()> {
    std::fs::create_dir_all(dir).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
    }
    ok.then_some(())
}

fn unmount(dir: &std::path::Path) {
    let _ = std::process::Command::new("umount").arg(dir).status();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_work_disk_stops_with_exit_3_fails_no_row_and_resume_completes() {
    let env = Env::new().await;
    let work = env.path("work");
    if small_disk(&work, "300k").is_none() {
        return;
    }
    let urls: Vec<String> = (0..12)
        .map(|i| {
            env.http.route(
                &format!("/big/{i}.png"),
                Reply::png(images::encode(
                    160,
                    160,
                    &images::rgb_pixels(160, 160, 40 + i),
                    "RGB",
                    "PNG",
                )),
            )
        })
        .collect();
    env.input("in.csv", &urls);
    let work_arg = work.to_str().unwrap();
    let run = env
        .run(&[&RUN[..], &["--work-dir", work_arg]].concat())
        .await;
    let status = status_json(&env).await;
    let remount = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&work)
        .status();
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("disk is full"), "{run:?}");
    assert_eq!(status["counts"]["failed"], 0, "{status}");
    assert!(remount.is_ok_and(|s| s.success()));

    let resumed = env.run(&["resume"]).await;
    unmount(&work);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(env.csv("out.csv").len() - 1, urls.len());
    assert_no_key_put_twice(&env);
}
