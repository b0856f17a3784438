//! `make bench`: batchimg end to end against its conversion ceiling.
//!
//! 1. Generates (once, cached in target/bench-images) distinct photo-like
//!    JPEGs, 1000 px wide, quality 80: ImageMagick plasma fractals, each random.
//! 2. The ceiling: the same grayscale conversion in this process on every core,
//!    images already in memory, no I/O.
//! 3. End to end: the release binary downloads them from a loopback HTTP server
//!    in this process and uploads to s3s-fs (a fresh bucket each round), at
//!    default settings. Rounds alternate with both ceilings, and each round's
//!    ratio and CPU above the lossless ceiling use the ceilings on either side
//!    of it; the median round (and the median CPU above) is reported.
//! 4. The rerun: the same input again with the journal and work directory
//!    deleted, so every answer must come from the bucket.
//!
//! `BENCH_THUMBS=1` measures the transform instead (`pipeline/thumbs.rs`).
//!
//! Environment: BENCH_IMAGES (default 500), BENCH_WIDTH (default 1000),
//! BENCH_ROUNDS (default 3), BENCH_WRAP, a command to run the first round's
//! batchimg under (a profiler), BENCH_ARGS, extra options for every batchimg
//! run; BENCH_S3_WORKERS, the local S3 server's async worker threads (default
//! 1), BENCH_S3_WRAP, a command to run it under; BENCH_BIN, another batchimg
//! binary to measure; BENCH_TLS=1, the S3 server behind HTTPS (TLS
//! terminated in this process, so its CPU counts as the HTTP server's), as
//! AWS is reached.
//!
//! A/B mode, for changes smaller than this VM's drift: BENCH_AB names the B
//! binary (or a wrapper script that execs one; `same` for the A binary) and
//! BENCH_AB_ARGS adds options to B's runs only. Each of BENCH_ROUNDS pairs
//! runs A and B back to back, in alternating order, each on a fresh bucket
//! and state; the report is each pair's CPU per image and the median of the
//! paired differences, which cancels the drift that separates whole runs.
//!
//! The network (issue 28): BENCH_GET_LATENCY (a humantime duration, e.g.
//! `100ms`) holds every image GET that long before its answer (time to first
//! byte; an async sleep per request, so requests wait concurrently);
//! BENCH_PUT_LATENCY holds every request to the S3 server that long before a
//! forward proxy on loopback passes it on, bytes and Host header unchanged
//! (so its SigV4 signature still verifies; with BENCH_TLS the proxy sits
//! behind the TLS terminator); BENCH_HOST_ROOM=N makes the image host answer
//! 429 with `Retry-After: 1` at once to a GET that arrives while N others
//! are in flight (from arrival to the answer). With any of them set, each
//! round also runs batchimg on that network (the zero-latency run has neither
//! latency nor a host limit), after the zero-latency run in
//! odd rounds and before it in even ones, on a bucket and state of its own;
//! both runs go through the proxy when there is one. The report adds each
//! round's pair and the medians: the zero-latency rate, the rate on the
//! network and their ratio (target ≥ 0.9), failed rows, the 429s as a share
//! of rows (target ≤ 25%), the rate as a share of the host's capacity, room /
//! GET latency (target ≥ 0.6), and the most GETs in flight. In A/B mode the
//! network applies to every run.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::exit,
    reason = "a program of its own, whose output is its report"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::IntoResponse;
use batchimg::format::ImageFormat;
use batchimg::image::{lossless, magick};
use batchimg::options::Limits;
use magick_rust::{MagickWand, magick_wand_genesis};

#[path = "pipeline/thumbs.rs"]
mod thumbs;
#[path = "../tests/it/support/tls.rs"]
mod tls;

fn main() {
    let count: usize = env_or("BENCH_IMAGES", 500);
    let width: usize = env_or("BENCH_WIDTH", 1000);
    let rounds: usize = env_or("BENCH_ROUNDS", 3).max(1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // BENCH_THUMBS=1: the transform against libvips and ImageMagick instead.
    if std::env::var_os("BENCH_THUMBS").is_some_and(|v| !v.is_empty() && v != "0") {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        return thumbs::bench(root, &runtime, rounds);
    }
    let images = generate(&root.join("target/bench-images"), count, width);
    let bytes: u64 = images.iter().map(|i| i.len() as u64).sum();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "{count} JPEGs, {width}x{} px, quality 80, {:.0} KB average; {cores} cores; {rounds} rounds",
        width * 2 / 3,
        bytes as f64 / count as f64 / 1024.0
    );

    let shaping = Shaping::from_env();
    if let Some(s) = shaping {
        println!(
            "network: {}; each round also runs batchimg at zero latency",
            s.describe()
        );
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let net = Arc::new(Network::default());
    let http = runtime.block_on(serve(images.clone(), Arc::clone(&net)));
    let work = tempfile::tempdir().unwrap();
    let proxy = shaping.is_some_and(|s| s.put.is_some());
    let s3 = S3::start(root, &runtime, proxy.then(|| Arc::clone(&net)));
    let csv = work.path().join("in.csv");
    let mut text = String::from("url\n");
    for i in 0..count {
        text.push_str(&format!("http://{http}/{i}.jpg\n"));
    }
    std::fs::write(&csv, text).unwrap();

    if let Ok(b) = std::env::var("BENCH_AB") {
        let b = Variant::b(root, &b);
        if let Some(s) = shaping {
            net.set(s);
        }
        return ab(root, &b, &work, &csv, &s3, count, rounds);
    }

    // This VM's speed drifts by a quarter within minutes, so each end-to-end
    // run is compared with ceilings measured just before and just after it.
    let mut ceilings = vec![ceiling(&images, cores)];
    let mut lossless_ceilings = vec![ceiling_of(Engine::Lossless, &images, cores)];
    let mut results = Vec::new();
    let mut aboves = Vec::new();
    println!();
    println!(
        "| round | ceiling before | end to end | ceiling after | ratio | batchimg CPU | of which kernel | per image above the lossless ceiling | s3s-fs CPU | HTTP CPU | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    // BENCH_GET_LATENCY, BENCH_PUT_LATENCY, BENCH_HOST_ROOM: each round's
    // run on that network, on a bucket and state of its own.
    let shaped_run = |s: Shaping, round: usize| -> Shaped {
        let id = format!("bench{round}net");
        std::fs::create_dir_all(s3.data.path().join(&id)).unwrap();
        net.set(s);
        let state = format!("state{round}net");
        let m = run_batchimg(
            &Variant::a(root),
            work.path(),
            &csv,
            &s3,
            &id,
            &state,
            false,
        );
        let shaped = Shaped {
            rate: count as f64 / m.wall.as_secs_f64(),
            rejected: net.rejected.load(Ordering::Relaxed),
            max_in_flight: net.max_in_flight.load(Ordering::Relaxed),
            failed_rows: m.failed_rows,
            code: m.code,
        };
        net.set(Shaping::default());
        // Rows that failed exit non-zero and are reported; anything else is the bench's end.
        assert!(
            m.code == 0 || m.failed_rows > 0,
            "round {round}, on the network: batchimg exited {}",
            m.code
        );
        shaped
    };
    let mut pairs: Vec<(usize, f64, usize, Shaped)> = Vec::new();
    for round in 1..=rounds {
        let bucket = format!("bench{round}");
        std::fs::create_dir_all(s3.data.path().join(&bucket)).unwrap();
        // On the network before the zero-latency run in even rounds, after it
        // in odd ones, so that drift favours neither.
        let mut shaped = shaping
            .filter(|_| round % 2 == 0)
            .map(|s| shaped_run(s, round));
        net.set(Shaping::default());
        let (bench_cpu0, s3_cpu0) = (own_cpu(), process_cpu(s3.child.id()));
        // A new state directory per round: deleting the last round's thousand
        // files first would make ext4 scan past their freshly freed inodes
        // on every file this round creates (its `recently_deleted` check).
        let state = format!("state{round}");
        let first = run_batchimg(
            &Variant::a(root),
            work.path(),
            &csv,
            &s3,
            &bucket,
            &state,
            round == 1,
        );
        assert_eq!(first.code, 0, "round {round} failed");
        let (http_cpu, s3_cpu) = (own_cpu() - bench_cpu0, process_cpu(s3.child.id()) - s3_cpu0);
        let e2e = count as f64 / first.wall.as_secs_f64();
        let zero_in_flight = net.max_in_flight.load(Ordering::Relaxed);
        if let Some(s) = shaping.filter(|_| round % 2 == 1) {
            shaped = Some(shaped_run(s, round));
        }
        if let Some(shaped) = shaped {
            pairs.push((round, e2e, zero_in_flight, shaped));
        }
        ceilings.push(ceiling(&images, cores));
        lossless_ceilings.push(ceiling_of(Engine::Lossless, &images, cores));
        let (before, after) = (ceilings[round - 1].rate, ceilings[round].rate);
        let ratio = e2e / ((before + after) / 2.0);
        // Against the lossless ceilings on either side of this round, like the ratio.
        let lossless_cpu = (lossless_ceilings[round - 1].cpu + lossless_ceilings[round].cpu) / 2;
        let above = (first.cpu.as_secs_f64() - lossless_cpu.as_secs_f64()) * 1000.0 / count as f64;
        println!(
            "| {round} | {before:.1}/s | {e2e:.1}/s | {after:.1}/s | {ratio:.2} | {:.2} s | {:.2} s | {above:+.2} ms | {:.2} s | {:.2} s | {:.0} MB |",
            first.cpu.as_secs_f64(),
            first.sys.as_secs_f64(),
            s3_cpu.as_secs_f64(),
            http_cpu.as_secs_f64(),
            first.max_rss_mb
        );
        aboves.push(above);
        results.push((ratio, e2e, first));
    }
    let bucket = format!("bench{rounds}");
    // A journal and work directory of its own: nothing to go on but the bucket.
    let rerun = run_batchimg(
        &Variant::a(root),
        work.path(),
        &csv,
        &s3,
        &bucket,
        "rerun",
        false,
    );
    assert_eq!(rerun.code, 0, "rerun failed");
    drop(s3);

    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, e2e, median) = &results[results.len() / 2];
    let mut rates: Vec<f64> = ceilings.iter().map(|c| c.rate).collect();
    rates.sort_by(f64::total_cmp);
    let ceiling_cpu: Duration =
        ceilings.iter().map(|c| c.cpu).sum::<Duration>() / ceilings.len() as u32;
    let peak = results.iter().map(|r| r.2.max_rss_mb).fold(0.0, f64::max);
    let per_image = |d: Duration| d.as_secs_f64() * 1000.0 / count as f64;
    let mut lossless_rates: Vec<f64> = lossless_ceilings.iter().map(|c| c.rate).collect();
    lossless_rates.sort_by(f64::total_cmp);
    let lossless_cpu: Duration =
        lossless_ceilings.iter().map(|c| c.cpu).sum::<Duration>() / lossless_ceilings.len() as u32;
    let lossless_rate = lossless_rates[lossless_rates.len() / 2];
    println!();
    println!("| measure (median of {rounds} rounds) | value |");
    println!("|---|---|");
    println!(
        "| ImageMagick ceiling (in process, {cores} cores, no I/O) | {:.1} images/s, {:.2} ms CPU per image |",
        rates[rates.len() / 2],
        per_image(ceiling_cpu)
    );
    println!(
        "| lossless ceiling (in process, {cores} cores, no I/O) | {lossless_rate:.1} images/s, {:.2} ms CPU per image |",
        per_image(lossless_cpu)
    );
    println!(
        "| batchimg end to end | {e2e:.1} images/s ({:.2} s), {:.2} ms of its own CPU per image |",
        median.wall.as_secs_f64(),
        per_image(median.cpu)
    );
    println!(
        "| end to end / ImageMagick ceiling | {ratio:.2} (rounds: {:.2}–{:.2}) |",
        results[0].0,
        results[results.len() - 1].0
    );
    println!(
        "| end to end / lossless ceiling | {:.2} |",
        e2e / lossless_rate
    );
    aboves.sort_by(f64::total_cmp);
    println!(
        "| batchimg CPU per image above the lossless ceiling's (each round against its own ceilings) | {:+.2} ms (rounds: {:+.2} to {:+.2}) |",
        aboves[aboves.len() / 2],
        aboves[0],
        aboves[aboves.len() - 1]
    );
    println!("| peak RSS, any round | {peak:.0} MB |");
    println!(
        "| rerun, all in the bucket | {:.2} s |",
        rerun.wall.as_secs_f64()
    );
    println!(
        "| first run / rerun | {:.1}x |",
        median.wall.as_secs_f64() / rerun.wall.as_secs_f64()
    );
    if let Some(s) = shaping {
        network_rows(&s, &pairs, count);
    }
    println!();
    println!(
        "CPU of the median round: batchimg {:.2} s against {:.2} s for the same conversions \
         in the ceiling; batchimg context switches: {} voluntary, {} involuntary",
        median.cpu.as_secs_f64(),
        ceiling_cpu.as_secs_f64(),
        median.switches.0,
        median.switches.1
    );
    if let Some(s) = shaping {
        network_rounds(&s, &pairs);
    }
}

/// The network the bench puts between batchimg and its servers
/// (BENCH_GET_LATENCY, BENCH_PUT_LATENCY, BENCH_HOST_ROOM).
#[derive(Clone, Copy, Default)]
struct Shaping {
    /// Each image GET's time to first byte.
    get: Option<Duration>,
    /// Each request to the S3 server, held in the proxy before it is passed on.
    put: Option<Duration>,
    /// GETs the image host takes at once; 429 beyond.
    room: Option<usize>,
}

impl Shaping {
    /// The network the environment asks for; None when it asks for none.
    fn from_env() -> Option<Shaping> {
        let set = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let duration = |name: &str| {
            set(name).map(|v| {
                humantime::parse_duration(&v)
                    .unwrap_or_else(|e| panic!("{name}={v}: {e} (a duration, e.g. 100ms)"))
            })
        };
        let room = set("BENCH_HOST_ROOM").map(|v| match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("BENCH_HOST_ROOM={v}: a number of requests, at least 1"),
        });
        let s = Shaping {
            get: duration("BENCH_GET_LATENCY"),
            put: duration("BENCH_PUT_LATENCY"),
            room,
        };
        (s.get.is_some() || s.put.is_some() || s.room.is_some()).then_some(s)
    }

    fn describe(&self) -> String {
        let d = |d: Option<Duration>| humantime::format_duration(d.unwrap_or_default());
        let mut text = format!(
            "GET latency {}, S3 request latency {}",
            d(self.get),
            d(self.put)
        );
        if let Some(n) = self.room {
            text.push_str(&format!(", image host room {n} (429 beyond)"));
        }
        text
    }

    /// The image host's capacity, room / GET latency, in GETs per second.
    fn capacity(&self) -> Option<f64> {
        let get = self.get.filter(|d| !d.is_zero())?;
        Some(self.room? as f64 / get.as_secs_f64())
    }
}

/// The network as the servers apply it now (switched between runs), and what
/// the image server has counted since it was last set.
#[derive(Default)]
struct Network {
    get_us: AtomicU64,
    put_us: AtomicU64,
    /// 0: no limit.
    room: AtomicUsize,
    in_flight: AtomicUsize,
    /// The most GETs in flight at once that the host admitted.
    max_in_flight: AtomicUsize,
    /// 429s answered.
    rejected: AtomicUsize,
}

impl Network {
    fn set(&self, s: Shaping) {
        let us = |d: Option<Duration>| d.unwrap_or_default().as_micros() as u64;
        self.get_us.store(us(s.get), Ordering::Relaxed);
        self.put_us.store(us(s.put), Ordering::Relaxed);
        self.room.store(s.room.unwrap_or(0), Ordering::Relaxed);
        self.max_in_flight.store(0, Ordering::Relaxed);
        self.rejected.store(0, Ordering::Relaxed);
    }

    fn get_latency(&self) -> Duration {
        Duration::from_micros(self.get_us.load(Ordering::Relaxed))
    }

    fn put_latency(&self) -> Duration {
        Duration::from_micros(self.put_us.load(Ordering::Relaxed))
    }
}

/// A GET in flight, from its arrival until its answer is handed to the
/// server (or the client gives up on it).
struct InFlight<'a> {
    net: &'a Network,
    /// How many were in flight when it arrived, itself included.
    at_arrival: usize,
}

impl<'a> InFlight<'a> {
    fn enter(net: &'a Network) -> InFlight<'a> {
        let at_arrival = net.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        InFlight { net, at_arrival }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.net.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One run on the shaped network.
struct Shaped {
    rate: f64,
    rejected: usize,
    max_in_flight: usize,
    failed_rows: u64,
    code: i32,
}

/// The median, lowest and highest.
fn spread(values: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

/// The network's rows of the summary table: (round, zero-latency rate, most
/// GETs in flight at zero latency, the run on the network) per round.
fn network_rows(s: &Shaping, pairs: &[(usize, f64, usize, Shaped)], count: usize) {
    let zero = spread(pairs.iter().map(|p| p.1));
    let shaped = spread(pairs.iter().map(|p| p.3.rate));
    let ratio = spread(pairs.iter().map(|p| p.3.rate / p.1));
    println!(
        "| zero latency (the end-to-end runs above{}) | {:.1} images/s |",
        if s.put.is_some() {
            ", through the S3 proxy"
        } else {
            ""
        },
        zero.0
    );
    println!(
        "| on the network ({}) | {:.1} images/s (rounds: {:.1}–{:.1}) |",
        s.describe(),
        shaped.0,
        shaped.1,
        shaped.2
    );
    println!(
        "| on the network / zero latency (each round's pair) | {:.2} (rounds: {:.2}–{:.2}); target ≥ 0.9: {} |",
        ratio.0,
        ratio.1,
        ratio.2,
        verdict(ratio.0 >= 0.9)
    );
    let failed: Vec<String> = pairs.iter().map(|p| p.3.failed_rows.to_string()).collect();
    println!(
        "| rows failed on the network (batchimg's summary), each round | {}; target 0: {} |",
        failed.join(", "),
        verdict(pairs.iter().all(|p| p.3.failed_rows == 0))
    );
    let most = pairs.iter().map(|p| p.3.max_in_flight).max().unwrap_or(0);
    let Some(room) = s.room else {
        println!("| most GETs in flight on the network, any round | {most} |");
        return;
    };
    let share = spread(pairs.iter().map(|p| p.3.rejected as f64 / count as f64));
    println!(
        "| 429s / rows | {:.1}% (rounds: {:.1}–{:.1}%); target ≤ 25%: {} |",
        share.0 * 100.0,
        share.1 * 100.0,
        share.2 * 100.0,
        verdict(share.0 <= 0.25)
    );
    match s.capacity() {
        Some(capacity) => {
            let of = spread(pairs.iter().map(|p| p.3.rate / capacity));
            println!(
                "| rate / the host's capacity ({room} / {} = {capacity:.1}/s) | {:.2} (rounds: {:.2}–{:.2}); target ≥ 0.6: {} |",
                humantime::format_duration(s.get.unwrap_or_default()),
                of.0,
                of.1,
                of.2,
                verdict(of.0 >= 0.6)
            );
        }
        None => println!("| rate / the host's capacity | n/a: no BENCH_GET_LATENCY |"),
    }
    println!("| most GETs in flight the host admitted, any round | {most} (room {room}) |");
}

/// Each round's pair on the network.
fn network_rounds(s: &Shaping, pairs: &[(usize, f64, usize, Shaped)]) {
    println!();
    println!("The network ({}), each round:", s.describe());
    println!();
    println!(
        "| round | order | zero latency | on the network | ratio | most GETs in flight (zero / network) | 429s | failed rows | exit code |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (round, zero, zero_in_flight, n) in pairs {
        println!(
            "| {round} | {} | {zero:.1}/s | {:.1}/s | {:.2} | {zero_in_flight} / {} | {} | {} | {} |",
            if round % 2 == 0 {
                "network first"
            } else {
                "zero first"
            },
            n.rate,
            n.rate / zero,
            n.max_in_flight,
            n.rejected,
            n.failed_rows,
            n.code
        );
    }
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

struct Ceiling {
    rate: f64,
    cpu: Duration,
}

/// The conversion an engine does, on every core, with nothing else to do.
#[derive(Clone, Copy, PartialEq)]
enum Engine {
    ImageMagick,
    Lossless,
}

fn ceiling(images: &[Arc<Vec<u8>>], threads: usize) -> Ceiling {
    ceiling_of(Engine::ImageMagick, images, threads)
}

fn ceiling_of(engine: Engine, images: &[Arc<Vec<u8>>], threads: usize) -> Ceiling {
    let limits = Limits::default();
    magick::init(&limits).unwrap();
    let next = AtomicUsize::new(0);
    let cpu0 = own_cpu();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(img) = images.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match engine {
                        Engine::ImageMagick => {
                            magick::grayscale(img, ImageFormat::Jpeg, &limits).unwrap();
                        }
                        Engine::Lossless => {
                            let lossless::Plan::Lossless(h) = lossless::plan(img, &limits).unwrap()
                            else {
                                panic!("a bench image the lossless path refuses")
                            };
                            lossless::gray(img, &h).unwrap().unwrap();
                        }
                    }
                }
            });
        }
    });
    Ceiling {
        rate: images.len() as f64 / started.elapsed().as_secs_f64(),
        cpu: own_cpu() - cpu0,
    }
}

type Images = Arc<Vec<Arc<Vec<u8>>>>;

async fn serve(images: Vec<Arc<Vec<u8>>>, net: Arc<Network>) -> SocketAddr {
    async fn image(
        State((images, net)): State<(Images, Arc<Network>)>,
        UrlPath(name): UrlPath<String>,
    ) -> axum::response::Response {
        // BENCH_HOST_ROOM: a host with room for so many GETs at once turns
        // the next away at once.
        let in_flight = InFlight::enter(&net);
        let room = net.room.load(Ordering::Relaxed);
        if room != 0 && in_flight.at_arrival > room {
            net.rejected.fetch_add(1, Ordering::Relaxed);
            return (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
            )
                .into_response();
        }
        net.max_in_flight
            .fetch_max(in_flight.at_arrival, Ordering::Relaxed);
        // BENCH_GET_LATENCY: time to first byte, each GET waiting on its own.
        let latency = net.get_latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let i: usize = name.trim_end_matches(".jpg").parse().unwrap_or(usize::MAX);
        match images.get(i) {
            Some(b) => ([(header::CONTENT_TYPE, "image/jpeg")], b.as_ref().clone()).into_response(),
            None => axum::http::StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = axum::Router::new()
        .route("/{name}", axum::routing::get(image))
        .with_state((Arc::new(images), net));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

type Upstream =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

/// BENCH_PUT_LATENCY: an HTTP proxy on loopback in front of the S3 server
/// (batchimg's endpoint) that holds each request for the network's S3
/// latency, then passes it on as it came: method, path and query, headers
/// (the Host header too, so the SigV4 signature still verifies) and body.
/// Its port.
async fn delay_proxy(upstream: u16, net: Arc<Network>) -> u16 {
    async fn forward(
        State((client, upstream, net)): State<(Upstream, u16, Arc<Network>)>,
        mut req: axum::extract::Request,
    ) -> axum::response::Response {
        let latency = net.put_latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        *req.uri_mut() = format!("http://127.0.0.1:{upstream}{path}")
            .parse()
            .unwrap();
        match client.request(req).await {
            Ok(resp) => resp.map(Body::new).into_response(),
            Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        }
    }
    let client: Upstream =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((client, upstream, net));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

struct S3 {
    child: std::process::Child,
    endpoint: String,
    data: tempfile::TempDir,
    /// BENCH_TLS: the certificate batchimg trusts (in a directory of its own).
    ca_file: Option<PathBuf>,
    _tls_dir: Option<tempfile::TempDir>,
}

impl S3 {
    /// With `proxy`, batchimg reaches the server through [`delay_proxy`].
    fn start(root: &Path, runtime: &tokio::runtime::Runtime, proxy: Option<Arc<Network>>) -> S3 {
        // The bucket lives in memory where it can (/dev/shm): real S3 is not on
        // this machine's disk, and s3s-fs writes three files per object.
        let data = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        // A free port chosen here, so the server can run with its request
        // logging off (it formats every request at info level).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        // BENCH_S3_WRAP runs the server under another command (taskset, a profiler).
        let wrap = std::env::var("BENCH_S3_WRAP").unwrap_or_default();
        let mut words: Vec<String> = wrap.split_whitespace().map(String::from).collect();
        words.push(root.join(".tools/bin/s3s-fs").display().to_string());
        let child = Command::new(&words[0])
            .args(&words[1..])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "k", "--secret-key", "s"])
            .arg(data.path())
            .env("RUST_LOG", "error")
            // The stand-in for S3 shares our two cores; one async worker keeps
            // its file I/O hand-offs from spinning against batchimg's threads.
            .env(
                "TOKIO_WORKER_THREADS",
                std::env::var("BENCH_S3_WORKERS").unwrap_or("1".into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("s3s-fs: run `make setup` first");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "s3s-fs did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // BENCH_PUT_LATENCY: the delaying proxy in front, batchimg's way in.
        let port = match proxy {
            Some(net) => runtime.block_on(delay_proxy(port, net)),
            None => port,
        };
        // BENCH_TLS: HTTPS in front, with a certificate batchimg is told to trust.
        let https = std::env::var_os("BENCH_TLS").is_some_and(|v| !v.is_empty() && v != "0");
        let (endpoint, ca_file, tls_dir) = if https {
            let dir = tempfile::tempdir().unwrap();
            let ca_file = dir.path().join("ca.pem");
            let tls_port = runtime.block_on(tls::front(tls::acceptor(&ca_file), port));
            (
                format!("https://127.0.0.1:{tls_port}"),
                Some(ca_file),
                Some(dir),
            )
        } else {
            (format!("http://127.0.0.1:{port}"), None, None)
        };
        S3 {
            child,
            endpoint,
            data,
            ca_file,
            _tls_dir: tls_dir,
        }
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
    /// From batchimg's summary.
    failed_rows: u64,
    wall: Duration,
    max_rss_mb: f64,
    cpu: Duration,
    sys: Duration,
    switches: (i64, i64),
}

/// A batchimg to measure: its binary and options of its own.
struct Variant {
    binary: PathBuf,
    args: Vec<String>,
}

impl Variant {
    /// The binary measured by default: BENCH_BIN, else the release build.
    fn a(root: &Path) -> Variant {
        Variant {
            binary: std::env::var_os("BENCH_BIN")
                .map_or_else(|| root.join("target/release/batchimg"), PathBuf::from),
            args: Vec::new(),
        }
    }

    /// The other side of an A/B comparison.
    fn b(root: &Path, binary: &str) -> Variant {
        let a = Variant::a(root);
        Variant {
            binary: if binary == "same" {
                a.binary
            } else {
                PathBuf::from(binary)
            },
            args: std::env::var("BENCH_AB_ARGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect(),
        }
    }
}

/// A/B mode: pairs of end-to-end runs, A and B back to back in alternating
/// order, and the median of B's CPU per image minus A's.
fn ab(
    root: &Path,
    b: &Variant,
    work: &tempfile::TempDir,
    csv: &PathBuf,
    s3: &S3,
    count: usize,
    rounds: usize,
) {
    let a = Variant::a(root);
    println!(
        "A/B: A = {}, B = {} {}",
        a.binary.display(),
        b.binary.display(),
        b.args.join(" ")
    );
    println!();
    println!("| pair | A CPU per image | B CPU per image | B − A | A images/s | B images/s |");
    println!("|---|---|---|---|---|---|");
    let per_image = |m: &Measured| m.cpu.as_secs_f64() * 1000.0 / count as f64;
    let mut diffs = Vec::new();
    for pair in 1..=rounds {
        let run = |v: &Variant, name: &str| {
            let id = format!("ab{pair}{name}");
            std::fs::create_dir_all(s3.data.path().join(&id)).unwrap();
            let m = run_batchimg(v, work.path(), csv, s3, &id, &id, false);
            assert_eq!(m.code, 0, "pair {pair}, {name} failed");
            m
        };
        let (ma, mb) = if pair % 2 == 1 {
            let ma = run(&a, "a");
            (ma, run(b, "b"))
        } else {
            let mb = run(b, "b");
            (run(&a, "a"), mb)
        };
        // Many pairs would fill a small bench disk: each pair's work files
        // and objects go once both of its runs are measured.
        for id in [format!("ab{pair}a"), format!("ab{pair}b")] {
            let _ = std::fs::remove_dir_all(work.path().join(&id));
            let _ = std::fs::remove_dir_all(s3.data.path().join(&id));
        }
        let (ca, cb) = (per_image(&ma), per_image(&mb));
        println!(
            "| {pair} | {ca:.2} ms | {cb:.2} ms | {:+.2} ms | {:.1} | {:.1} |",
            cb - ca,
            count as f64 / ma.wall.as_secs_f64(),
            count as f64 / mb.wall.as_secs_f64()
        );
        diffs.push(cb - ca);
    }
    let lower = diffs.iter().filter(|d| **d < 0.0).count();
    diffs.sort_by(f64::total_cmp);
    println!();
    println!(
        "B − A, CPU per image: median {:+.3} ms (pairs: {:+.2} to {:+.2}); B lower in {lower} of {rounds} pairs",
        diffs[diffs.len() / 2],
        diffs[0],
        diffs[diffs.len() - 1]
    );
}

/// The peak RSS a batchimg run reports in its `--summary-json`, in MB, and
/// the rows it reports failed.
fn own_peak_mb(summary: &Path) -> (f64, u64) {
    let text = std::fs::read_to_string(summary)
        .unwrap_or_else(|e| panic!("batchimg wrote no summary at {}: {e}", summary.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("the summary is JSON");
    let bytes = json["peak_memory_bytes"]
        .as_u64()
        .expect("the summary has peak_memory_bytes");
    let failed_rows = json["failed_rows"]
        .as_u64()
        .expect("the summary has failed_rows");
    (bytes as f64 / (1024.0 * 1024.0), failed_rows)
}

#[allow(clippy::too_many_arguments)]
fn run_batchimg(
    variant: &Variant,
    work: &Path,
    csv: &PathBuf,
    s3: &S3,
    bucket: &str,
    state: &str,
    profile: bool,
) -> Measured {
    // BENCH_WRAP="perf record -e cpu-clock -g -o /tmp/perf.data --" profiles the first round.
    let wrap = std::env::var("BENCH_WRAP").ok().filter(|_| profile);
    let mut words: Vec<String> = wrap
        .iter()
        .flat_map(|w| w.split_whitespace().map(String::from))
        .collect();
    words.push(variant.binary.display().to_string());
    let summary = work.join(format!("{state}-summary.json"));
    let started = Instant::now();
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .current_dir(work)
        .args(["-qq", "run", "--input"])
        .arg(csv)
        .args(["--output", "out.csv", "--state-dir", state])
        .arg("--summary-json")
        .arg(&summary)
        .args(
            std::env::var("BENCH_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .args(&variant.args)
        .env("AWS_ENDPOINT_URL", &s3.endpoint)
        .envs(s3.ca_file.iter().map(|f| ("SSL_CERT_FILE", f)))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("S3_BUCKET", bucket)
        .env("BATCHIMG_ALLOW_PRIVATE_NETWORKS", "1")
        .spawn()
        .expect("build the release binary first (make bench does)");
    // wait4 gives the child's CPU; not its peak RSS: the kernel carries the
    // spawning process's peak across exec into the child's `ru_maxrss` (this
    // process holds every image, hundreds of MB at 12 MP), so the peak is
    // batchimg's own `VmHWM`, from its summary.
    let (code, usage) = reap(&mut child);
    let wall = started.elapsed();
    let (max_rss_mb, failed_rows) = own_peak_mb(&summary);
    Measured {
        code,
        wall,
        failed_rows,
        max_rss_mb,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        sys: tv(usage.ru_stime),
        switches: (usage.ru_nvcsw, usage.ru_nivcsw),
    }
}

/// Waits for `child` with wait4: its exit code (-1 when a signal ended it)
/// and what it used, every thread counted.
fn reap(child: &mut std::process::Child) -> (i32, libc::rusage) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain integers, for which all zeroes is a value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    // Reaped by wait4 already; this only settles the handle.
    let _ = child.try_wait();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage)
}

fn tv(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000)
}

/// CPU time this process has used so far (the HTTP server lives here).
fn own_cpu() -> Duration {
    // SAFETY: `rusage` is plain integers, for which all zeroes is a value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    tv(usage.ru_utime) + tv(usage.ru_stime)
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
