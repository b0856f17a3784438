//! Sharded runs on one bucket, their merge, and s3:// inputs and outputs.

use std::collections::HashSet;

use crate::support::{Env, Reply, images};

/// Distinct images (so shards never race on one key) and a few failures.
fn populate(env: &Env, n: usize) -> Vec<String> {
    let mut urls: Vec<String> = (0..n)
        .map(|i| {
            let reply = if i % 40 == 3 {
                Reply::Status(404)
            } else {
                Reply::jpeg(images::jpeg(32, 24, 5_000 + i as u64))
            };
            env.http.route(&format!("/s/{i}.jpg"), reply)
        })
        .collect();
    urls.push(urls[10].clone());
    urls
}

fn rows(env: &Env, name: &str) -> Vec<(String, String)> {
    env.csv(name)
        .into_iter()
        .skip(1)
        .map(|r| {
            let url = r[0].replace(&env.http.url(""), "");
            let key = r.get(3).map(|s| env.key_of_s3url(s)).unwrap_or_default();
            (url, key)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn four_shards_at_once_merge_into_the_single_process_output() {
    let single = Env::new().await;
    let urls = populate(&single, 200);
    single.input("in.csv", &urls);
    let run = single.run_input(&single.path("in.csv"), &[]).await;
    assert_eq!(run.code, 1, "{run:?}");

    let env = Env::new().await;
    let urls = populate(&env, 200);
    env.input("in.csv", &urls);
    let mut children = Vec::new();
    for k in 0..4 {
        let mut cmd = env.command();
        cmd.args([
            "run",
            "--input",
            "in.csv",
            "--output",
            "out-{shard}.csv",
            "--output-failed",
            "failed-{shard}.csv",
        ]);
        cmd.args(["--shard-count", "4"])
            .env("JOB_COMPLETION_INDEX", k.to_string());
        children.push(cmd.spawn().unwrap());
    }
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Each URL is in exactly one shard's files.
    let mut seen = HashSet::new();
    for k in 0..4 {
        for (url, _) in rows(&env, &format!("out-{k}.csv"))
            .into_iter()
            .chain(rows(&env, &format!("failed-{k}.csv")))
        {
            assert!(
                seen.insert(url.clone()) || url == "/s/10.jpg",
                "{url} in two shards"
            );
        }
    }
    assert_eq!(seen.len(), 200);

    let merged = env
        .run(&[
            "merge",
            "--input",
            "in.csv",
            "--shard-count",
            "4",
            "--from",
            "out-{shard}.csv",
            "--from-failed",
            "failed-{shard}.csv",
            "--output",
            "merged.csv",
            "--output-failed",
            "merged-failed.csv",
        ])
        .await;
    assert_eq!(merged.code, 1, "some rows failed: {merged:?}");
    assert_eq!(rows(&env, "merged.csv"), rows(&single, "out.csv"));
    assert_eq!(rows(&env, "merged-failed.csv"), rows(&single, "failed.csv"));

    let mut puts = env.s3.image_puts();
    let total = puts.len();
    puts.sort();
    puts.dedup();
    assert_eq!(total, puts.len(), "an object was PUT twice");
    assert_eq!(env.s3.image_keys(), single.s3.image_keys());
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_refuses_files_that_do_not_match_the_input() {
    let env = Env::new().await;
    std::fs::write(env.path("in.csv"), "url\nhttp://a/1.jpg\n").unwrap();
    std::fs::write(
        env.path("out-0.csv"),
        "url,input,output,s3url\nhttp://other/x.jpg,,,s3\n",
    )
    .unwrap();
    let run = env
        .run(&[
            "merge",
            "--input",
            "in.csv",
            "--shard-count",
            "1",
            "--from",
            "out-{shard}.csv",
            "--output",
            "m.csv",
        ])
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("not in the input"), "{run:?}");
    assert!(!env.path("m.csv").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_input_and_outputs_need_no_local_files() {
    let env = Env::new().await;
    let urls = populate(&env, 12);
    let mut text = String::from("url\n");
    for u in &urls {
        text.push_str(u);
        text.push('\n');
    }
    let bucket_dir = env.s3.root.path().join(&env.s3.bucket);
    std::fs::create_dir_all(bucket_dir.join("jobs")).unwrap();
    std::fs::write(bucket_dir.join("jobs/in.csv"), text).unwrap();
    let b = &env.s3.bucket;
    let run = env
        .run_into(
            &format!("s3://{b}/jobs/in.csv"),
            &format!("s3://{b}/jobs/out.csv"),
            &["--output-failed", &format!("s3://{b}/jobs/failed.csv")],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    let out = String::from_utf8(env.s3.object("jobs/out.csv").expect("out.csv uploaded")).unwrap();
    assert!(out.starts_with("url,input,output,s3url\n"), "{out}");
    assert_eq!(
        out.lines().count(),
        1 + 12,
        "12 good rows (one repeated): {out}"
    );
    let failed = String::from_utf8(env.s3.object("jobs/failed.csv").unwrap()).unwrap();
    assert_eq!(failed.lines().count(), 2, "{failed}");

    let missing = env
        .run_into(&format!("s3://{b}/jobs/nope.csv"), "x.csv", &["--fresh"])
        .await;
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("does not exist"), "{missing:?}");
}
