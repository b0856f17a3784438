//! Real photos in the shipped pod's memory: 12-megapixel photos and two
//! 98-megapixel JPEGs under a real memory cgroup of 1 GiB and 512 MiB, and a
//! budget set above the limit, which the crash quarantine must survive.
//! Skipped, with a message, where no memory cgroup can be created.

use std::sync::OnceLock;

use crate::support::cgroup::MemoryCgroup;
use crate::support::{
    Env, RUN, Reply, assert_no_key_put_twice, images, peak_memory_mib, status_json,
};

const PHOTOS: usize = 20;

/// 20 photos of 12 MP and two of 98 MP (9900x9900), made once per test process.
fn image_set() -> &'static Vec<(String, Vec<u8>)> {
    static SET: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut set: Vec<(String, Vec<u8>)> = (0..PHOTOS)
            .map(|i| {
                (
                    format!("/photo/{i}.jpg"),
                    images::large_jpeg(4000, 3000, 900 + i as u64),
                )
            })
            .collect();
        for i in 0..2 {
            set.push((
                format!("/huge/{i}.jpg"),
                images::large_jpeg(9900, 9900, 990 + i),
            ));
        }
        set
    })
}

fn serve_set(env: &Env) -> Vec<String> {
    let set = image_set();
    // The huge ones in the middle, as they would be in a real input.
    let mut urls: Vec<String> = set
        .iter()
        .map(|(path, body)| env.http.route(path, Reply::jpeg(body.clone())))
        .collect();
    let huge = urls.split_off(PHOTOS);
    urls.insert(5, huge[0].clone());
    urls.insert(12, huge[1].clone());
    urls
}

async fn completes_within(limit_mib: u64, engine: &str) {
    completes_with(limit_mib, engine, &["--jpeg-engine", engine]).await;
}

/// Every row of the set uploaded under a `limit_mib` cgroup with `flags`,
/// batchimg's peak RSS below the limit; `label` names the case.
async fn completes_with(limit_mib: u64, label: &str, flags: &[&str]) {
    let name = format!("batchimg-it-{limit_mib}-{label}");
    let Some(cgroup) = MemoryCgroup::create(&name, limit_mib << 20) else {
        return;
    };
    let env = Env::new().await;
    let urls = serve_set(&env);
    env.input("in.csv", &urls);
    let mut args = RUN.to_vec();
    args.extend(flags);
    let run = env.run_with(cgroup.command(&env), &args).await;
    assert_eq!(
        cgroup.oom_kills(),
        0,
        "OOM-killed in {limit_mib} MiB: {run:?}"
    );
    assert_eq!(run.code, 0, "{limit_mib} MiB: {run:?}");
    assert_eq!(
        env.csv("out.csv").len() - 1,
        urls.len(),
        "every row uploaded"
    );
    let peak = peak_memory_mib(&run.stderr).expect("the summary names the peak");
    eprintln!(
        "{limit_mib} MiB cgroup, {label}: batchimg peak RSS {peak} MiB, cgroup peak (page cache included) {} MiB",
        cgroup.peak().unwrap_or(0) >> 20
    );
    assert!(peak < limit_mib, "peak RSS {peak} MiB in {limit_mib} MiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn photos_and_two_98_megapixel_jpegs_complete_in_1_gib() {
    completes_within(1024, "lossless").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn photos_and_two_98_megapixel_jpegs_complete_in_512_mib() {
    completes_within(512, "lossless").await;
}

/// ImageMagick's path, which every non-JPEG format takes: 98 MP pixel caches
/// of 1.5 GB must go to disk to fit.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_through_imagemagick_completes_in_1_gib_and_512_mib() {
    completes_within(1024, "imagemagick").await;
    completes_within(512, "imagemagick").await;
}

/// The transform decodes JPEGs shrunk, so 98 MP thumbnails cost a
/// sixty-fourth of their pixels; in colour, to WebP, the heavier case.
#[tokio::test(flavor = "multi_thread")]
async fn thumbnails_of_the_same_complete_in_512_mib() {
    let flags = ["--resize", "512x512", "--keep-color", "--format", "webp"];
    completes_with(512, "thumbnails", &flags).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_above_the_limit_is_survived_by_quarantining_the_crashing_rows() {
    let Some(cgroup) = MemoryCgroup::create("batchimg-it-crash", 1 << 30) else {
        return;
    };
    let env = Env::new().await;
    let urls = serve_set(&env);
    env.input("in.csv", &urls);
    // A budget the container does not have: ImageMagick keeps 98 MP in memory.
    let mut args = RUN.to_vec();
    // ImageMagick's decode of a 98 MP JPEG needs 1.5 GB; the lossless engine
    // would need a fifth of it and not crash at all.
    args.extend(["--memory-budget", "8GiB", "--jpeg-engine", "imagemagick"]);
    let first = env.run_with(cgroup.command(&env), &args).await;
    assert!(first.code == 137 || first.code == -1, "killed: {first:?}");
    let mut resumes = 0;
    let last = loop {
        resumes += 1;
        let run = env.run_with(cgroup.command(&env), &["resume"]).await;
        if run.code != 137 && run.code != -1 {
            break run;
        }
        assert!(
            resumes < 3,
            "still crashing after {resumes} resumes: {run:?}"
        );
    };
    eprintln!("killed run, then {resumes} resume(s) to finish");
    assert_eq!(
        last.code, 1,
        "the crashing rows failed, the rest done: {last:?}"
    );
    let status = status_json(&env).await;
    assert_eq!(status["failed_by_reason"]["crashed"], 2, "{status}");
    assert_eq!(status["counts"]["uploaded"], PHOTOS as u64, "{status}");
    assert_no_key_put_twice(&env);
    assert_eq!(
        env.s3.image_keys().len(),
        PHOTOS,
        "every photo uploaded once"
    );
}
