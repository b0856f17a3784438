//! The transform end to end (`--resize`, `--fit`, `--format`, `--quality`,
//! `--keep-color`, `--keep-metadata`): exact sizes for every fit, upright
//! images as ImageMagick's `-auto-orient` makes them, no EXIF unless asked,
//! WebP objects an independent decoder reads, keys that belong to the
//! transform (a rerun does nothing, another size uploads new objects), and
//! bad flags refused before any work.

use std::collections::{HashMap, HashSet};

use magick_rust::MagickWand;

use crate::support::{Env, RUN, Reply, images};

/// Each output row's URL and its object's bytes.
fn objects(env: &Env) -> HashMap<String, (String, Vec<u8>)> {
    env.csv("out.csv")
        .into_iter()
        .skip(1)
        .map(|r| {
            let key = env.key_of_s3url(&r[3]);
            let body = env.s3.object(&key).unwrap();
            (r[0].clone(), (key, body))
        })
        .collect()
}

fn run_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    [&RUN[..], &["--fresh"], extra].concat()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fit_gives_exact_sizes_and_nothing_is_enlarged_by_default() {
    let env = Env::new().await;
    // Landscape, portrait, odd sizes, a PNG, and one smaller than the box.
    let sources: [(&str, Vec<u8>); 5] = [
        ("land.jpg", images::jpeg(640, 480, 1)),
        ("port.jpg", images::jpeg(301, 451, 2)),
        ("odd.jpg", images::jpeg(257, 97, 3)),
        (
            "odd.png",
            images::encode(199, 77, &images::rgb_pixels(199, 77, 4), "RGB", "PNG"),
        ),
        ("small.jpg", images::jpeg(60, 40, 5)),
    ];
    let urls: Vec<String> = sources
        .iter()
        .map(|(name, body)| {
            let reply = if name.ends_with(".png") {
                Reply::png(body.clone())
            } else {
                Reply::jpeg(body.clone())
            };
            env.http.route(&format!("/{name}"), reply)
        })
        .collect();
    env.input("in.csv", &urls);
    // The flags, and the size each source comes out at, in order.
    type Case<'a> = (&'a [&'a str], [(usize, usize); 5]);
    let cases: [Case; 5] = [
        (
            &["--resize", "128x128"],
            [(128, 96), (85, 128), (128, 48), (128, 50), (60, 40)],
        ),
        (
            &["--resize", "128x128", "--fit", "cover"],
            [(128, 128), (128, 128), (128, 97), (128, 77), (60, 40)],
        ),
        (
            &["--resize", "128x128", "--fit", "fill"],
            [(128, 128), (128, 128), (128, 97), (128, 77), (60, 40)],
        ),
        (
            &["--resize", "x64"],
            [(85, 64), (43, 64), (170, 64), (165, 64), (60, 40)],
        ),
        (
            &["--resize", "128x128", "--upscale"],
            [(128, 96), (85, 128), (128, 48), (128, 50), (128, 85)],
        ),
    ];
    for (flags, sizes) in cases {
        let run = env.run(&run_args(flags)).await;
        assert_eq!(run.code, 0, "{flags:?}: {run:?}");
        let got = objects(&env);
        for (url, want) in urls.iter().zip(sizes) {
            let (key, body) = &got[url];
            let seen = images::inspect(body);
            assert_eq!((seen.width, seen.height), want, "{flags:?} {url}");
            assert!(seen.gray_pixels, "{flags:?} {url}: gray by default");
            let ext = if url.ends_with(".png") { "png" } else { "jpg" };
            assert!(key.ends_with(ext), "{key}: the format is kept");
        }
    }
}

/// `jpeg` with an APP1 EXIF block after SOI whose first IFD holds
/// `entries` (tag, type, count, 4-byte value) and whose GPS IFD, if
/// `gps`, holds a latitude reference.
fn with_exif(jpeg: &[u8], orientation: u16, gps: bool) -> Vec<u8> {
    let mut ifd0: Vec<(u16, u16, u32, [u8; 4])> = vec![(
        0x0112,
        3,
        1,
        [orientation as u8, (orientation >> 8) as u8, 0, 0],
    )];
    let entries = 1 + usize::from(gps);
    // Header (8) + count (2) + entries + next-IFD offset (4).
    let gps_at = (8 + 2 + 12 * entries + 4) as u32;
    if gps {
        ifd0.push((0x8825, 4, 1, gps_at.to_le_bytes()));
    }
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&(ifd0.len() as u16).to_le_bytes());
    for (tag, kind, count, value) in ifd0 {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&kind.to_le_bytes());
        tiff.extend_from_slice(&count.to_le_bytes());
        tiff.extend_from_slice(&value);
    }
    tiff.extend_from_slice(&[0; 4]);
    if gps {
        // GPSLatitudeRef = "N".
        tiff.extend_from_slice(&1u16.to_le_bytes());
        tiff.extend_from_slice(&[1, 0, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]);
        tiff.extend_from_slice(&[0; 4]);
    }
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The first frame's pixels as ImageMagick decodes them, upright.
fn upright_rgb(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let wand = MagickWand::new();
    wand.read_image_blob(bytes).unwrap();
    wand.auto_orient();
    let (w, h) = (wand.get_image_width(), wand.get_image_height());
    (w, h, wand.export_image_pixels(0, 0, w, h, "RGB").unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_exif_orientation_gives_the_pixels_of_imagemagicks_auto_orient() {
    let env = Env::new().await;
    // Not a multiple of the 8-pixel block, and no symmetry to hide a wrong turn.
    let plain = images::jpeg(61, 37, 11);
    let sources: Vec<Vec<u8>> = (1..=8).map(|o| with_exif(&plain, o, false)).collect();
    let urls: Vec<String> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            env.http
                .route(&format!("/o{}.jpg", i + 1), Reply::jpeg(s.clone()))
        })
        .collect();
    env.input("in.csv", &urls);
    // Lossless PNG out, colour kept, no resize: the decoded pixels themselves.
    let run = env
        .run(&run_args(&["--keep-color", "--format", "png"]))
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let got = objects(&env);
    for (i, (url, source)) in urls.iter().zip(&sources).enumerate() {
        let (key, body) = &got[url];
        assert!(key.ends_with(".png"), "{key}");
        let (w, h, want) = upright_rgb(source);
        let (gw, gh, pixels) = upright_rgb(body);
        assert_eq!((gw, gh), (w, h), "orientation {}", i + 1);
        // Both are libjpeg-turbo's decode; only rounding may differ.
        let worst = pixels
            .iter()
            .zip(&want)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 2, "orientation {}: off by {worst}", i + 1);
        assert!(
            !body.windows(4).any(|w| w == b"Exif"),
            "orientation {}: no orientation tag left",
            i + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gps_exif_is_dropped_unless_metadata_is_kept() {
    let env = Env::new().await;
    let source = with_exif(&images::jpeg(320, 240, 21), 6, true);
    let url = env.http.route("/gps.jpg", Reply::jpeg(source));
    env.input("in.csv", std::slice::from_ref(&url));
    let run = env.run(&run_args(&["--resize", "100x"])).await;
    assert_eq!(run.code, 0, "{run:?}");
    let (_, body) = &objects(&env)[&url];
    assert!(!body.windows(6).any(|w| w == b"Exif\0\0"), "no EXIF at all");
    let seen = images::inspect(body);
    assert_eq!((seen.width, seen.height), (100, 133), "turned upright");

    // Kept: the EXIF is there, GPS included, with the orientation reset.
    let kept = env
        .run(&run_args(&["--resize", "100x", "--keep-metadata"]))
        .await;
    assert_eq!(kept.code, 0, "{kept:?}");
    let (_, body) = &objects(&env)[&url];
    let at = body
        .windows(6)
        .position(|w| w == b"Exif\0\0")
        .expect("EXIF kept");
    let tiff = &body[at + 6..];
    assert_eq!(&tiff[10..12], &[0x12, 0x01], "the orientation entry");
    assert_eq!(&tiff[18..20], &[1, 0], "orientation 1: already upright");
    assert!(tiff[..80].windows(2).any(|w| w == b"N\0"), "GPS kept");
    let wand = MagickWand::new();
    wand.read_image_blob(body).unwrap();
    assert_eq!(
        (wand.get_image_width(), wand.get_image_height()),
        (100, 133)
    );

    // Kept in WebP (an EXIF chunk) and PNG (eXIf) too, as the same TIFF body.
    // A WebP chunk's size follows its tag; a PNG chunk's comes before it.
    for (format, tag, skip) in [("webp", &b"EXIF"[..], 8), ("png", &b"eXIf"[..], 4)] {
        let run = env
            .run(&run_args(&[
                "--resize",
                "100x",
                "--keep-metadata",
                "--format",
                format,
            ]))
            .await;
        assert_eq!(run.code, 0, "{run:?}");
        let (_, body) = &objects(&env)[&url];
        let at = body.windows(4).position(|w| w == tag).expect(format);
        let exif = &body[at + skip..];
        assert_eq!(&exif[..4], b"II*\0", "{format}: the TIFF body");
        assert_eq!(&exif[18..20], &[1, 0], "{format}: orientation 1");
        assert!(
            exif[..exif.len().min(80)].windows(2).any(|w| w == b"N\0"),
            "{format}: GPS kept"
        );
        let seen = images::inspect(body);
        assert_eq!((seen.width, seen.height), (100, 133), "{format}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn webp_objects_have_their_type_and_extension_and_decode_elsewhere() {
    let env = Env::new().await;
    let jpeg = images::jpeg(400, 300, 31);
    let png = images::png_with_alpha(120, 90, 32);
    // A JPEG with an ICC profile (APP2, one chunk of one): kept in colour.
    let icc: Vec<u8> = (0..=255u8).cycle().take(700).collect();
    let mut app2 = b"ICC_PROFILE\0\x01\x01".to_vec();
    app2.extend_from_slice(&icc);
    let plain = images::jpeg(300, 200, 33);
    let mut profiled = plain[..2].to_vec();
    profiled.extend_from_slice(&[0xFF, 0xE2]);
    profiled.extend_from_slice(&((app2.len() + 2) as u16).to_be_bytes());
    profiled.extend_from_slice(&app2);
    profiled.extend_from_slice(&plain[2..]);
    // A PNG with one, through ImageMagick's decode.
    let mut png_icc = Vec::new();
    let mut info = png::Info::with_size(50, 40);
    info.icc_profile = Some(std::borrow::Cow::Borrowed(&icc[..]));
    info.color_type = png::ColorType::Rgb;
    let mut writer = png::Encoder::with_info(&mut png_icc, info)
        .unwrap()
        .write_header()
        .unwrap();
    writer
        .write_image_data(&images::rgb_pixels(50, 40, 34))
        .unwrap();
    writer.finish().unwrap();
    let urls = vec![
        env.http.route("/a.jpg", Reply::jpeg(jpeg)),
        env.http.route("/b.png", Reply::png(png)),
        env.http.route("/c.jpg", Reply::jpeg(profiled)),
        env.http.route("/d.png", Reply::png(png_icc)),
    ];
    env.input("in.csv", &urls);
    let run = env
        .run(&run_args(&[
            "--resize",
            "200x200",
            "--keep-color",
            "--format",
            "webp",
            "--quality",
            "80",
        ]))
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let got = objects(&env);
    let (key, body) = &got[&urls[0]];
    assert!(key.ends_with(".webp"), "{key}");
    assert_eq!(&body[..4], b"RIFF");
    assert_eq!(&body[8..12], b"WEBP");
    // ImageMagick's WebP coder (libwebp's decoder) reads it.
    let seen = images::inspect(body);
    assert_eq!(
        (seen.format.as_str(), seen.width, seen.height),
        ("WEBP", 200, 150)
    );
    assert!(!seen.gray_pixels, "colour kept");
    let (_, body) = &got[&urls[1]];
    let seen = images::inspect(body);
    assert_eq!((seen.width, seen.height), (120, 90), "not enlarged");
    assert!(seen.has_alpha, "the PNG's alpha is kept in WebP");
    let (_, body) = &got[&urls[2]];
    let at = body
        .windows(4)
        .position(|w| w == b"ICCP")
        .expect("an ICCP chunk");
    assert_eq!(
        &body[at + 8..at + 8 + icc.len()],
        &icc[..],
        "the source's profile"
    );
    assert!(
        !got[&urls[0]].1.windows(4).any(|w| w == b"ICCP"),
        "none without one"
    );
    let types: HashSet<Option<String>> = env
        .s3
        .image_put_requests()
        .iter()
        .map(|r| r.content_type.clone())
        .collect();
    assert_eq!(types, HashSet::from([Some("image/webp".to_string())]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_does_nothing_and_another_size_uploads_new_objects_beside_the_old() {
    let env = Env::new().await;
    let urls: Vec<String> = (0..4)
        .map(|i| {
            env.http.route(
                &format!("/r/{i}.jpg"),
                Reply::jpeg(images::jpeg(300 + i * 11, 200, 50 + i as u64)),
            )
        })
        .collect();
    env.input("in.csv", &urls);
    let gray = env.run(&run_args(&[])).await;
    assert_eq!(gray.code, 0, "{gray:?}");
    let plain: HashSet<String> = env.s3.image_keys().into_iter().collect();
    env.s3.clear_log();

    let first = env.run(&run_args(&["--resize", "128x"])).await;
    assert_eq!(first.code, 0, "{first:?}");
    let small: HashSet<String> = env.s3.image_puts().into_iter().collect();
    assert_eq!(small.len(), 4, "new keys: {small:?}");
    assert!(
        small.is_disjoint(&plain),
        "never the grayscale engine's keys"
    );
    let before: HashMap<String, Vec<u8>> = small
        .iter()
        .map(|k| (k.clone(), env.s3.object(k).unwrap()))
        .collect();

    // The same transform again, the journal discarded: the URL index and
    // the keys answer, so nothing is downloaded or uploaded.
    env.s3.clear_log();
    let hits = env.http.total_hits();
    let rerun = env.run(&run_args(&["--resize", "128x"])).await;
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert_eq!(env.http.total_hits(), hits, "0 GETs");
    assert!(env.s3.image_puts().is_empty(), "0 PUTs");

    // Another size: new objects, and the old ones untouched.
    env.s3.clear_log();
    let other = env.run(&run_args(&["--resize", "64x"])).await;
    assert_eq!(other.code, 0, "{other:?}");
    let bigger: HashSet<String> = env.s3.image_puts().into_iter().collect();
    assert_eq!(bigger.len(), 4);
    assert!(bigger.is_disjoint(&small));
    for (key, body) in before {
        assert_eq!(env.s3.object(&key).unwrap(), body, "{key} left alone");
    }
    for (_, (_, body)) in objects(&env) {
        assert_eq!(images::inspect(&body).width, 64);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_transform_flags_exit_2_and_write_nothing() {
    let env = Env::new().await;
    let url = env
        .http
        .route("/x.jpg", Reply::jpeg(images::jpeg(40, 30, 1)));
    env.input("in.csv", &[url]);
    let cases: [(&[&str], &str); 7] = [
        (&["--resize", "0x0"], "at least 1"),
        (&["--resize", "x"], "give a width, a height or both"),
        (&["--resize", "big"], "expected WxH"),
        (&["--quality", "0"], "--quality"),
        (&["--quality", "101"], "--quality"),
        (&["--format", "gif"], "--format"),
        (&["--fit", "cover"], "--fit needs --resize"),
    ];
    for (flags, says) in cases {
        let run = env.run(&[&RUN[..], flags].concat()).await;
        assert_eq!(run.code, 2, "{flags:?}: {run:?}");
        assert!(run.stderr.contains(says), "{flags:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{flags:?}");
        assert!(!env.path("out.csv").exists(), "{flags:?}");
        assert!(!env.path(".batchimg").exists(), "{flags:?}");
        assert_eq!(env.http.total_hits(), 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn heic_and_avif_are_read_where_the_build_has_the_codec() {
    let env = Env::new().await;
    let pixels = images::rgb_pixels(96, 64, 61);
    let mut urls = Vec::new();
    for coder in ["HEIC", "AVIF"] {
        // The test's own ImageMagick encodes them through libheif, when its
        // build has an encoder; batchimg only decodes.
        let wand = MagickWand::new();
        let made = std::panic::catch_unwind(|| images::encode(96, 64, &pixels, "RGB", coder));
        drop(wand);
        let Ok(body) = made else {
            eprintln!("{coder}: this build's libheif cannot encode it; not tested");
            continue;
        };
        urls.push(env.http.route(
            &format!("/p.{}", coder.to_lowercase()),
            Reply::Ok {
                content_type: "image/heic",
                body: body.into(),
            },
        ));
    }
    if urls.is_empty() {
        return;
    }
    env.input("in.csv", &urls);
    // No transform flag: HEIC and AVIF still take the transform, to JPEG.
    let run = env.run(&run_args(&[])).await;
    assert_eq!(run.code, 0, "{run:?}");
    let got = objects(&env);
    for url in &urls {
        let (key, body) = &got[url];
        assert!(key.ends_with(".jpg"), "{key}");
        let seen = images::inspect(body);
        assert_eq!(
            (seen.format.as_str(), seen.width, seen.height),
            ("JPEG", 96, 64)
        );
        assert!(seen.gray_pixels);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chosen_names_take_the_outputs_size_and_format() {
    let env = Env::new().await;
    let urls = vec![
        env.http
            .route("/a/land.jpg", Reply::jpeg(images::jpeg(640, 480, 71))),
        env.http.route(
            "/a/turned.jpg",
            Reply::jpeg(with_exif(&images::jpeg(640, 480, 72), 6, false)),
        ),
        // Reduced in ImageMagick first (to twice the size), then resampled.
        env.http.route(
            "/a/big.png",
            Reply::png(images::encode(
                900,
                601,
                &images::rgb_pixels(900, 601, 73),
                "RGB",
                "PNG",
            )),
        ),
    ];
    env.input("in.csv", &urls);
    let run = env
        .run(&run_args(&[
            "--resize",
            "128x128",
            "--format",
            "webp",
            "--key-template",
            "t/{url_stem}-{width}x{height}.{format}",
        ]))
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let got = objects(&env);
    assert_eq!(got[&urls[0]].0, "t/land-128x96.webp");
    assert_eq!(got[&urls[1]].0, "t/turned-96x128.webp", "the upright size");
    assert_eq!(got[&urls[2]].0, "t/big-128x85.webp");
    let seen = images::inspect(&got[&urls[2]].1);
    assert_eq!(
        (seen.width, seen.height),
        (128, 85),
        "the size the name says"
    );
    let seen = images::inspect(&got[&urls[1]].1);
    assert_eq!((seen.width, seen.height), (96, 128));
}
