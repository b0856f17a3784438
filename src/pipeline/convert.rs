//! The convert stage: a source image in, its grayscale version (or its
//! transform, with `--resize`, `--format`…) in the work directory out.
//!
//! It owns the conversion threads, the permit that bounds conversions to one
//! per core, the time limit, writing the output (`.part`, then rename, so a
//! file under its final name is whole), reusing an output that an earlier run
//! left behind, and the class of each of its errors. ImageMagick itself, its
//! policy and its limits are in `image::magick`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::format::ImageFormat;
use crate::image::lossless::{self, LosslessError};
use crate::image::magick::{self, Converted, MagickError};
use crate::image::transform::{self as tf, TransformError};
use crate::job::{Classify, Engine, FailureClass, ImageFacts, SourceFile, Systemic};
use crate::journal::quarantine::Quarantine;
use crate::memory::{Budget, Lease};
use crate::options::{JpegEngine, Limits};
use crate::settings::Settings;
use crate::transform::Transform;
use crate::workfile::{read_file, read_source, write_whole};

/// A converted image in the work directory and in memory.
pub struct Output {
    pub path: PathBuf,
    pub body: Bytes,
    /// The budget the body holds until it is uploaded.
    pub lease: Lease,
    /// Time the conversion took, the wait for a free core excluded; zero
    /// when an earlier run's output was reused.
    pub elapsed: Duration,
    /// Time spent waiting for room in the memory budget and for a free
    /// core before converting; zero when an output was reused.
    pub wait: Duration,
    /// What the conversion made; `None` when an earlier run's output was reused.
    pub image: Option<ImageFacts>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Image(#[from] MagickError),
    #[error(transparent)]
    Lossless(#[from] LosslessError),
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error("conversion took longer than {0:?}")]
    Timeout(Duration),
    #[error("internal error: the conversion panicked")]
    Panicked,
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for ConvertError {
    fn class(&self) -> FailureClass {
        match self {
            ConvertError::Image(MagickError::TooLarge { .. } | MagickError::OverBudget { .. }) => {
                FailureClass::ImageTooLarge
            }
            ConvertError::Image(_) => FailureClass::CorruptImage,
            ConvertError::Lossless(LosslessError::TooLarge { .. }) => FailureClass::ImageTooLarge,
            ConvertError::Lossless(LosslessError::Corrupt(_)) => FailureClass::CorruptImage,
            ConvertError::Transform(
                TransformError::TooLarge { .. }
                | TransformError::Magick(
                    MagickError::TooLarge { .. } | MagickError::OverBudget { .. },
                ),
            ) => FailureClass::ImageTooLarge,
            ConvertError::Transform(_) => FailureClass::CorruptImage,
            ConvertError::Timeout(_) => FailureClass::ConvertTimeout,
            ConvertError::Panicked => FailureClass::Internal,
            ConvertError::Write { .. } => FailureClass::LocalIo,
        }
    }

    fn systemic(&self) -> Option<Systemic> {
        match self {
            ConvertError::Write { path, source } => Systemic::disk_full(path, source),
            _ => None,
        }
    }
}

/// A conversion, as the header decided it.
enum Job {
    Lossless(lossless::Header),
    Magick(magick::Pinged),
    Transform(tf::Plan, Transform),
}

impl Job {
    /// What the conversion holds in memory besides the encoded input and output.
    fn memory_bytes(&self, budget: u64) -> u64 {
        match self {
            Job::Lossless(h) => h.memory_bytes(),
            // A pixel cache larger than the budget is kept on disk.
            Job::Magick(p) if p.cache_bytes() > budget => 16 << 20,
            Job::Magick(p) => p.cache_bytes(),
            Job::Transform(p, _) => p.memory_bytes(budget),
        }
    }

    fn run(
        self,
        data: &[u8],
        format: ImageFormat,
        limits: &Limits,
    ) -> Result<Converted, ConvertError> {
        match self {
            Job::Lossless(header) => match lossless::gray(data, &header)? {
                Some(bytes) => Ok(Converted {
                    bytes,
                    width: header.width,
                    height: header.height,
                    frames: 1,
                }),
                // An orientation that is no perfect lossless rotation.
                None => Ok(magick::grayscale(data, format, limits)?),
            },
            Job::Magick(pinged) => Ok(magick::grayscale_pinged(data, format, pinged)?),
            Job::Transform(plan, transform) => {
                let made = tf::run(data, format, plan, &transform)?;
                Ok(Converted {
                    bytes: made.bytes,
                    width: made.width,
                    height: made.height,
                    frames: 1,
                })
            }
        }
    }
}

/// The convert stage.
pub struct Converter {
    pool: ConvertPool,
    /// One per conversion thread; held from queueing until ImageMagick returns.
    permits: Arc<Semaphore>,
    limits: Limits,
    /// Where outputs are kept (`<work dir>/out`).
    dir: PathBuf,
    budget: Budget,
    quarantine: Arc<Quarantine>,
    engine: JpegEngine,
    transform: Transform,
    /// Write outputs to `dir` (not with `--delete-local`).
    keep_files: bool,
}

/// What a conversion starts from, once [`Converter::prepare`] has found it.
pub enum Ready {
    /// An output an earlier (killed) run left in the work directory.
    Output(Output),
    /// The source's bytes, and the budget they hold when this process
    /// fetched them.
    Source { body: Bytes, lease: Option<Lease> },
}

/// A conversion to run.
pub struct Input<'a> {
    pub row: u64,
    pub source: &'a SourceFile,
    pub ready: Ready,
    /// Convert with nothing else converting (a crash suspect).
    pub alone: bool,
}

impl Converter {
    /// The stage for `settings`: its conversion threads, limits, JPEG
    /// engine and transform, and whether outputs are kept on disk.
    pub fn new(
        dir: PathBuf,
        settings: &Settings,
        budget: Budget,
        quarantine: Arc<Quarantine>,
    ) -> Converter {
        let threads = settings.concurrency.converts;
        Converter {
            engine: settings.jpeg_engine,
            transform: settings.transform,
            // Not with --delete-local.
            keep_files: !settings.delete_local,
            // A quarter of the budget over all threads, outside it: what the
            // threads may keep of libjpeg's blocks between images (`jmem`).
            pool: ConvertPool::new(threads, (budget.total() / 4) as usize / threads.max(1)),
            permits: Arc::new(Semaphore::new(threads)),
            limits: settings.limits,
            dir,
            budget,
            quarantine,
        }
    }

    /// Where the output for object `key` is written: named like the object.
    pub fn output_path(&self, key: &str) -> PathBuf {
        self.dir
            .join(Path::new(key).file_name().expect("keys have a file name"))
    }

    /// What the conversion for object `key` starts from: an output an
    /// earlier run left behind, else the source's bytes (those this process
    /// holds, or the recorded file's). `None`: the source file is gone or
    /// changed, and must be fetched again.
    pub async fn prepare(
        &self,
        source: &SourceFile,
        held: Option<(Bytes, Lease)>,
        key: &str,
    ) -> Option<Ready> {
        let path = self.output_path(key);
        if let Some(output) = self.reuse(&path).await {
            tracing::debug!(path = %path.display(), "reusing an output an earlier run left");
            return Some(Ready::Output(output));
        }
        Some(match held {
            Some((body, lease)) => Ready::Source {
                body,
                lease: Some(lease),
            },
            None => Ready::Source {
                body: read_source(source).await?,
                lease: None,
            },
        })
    }

    /// The grayscale version of the input for object `key`: the output an
    /// earlier run left behind, or a new conversion admitted by the memory
    /// its header says it needs. `None`: the source file is gone or changed.
    pub async fn convert(
        &self,
        input: Input<'_>,
        key: &str,
    ) -> Result<Option<Output>, ConvertError> {
        let path = self.output_path(key);
        let Input {
            row,
            source,
            ready,
            alone,
        } = input;
        let (body, source_lease) = match ready {
            Ready::Output(output) => return Ok(Some(output)),
            Ready::Source { body, lease } => (body, lease),
        };
        let limits = self.limits;
        let job = if self.transform.applies_to(source.format) {
            let (data, transform, format) = (body.clone(), self.transform, source.format);
            let plan =
                tokio::task::spawn_blocking(move || tf::plan(&data, format, &transform, &limits))
                    .await
                    .map_err(|_| ConvertError::Panicked)??;
            Job::Transform(plan, transform)
        } else {
            self.grayscale_job(source, &body, &limits).await?
        };
        self.run_job(job, row, source, body, source_lease, alone, path)
            .await
    }

    /// The grayscale engine for an image, from its header alone.
    async fn grayscale_job(
        &self,
        source: &SourceFile,
        body: &Bytes,
        limits: &Limits,
    ) -> Result<Job, ConvertError> {
        let limits = *limits;
        // The engine, from the header alone: the lossless path for the JPEGs
        // it reproduces exactly, ImageMagick (pinged first) for the rest.
        let plan = match (source.format, self.engine) {
            (ImageFormat::Jpeg, JpegEngine::Lossless) => lossless::plan(body, &limits)?,
            _ => lossless::Plan::ImageMagick("not a JPEG, or --jpeg-engine imagemagick"),
        };
        // The lossless transform holds every coefficient in memory and cannot
        // spill to disk. Up to twice the budget (the container's whole limit
        // by default) it runs alone, its lease clamped to the budget (the
        // memory tests run a 98 MP photo in a 512 MiB cgroup). Beyond, it goes to ImageMagick, which keeps its pixels on disk.
        let plan = match plan {
            lossless::Plan::Lossless(h) if h.memory_bytes() > 2 * self.budget.total() => {
                lossless::Plan::ImageMagick("its coefficients do not fit the memory budget")
            }
            plan => plan,
        };
        let job = match plan {
            lossless::Plan::Lossless(header) => Job::Lossless(header),
            lossless::Plan::ImageMagick(why) => {
                if source.format == ImageFormat::Jpeg && self.engine == JpegEngine::Lossless {
                    tracing::debug!(reason = why, "this JPEG goes to ImageMagick");
                }
                let data = body.clone();
                let pinged = tokio::task::spawn_blocking(move || magick::ping(&data, &limits))
                    .await
                    .map_err(|_| ConvertError::Panicked)??;
                Job::Magick(pinged)
            }
        };
        Ok(job)
    }

    /// Runs `job` on a conversion thread once the budget has room for it
    /// and a core is free.
    #[allow(clippy::too_many_arguments)]
    async fn run_job(
        &self,
        job: Job,
        row: u64,
        source: &SourceFile,
        mut body: Bytes,
        source_lease: Option<Lease>,
        alone: bool,
        path: PathBuf,
    ) -> Result<Option<Output>, ConvertError> {
        let limits = self.limits;
        let need = job.memory_bytes(self.budget.total()) + 2 * body.len() as u64;
        let asked = Instant::now();
        // The conversion's lease covers the source bytes from here on.
        let mut lease = match self.budget.try_lease(need) {
            Some(l) => {
                drop(source_lease);
                l
            }
            None => {
                // Wait with nothing held: the bytes go back to the budget and
                // are read again from the file once there is room.
                drop((body, source_lease));
                let l = self.budget.lease(need).await;
                body = match read_source(source).await {
                    Some(body) => body,
                    None => return Ok(None),
                };
                l
            }
        };
        let engine = match &job {
            Job::Lossless(_) => Engine::Lossless,
            Job::Magick(_) => Engine::ImageMagick,
            Job::Transform(tf::Plan::Jpeg(_), _) => Engine::TurboJpeg,
            Job::Transform(tf::Plan::Magick(..), _) => Engine::Decoded,
        };
        let alone = alone || self.quarantine.careful;
        let permits = if alone { self.permits_total() } else { 1 };
        let permit = Arc::clone(&self.permits)
            .acquire_many_owned(permits)
            .await
            .expect("never closed");
        let converting = self.quarantine.converting(row, alone);
        let (format, output) = (source.format, path.clone());
        let keep_files = self.keep_files;
        let started = Instant::now();
        let wait = started - asked;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        // The permit and the quarantine entry move into the job, so a
        // conversion that outlives its time limit still holds its core, and
        // still counts as converting, until ImageMagick returns. The output
        // is written in the same call: one hop per image.
        let in_flight = crate::metrics::get().in_flight("convert");
        self.pool.run(move || {
            let _held = (permit, converting, in_flight);
            let result = job.run(&body, format, &limits).map(|c| {
                // Not written with --delete-local: see `Fetcher::fetch`.
                let written = if keep_files {
                    write_whole(&output, &c.bytes)
                } else {
                    Ok(())
                };
                (c, written)
            });
            let _ = done_tx.send(result);
        });
        let (converted, written) = match tokio::time::timeout(limits.convert_timeout, done_rx).await
        {
            Err(_) => return Err(ConvertError::Timeout(limits.convert_timeout)),
            Ok(Err(_)) => return Err(ConvertError::Panicked),
            Ok(Ok(result)) => result?,
        };
        let elapsed = started.elapsed();
        tracing::debug!(
            width = converted.width,
            height = converted.height,
            frames = converted.frames,
            bytes = converted.bytes.len(),
            ms = elapsed.as_millis() as u64,
            wait_ms = wait.as_millis() as u64,
            "converted"
        );
        written.map_err(|source| ConvertError::Write {
            path: path.clone(),
            source,
        })?;
        lease.shrink_to(converted.bytes.len() as u64);
        let image = ImageFacts {
            width: u32::try_from(converted.width).unwrap_or(u32::MAX),
            height: u32::try_from(converted.height).unwrap_or(u32::MAX),
            bytes: converted.bytes.len() as u64,
            engine,
        };
        crate::metrics::get().stage_time("convert", elapsed);
        crate::metrics::get().stage_wait("convert", wait);
        Ok(Some(Output {
            path,
            body: Bytes::from(converted.bytes),
            lease,
            elapsed,
            wait,
            image: Some(image),
        }))
    }

    fn permits_total(&self) -> u32 {
        self.pool.threads as u32
    }

    /// The size the output of `source` will have, from its header alone
    /// (for `{width}` and `{height}` in a chosen name); `None` when the
    /// header cannot be read, which the conversion then reports.
    pub async fn output_size(
        &self,
        source: &SourceFile,
        held: Option<&Bytes>,
    ) -> Option<(u32, u32)> {
        let body = match held {
            Some(body) => body.clone(),
            None => read_source(source).await?,
        };
        let (format, limits) = (source.format, self.limits);
        // Without a transform the output is the upright source.
        let transform = if self.transform.applies_to(format) {
            self.transform
        } else {
            Transform::default()
        };
        tokio::task::spawn_blocking(move || {
            let plan = tf::plan(&body, format, &transform, &limits).ok()?;
            let (w, h) = plan.upright();
            Some(transform.geometry(w, h).output())
        })
        .await
        .ok()
        .flatten()
    }

    /// An output in the work directory, with the budget its bytes take.
    pub async fn reuse(&self, path: &Path) -> Option<Output> {
        let body = self.reload(path).await?;
        let lease = self.budget.lease(body.len() as u64).await;
        Some(Output {
            path: path.to_path_buf(),
            body,
            lease,
            elapsed: Duration::ZERO,
            wait: Duration::ZERO,
            image: None,
        })
    }

    /// The bytes of an output in the work directory, if it is there.
    async fn reload(&self, path: &Path) -> Option<Bytes> {
        if !path.exists() {
            return None;
        }
        read_file(path.to_path_buf()).await
    }
}

/// A fixed set of threads for conversions. Compared with tokio's blocking
/// pool, where any thread may take the next task, the same few threads keep
/// their caches and malloc arenas warm from image to image, which keeps peak
/// RSS and kernel time down (figures in docs/performance.md).
struct ConvertPool {
    tx: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
    threads: usize,
}

impl ConvertPool {
    /// `threads` threads, each keeping up to `keep` bytes of libjpeg's large
    /// blocks from one image to the next.
    fn new(threads: usize, keep: usize) -> ConvertPool {
        let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("convert-{i}"))
                .spawn(move || {
                    crate::image::jmem::keep_blocks(keep);
                    loop {
                        let job = rx.lock().map(|r| r.recv());
                        match job {
                            // A panicking job drops its reply channel, which
                            // its row reports; the thread lives on for the next.
                            Ok(Ok(job)) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                                crate::image::jmem::settle();
                            }
                            _ => return,
                        }
                    }
                })
                .expect("spawn a conversion thread");
        }
        ConvertPool { tx, threads }
    }

    /// Queues `job`; callers bound the queue with the stage's permits.
    fn run(&self, job: impl FnOnce() + Send + 'static) {
        // Sending fails only once every thread is gone, and then the job's
        // reply channel closes, which the caller reports.
        let _ = self.tx.send(Box::new(job));
    }
}
