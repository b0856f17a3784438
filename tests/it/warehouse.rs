//! Warehouse-native input and output: Parquet and JSON Lines exports, part
//! files under a prefix, and the per-row manifest, written and read back by
//! DuckDB and pyarrow.

use std::io::Write;
use std::time::Duration;

use crate::support::warehouse::{duckdb, duckdb_one, python};
use crate::support::{Env, Reply, assert_no_key_put_twice, images};

/// An export of `n` rows (id INT64, url, caption with commas and quotes)
/// written by pyarrow; every 20th row's image is missing (404).
fn export(env: &Env, name: &str, n: usize, first_id: i64) -> Vec<(i64, String)> {
    export_slow(env, name, n, first_id, Duration::ZERO)
}

/// Like [`export`], each image answered after `delay`.
fn export_slow(
    env: &Env,
    name: &str,
    n: usize,
    first_id: i64,
    delay: Duration,
) -> Vec<(i64, String)> {
    let mut rows = Vec::new();
    for i in 0..n {
        let id = first_id + i as i64;
        let path = format!("/img/{id}.jpg");
        let url = if i % 20 == 7 {
            env.http.url(&path)
        } else {
            let image = Reply::jpeg(images::jpeg(24, 16, id as u64));
            env.http.route(&path, Reply::Delay(delay, Box::new(image)))
        };
        rows.push((id, url));
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let urls: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let captions: Vec<String> = ids
        .iter()
        .map(|id| format!("photo {id}, \"quoted\", with commas, and a 'quote'"))
        .collect();
    python(
        env.dir.path(),
        &format!(
            "t = pa.table({{'id': pa.array({ids:?}, pa.int64()), 'url': {urls:?}, 'caption': {}}})\n\
             pq.write_table(t, {name:?}, row_group_size=7)",
            serde_json::to_string(&captions).unwrap()
        ),
    );
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parquet_export_round_trips_with_its_types_and_joins_back_in_duckdb() {
    let env = Env::new().await;
    let rows = export(&env, "export.parquet", 40, 1000);
    let dir = env.dir.path();
    let out = env
        .run(&[
            "run",
            "--input",
            "export.parquet",
            "--output",
            "out.parquet",
            "--output-failed",
            "failed.parquet",
            "--manifest",
            "manifest.parquet",
            "--keep-columns",
        ])
        .await;
    assert_eq!(out.code, 1, "{out:?}");

    // Every row of the export is in the manifest, once, joined on the id
    // with no cast, and in input order.
    assert_eq!(
        duckdb_one(
            dir,
            "select count(*), count(distinct m.id), bool_and(e.caption = m.caption), \
             bool_and(e.url = m.url), bool_and(m.row = e.id - 1000) \
             from 'export.parquet' e join 'manifest.parquet' m on e.id = m.id"
        ),
        "40|40|True|True|True"
    );
    for file in ["manifest.parquet", "out.parquet", "failed.parquet"] {
        let types = duckdb_one(
            dir,
            &format!("select typeof(id), typeof(caption) from '{file}' limit 1"),
        );
        assert_eq!(types, "BIGINT|VARCHAR", "{file}");
    }
    let states = duckdb(
        dir,
        "select state, reason, count(*), count(key), count(s3url), min(width), min(bytes_in) > 0, \
         count(source_blake3), min(engine), count(finished_at), min(attempts) \
         from 'manifest.parquet' group by all order by state",
    );
    assert_eq!(
        states,
        [
            "failed|http-status|2|0|0|||0||2|1",
            "uploaded||38|38|38|24|True|38|lossless|38|1"
        ]
    );
    assert_eq!(
        duckdb_one(
            dir,
            "select typeof(finished_at), typeof(row), typeof(reused) from 'manifest.parquet' limit 1"
        ),
        "TIMESTAMP WITH TIME ZONE|BIGINT|BOOLEAN"
    );
    // The output has the successes, in input order, each with its object.
    let out_rows = duckdb(dir, "select id, url from 'out.parquet'");
    let want: Vec<String> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 20 != 7)
        .map(|(_, (id, url))| format!("{id}|{url}"))
        .collect();
    assert_eq!(out_rows, want);
    for s3url in duckdb(dir, "select s3url from 'out.parquet'") {
        assert!(
            env.s3.object(&env.key_of_s3url(&s3url)).is_some(),
            "{s3url}"
        );
    }
    assert_eq!(
        duckdb(dir, "select id from 'failed.parquet'"),
        ["1007", "1027"]
    );
    // `status --manifest` writes the same manifest on demand, as JSON Lines too.
    let status = env.run(&["status", "--manifest", "again.jsonl"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(
        duckdb_one(
            dir,
            "select count(*) from 'manifest.parquet' m join read_json_auto('again.jsonl') j \
             on m.row = j.row and m.state = j.state and m.id = j.id and m.caption = j.caption"
        ),
        "40"
    );

    // The failed file is an input for the same flags: with the images back,
    // its rows succeed and keep their ids.
    for (id, _) in rows.iter().filter(|(id, _)| (id - 1000) % 20 == 7) {
        env.http.route(
            &format!("/img/{id}.jpg"),
            Reply::jpeg(images::jpeg(24, 16, *id as u64)),
        );
    }
    let again = env
        .run(&[
            "run",
            "--input",
            "failed.parquet",
            "--output",
            "out2.parquet",
            "--keep-columns",
            "--state-dir",
            "second",
        ])
        .await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        duckdb(dir, "select id, typeof(id) from 'out2.parquet'"),
        ["1007|BIGINT", "1027|BIGINT"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_prefix_of_part_files_is_read_in_name_order() {
    let env = Env::new().await;
    // Four parts as Spark writes them, with the files it leaves beside.
    let prefix = env.s3.root.path().join(&env.s3.bucket).join("exports/run1");
    std::fs::create_dir_all(&prefix).unwrap();
    let mut all = Vec::new();
    for part in 0..4 {
        let name = format!("part-0000{part}-5f1c.c000.snappy.parquet");
        let rows = export(&env, &name, 5, 100 * (part + 1));
        std::fs::rename(env.path(&name), prefix.join(&name)).unwrap();
        all.extend(rows);
    }
    std::fs::write(prefix.join("_SUCCESS"), b"").unwrap();
    std::fs::write(
        prefix.join(".part-00000-5f1c.c000.snappy.parquet.crc"),
        b"crc",
    )
    .unwrap();
    let input = format!("s3://{}/exports/run1/", env.s3.bucket);
    let out = env
        .run(&[
            "run",
            "--input",
            &input,
            "--output",
            "out.csv",
            "--manifest",
            "manifest.csv",
            "--keep-columns",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let manifest = env.csv("manifest.csv");
    assert_eq!(&manifest[0][..4], ["row", "url", "id", "caption"]);
    let got: Vec<(String, String, String)> = manifest[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    let want: Vec<(String, String, String)> = all
        .iter()
        .enumerate()
        .map(|(i, (id, url))| (i.to_string(), url.clone(), id.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(env.csv("out.csv").len(), 21);
    // A manifest goes to S3 as the other outputs do.
    let to_s3 = format!("s3://{}/reports/manifest.parquet", env.s3.bucket);
    let status = env.run(&["status", "--manifest", &to_s3]).await;
    assert_eq!(status.code, 0, "{status:?}");
    let object = env.s3.object("reports/manifest.parquet").unwrap();
    std::fs::write(env.path("from-s3.parquet"), &object).unwrap();
    assert_eq!(
        duckdb_one(
            env.dir.path(),
            "select count(*), max(row) from 'from-s3.parquet'"
        ),
        "20|19"
    );

    // A prefix with no parts is a clear error.
    let out = env
        .run_into(
            &format!("s3://{}/exports/none/", env.s3.bucket),
            "o.csv",
            &[],
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("holds no part files"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gzipped_json_lines_keep_their_types_and_a_sharded_run_merges_back() {
    let env = Env::new().await;
    let mut text = String::new();
    let mut urls = Vec::new();
    for i in 0..12 {
        let url = env.http.route(
            &format!("/j/{i}.jpg"),
            Reply::jpeg(images::jpeg(20, 20, 500 + i)),
        );
        let line =
            serde_json::json!({"id": i, "url": url, "score": i as f64 / 2.0, "tags": ["a", i]});
        text.push_str(&line.to_string());
        text.push('\n');
        urls.push(url);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(env.path("rows.jsonl.gz"), gz.finish().unwrap()).unwrap();
    for k in 0..2 {
        let shard = format!("{k}/2");
        let out = env
            .run(&[
                "run",
                "--input",
                "rows.jsonl.gz",
                "--output",
                "out-{shard}.parquet",
                "--output-failed",
                "failed-{shard}.jsonl",
                "--manifest",
                "manifest-{shard}.parquet",
                "--keep-columns",
                "--shard",
                &shard,
                "--state-dir",
                "state-{shard}",
            ])
            .await;
        assert_eq!(out.code, 0, "{out:?}");
    }
    let merged = env
        .run(&[
            "merge",
            "--input",
            "rows.jsonl.gz",
            "--shard-count",
            "2",
            "--from",
            "out-{shard}.parquet",
            "--output",
            "out.parquet",
            "--from-manifest",
            "manifest-{shard}.parquet",
            "--manifest",
            "manifest.parquet",
        ])
        .await;
    assert_eq!(merged.code, 0, "{merged:?}");
    let dir = env.dir.path();
    let want: Vec<String> = urls
        .iter()
        .enumerate()
        .map(|(i, u)| format!("{i}|{u}|{:?}|BIGINT|DOUBLE", i as f64 / 2.0))
        .collect();
    assert_eq!(
        duckdb(
            dir,
            "select id, url, score, typeof(id), typeof(score) from 'out.parquet'"
        ),
        want
    );
    assert_eq!(
        duckdb(dir, "select row, id, tags from 'manifest.parquet'"),
        (0..12)
            .map(|i| format!("{i}|{i}|[\"a\",{i}]"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_exports_exit_2_and_write_nothing() {
    let env = Env::new().await;
    let dir = env.dir.path();
    std::fs::write(env.path("bad.parquet"), b"PAR1 this is not parquet at all").unwrap();
    python(
        dir,
        "pq.write_table(pa.table({'url': pa.array([1, 2], pa.int64())}), 'ints.parquet')\n\
         pq.write_table(pa.table({'link': ['http://a/1.jpg']}), 'nourl.parquet')",
    );
    std::fs::write(
        env.path("ints.jsonl"),
        "{\"url\": \"http://127.0.0.1:1/a.jpg\"}\n{\"url\": 42}\n",
    )
    .unwrap();
    let cases = [
        ("bad.parquet", "not a readable Parquet file"),
        (
            "ints.parquet",
            "the URL column \"url\" is Int64; it must hold strings",
        ),
        ("nourl.parquet", "no column named \"url\""),
        (
            "ints.jsonl",
            "line 2: the URL column \"url\" holds a number",
        ),
    ];
    for (input, want) in cases {
        let out = env
            .run(&[
                "run",
                "--input",
                input,
                "--output",
                "out.parquet",
                "--manifest",
                "m.parquet",
            ])
            .await;
        assert_eq!(out.code, 2, "{input}: {out:?}");
        assert!(out.stderr.contains(input), "{input}: {out:?}");
        assert!(out.stderr.contains(want), "{input}: {out:?}");
        assert!(!out.stderr.contains("panicked"), "{out:?}");
        for written in ["out.parquet", "m.parquet", ".batchimg/journal.redb"] {
            assert!(
                !env.path(written).exists(),
                "{input}: {written} was written"
            );
        }
    }
    assert!(env.s3.image_keys().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_and_resume_lose_no_row_and_keep_the_types() {
    let env = Env::new().await;
    // 57 images at 200 ms each, 4 at a time, take nearly 3 s: well past the
    // three rounds' 1.5 s, so every round is killed mid-run.
    let rows = export_slow(&env, "export.parquet", 60, 1, Duration::from_millis(200));
    let run = [
        "run",
        "--input",
        "export.parquet",
        "--output",
        "out.parquet",
        "--output-failed",
        "failed.parquet",
        "--manifest",
        "manifest.parquet",
        "--keep-columns",
        "--downloads",
        "4",
    ];
    let mut kills = 0;
    for round in 0..3 {
        let args: Vec<&str> = if round == 0 {
            run.to_vec()
        } else {
            vec!["resume", "--downloads", "4"]
        };
        let mut child = env
            .command()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if round == 0 {
            // During the run, `status --manifest` writes every row as it stands.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let status = env.run(&["status", "--manifest", "during.parquet"]).await;
            assert_eq!(status.code, 0, "{status:?}");
            let counts = duckdb_one(
                env.dir.path(),
                "select count(*), count(*) filter (where state <> 'uploaded') > 0 \
                 from 'during.parquet'",
            );
            assert_eq!(counts, "60|True");
        }
        if tokio::time::timeout(Duration::from_millis(400), child.wait())
            .await
            .is_err()
        {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
            kills += 1;
        }
    }
    assert!(kills >= 2, "the run ended before it could be killed");
    assert!(!env.path("manifest.parquet").exists());
    let last = env.run(&["resume"]).await;
    assert_eq!(last.code, 1, "{last:?}");
    let dir = env.dir.path();
    assert_eq!(
        duckdb_one(
            dir,
            "select count(*), count(distinct m.row), typeof(any_value(m.id)), \
             count(*) filter (where state = 'uploaded'), count(*) filter (where state = 'failed') \
             from 'export.parquet' e join 'manifest.parquet' m on e.id = m.id and e.caption = m.caption"
        ),
        "60|60|BIGINT|57|3"
    );
    assert_eq!(
        duckdb_one(
            dir,
            "select count(*), typeof(any_value(id)) from 'out.parquet'"
        ),
        "57|BIGINT"
    );
    assert_eq!(
        duckdb_one(dir, "select count(*) from 'failed.parquet'"),
        "3"
    );
    assert_eq!(rows.len(), 60);
    assert_no_key_put_twice(&env);
}
