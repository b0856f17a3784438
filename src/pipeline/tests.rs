//! The loop against the in-memory store and a loopback HTTP server: for each
//! state a crash can leave a row in, what one resume does, counted in requests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use magick_rust::{MagickWand, PixelWand};

use super::*;
use crate::format::ImageFormat;
use crate::image::magick;
use crate::job::{JobState, RetryFailed, SourceFile, StateKind};
use crate::journal::quarantine;
use crate::journal::{Journal, Rows, RunInfo};
use crate::location::Location;
use crate::options::{Concurrency, Limits};
use crate::retry::RetryPolicy;
use crate::settings::StoreSettings;
use crate::store::memory::MemoryStore;

struct Quiet;

impl Reporter for Quiet {
    fn begin(&self, _: u64) {}
    fn row_finished(&self, _: bool) {}
    fn end(&self) {}
}

/// A loopback server that answers every path with `body` and counts requests.
async fn serve(body: Bytes) -> (String, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        let (body, counter) = (body.clone(), Arc::clone(&counter));
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            ([("content-type", "image/jpeg")], body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/photo.jpg"), hits)
}

fn colour_jpeg() -> Bytes {
    magick::init(&Limits::default()).unwrap();
    let wand = MagickWand::new();
    let mut bg = PixelWand::new();
    bg.set_color("#c83c1e").unwrap();
    wand.new_image(48, 32, &bg).unwrap();
    Bytes::from(wand.write_image_blob("JPEG").unwrap())
}

fn settings(dir: &Path) -> Settings {
    let local = |name: &str| Location::Local(dir.join(name));
    let mut store = StoreSettings::new("test".into(), "us-east-1".into(), None);
    store.prefix = "gray/".into();
    let mut settings = Settings::new(local("in.csv"), local("out.csv"), store, dir);
    settings.concurrency = Concurrency {
        downloads: Some(2),
        per_host: Some(2),
        converts: 1,
        uploads: Some(2),
        per_host_rps: None,
    };
    // No retries, so a failure shows at once.
    settings.retry = RetryPolicy {
        attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };
    settings.allow_private_networks = true;
    settings.url_markers = false;
    settings.head_before_put = crate::options::HeadBeforePut::Always;
    settings.memory_budget = Some(256 << 20);
    settings
}

/// One row left by a crash in `state`, resumed once.
struct Resume {
    dir: tempfile::TempDir,
    url: String,
    image: Bytes,
    hits: Arc<AtomicU32>,
    store: Arc<MemoryStore>,
    delete_local: bool,
}

/// What one resume did.
#[derive(Debug, PartialEq, Eq)]
struct Requests {
    gets: u32,
    heads: usize,
    puts: usize,
}

impl Resume {
    async fn new() -> Resume {
        let image = colour_jpeg();
        let (url, hits) = serve(image.clone()).await;
        Resume {
            dir: tempfile::tempdir().unwrap(),
            url,
            image,
            hits,
            store: Arc::default(),
            delete_local: false,
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            delete_local: self.delete_local,
            ..settings(self.dir.path())
        }
    }

    fn key(&self) -> String {
        keys::object_key(
            "gray/",
            blake3::hash(&self.image).as_bytes(),
            ImageFormat::Jpeg,
            crate::options::JpegEngine::Lossless,
            None,
        )
    }

    fn source(&self) -> SourceFile {
        let path = self.settings().work_dir.join("in/left.jpg");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &self.image).unwrap();
        SourceFile {
            path,
            hash: *blake3::hash(&self.image).as_bytes(),
            format: ImageFormat::Jpeg,
            bytes: self.image.len() as u64,
        }
    }

    fn output(&self, body: &[u8]) -> PathBuf {
        let dir = self.settings().work_dir.join("out");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(self.key().strip_prefix("gray/").unwrap());
        std::fs::write(&path, body).unwrap();
        path
    }

    /// Records `state` for the row as a crash would have left it, resumes
    /// once, and returns the requests made and the row's final record.
    async fn run(&self, state: JobState) -> (Requests, JobRecord) {
        let settings = Arc::new(self.settings());
        let state_dir = self.dir.path().join("state");
        let info = RunInfo::new((*settings).clone(), String::new(), 0);
        let rows = std::iter::once(Ok(crate::job::InputRow {
            row: 0,
            url: self.url.clone(),
            kept: Vec::new(),
            name: None,
        }));
        let journal = Arc::new(Journal::create(&state_dir, info, true, rows, |_| {}).unwrap());
        let crashed = journal.writer();
        let mut rec = JobRecord::new(self.url.clone(), None);
        rec.state = state;
        crashed.record(0, rec).await.unwrap();
        crashed.finish().await.unwrap();

        let writer = journal.writer();
        let pipeline = Pipeline::new(
            Arc::clone(&settings),
            Arc::clone(&self.store),
            writer.clone(),
            Arc::new(Quiet),
            Arc::new(quarantine::Quarantine::off()),
        )
        .unwrap();
        let stop = Arc::new(pipeline)
            .run(Arc::clone(&journal), RetryFailed::No, 1)
            .await;
        assert_eq!(stop, Stop::Completed);
        writer.finish().await.unwrap();
        let mut last = None;
        journal
            .for_each_resolved(&mut |_, _, rec, _| {
                last = Some(rec.clone());
                Ok(())
            })
            .unwrap();
        let requests = Requests {
            gets: self.hits.load(Ordering::SeqCst),
            heads: self.store.heads.lock().unwrap().len(),
            puts: self.store.puts.lock().unwrap().len(),
        };
        (requests, last.unwrap())
    }

    fn object(&self) -> Bytes {
        self.store.objects.lock().unwrap()[&self.key()].clone()
    }
}

fn uploaded(rec: &JobRecord) -> &Uploaded {
    match &rec.state {
        JobState::Uploaded(u) => u,
        other => panic!("expected uploaded, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pending_row_is_fetched_checked_converted_and_uploaded() {
    let r = Resume::new().await;
    let (requests, rec) = r.run(JobState::Pending).await;
    assert_eq!(
        requests,
        Requests {
            gets: 1,
            heads: 1,
            puts: 1
        }
    );
    let done = uploaded(&rec);
    assert_eq!(done.key, r.key());
    assert!(!done.reused);
    assert_ne!(r.object(), r.image, "the object is the converted image");
    assert_eq!(rec.attempts, 1);
}

#[tokio::test]
async fn a_downloaded_row_with_its_file_is_not_fetched_again() {
    let r = Resume::new().await;
    let source = r.source();
    let (requests, rec) = r
        .run(JobState::Downloaded {
            source: source.clone(),
        })
        .await;
    assert_eq!(
        requests,
        Requests {
            gets: 0,
            heads: 1,
            puts: 1
        }
    );
    assert_eq!(uploaded(&rec).input, Some(source.path));
}

#[tokio::test]
async fn a_downloaded_row_whose_file_is_gone_or_changed_is_fetched_again() {
    for damage in ["remove", "change"] {
        let r = Resume::new().await;
        let source = r.source();
        match damage {
            "remove" => std::fs::remove_file(&source.path).unwrap(),
            _ => std::fs::write(&source.path, b"other bytes").unwrap(),
        }
        let (requests, rec) = r.run(JobState::Downloaded { source }).await;
        assert_eq!(
            requests,
            Requests {
                gets: 1,
                heads: 1,
                puts: 1
            },
            "{damage}"
        );
        assert_eq!(uploaded(&rec).key, r.key());
    }
}

#[tokio::test]
async fn a_processed_row_uploads_its_output_without_the_source_or_a_conversion() {
    let r = Resume::new().await;
    let source = r.source();
    // Not a real conversion: if the loop converted again, the object would differ.
    let output = r.output(b"converted by the run that crashed");
    std::fs::remove_file(&source.path).unwrap();
    let (requests, rec) = r
        .run(JobState::Processed {
            source,
            output: output.clone(),
            key: r.key(),
            image: None,
        })
        .await;
    assert_eq!(
        requests,
        Requests {
            gets: 0,
            heads: 1,
            puts: 1
        }
    );
    assert_eq!(&r.object()[..], b"converted by the run that crashed");
    let done = uploaded(&rec);
    assert_eq!(done.output, Some(output));
    assert_eq!(
        done.input, None,
        "the source file is gone, so the CSV names none"
    );
}

#[tokio::test]
async fn a_processed_row_whose_output_is_gone_is_converted_again_from_its_source() {
    let r = Resume::new().await;
    let source = r.source();
    let output = r.settings().work_dir.join("out/missing.jpg");
    let (requests, rec) = r
        .run(JobState::Processed {
            source,
            output,
            key: r.key(),
            image: None,
        })
        .await;
    assert_eq!(requests.gets, 0);
    assert_eq!(requests.puts, 1);
    assert_eq!(ImageFormat::sniff(&r.object()), Some(ImageFormat::Jpeg));
    assert_eq!(uploaded(&rec).key, r.key());
}

#[tokio::test]
async fn a_row_whose_object_is_in_the_bucket_is_not_uploaded_again() {
    let r = Resume::new().await;
    r.store
        .objects
        .lock()
        .unwrap()
        .insert(r.key(), Bytes::from_static(b"there"));
    let (requests, rec) = r.run(JobState::Pending).await;
    assert_eq!(
        requests,
        Requests {
            gets: 1,
            heads: 1,
            puts: 0
        }
    );
    assert!(uploaded(&rec).reused);
}

#[tokio::test]
async fn an_uploaded_row_makes_no_request_at_all() {
    let r = Resume::new().await;
    let done = Uploaded {
        key: r.key(),
        s3url: "memory:///x".into(),
        reused: false,
        input: None,
        output: None,
        source: None,
        image: None,
    };
    let (requests, rec) = r.run(JobState::Uploaded(done.clone())).await;
    assert_eq!(
        requests,
        Requests {
            gets: 0,
            heads: 0,
            puts: 0
        }
    );
    assert_eq!(rec.state, JobState::Uploaded(done));
    assert_eq!(rec.attempts, 0, "not picked up");
}

#[tokio::test]
async fn a_failed_row_stays_failed_without_retry_failed() {
    let r = Resume::new().await;
    let failure = Failure::new(FailureClass::HttpStatus, "server answered HTTP 404");
    let (requests, rec) = r.run(JobState::Failed(failure.clone())).await;
    assert_eq!(
        requests.gets + requests.heads as u32 + requests.puts as u32,
        0
    );
    assert_eq!(rec.state.kind(), StateKind::Failed);
    assert_eq!(rec.failure(), Some(&failure));
}

#[tokio::test]
async fn with_delete_local_no_file_is_written_and_nothing_is_lost() {
    let mut r = Resume::new().await;
    r.delete_local = true;
    let (requests, rec) = r.run(JobState::Pending).await;
    assert_eq!(
        requests,
        Requests {
            gets: 1,
            heads: 1,
            puts: 1
        }
    );
    assert_eq!(uploaded(&rec).key, r.key());
    for sub in ["in", "out"] {
        let dir = r.settings().work_dir.join(sub);
        let files = std::fs::read_dir(&dir).map_or(0, |d| d.count());
        assert_eq!(files, 0, "{} holds files", dir.display());
    }
    // A crash after `downloaded` was recorded: the bytes were only in memory,
    // so the resume fetches them again, then uploads once.
    let again = Resume::new().await;
    let source = SourceFile {
        path: again.settings().work_dir.join("in/never-written.jpg"),
        hash: *blake3::hash(&again.image).as_bytes(),
        format: ImageFormat::Jpeg,
        bytes: again.image.len() as u64,
    };
    let (requests, rec) = again.run(JobState::Downloaded { source }).await;
    assert_eq!((requests.gets, requests.puts), (1, 1));
    assert_eq!(uploaded(&rec).key, again.key());
}
