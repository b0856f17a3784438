//! The first vertical slice: URL → download → grayscale → S3 → CSV.

use crate::support::{Env, Reply, images};

#[tokio::test(flavor = "multi_thread")]
async fn a_colour_jpeg_becomes_a_grayscale_object_named_in_the_csv() {
    let env = Env::new().await;
    let source = images::jpeg(320, 200, 1);
    assert!(
        !images::inspect(&source).gray_pixels,
        "the source must be colour"
    );
    let url = env.http.route("/photo.jpg", Reply::jpeg(source));
    let input = env.input("in.csv", std::slice::from_ref(&url));

    let run = env.run_input(&input, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");

    let rows = env.csv("out.csv");
    assert_eq!(rows[0], ["url", "input", "output", "s3url"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = &rows[1];
    assert_eq!(row[0], url);
    assert!(
        std::path::Path::new(&row[1]).is_file(),
        "input file {}",
        row[1]
    );
    assert!(
        std::path::Path::new(&row[2]).is_file(),
        "output file {}",
        row[2]
    );

    let key = env.key_of_s3url(&row[3]);
    assert!(key.ends_with(".jpg"), "{key}");
    let object = env.s3.object(&key).expect("the object is in the bucket");
    let seen = images::inspect(&object);
    assert_eq!(seen.format, "JPEG");
    assert_eq!((seen.width, seen.height), (320, 200));
    assert!(seen.gray_pixels, "{seen:?}");
    assert_eq!(
        std::fs::read(&row[2]).unwrap(),
        object,
        "the local output is what was uploaded"
    );
    env.s3.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_png_with_alpha_stays_a_png_with_the_same_alpha() {
    let env = Env::new().await;
    let source = images::png_with_alpha(64, 32, 2);
    let url = env.http.route("/badge.png", Reply::png(source.clone()));
    let input = env.input("in.csv", &[url]);
    let run = env.run_input(&input, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let rows = env.csv("out.csv");
    let key = env.key_of_s3url(&rows[1][3]);
    assert!(key.ends_with(".png"), "{key}");
    let object = env.s3.object(&key).unwrap();
    let seen = images::inspect(&object);
    assert_eq!(
        (seen.format.as_str(), seen.frames, seen.depth),
        ("PNG", 1, 8)
    );
    assert!(seen.gray_pixels && seen.has_alpha, "{seen:?}");
    assert_eq!(images::alpha_row(&object), images::alpha_row(&source));
}
