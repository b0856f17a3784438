//! The journal's single writer: a thread that batches the rows' records
//! into one transaction per window, so a commit's fsync is shared by every
//! row that changed in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::Database;
use tokio::sync::mpsc;

use super::tables::{JournalError, commit_updates};
use crate::job::JobRecord;

/// Starts the single writer of `db` (the journal at `path`);
/// [`Writer::finish`] commits what is queued and stops it.
pub(super) fn start(db: Arc<Database>, path: PathBuf) -> Writer {
    let (tx, rx) = mpsc::channel::<Msg>(8192);
    let handle = std::thread::Builder::new()
        .name("journal-writer".into())
        .spawn(move || write_loop(&db, &path, rx))
        .expect("spawn journal writer");
    Writer {
        tx,
        thread: Arc::new(std::sync::Mutex::new(Some(handle))),
    }
}

fn write_loop(db: &Database, path: &Path, mut rx: mpsc::Receiver<Msg>) -> Result<(), JournalError> {
    // A commit costs an fsync; waiting this long for company makes the cost
    // per row negligible and bounds what a crash can lose.
    const WINDOW: Duration = Duration::from_millis(100);
    let mut pending: Vec<(u64, JobRecord)> = Vec::new();
    let take = |rx: &mut mpsc::Receiver<Msg>, closed: &mut bool| match rx.try_recv() {
        Ok(m) => Some(m),
        Err(mpsc::error::TryRecvError::Empty) => None,
        Err(mpsc::error::TryRecvError::Disconnected) => {
            *closed = true;
            None
        }
    };
    loop {
        let Some(first) = rx.blocking_recv() else {
            return Ok(());
        };
        let deadline = Instant::now() + WINDOW;
        let mut closed = false;
        let mut msg = Some(first);
        loop {
            while let Some(m) = msg.take() {
                match m {
                    Msg::Update(row, rec) => pending.push((row, *rec)),
                    Msg::Shutdown => closed = true,
                }
                msg = take(&mut rx, &mut closed);
            }
            let now = Instant::now();
            if closed || now >= deadline {
                break;
            }
            // Sleep through the window rather than wake for each of the
            // three updates a row makes; `finish` unparks this thread.
            std::thread::park_timeout(deadline - now);
            msg = take(&mut rx, &mut closed);
        }
        if !pending.is_empty() {
            commit_updates(db, path, &mut pending)?;
        }
        if closed {
            return Ok(());
        }
    }
}

enum Msg {
    Update(u64, Box<JobRecord>),
    Shutdown,
}

/// A handle to the journal's writer thread. Cheap to clone.
///
/// Row tasks send their records over a bounded tokio channel: a full queue
/// makes the sending task wait (back-pressure) without blocking a runtime
/// worker, and the writer thread drains it with `blocking_recv`. The run's
/// information (`RunInfo`) does not go through here: the command layer writes
/// it with [`Journal::set_run_info`] only before the writer starts and after
/// [`Writer::finish`], so the two never contend for redb's write lock.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Msg>,
    thread: Arc<std::sync::Mutex<Option<WriterThread>>>,
}

type WriterThread = std::thread::JoinHandle<Result<(), JournalError>>;

impl Writer {
    /// Queues a row's new record; committed within about 100 ms. Fails only
    /// once the writer has stopped, after an error [`Writer::finish`] reports.
    pub async fn record(&self, row: u64, rec: JobRecord) -> Result<(), WriterGone> {
        self.tx
            .send(Msg::Update(row, Box::new(rec)))
            .await
            .map_err(|_| WriterGone)
    }

    /// Commits what is queued, stops the writer and returns its error, if any.
    pub async fn finish(&self) -> Result<(), JournalError> {
        let _ = self.tx.send(Msg::Shutdown).await;
        let handle = self.thread.lock().expect("writer lock").take();
        let Some(handle) = handle else {
            return Ok(());
        };
        handle.thread().unpark();
        let panicked = || JournalError::Io(std::io::Error::other("journal writer panicked"));
        tokio::task::spawn_blocking(move || handle.join().unwrap_or_else(|_| Err(panicked())))
            .await
            .unwrap_or_else(|_| Err(panicked()))
    }
}

/// The journal writer has stopped; the run cannot record progress any more.
#[derive(Debug, thiserror::Error)]
#[error("the journal writer has stopped")]
pub struct WriterGone;
