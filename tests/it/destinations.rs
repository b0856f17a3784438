//! Where real accounts keep images and what their buckets demand: private
//! `s3://` sources, and object options (storage class, encryption, ACL,
//! headers, metadata, tags) read back from a server that keeps them (moto).

use crate::support::moto::MotoServer;
use crate::support::{Env, RUN, Reply, assert_no_key_put_twice, images};

const OPTIONS: [&str; 21] = [
    "--storage-class",
    "STANDARD_IA",
    "--sse",
    "aws:kms",
    "--sse-kms-key-id",
    "alias/batchimg-test",
    "--bucket-key-enabled",
    "--acl",
    "bucket-owner-full-control",
    "--cache-control",
    "max-age=31536000",
    "--content-disposition",
    "inline",
    "--metadata",
    "team=data,origin=batchimg",
    "--tagging",
    "project=photos&stage=gray",
    "--request-payer",
    "requester",
    "--expected-bucket-owner",
    "123456789012",
];

#[tokio::test(flavor = "multi_thread")]
async fn every_object_option_is_stored_and_other_options_make_other_objects() {
    let env = Env::new().await;
    let moto = MotoServer::start().await;
    let urls: Vec<String> = (0..3)
        .map(|i| {
            env.http.route(
                &format!("/{i}.jpg"),
                Reply::jpeg(images::jpeg(64 + i, 48, i as u64)),
            )
        })
        .collect();
    env.input("in.csv", &urls);
    let run = |extra: Vec<&'static str>| {
        let mut cmd = env.command();
        moto.configure(&mut cmd);
        let mut args = RUN.to_vec();
        args.extend(extra);
        let env = &env;
        async move { env.run_with(cmd, &args).await }
    };

    let out = run(OPTIONS.to_vec()).await;
    assert_eq!(out.code, 0, "{out:?}");
    let keys = moto.image_keys().await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    let client = moto.client().await;
    for key in &keys {
        let head = moto.head(key).await;
        assert_eq!(
            head.storage_class().map(|c| c.as_str()),
            Some("STANDARD_IA")
        );
        assert_eq!(
            head.server_side_encryption().map(|s| s.as_str()),
            Some("aws:kms")
        );
        assert!(
            head.ssekms_key_id()
                .is_some_and(|k| k.contains("alias/batchimg-test")),
            "{:?}",
            head.ssekms_key_id()
        );
        assert_eq!(head.bucket_key_enabled(), Some(true));
        assert_eq!(head.cache_control(), Some("max-age=31536000"));
        assert_eq!(head.content_disposition(), Some("inline"));
        let meta = head.metadata().unwrap();
        assert_eq!(meta.get("team").map(String::as_str), Some("data"));
        assert_eq!(meta.get("origin").map(String::as_str), Some("batchimg"));
        let tags = client
            .get_object_tagging()
            .bucket(&moto.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let mut tags: Vec<(String, String)> = tags
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        tags.sort();
        assert_eq!(
            tags,
            [
                ("project".to_string(), "photos".to_string()),
                ("stage".to_string(), "gray".to_string())
            ]
        );
        let acl = client
            .get_object_acl()
            .bucket(&moto.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        assert!(
            acl.grants()
                .iter()
                .any(|g| g.permission().map(|p| p.as_str()) == Some("FULL_CONTROL")),
            "{acl:?}"
        );
    }

    // The same options again: nothing new in the bucket, no download.
    let hits = env.http.total_hits();
    let out = run([&["--fresh"][..], &OPTIONS[..]].concat()).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(moto.image_keys().await, keys);
    assert_eq!(
        env.http.total_hits(),
        hits,
        "the URL index saves every download"
    );

    // Another storage class: other objects, stored with it; the old ones stay.
    let out = run(vec!["--fresh", "--storage-class", "GLACIER_IR"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let all = moto.image_keys().await;
    assert_eq!(all.len(), 6, "{all:?}");
    let new: Vec<&String> = all.iter().filter(|k| !keys.contains(k)).collect();
    for key in new {
        let head = moto.head(key).await;
        assert_eq!(head.storage_class().map(|c| c.as_str()), Some("GLACIER_IR"));
        assert_eq!(head.server_side_encryption().map(|s| s.as_str()), None);
    }

    // A value S3 would refuse is one clear error before any work.
    for (flag, value, want) in [
        ("--storage-class", "FAST", "not a storage class"),
        ("--acl", "everyone", "not a canned ACL"),
        ("--metadata", "novalue", "expected KEY=VALUE"),
        ("--sse-kms-key-id", "k", "needs --sse aws:kms"),
    ] {
        let out = run(vec!["--fresh", flag, value]).await;
        assert_eq!(out.code, 2, "{flag} {value}: {out:?}");
        assert!(out.stderr.contains(want), "{flag} {value}: {out:?}");
        assert!(!out.stderr.contains("panicked"), "{out:?}");
    }
    moto.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn private_s3_sources_are_read_through_the_sdk_and_never_downloaded_twice() {
    let env = Env::new().await;
    // A second bucket on the same server, readable only with credentials:
    // s3s-fs checks every request's signature.
    let src = env.s3.root.path().join("photos-src");
    std::fs::create_dir_all(src.join("2026/11")).unwrap();
    let jpeg = images::jpeg(80, 60, 7);
    std::fs::write(src.join("2026/11/one photo.jpg"), &jpeg).unwrap();
    std::fs::write(src.join("two.png"), images::png_with_alpha(40, 30, 3)).unwrap();
    std::fs::write(src.join("notes.txt"), b"not an image at all, only words").unwrap();
    let http = env
        .http
        .route("/web.jpg", Reply::jpeg(images::jpeg(50, 40, 9)));
    let rows = [
        "s3://photos-src/2026/11/one photo.jpg".to_string(),
        "s3://photos-src/two.png".to_string(),
        "s3://photos-src/missing.jpg".to_string(),
        "s3://photos-src/notes.txt".to_string(),
        "s3://Not_A_Bucket/x.jpg".to_string(),
        http,
    ];
    env.input("in.csv", &rows);
    let out = env.run(&RUN).await;
    assert_eq!(out.code, 1, "{out:?}");
    let done = env.csv("out.csv");
    let succeeded: Vec<&str> = done[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(succeeded, [&rows[0], &rows[1], &rows[5]]);
    for r in &done[1..] {
        let object = env.s3.object(&env.key_of_s3url(&r[3])).unwrap();
        assert!(images::inspect(&object).gray_pixels, "{}", r[0]);
    }
    let failed: Vec<String> = env
        .csv("failed.csv")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(failed, ["url", &rows[2], &rows[3], &rows[4]]);
    assert!(out.stderr.contains("HTTP 404"), "{out:?}");
    assert!(out.stderr.contains("not an image"), "{out:?}");
    assert!(out.stderr.contains("not a bucket name"), "{out:?}");

    // Without the journal, the URL index still knows the S3 rows.
    let gets = || {
        env.s3
            .requests()
            .iter()
            .filter(|r| {
                r.method == "GET" && (r.key == "2026/11/one photo.jpg" || r.key == "two.png")
            })
            .count()
    };
    let before = gets();
    assert_eq!(before, 2);
    std::fs::remove_dir_all(env.path(".batchimg")).unwrap();
    let out = env.run(&RUN).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(gets(), before, "an S3 source was downloaded twice");
    let s3urls = |rows: &[Vec<String>]| rows.iter().map(|r| r[3].clone()).collect::<Vec<_>>();
    assert_eq!(s3urls(&env.csv("out.csv")), s3urls(&done));
}

fn read_tsv(path: &std::path::Path) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(b'\t')
        .from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warehouse_export_keeps_its_columns_through_the_failed_csv() {
    let env = Env::new().await;
    let good = env
        .http
        .route("/a1.jpg", Reply::jpeg(images::jpeg(40, 30, 1)));
    let later = env.http.route("/a2.jpg", Reply::Status(404));
    let tsv = format!(
        "id\turl\tcaption\na1\t{good}\tfirst, with a comma\na2\t{later}\t\"second \"\"quoted\"\"\"\n"
    );
    std::fs::write(env.path("in.tsv"), tsv).unwrap();
    let flags = [
        "--url-column",
        "url",
        "--keep-columns",
        "--delimiter",
        "tab",
    ];
    let run = |input: &'static str, extra: &'static [&'static str]| {
        let mut args = vec![
            "run",
            "--input",
            input,
            "--output",
            "out.tsv",
            "--output-failed",
            "failed.tsv",
        ];
        args.extend_from_slice(&flags);
        args.extend_from_slice(extra);
        let env = &env;
        async move { env.run(&args).await }
    };

    // Without the flags, a wider file is the error the specification asks for.
    let out = env
        .run_into("in.tsv", "out.tsv", &["--delimiter", "tab"])
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("exactly one column"), "{out:?}");
    assert!(out.stderr.contains("--url-column"), "{out:?}");

    let out = run("in.tsv", &[]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let done = read_tsv(&env.path("out.tsv"));
    assert_eq!(
        done[0],
        ["url", "input", "output", "s3url", "id", "caption"]
    );
    assert_eq!(done.len(), 2);
    assert_eq!(done[1][0], good);
    assert_eq!(done[1][4..], ["a1", "first, with a comma"]);
    let failed = read_tsv(&env.path("failed.tsv"));
    assert_eq!(
        failed,
        [
            vec!["url", "id", "caption"],
            vec![later.as_str(), "a2", "second \"quoted\""]
        ]
    );

    // The failed file is an input for the same flags.
    env.http
        .route("/a2.jpg", Reply::jpeg(images::jpeg(44, 30, 2)));
    let out = run("failed.tsv", &["--fresh"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let done = read_tsv(&env.path("out.tsv"));
    assert_eq!(done.len(), 2);
    assert_eq!(done[1][0], later);
    assert_eq!(done[1][4..], ["a2", "second \"quoted\""]);

    // A column that is not there is named, with the header's columns.
    let out = env
        .run_into(
            "in.tsv",
            "o.tsv",
            &["--url-column", "link", "--delimiter", "tab"],
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("no column named \"link\""), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_template_names_objects_and_refuses_to_overwrite_other_content() {
    let env = Env::new().await;
    let one = images::jpeg(30, 20, 81);
    let img1 = env.http.route("/one.jpg", Reply::jpeg(one.clone()));
    let img2 = env
        .http
        .route("/two.jpg", Reply::jpeg(images::jpeg(30, 20, 82)));
    let img3 = env
        .http
        .route("/three.jpg", Reply::jpeg(images::jpeg(30, 20, 83)));
    let copy = env.http.route("/copy-of-one.jpg", Reply::jpeg(one));
    let nameless = env
        .http
        .route("/nameless.jpg", Reply::jpeg(images::jpeg(30, 20, 84)));
    // Rows 0 and 2 want one name with different bytes; row 3 has row 0's
    // bytes under a name of its own; row 4 has no id.
    let csv = format!("id,url\na1,{img1}\na2,{img2}\na1,{img3}\na4,{copy}\n,{nameless}\n");
    std::fs::write(env.path("in.csv"), csv).unwrap();
    let args = [
        "run",
        "--input",
        "in.csv",
        "--output",
        "out.csv",
        "--output-failed",
        "failed.csv",
        "--url-column",
        "url",
        "--key-template",
        "{prefix}named/{column:id}.{ext}",
    ];
    let run = env.run(&args).await;
    assert_eq!(run.code, 1, "{run:?}");
    let out = env.csv("out.csv");
    let keys: Vec<String> = out[1..].iter().map(|r| env.key_of_s3url(&r[3])).collect();
    assert_eq!(out.len(), 4, "{out:?}");
    for key in ["named/a2.jpg", "named/a4.jpg", "named/a1.jpg"] {
        assert!(
            keys.contains(&key.to_string()),
            "{key} missing from {keys:?}"
        );
        assert!(env.s3.object(key).is_some(), "{key} not stored");
    }
    // One of the two rows named a1 won; the other failed, and the object
    // holds the winner's output, not the loser's.
    let failed = env.csv("failed.csv");
    assert_eq!(failed.len(), 3, "{failed:?}");
    let losers: Vec<&str> = failed[1..].iter().map(|r| r[0].as_str()).collect();
    assert!(losers.contains(&nameless.as_str()), "{failed:?}");
    assert!(
        losers.contains(&img1.as_str()) ^ losers.contains(&img3.as_str()),
        "exactly one a1 row fails: {failed:?}"
    );
    assert!(run.stderr.contains("object-name"), "{run:?}");
    assert!(
        run.stderr.contains("already holds other content"),
        "{run:?}"
    );
    assert!(run.stderr.contains("column \"id\" is empty"), "{run:?}");
    assert_eq!(
        env.http.hits("/nameless.jpg"),
        0,
        "no download for a row without a name"
    );
    let winner = out[1..]
        .iter()
        .find(|r| r[3].ends_with("named/a1.jpg"))
        .unwrap();
    let stored = env.s3.object("named/a1.jpg").unwrap();
    assert_eq!(
        std::fs::read(&winner[2]).unwrap(),
        stored,
        "a1 holds its row's output"
    );
    assert_no_key_put_twice(&env);

    // Again without the journal (and its files): the names hold this content,
    // so nothing is uploaded again.
    let puts = env.s3.image_puts().len();
    std::fs::remove_dir_all(env.path(".batchimg")).unwrap();
    let again = env.run(&args).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert_eq!(env.s3.image_puts().len(), puts, "{again:?}");
    assert_eq!(env.csv("out.csv").len(), 4);

    // Names that share their last segment (`a/main.jpg`, `b/main.jpg`) hold
    // their own rows' images: work files are named by content, not by name.
    let a = env
        .http
        .route("/a/main.jpg", Reply::jpeg(images::jpeg(30, 20, 85)));
    let b = env
        .http
        .route("/b/main.jpg", Reply::jpeg(images::jpeg(30, 20, 86)));
    env.input("paths.csv", &[a, b]);
    let out = env
        .run_into(
            "paths.csv",
            "paths-out.csv",
            &[
                "--state-dir",
                "paths",
                "--key-template",
                "mirror/{url_path}",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let rows = env.csv("paths-out.csv");
    let (oa, ob) = (
        env.s3.object("mirror/a/main.jpg").unwrap(),
        env.s3.object("mirror/b/main.jpg").unwrap(),
    );
    assert_ne!(oa, ob, "one image stored under both names");
    assert_ne!(rows[1][2], rows[2][2], "one work file for both rows");
    assert_eq!(std::fs::read(&rows[1][2]).unwrap(), oa);
    assert_eq!(std::fs::read(&rows[2][2]).unwrap(), ob);

    // A template that names every row alike, or an unknown placeholder, is
    // a usage error before any work.
    for bad in ["{prefix}all.{ext}", "{column:id}.{extension}"] {
        let mut with = args.to_vec();
        *with.last_mut().unwrap() = bad;
        with.push("--fresh");
        let out = env.run(&with).await;
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(out.stderr.contains("--key-template"), "{out:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_object_urls_are_read_through_the_sdk_when_asked() {
    let env = Env::new().await;
    let src = env.s3.root.path().join("photos-src");
    std::fs::create_dir_all(src.join("raw")).unwrap();
    std::fs::write(src.join("raw/a b.jpg"), images::jpeg(40, 30, 91)).unwrap();
    std::fs::write(src.join("c.jpg"), images::jpeg(40, 30, 92)).unwrap();
    // Neither host is ever connected to: the SDK reads from the configured
    // endpoint (the local server), so the rows succeed without internet.
    let rows = [
        "https://photos-src.s3.us-east-1.amazonaws.com/raw/a%20b.jpg".to_string(),
        "https://s3.us-east-1.amazonaws.com/photos-src/c.jpg".to_string(),
    ];
    env.input("in.csv", &rows);
    let mut args = RUN.to_vec();
    args.push("--sign-s3-urls");
    let out = env.run(&args).await;
    assert_eq!(out.code, 0, "{out:?}");
    let gets: Vec<String> = env
        .s3
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && (r.key == "raw/a b.jpg" || r.key == "c.jpg"))
        .map(|r| r.key)
        .collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(gets.contains(&"raw/a b.jpg".to_string()), "{gets:?}");
    let done = env.csv("out.csv");
    assert_eq!(done[1][0], rows[0]);
    assert_eq!(done[2][0], rows[1]);
}
