//! `BENCH_THUMBS=1 make bench`: the transform against libvips and ImageMagick.
//!
//! The photos are real 12-megapixel JPEGs that `scripts/setup-photos.sh`
//! puts in `target/bench-photos`. Two jobs, each in BENCH_ROUNDS rounds in
//! which the three tools run back to back (their order turning each
//! round, so drift favours none):
//! - a 512-px long side, gray, JPEG q85: batchimg (`--resize 512x512`)
//!   end to end, downloading from a loopback HTTP server in this process and
//!   uploading to s3s-fs; `vipsthumbnail -s 512` in one process over every
//!   file with no I/O but the local files (libvips does not convert to gray,
//!   so its job is the colour one, a little cheaper: one pass fewer); and
//!   `magick mogrify -thumbnail 512x512 -colorspace gray` in one process;
//! - the same size in colour, WebP q80.
//!
//! CPU per image comes from `wait4` on each tool's process, which counts
//! every thread it ran and nothing else. The quality check compares each
//! gray thumbnail with a reference from the full decode
//! (`magick in.jpg -auto-orient -colorspace gray -filter Lanczos -resize
//! 512x512 -quality 95`) by ImageMagick's SSIM.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use super::{Network, S3, Variant, reap, run_batchimg, serve, tv};

struct Job {
    name: &'static str,
    batchimg: &'static [&'static str],
    vips_output: &'static str,
    magick: &'static [&'static str],
    /// The extension the magick outputs get.
    magick_format: &'static str,
    /// What batchimg's CPU per image may be at most, as a share of vipsthumbnail's.
    target: f64,
}

const JOBS: [Job; 2] = [
    Job {
        name: "512 px, gray, JPEG q85",
        batchimg: &["--resize", "512x512"],
        vips_output: "%s.jpg[Q=85,strip]",
        magick: &[
            "-thumbnail",
            "512x512",
            "-colorspace",
            "gray",
            "-quality",
            "85",
        ],
        magick_format: "jpg",
        target: 1.0,
    },
    Job {
        name: "512 px, colour, WebP q80",
        batchimg: &[
            "--resize",
            "512x512",
            "--keep-color",
            "--format",
            "webp",
            "--quality",
            "80",
        ],
        vips_output: "%s.webp[Q=80,strip]",
        magick: &["-thumbnail", "512x512", "-quality", "80"],
        magick_format: "webp",
        target: 1.2,
    },
];

/// The photos, sorted by name.
fn photos(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("target/bench-photos");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    assert!(
        files.len() >= 40,
        "{} has {} photos; run scripts/setup-photos.sh (make bench does)",
        dir.display(),
        files.len()
    );
    files
}

/// Runs `cmd` to its end: its CPU (every thread) and exit code.
fn measured(cmd: &mut Command) -> (Duration, i32) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (make setup installs it)"));
    let (code, usage) = reap(&mut child);
    (tv(usage.ru_utime) + tv(usage.ru_stime), code)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn bench(root: &Path, runtime: &tokio::runtime::Runtime, rounds: usize) {
    let files = photos(root);
    let count = files.len();
    let images: Vec<Arc<Vec<u8>>> = files
        .iter()
        .map(|f| Arc::new(std::fs::read(f).unwrap()))
        .collect();
    let bytes: usize = images.iter().map(|i| i.len()).sum();
    println!(
        "{count} photos from {}, {:.1} MB average; {rounds} rounds",
        root.join("target/bench-photos").display(),
        bytes as f64 / count as f64 / 1e6
    );
    let http = runtime.block_on(serve(images, Arc::new(Network::default())));
    let s3 = S3::start(root, runtime, None);
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("in.csv");
    let mut text = String::from("url\n");
    for i in 0..count {
        text.push_str(&format!("http://{http}/{i}.jpg\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let per_image = |d: Duration| d.as_secs_f64() * 1000.0 / count as f64;
    let mut gray_bucket = None;
    let mut rss = 0.0f64;
    let mut scores = Vec::new();
    println!();
    println!(
        "| job | round | batchimg CPU per image | vipsthumbnail | magick -thumbnail | batchimg / vips | magick / batchimg |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    for (j, job) in JOBS.iter().enumerate() {
        let (mut ours, mut vips, mut magick) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=rounds {
            let bucket = format!("thumbs{j}r{round}");
            std::fs::create_dir_all(s3.data.path().join(&bucket)).unwrap();
            let out = work.path().join(format!("out{j}r{round}"));
            std::fs::create_dir_all(out.join("vips")).unwrap();
            std::fs::create_dir_all(out.join("magick")).unwrap();
            let variant = Variant {
                binary: Variant::a(root).binary,
                args: job.batchimg.iter().map(|s| s.to_string()).collect(),
            };
            let mut run_ours = || {
                let m = run_batchimg(&variant, work.path(), &csv, &s3, &bucket, &bucket, false);
                assert_eq!(m.code, 0, "{}: batchimg failed", job.name);
                rss = rss.max(m.max_rss_mb);
                m.cpu
            };
            let run_vips = || {
                let (cpu, code) = measured(
                    Command::new("vipsthumbnail")
                        .args(["-s", "512", "-o"])
                        .arg(out.join("vips").join(job.vips_output))
                        .args(&files),
                );
                assert_eq!(code, 0, "vipsthumbnail failed");
                cpu
            };
            let run_magick = || {
                let (cpu, code) = measured(
                    Command::new("magick")
                        .arg("mogrify")
                        .arg("-path")
                        .arg(out.join("magick"))
                        .args(["-format", job.magick_format])
                        .args(job.magick)
                        .args(&files),
                );
                assert_eq!(code, 0, "magick mogrify failed");
                cpu
            };
            let (a, b, c) = match round % 3 {
                1 => {
                    let a = run_ours();
                    (a, run_vips(), run_magick())
                }
                2 => {
                    let b = run_vips();
                    let c = run_magick();
                    (run_ours(), b, c)
                }
                _ => {
                    let c = run_magick();
                    let a = run_ours();
                    (a, run_vips(), c)
                }
            };
            let (a, b, c) = (per_image(a), per_image(b), per_image(c));
            println!(
                "| {} | {round} | {a:.2} ms | {b:.2} ms | {c:.2} ms | {:.2} | {:.1}x |",
                job.name,
                a / b,
                c / a
            );
            ours.push(a);
            vips.push(b);
            magick.push(c);
            if j == 0 {
                gray_bucket = Some(bucket);
            }
        }
        // The gray job's last objects, while its out.csv is the latest.
        if let Some(bucket) = gray_bucket.take() {
            scores = ssim(root, &files, work.path(), &s3.data.path().join(bucket));
        }
        let ratios: Vec<f64> = ours.iter().zip(&vips).map(|(a, b)| a / b).collect();
        let against_magick: Vec<f64> = magick.iter().zip(&ours).map(|(c, a)| c / a).collect();
        summary.push((
            job,
            median(ours),
            median(vips),
            median(magick),
            median(ratios),
            median(against_magick),
        ));
    }
    println!();
    println!(
        "| job (median of {rounds} rounds) | batchimg | vipsthumbnail | magick | batchimg / vips (target) | magick / batchimg (target ≥ 5x) |"
    );
    println!("|---|---|---|---|---|---|");
    for (job, a, b, c, ratio, vs_magick) in &summary {
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        println!(
            "| {} | {a:.2} ms | {b:.2} ms | {c:.2} ms | {ratio:.2} (≤ {:.1}: {}) | {vs_magick:.1}x ({}) |",
            job.name,
            job.target,
            met(*ratio <= job.target),
            met(*vs_magick >= 5.0)
        );
    }
    println!("| batchimg's peak RSS, any run | {rss:.0} MB |");
    let (worst, at) = scores[0];
    let mean = scores.iter().map(|s| s.0).sum::<f64>() / scores.len() as f64;
    println!(
        "| SSIM against the full-decode Lanczos reference, {} gray thumbnails | lowest {worst:.4} (photo {at:02}), mean {mean:.4}; target ≥ 0.97 for every image: {} |",
        scores.len(),
        if worst >= 0.97 { "met" } else { "NOT met" }
    );
}

/// SSIM of each gray thumbnail against the full-decode reference, lowest
/// first, with the photo's index.
fn ssim(root: &Path, files: &[PathBuf], work: &Path, bucket: &Path) -> Vec<(f64, usize)> {
    let refs = root.join("target/bench-photos/ref-512");
    std::fs::create_dir_all(&refs).unwrap();
    let out = std::fs::read_to_string(work.join("out.csv")).unwrap();
    let mut scores = Vec::new();
    for line in out.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let i: usize = cells[0]
            .rsplit('/')
            .next()
            .and_then(|n| n.trim_end_matches(".jpg").parse().ok())
            .expect("the bench's own URLs");
        let key = cells[3].rsplit('/').next().unwrap();
        let reference = refs.join(format!("{i:02}.jpg"));
        if !reference.exists() {
            let ok = Command::new("magick")
                .arg(&files[i])
                .args(["-auto-orient", "-colorspace", "gray", "-filter", "Lanczos"])
                .args(["-resize", "512x512", "-quality", "95"])
                .arg(&reference)
                .status()
                .unwrap()
                .success();
            assert!(ok, "the reference of {}", files[i].display());
        }
        let compared = Command::new("magick")
            .args(["compare", "-metric", "SSIM"])
            .arg(&reference)
            .arg(bucket.join(key))
            .arg("null:")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&compared.stderr);
        let score: f64 = text
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("magick compare said {text:?}"));
        scores.push((score, i));
    }
    scores.sort_by(|a, b| a.0.total_cmp(&b.0));
    scores
}
