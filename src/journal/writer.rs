//! The journal's single writer: a thread that batches the rows' records
//! into one transaction per window, so a commit's fsync is shared by every
//! row that changed in it. Each commit also records the busiest hosts'
//! adapted limits, from the channel its caller hands it, for `status`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::Database;
use tokio::sync::{mpsc, watch};

use super::tables::{JournalError, busiest, commit_updates};
use crate::job::JobRecord;

/// The per-host download limits that moved, by host, as their owner (the
/// fetch stage) publishes them.
pub type HostLimits = watch::Receiver<BTreeMap<String, usize>>;

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
    // Until a caller hands some over, no host's limit has moved.
    let mut hosts: Option<HostLimits> = None;
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
                    Msg::Hosts(limits) => hosts = Some(limits),
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
            let hosts = hosts
                .as_ref()
                .map(|h| busiest(&h.borrow()))
                .unwrap_or_default();
            commit_updates(db, path, &mut pending, &hosts)?;
        }
        if closed {
            return Ok(());
        }
    }
}

enum Msg {
    Update(u64, Box<JobRecord>),
    Hosts(HostLimits),
    Shutdown,
}

/// A handle to the journal's writer thread. Cheap to clone.
///
/// Row tasks send their records over a bounded tokio channel: a full queue
/// makes the sending task wait (back-pressure) without blocking a runtime
/// worker, and the writer thread drains it with `blocking_recv`. The run's
/// information (`RunInfo`) does not go through here: the command layer writes
/// it with [`Journal::set_run_info`](super::Journal::set_run_info) only before the writer starts and after
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

    /// Has every later commit record the busiest of `limits` (the fetch
    /// stage's, handed on by the pipeline), which `status` shows. Fails only
    /// once the writer has stopped.
    pub async fn follow_host_limits(&self, limits: HostLimits) -> Result<(), WriterGone> {
        self.tx
            .send(Msg::Hosts(limits))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, ReadJournal, RunInfo};
    use crate::location::Location;
    use crate::settings::{Settings, StoreSettings};

    #[tokio::test]
    async fn each_commit_records_the_busiest_hosts_its_caller_hands_it() {
        let dir = tempfile::tempdir().unwrap();
        let local = |name: &str| Location::Local(dir.path().join(name));
        let store = StoreSettings::new("test".into(), "us-east-1".into(), None);
        let settings = Settings::new(local("in.csv"), local("out.csv"), store, dir.path());
        let info = RunInfo::new(settings, String::new(), 0);
        let url = "https://example.com/a.jpg".to_string();
        let rows = std::iter::once(Ok(crate::job::InputRow {
            row: 0,
            url: url.clone(),
            kept: Vec::new(),
            name: None,
        }));
        let journal = Journal::create(dir.path(), info, true, rows, |_| {}).unwrap();
        let (limits, followed) = watch::channel(BTreeMap::new());
        let writer = journal.writer();
        writer.follow_host_limits(followed).await.unwrap();
        limits.send_modify(|moved| {
            for (i, host) in ["a", "b", "c", "d", "e", "f", "g"].into_iter().enumerate() {
                moved.insert(format!("{host}:443"), 10 + i % 4);
            }
        });
        writer.record(0, JobRecord::new(url, None)).await.unwrap();
        writer.finish().await.unwrap();
        drop(journal);

        let shown = ReadJournal::open(dir.path())
            .unwrap()
            .host_limits()
            .unwrap();
        let expected = [("d", 13), ("c", 12), ("g", 12), ("b", 11), ("f", 11)]
            .map(|(h, l)| (format!("{h}:443"), l));
        assert_eq!(shown, expected);
    }
}
