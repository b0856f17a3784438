//! `make bench`: batchimg end to end against its conversion ceiling.
//!
//! 1. Generates (once, cached in target/bench-images) distinct photo-like
//!    JPEGs, 1000 px wide, quality 80: ImageMagick plasma fractals, each random.
//! 2. The ceiling: the same grayscale conversion in this process on every core,
//!    images already in memory, no I/O.
//! 3. End to end: the release binary downloads them from a loopback HTTP server
//!    in this process and uploads to a fresh s3s-fs, at default settings.
//! 4. The rerun: the same input again with the journal and work directory
//!    deleted, so every answer must come from the bucket.
//!
//! Environment: BENCH_IMAGES (default 500), BENCH_WIDTH (default 1000), and
//! BENCH_WRAP, a command to run the first batchimg run under (a profiler), and
//! BENCH_ARGS, extra options for both batchimg runs; BENCH_S3_WORKERS, the
//! local S3 server's async worker threads (default 1); BENCH_BIN, another
//! batchimg binary to measure (for A/B comparisons).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::IntoResponse;
use batchimg::format::ImageFormat;
use batchimg::pipeline::convert;
use batchimg::settings::Limits;
use magick_rust::{MagickWand, magick_wand_genesis};

fn main() {
    let count: usize = env_or("BENCH_IMAGES", 500);
    let width: usize = env_or("BENCH_WIDTH", 1000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let images = generate(&root.join("target/bench-images"), count, width);
    let bytes: u64 = images.iter().map(|i| i.len() as u64).sum();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "{count} JPEGs, {width}x{} px, quality 80, {:.0} KB average; {cores} cores",
        width * 2 / 3,
        bytes as f64 / count as f64 / 1024.0
    );

    let (cpu0, sys0) = (own_cpu(), own_sys());
    let ceiling = ceiling(&images, cores);
    let (ceiling_cpu, ceiling_sys) = (own_cpu() - cpu0, own_sys() - sys0);
    println!("conversion ceiling (in-process, {cores} threads, no I/O): {ceiling:.1} images/s");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = runtime.block_on(serve(images.clone()));
    let work = tempfile::tempdir().unwrap();
    let s3 = S3::start(root, work.path());
    let csv = work.path().join("in.csv");
    let mut text = String::from("url\n");
    for i in 0..count {
        text.push_str(&format!("http://{http}/{i}.jpg\n"));
    }
    std::fs::write(&csv, text).unwrap();

    let (bench_cpu0, s3_cpu0) = (own_cpu(), process_cpu(s3.child.id()));
    let first = run_batchimg(root, work.path(), &csv, &s3.endpoint);
    assert_eq!(first.code, 0, "first run failed");
    let (http_cpu, s3_cpu) = (own_cpu() - bench_cpu0, process_cpu(s3.child.id()) - s3_cpu0);
    let e2e = count as f64 / first.wall.as_secs_f64();
    std::fs::remove_dir_all(work.path().join("state")).unwrap();
    let rerun = run_batchimg(root, work.path(), &csv, &s3.endpoint);
    assert_eq!(rerun.code, 0, "rerun failed");
    drop(s3);

    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| conversion ceiling | {ceiling:.1} images/s |");
    println!(
        "| batchimg end to end | {e2e:.1} images/s ({:.2} s) |",
        first.wall.as_secs_f64()
    );
    println!("| end to end / ceiling | {:.2} |", e2e / ceiling);
    println!("| peak RSS, first run | {:.0} MB |", first.max_rss_mb);
    println!(
        "| rerun, all in the bucket | {:.2} s |",
        rerun.wall.as_secs_f64()
    );
    println!(
        "| first run / rerun | {:.1}x |",
        first.wall.as_secs_f64() / rerun.wall.as_secs_f64()
    );
    println!();
    println!(
        "CPU time of the first run: batchimg {:.2} s ({:.2} s in the kernel; the ceiling's \
         conversions took {:.2} s, {:.2} s in the kernel), s3s-fs {:.2} s, HTTP server {:.2} s; \
         {:.2} s available ({cores} cores x wall); batchimg context switches: {} voluntary, \
         {} involuntary",
        first.cpu.as_secs_f64(),
        first.sys.as_secs_f64(),
        ceiling_cpu.as_secs_f64(),
        ceiling_sys.as_secs_f64(),
        s3_cpu.as_secs_f64(),
        http_cpu.as_secs_f64(),
        first.wall.as_secs_f64() * cores as f64,
        first.switches.0,
        first.switches.1
    );
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Photo-like test images, made once and kept between runs.
fn generate(dir: &Path, count: usize, width: usize) -> Vec<Arc<Vec<u8>>> {
    std::fs::create_dir_all(dir).unwrap();
    magick_wand_genesis();
    let height = width * 2 / 3;
    let started = Instant::now();
    let mut made = 0;
    let images = (0..count)
        .map(|i| {
            let path = dir.join(format!("{width}-{i}.jpg"));
            if let Ok(b) = std::fs::read(&path) {
                return Arc::new(b);
            }
            let mut wand = MagickWand::new();
            wand.set_size(width, height).unwrap();
            // Plasma fractals look like clouds and foliage: smooth areas and detail,
            // much like photos, and random, so every image differs.
            wand.read_image("plasma:fractal").unwrap();
            wand.set_image_compression_quality(80).unwrap();
            let bytes = wand.write_image_blob("JPEG").unwrap();
            std::fs::write(&path, &bytes).unwrap();
            made += 1;
            Arc::new(bytes)
        })
        .collect();
    if made > 0 {
        println!(
            "generated {made} images in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    images
}

/// The same conversion batchimg runs, on every core, with nothing else to do.
fn ceiling(images: &[Arc<Vec<u8>>], threads: usize) -> f64 {
    let limits = Limits::default();
    convert::init(&limits).unwrap();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(img) = images.get(next.fetch_add(1, Ordering::Relaxed)) {
                    convert::grayscale(img, ImageFormat::Jpeg, &limits).unwrap();
                }
            });
        }
    });
    images.len() as f64 / started.elapsed().as_secs_f64()
}

async fn serve(images: Vec<Arc<Vec<u8>>>) -> SocketAddr {
    async fn image(
        State(images): State<Arc<Vec<Arc<Vec<u8>>>>>,
        UrlPath(name): UrlPath<String>,
    ) -> axum::response::Response {
        let i: usize = name.trim_end_matches(".jpg").parse().unwrap_or(usize::MAX);
        match images.get(i) {
            Some(b) => ([(header::CONTENT_TYPE, "image/jpeg")], b.as_ref().clone()).into_response(),
            None => axum::http::StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = axum::Router::new()
        .route("/{name}", axum::routing::get(image))
        .with_state(Arc::new(images));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct S3 {
    child: std::process::Child,
    endpoint: String,
}

impl S3 {
    fn start(root: &Path, work: &Path) -> S3 {
        use std::io::BufRead;
        let data = work.join("s3");
        std::fs::create_dir_all(data.join("bench")).unwrap();
        let mut child = Command::new(root.join(".tools/bin/s3s-fs"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--access-key",
                "k",
                "--secret-key",
                "s",
            ])
            .arg(&data)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            // The stand-in for S3 shares our two cores; one async worker keeps
            // its file I/O hand-offs from spinning against batchimg's threads.
            .env(
                "TOKIO_WORKER_THREADS",
                std::env::var("BENCH_S3_WORKERS").unwrap_or("1".into()),
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("s3s-fs: run `make setup` first");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let endpoint = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.find("http://").map(|i| l[i..].trim().to_string()))
            .expect("s3s-fs address");
        std::thread::spawn(move || lines.for_each(drop));
        S3 { child, endpoint }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Measured {
    code: i32,
    wall: Duration,
    max_rss_mb: f64,
    cpu: Duration,
    sys: Duration,
    switches: (i64, i64),
}

fn run_batchimg(root: &Path, work: &Path, csv: &PathBuf, endpoint: &str) -> Measured {
    let binary = std::env::var_os("BENCH_BIN")
        .map_or_else(|| root.join("target/release/batchimg"), PathBuf::from);
    // BENCH_WRAP="perf record -e cpu-clock -g -o /tmp/perf.data --" profiles the first run.
    let wrap = std::env::var("BENCH_WRAP")
        .ok()
        .filter(|_| !work.join("state").exists());
    let mut words: Vec<String> = wrap
        .iter()
        .flat_map(|w| w.split_whitespace().map(String::from))
        .collect();
    words.push(binary.display().to_string());
    let started = Instant::now();
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .current_dir(work)
        .args(["-q", "run", "--input"])
        .arg(csv)
        .args(["--output", "out.csv", "--state-dir", "state", "--fresh"])
        .args(
            std::env::var("BENCH_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("S3_BUCKET", "bench")
        .env("BATCHIMG_ALLOW_PRIVATE_NETWORKS", "1")
        .spawn()
        .expect("build the release binary first (make bench does)");
    let pid = child.id() as libc::pid_t;
    // wait4 gives this child's own peak RSS.
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    let wall = started.elapsed();
    let _ = child.try_wait();
    Measured {
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
        wall,
        max_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        sys: tv(usage.ru_stime),
        switches: (usage.ru_nvcsw, usage.ru_nivcsw),
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000)
}

/// CPU time this process has used so far (the HTTP server lives here).
fn own_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Kernel CPU time this process has used so far.
fn own_sys() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    tv(usage.ru_stime)
}

/// CPU time of another process, from /proc (Linux only; zero elsewhere).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}
