//! Running unattended: failure reports, truthful status, and the conventions
//! of a well-behaved command-line tool (broken pipes, umask, NO_COLOR, human
//! sizes and durations).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::{Env, RUN, Reply, images, status_json};

/// An environment whose input has `failing` URLs answering 404 (the first
/// with credentials in it) and `good` valid JPEGs.
async fn env_with(failing: usize, good: usize) -> Env {
    let env = Env::new().await;
    let mut urls = Vec::new();
    for i in 0..good {
        urls.push(env.http.route(
            &format!("/ok{i}.jpg"),
            Reply::jpeg(images::jpeg(24, 16, i as u64)),
        ));
    }
    for i in 0..failing {
        let url = env.http.route(&format!("/gone{i}.jpg"), Reply::Status(404));
        urls.push(if i == 0 {
            url.replacen("http://", "http://alice:s3cret@", 1)
        } else {
            url
        });
    }
    env.input("in.csv", &urls);
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn status_failures_lists_every_failed_row_in_each_format() {
    let env = env_with(30, 2).await;
    let run = env.run(&RUN).await;
    assert_eq!(run.code, 1, "{run:?}");
    let summary = run
        .stderr
        .lines()
        .find(|l| l.contains("summary:"))
        .unwrap_or_else(|| panic!("no summary: {run:?}"));
    assert!(summary.contains("32 rows:"), "{summary}");
    assert!(summary.contains("(http-status: 30)"), "{summary}");

    let json = env.run(&["status", "--failures", "--json"]).await;
    assert_eq!(json.code, 0, "{json:?}");
    let rows: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(rows.len(), 30, "{json:?}");
    let mut numbers: Vec<u64> = rows.iter().map(|r| r["row"].as_u64().unwrap()).collect();
    numbers.dedup();
    assert_eq!(
        numbers,
        (2..32).collect::<Vec<u64>>(),
        "input order, every row"
    );
    for r in &rows {
        assert_eq!(r["reason"], "http-status", "{r}");
        assert!(r["message"].as_str().unwrap().contains("404"), "{r}");
        assert!(r["url"].as_str().unwrap().contains("/gone"), "{r}");
    }
    assert!(
        !json.stdout.contains("s3cret"),
        "the password leaked: {json:?}"
    );

    let csv = env.run(&["status", "--failures", "--csv"]).await;
    assert_eq!(csv.code, 0, "{csv:?}");
    let records: Vec<csv::StringRecord> = csv::Reader::from_reader(csv.stdout.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 30, "{csv:?}");
    assert_eq!(&records[0][2], "http-status");
    assert!(
        csv.stdout.starts_with("row,url,reason,message\n"),
        "{csv:?}"
    );

    let text = env.run(&["status", "--failures"]).await;
    assert_eq!(text.stdout.lines().count(), 30, "{text:?}");
    assert!(!text.stdout.contains("s3cret"));

    // The summary lists 20 and points at --failures for the rest.
    let summary = env.run(&["status"]).await;
    assert!(
        summary
            .stdout
            .contains("… and 10 more: `batchimg status --failures`"),
        "{summary:?}"
    );
    assert!(!summary.stdout.contains("s3cret"), "{summary:?}");
    env.s3.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_says_finished_or_stopped_with_when_and_never_running_without_a_process() {
    let env = env_with(0, 2).await;
    // A dry run records the rows and exits: stopped, not running.
    let dry = env.run(&[&RUN[..], &["--dry-run"]].concat()).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    let json = status_json(&env).await;
    assert_eq!(json["state"], "stopped", "{json}");
    assert!(json["last_change_ms"].as_u64().unwrap() > 0, "{json}");
    let text = env.run(&["status"]).await;
    assert!(
        text.stdout.contains("stopped before the end (last change ")
            && text.stdout.contains(" ago)"),
        "{text:?}"
    );

    let resumed = env.run(&["resume"]).await;
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let json = status_json(&env).await;
    assert_eq!(json["state"], "finished", "{json}");
    assert!(json["finished_ms"].as_u64().is_some(), "{json}");
    let text = env.run(&["status"]).await;
    assert!(text.stdout.contains("state    finished "), "{text:?}");
    assert!(
        text.stdout.contains("(2 rows, 0 repeated URLs)"),
        "{text:?}"
    );
    env.s3.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_status_quietly_with_success() {
    let env = env_with(3, 1).await;
    assert_eq!(env.run(&RUN).await.code, 1);

    // As users type it.
    let head = env
        .run_with(
            env.command_via(&["sh", "-c", r#""$0" "$@" | head -1"#]),
            &["status"],
        )
        .await;
    assert_eq!(head.code, 0, "{head:?}");
    assert_eq!(head.stdout.lines().count(), 1, "{head:?}");
    assert!(!head.stderr.contains("panicked"), "{head:?}");

    // Deterministic: the reader is gone before batchimg writes a byte, so
    // every write meets a broken pipe.
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["status", "--failures"],
        &["status", "--failures", "--json"],
        &["status", "--failures", "--csv"],
    ] {
        let closed = env
            .run_with(
                env.command_via(&[
                    "sh",
                    "-c",
                    r#"{ sleep 0.5; "$0" "$@"; echo "batchimg exit $?" >&2; } | true"#,
                ]),
                args,
            )
            .await;
        assert!(
            closed.stderr.contains("batchimg exit 0"),
            "{args:?}: {closed:?}"
        );
        assert!(!closed.stderr.contains("panicked"), "{args:?}: {closed:?}");
        assert!(!closed.stderr.contains("error"), "{args:?}: {closed:?}");
    }
    env.s3.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn output_csvs_honour_the_umask() {
    let env = env_with(1, 1).await;
    let run = env
        .run_with(
            env.command_via(&["sh", "-c", r#"umask 022; exec "$0" "$@""#]),
            &RUN,
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    for name in ["out.csv", "failed.csv"] {
        let mode = std::fs::metadata(env.path(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "{name} is {mode:o}");
    }
    env.s3.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sizes_and_durations_take_units_and_a_bad_one_is_one_line_exit_2() {
    let env = Env::new().await;
    let small = env
        .http
        .route("/small.jpg", Reply::jpeg(images::jpeg(16, 16, 1)));
    let big_body = images::jpeg(256, 256, 2);
    assert!(big_body.len() > 2048, "the big image must pass 2KiB");
    let big = env.http.route("/big.jpg", Reply::jpeg(big_body));
    env.input("in.csv", &[small, big]);
    let human = [
        "--download-timeout",
        "2m",
        "--convert-timeout",
        "90s",
        "--retry-delay",
        "0ms",
        "--max-retry-delay",
        "1s",
        "--stop-grace",
        "5s",
        "--memory-budget",
        "256MiB",
    ];
    // 2KiB is 2048 bytes, not 2: the small image passes, the big one does not.
    let run = env
        .run(&[&RUN[..], &human, &["--max-download-bytes", "2KiB"]].concat())
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    let failures = env.run(&["status", "--failures", "--json"]).await;
    let rows: Vec<serde_json::Value> = failures
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{failures:?}");
    assert_eq!(rows[0]["reason"], "too-large");
    assert!(rows[0]["url"].as_str().unwrap().ends_with("/big.jpg"));

    // 50MiB and the old bare forms (bytes, seconds, milliseconds) are accepted.
    let fresh = [
        "--fresh",
        "--max-download-bytes",
        "50MiB",
        "--download-timeout",
        "120",
        "--retry-delay-ms",
        "0",
    ];
    let run = env.run(&[&RUN[..], &fresh].concat()).await;
    assert_eq!(run.code, 0, "{run:?}");

    for (flag, value) in [
        ("--max-download-bytes", "50XB"),
        ("--download-timeout", "2 minutes please"),
    ] {
        let bad = env
            .run(&[&RUN[..], &["--fresh", flag, value]].concat())
            .await;
        assert_eq!(bad.code, 2, "{bad:?}");
        let lines: Vec<&str> = bad.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{bad:?}");
        assert!(
            lines[0].contains(flag) && lines[0].contains(value),
            "{bad:?}"
        );
    }
    env.s3.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn version_and_completions() {
    let env = Env::new().await;
    let version = env.run(&["--version"]).await;
    assert_eq!(version.code, 0, "{version:?}");
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{version:?}"
    );
    assert!(version.stdout.contains("(commit "), "{version:?}");
    assert!(version.stdout.contains("ImageMagick 7"), "{version:?}");
    assert!(version.stdout.contains("libjpeg-turbo"), "{version:?}");
    for shell in ["bash", "zsh", "fish"] {
        let script = env.run(&["completions", shell]).await;
        assert_eq!(script.code, 0, "{script:?}");
        assert!(script.stdout.contains("max-download-bytes"), "{shell}");
    }
    env.s3.stop().await;
}

/// A batchimg run in a tmux pane: what the terminal shows, with its colour
/// attributes as escape codes (`capture-pane -e`).
async fn run_on_a_terminal(env: &Env, extra_env: &[(&str, &str)], args: &[&str]) -> String {
    let cmd = env.command();
    let mut script = String::from("#!/bin/sh\n");
    for (k, v) in cmd.as_std().get_envs() {
        if let Some(v) = v {
            script.push_str(&format!(
                "export {}='{}'\n",
                k.to_string_lossy(),
                v.to_string_lossy()
            ));
        }
    }
    // The test default RUST_LOG=debug is fine; TERM must name a colour terminal.
    script.push_str("export TERM=xterm-256color\n");
    for (k, v) in extra_env {
        script.push_str(&format!("export {k}='{v}'\n"));
    }
    script.push_str(&format!("cd '{}'\n", env.dir.path().display()));
    script.push_str(&format!("'{}'", env!("CARGO_BIN_EXE_batchimg")));
    for a in args {
        script.push_str(&format!(" '{a}'"));
    }
    script.push_str("\necho $? > tty-exit\nsleep 60\n");
    let path = env.path("tty.sh");
    std::fs::write(&path, script).unwrap();
    std::fs::remove_file(env.path("tty-exit")).ok();
    // A server per call: one being killed cannot take the next session.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let socket = format!("batchimg-test-{}-{n}", std::process::id());
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .expect("tmux is installed (scripts/setup.sh)")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-x",
        "250",
        "-y",
        "60",
        "sh",
        path.to_str().unwrap(),
    ]);
    assert!(started.status.success(), "{started:?}");
    let done = env.path("tty-exit");
    for _ in 0..600 {
        if std::fs::read_to_string(&done).is_ok_and(|s| s.ends_with('\n')) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let screen = tmux(&["capture-pane", "-p", "-e", "-J", "-S", "-"]);
    tmux(&["kill-server"]);
    let code = std::fs::read_to_string(&done).expect("the run ended within a minute");
    let screen = String::from_utf8_lossy(&screen.stdout).into_owned();
    assert_eq!(code.trim(), "0", "{screen}");
    screen
}

#[tokio::test(flavor = "multi_thread")]
async fn no_color_leaves_a_terminal_free_of_escape_codes() {
    let env = env_with(0, 1).await;
    // On a terminal, log lines are coloured by default: the capture sees it.
    let coloured = run_on_a_terminal(&env, &[], &RUN).await;
    assert!(coloured.contains("summary:"), "{coloured}");
    assert!(
        coloured.contains('\x1b'),
        "no colour by default? {coloured}"
    );

    let plain = run_on_a_terminal(
        &env,
        &[("NO_COLOR", "1")],
        &[&RUN[..], &["--fresh"]].concat(),
    )
    .await;
    assert!(plain.contains("summary:"), "{plain}");
    assert!(
        !plain.contains('\x1b'),
        "escape codes with NO_COLOR: {plain:?}"
    );

    let never = run_on_a_terminal(
        &env,
        &[],
        &[&RUN[..], &["--fresh", "--color", "never"]].concat(),
    )
    .await;
    assert!(
        never.contains("summary:") && !never.contains('\x1b'),
        "{never:?}"
    );
    env.s3.stop().await;
}
