//! The JPEG engines end to end: the lossless engine's objects are the
//! sources' own luma (checked with libjpeg-turbo's djpeg), the two engines
//! never share a key, a rerun with the same engine uploads nothing, and
//! formats other than JPEG do not depend on the engine.

use std::collections::HashSet;
use std::process::Command;

use crate::support::{Env, RUN, Reply, images};

fn djpeg(args: &[&str], jpeg: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jpg");
    std::fs::write(&path, jpeg).unwrap();
    let out = Command::new("djpeg")
        .args(args)
        .arg("-pnm")
        .arg(&path)
        .output()
        .expect("djpeg (libjpeg-turbo-progs, installed by scripts/setup.sh)");
    assert!(out.status.success());
    out.stdout
}

fn objects_by_url(env: &Env) -> Vec<(String, Vec<u8>)> {
    env.csv("out.csv")
        .into_iter()
        .skip(1)
        .map(|r| {
            let key = env.key_of_s3url(&r[3]);
            (r[0].clone(), env.s3.object(&key).unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn lossless_objects_are_the_sources_luma_and_the_engines_never_share_a_key() {
    let env = Env::new().await;
    let sources: Vec<Vec<u8>> = (0..6)
        .map(|i| images::jpeg(300 + i * 7, 200 + i * 3, 40 + i as u64))
        .collect();
    let png = images::encode(30, 20, &images::rgb_pixels(30, 20, 3), "RGB", "PNG");
    let mut urls: Vec<String> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            env.http
                .route(&format!("/j/{i}.jpg"), Reply::jpeg(s.clone()))
        })
        .collect();
    urls.push(env.http.route("/p.png", Reply::png(png)));
    env.input("in.csv", &urls);

    let first = env.run(&RUN).await;
    assert_eq!(first.code, 0, "{first:?}");
    let lossless = objects_by_url(&env);
    for (i, source) in sources.iter().enumerate() {
        let (url, object) = &lossless[i];
        assert_eq!(url, &urls[i]);
        assert_eq!(
            djpeg(&[], object),
            djpeg(&["-grayscale"], source),
            "{url}: the object is the source's luma, bit for bit"
        );
    }
    let lossless_keys: HashSet<String> = env.s3.image_keys().into_iter().collect();

    // The same input again: every object is there, nothing is uploaded.
    env.s3.clear_log();
    let rerun = env.run(&[&RUN[..], &["--fresh"]].concat()).await;
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert!(env.s3.image_puts().is_empty(), "{:?}", env.s3.image_puts());

    // ImageMagick's engine: other keys for the JPEGs, the same for the PNG.
    let im = env
        .run(&[&RUN[..], &["--fresh", "--jpeg-engine", "imagemagick"]].concat())
        .await;
    assert_eq!(im.code, 0, "{im:?}");
    let puts: HashSet<String> = env.s3.image_puts().into_iter().collect();
    assert_eq!(
        puts.len(),
        sources.len(),
        "one new object per JPEG, none for the PNG"
    );
    assert!(puts.is_disjoint(&lossless_keys));
    let by_im = objects_by_url(&env);
    assert_eq!(by_im[6].1, lossless[6].1, "the PNG's object is the same");
    assert_ne!(
        djpeg(&[], &by_im[0].1),
        djpeg(&["-grayscale"], &sources[0]),
        "ImageMagick's Rec. 709 gray is not the JPEG's own luma"
    );
}
