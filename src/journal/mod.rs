//! The run's on-disk journal: the only module that touches the embedded database.
//!
//! Why redb: it is maintained, has a stable file format, and a commit is durable
//! when `commit()` returns; sled, which the design card named, is unmaintained
//! beta software with reports of databases that do not reopen after a kill
//! (see the README). One table row per input row, keyed by the row number, so
//! inserts are sequential and reading the rows back in input order is a range
//! scan. Counters per state live beside the rows and are updated in the same
//! transactions, so `status` answers in constant time on a million rows.
//!
//! Every stored value starts with a format version byte, then postcard.
//!
//! Writes go through one writer thread ([`Writer`]) that batches many row
//! updates into one transaction; redb's quick-repair mode makes reopening after
//! `kill -9` almost instant. Losing the last uncommitted batch in a crash is
//! harmless: the work it recorded is idempotent (see `pipeline`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{
    ConcurrencyMode, Database, DatabaseError, ReadOnlyDatabase, ReadTransaction, ReadableDatabase,
    ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::mpsc;

use crate::job::{Failure, FailureClass, JobRecord, JobState, RetryFailed, StateKind, now_ms};
use crate::settings::Settings;

const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("counts");
const FAILED: TableDefinition<u64, ()> = TableDefinition::new("failed");
/// Rows converting when a process died (see `pipeline::quarantine`).
const SUSPECTS: TableDefinition<u64, ()> = TableDefinition::new("suspects");
/// The input's other columns of each row, with `--keep-columns`.
const COLUMNS: TableDefinition<u64, &[u8]> = TableDefinition::new("columns");

/// Bumped whenever a stored struct changes shape. 2: states carry their data.
/// 3: kept columns and object options. 4: HTTP settings, key templates.
const FORMAT_VERSION: u8 = 4;
const FILE_NAME: &str = "journal.redb";
/// Small on purpose: the journal is read sequentially and peak RSS matters more.
const CACHE_BYTES: usize = 32 * 1024 * 1024;
const INGEST_BATCH: usize = 50_000;

/// One `batchimg run` (and its resumes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub tool_version: String,
    pub settings: Settings,
    /// Blake3 of the input file, to notice a changed input on resume.
    pub input_hash: String,
    /// Input rows (all of them, duplicates included).
    pub rows: u64,
    /// Rows whose URL appeared earlier in the input.
    pub duplicates: u64,
    pub created_ms: u64,
    /// Set when a run or resume reached the end and wrote its CSVs.
    pub finished_ms: Option<u64>,
    /// Start of the latest run or resume, and how many rows were done then,
    /// for the throughput `status` reports.
    pub session_started_ms: u64,
    pub session_done_at_start: u64,
    /// Names of the input columns kept beside the URL (`--keep-columns`).
    pub kept_header: Vec<String>,
}

/// Per-state counts and failures by class.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub by_state: Vec<(&'static str, u64)>,
    pub reused: u64,
    pub failed_by_class: Vec<(&'static str, u64)>,
}

impl Counts {
    /// Failed rows that `retry` takes up again.
    pub fn retried(&self, retry: &RetryFailed) -> u64 {
        self.failed_by_class
            .iter()
            .filter(|(name, _)| {
                FailureClass::ALL
                    .iter()
                    .any(|c| c.name() == *name && retry.wants_class(*c))
            })
            .map(|(_, n)| n)
            .sum()
    }

    pub fn get(&self, state: StateKind) -> u64 {
        self.by_state
            .iter()
            .find(|(n, _)| *n == state.name())
            .map_or(0, |(_, c)| *c)
    }

    /// The `limit` commonest failure reasons with their counts, commonest
    /// first (ties in the reasons' documented order), and how many rows the
    /// others hold: "http-status: 20, network: 7, 2 other". The one wording
    /// of the summary, the progress lines and `status`.
    pub fn top_failures(&self, limit: usize) -> String {
        let mut sorted = self.failed_by_class.clone();
        sorted.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let mut parts: Vec<String> = sorted
            .iter()
            .take(limit)
            .map(|(class, n)| format!("{class}: {n}"))
            .collect();
        let others: u64 = sorted.iter().skip(limit).map(|(_, n)| n).sum();
        if others > 0 {
            parts.push(format!("{others} other"));
        }
        parts.join(", ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("no journal in {0} (start one with `batchimg run`)")]
    Missing(PathBuf),
    #[error("another batchimg process is using the journal in {0}")]
    Busy(PathBuf),
    #[error(
        "an unfinished run is recorded in {0}: continue it with `batchimg resume`, \
         or pass --fresh to discard it"
    )]
    Unfinished(PathBuf),
    #[error(
        "the journal in {path} was written by an incompatible version of batchimg ({detail}): \
         finish that run with the version that started it, or start over with \
         `batchimg run --fresh` (objects already in the bucket are not uploaded again)"
    )]
    Incompatible { path: PathBuf, detail: String },
    #[error("journal database error")]
    Db(#[from] redb::Error),
    #[error("journal file error")]
    Io(#[from] std::io::Error),
}

/// The many redb error types become one `JournalError::Db`, for `?` in both
/// error types of this module.
macro_rules! db_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for JournalError {
            fn from(e: $t) -> Self { JournalError::Db(e.into()) }
        }
        impl From<$t> for CreateError {
            fn from(e: $t) -> Self { CreateError::Journal(e.into()) }
        }
    )*};
}
db_errors!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<DatabaseError> for JournalError {
    fn from(e: DatabaseError) -> Self {
        JournalError::Db(e.into())
    }
}

/// The journal of one state directory, open for writing.
pub struct Journal {
    db: Database,
    path: PathBuf,
    /// Held for as long as this process may write the state directory.
    _lock: StateLock,
}

/// An exclusive lock on a state directory (`<dir>/lock`, `flock`). It is
/// taken before anything in the directory is read, created or deleted, so of
/// two runs started together exactly one proceeds; the kernel drops it when
/// the process dies, `kill -9` included, so it never goes stale.
pub struct StateLock {
    _file: std::fs::File,
}

const LOCK_NAME: &str = "lock";

impl StateLock {
    pub fn take(state_dir: &Path) -> Result<StateLock, JournalError> {
        std::fs::create_dir_all(state_dir)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(state_dir.join(LOCK_NAME))?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(JournalError::Busy(state_dir.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }

    /// Whether a live process holds the lock of `state_dir` (for `status`).
    pub fn is_held(state_dir: &Path) -> bool {
        let Ok(file) = std::fs::File::open(state_dir.join(LOCK_NAME)) else {
            return false;
        };
        matches!(
            file.try_lock_shared(),
            Err(std::fs::TryLockError::WouldBlock)
        )
    }
}

impl Journal {
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    /// Starts a new journal from input rows, replacing a finished one. The file
    /// appears under its real name only once every row is in, so an input
    /// that fails validation half-way leaves no journal behind.
    pub fn create<I>(
        state_dir: &Path,
        mut run: RunInfo,
        fresh: bool,
        rows: I,
    ) -> Result<Journal, CreateError>
    where
        I: IntoIterator<Item = Result<crate::manifest::Row, anyhow::Error>>,
    {
        let lock = StateLock::take(state_dir)?;
        let path = Journal::path_in(state_dir);
        if path.exists() {
            // Opening for writing also repairs a journal left by `kill -9`.
            let old = Journal::open_db(&path).map_err(|e| match e {
                JournalError::Busy(_) => JournalError::Busy(state_dir.to_path_buf()),
                e => e,
            })?;
            match run_info(&old.begin_read()?, &path) {
                Ok(info) if info.finished_ms.is_none() && !fresh => {
                    return Err(JournalError::Unfinished(state_dir.to_path_buf()).into());
                }
                Ok(_) => {}
                Err(e @ JournalError::Incompatible { .. }) => {
                    tracing::warn!("replacing an unreadable journal: {e}");
                }
                Err(e) => return Err(e.into()),
            }
        }
        let tmp = state_dir.join(format!("{FILE_NAME}.new"));
        let _ = std::fs::remove_file(&tmp);
        let db = Journal::open_db(&tmp)?;
        let mut seen: HashMap<[u8; 16], u64> = HashMap::new();
        let mut batch: Vec<(u64, JobRecord, Vec<String>)> = Vec::with_capacity(INGEST_BATCH);
        let mut counts = (0u64, 0u64); // (pending, duplicates)
        let mut total = 0u64;
        let flush = |db: &Database,
                     batch: &mut Vec<(u64, JobRecord, Vec<String>)>|
         -> Result<(), JournalError> {
            let txn = begin_write(db)?;
            {
                let mut jobs = txn.open_table(JOBS)?;
                let mut columns = txn.open_table(COLUMNS)?;
                for (row, rec, kept) in batch.drain(..) {
                    jobs.insert(row, encode(&rec).as_slice())?;
                    if !kept.is_empty() {
                        columns.insert(row, encode(&kept).as_slice())?;
                    }
                }
            }
            txn.commit()?;
            Ok(())
        };
        for item in rows {
            let crate::manifest::Row {
                row,
                url,
                kept,
                name,
            } = match item {
                Ok(r) => r,
                Err(e) => {
                    drop(db);
                    let _ = std::fs::remove_file(&tmp);
                    return Err(CreateError::Input(e));
                }
            };
            total += 1;
            // Rows that share a URL share the work, unless --key-template
            // names them apart.
            let digest = match &name {
                Some(Ok(name)) => {
                    let mut h = blake3::Hasher::new();
                    h.update(url.as_bytes()).update(b"\0name\0");
                    h.update(name.key("").as_bytes());
                    h.finalize()
                }
                _ => blake3::hash(url.as_bytes()),
            };
            let short: [u8; 16] = digest.as_bytes()[..16].try_into().expect("16 bytes");
            let dup_of = match seen.entry(short) {
                std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(row);
                    None
                }
            };
            if dup_of.is_some() {
                counts.1 += 1;
            } else {
                counts.0 += 1;
            }
            let mut rec = JobRecord::new(url, dup_of);
            rec.name = name;
            batch.push((row, rec, kept));
            if batch.len() >= INGEST_BATCH {
                flush(&db, &mut batch)?;
            }
        }
        flush(&db, &mut batch)?;
        drop(seen);
        run.rows = total;
        run.duplicates = counts.1;
        let txn = begin_write(&db)?;
        {
            let mut c = txn.open_table(COUNTS)?;
            c.insert(StateKind::Pending.name(), counts.0)?;
            txn.open_table(FAILED)?;
            txn.open_table(SUSPECTS)?;
            txn.open_table(COLUMNS)?;
            let mut meta = txn.open_table(META)?;
            meta.insert("run", encode(&run).as_slice())?;
        }
        txn.commit()?;
        drop(db);
        std::fs::rename(&tmp, &path).map_err(JournalError::from)?;
        // What a killed process was converting named rows of the old journal.
        crate::pipeline::quarantine::clear(state_dir);
        Ok(Journal::open_locked(state_dir, lock)?)
    }

    /// Opens the journal of `state_dir` for a resume.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        if !Journal::path_in(state_dir).exists() {
            return Err(JournalError::Missing(state_dir.to_path_buf()));
        }
        Journal::open_locked(state_dir, StateLock::take(state_dir)?)
    }

    fn open_locked(state_dir: &Path, lock: StateLock) -> Result<Journal, JournalError> {
        let path = Journal::path_in(state_dir);
        if !path.exists() {
            return Err(JournalError::Missing(state_dir.to_path_buf()));
        }
        let db = Journal::open_db(&path).map_err(|e| match e {
            JournalError::Busy(_) => JournalError::Busy(state_dir.to_path_buf()),
            e => e,
        })?;
        let journal = Journal {
            db,
            path,
            _lock: lock,
        };
        journal.run_info()?;
        Ok(journal)
    }

    fn open_db(path: &Path) -> Result<Database, JournalError> {
        let mut builder = Database::builder();
        builder
            .set_cache_size(CACHE_BYTES)
            .set_concurrency_mode(ConcurrencyMode::SingleWriter);
        match builder.create(path) {
            Ok(db) => Ok(db),
            Err(DatabaseError::DatabaseAlreadyOpen) => Err(JournalError::Busy(path.to_path_buf())),
            Err(e) => Err(e.into()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn run_info(&self) -> Result<RunInfo, JournalError> {
        run_info(&self.db.begin_read()?, &self.path)
    }

    pub fn set_run_info(&self, run: &RunInfo) -> Result<(), JournalError> {
        let txn = begin_write(&self.db)?;
        txn.open_table(META)?
            .insert("run", encode(run).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub fn counts(&self) -> Result<Counts, JournalError> {
        counts(&self.db.begin_read()?)
    }

    /// Rows after `after` (in input order) that still need work, at most `limit`.
    pub fn next_jobs(
        &self,
        after: Option<u64>,
        limit: usize,
        retry: &RetryFailed,
    ) -> Result<Vec<(u64, JobRecord)>, JournalError> {
        let txn = self.db.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        let start = after.map_or(0, |a| a + 1);
        let mut out = Vec::with_capacity(limit);
        for entry in jobs.range(start..)? {
            let (row, value) = entry?;
            let rec: JobRecord = decode(value.value(), &self.path)?;
            let wanted = rec.dup_of.is_none()
                && !rec.suspect
                && match &rec.state {
                    JobState::Uploaded(_) => false,
                    JobState::Failed(f) => retry.wants(f),
                    _ => true,
                };
            if wanted {
                out.push((row.value(), rec));
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The suspects of a crash, in input order (see `pipeline::quarantine`).
    pub fn suspects(&self) -> Result<Vec<(u64, JobRecord)>, JournalError> {
        let txn = self.db.begin_read()?;
        let Ok(suspects) = txn.open_table(SUSPECTS) else {
            return Ok(Vec::new());
        };
        let jobs = txn.open_table(JOBS)?;
        let mut out = Vec::new();
        for entry in suspects.range(0..)? {
            let row = entry?.0.value();
            if let Some(v) = jobs.get(row)? {
                out.push((row, decode(v.value(), &self.path)?));
            }
        }
        Ok(out)
    }

    /// Records what a dead process was converting: `suspects` are converted
    /// alone next, `crashed` (converting alone when it died) fail as such.
    /// Before the writer starts, like `set_run_info`.
    pub fn record_crash(&self, suspects: &[u64], crashed: &[u64]) -> Result<(), JournalError> {
        let mut updates = Vec::new();
        {
            let txn = self.db.begin_read()?;
            let jobs = txn.open_table(JOBS)?;
            for &row in suspects.iter().chain(crashed) {
                let Some(v) = jobs.get(row)? else { continue };
                let mut rec: JobRecord = decode(v.value(), &self.path)?;
                if matches!(rec.state, JobState::Uploaded(_) | JobState::Failed(_)) {
                    continue;
                }
                if crashed.contains(&row) {
                    rec.suspect = false;
                    rec.state = JobState::Failed(Failure::new(
                        FailureClass::Crashed,
                        "the process died while converting this image, twice; the second \
                         time it was converting alone",
                    ));
                } else {
                    rec.suspect = true;
                }
                rec.updated_ms = now_ms();
                updates.push((row, rec));
            }
        }
        if !updates.is_empty() {
            self.commit_updates(&mut updates)?;
        }
        Ok(())
    }

    /// Visits every row in input order, giving a duplicate its first row's record.
    pub fn for_each_resolved(
        &self,
        mut visit: impl FnMut(u64, &str, &JobRecord, &[String]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let txn = self.db.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        let columns = txn.open_table(COLUMNS)?;
        for entry in jobs.range(0..)? {
            let (row, value) = entry?;
            let rec: JobRecord = decode(value.value(), &self.path)?;
            let kept: Vec<String> = match columns.get(row.value())? {
                Some(v) => decode(v.value(), &self.path)?,
                None => Vec::new(),
            };
            match rec.dup_of {
                None => visit(row.value(), &rec.url, &rec, &kept)?,
                Some(first) => {
                    let orig = jobs
                        .get(first)?
                        .ok_or_else(|| anyhow::anyhow!("row {first} missing from the journal"))?;
                    let orig: JobRecord = decode(orig.value(), &self.path)?;
                    visit(row.value(), &rec.url, &orig, &kept)?;
                }
            }
        }
        Ok(())
    }

    /// Starts the single writer; [`Writer::finish`] commits what is queued
    /// and stops it.
    pub fn writer(self: &Arc<Self>) -> Writer {
        let (tx, rx) = mpsc::channel::<Msg>(8192);
        let journal = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || journal.write_loop(rx))
            .expect("spawn journal writer");
        Writer {
            tx,
            thread: Arc::new(std::sync::Mutex::new(Some(handle))),
        }
    }

    fn write_loop(&self, mut rx: mpsc::Receiver<Msg>) -> Result<(), JournalError> {
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
                self.commit_updates(&mut pending)?;
            }
            if closed {
                return Ok(());
            }
        }
    }

    fn commit_updates(&self, updates: &mut Vec<(u64, JobRecord)>) -> Result<(), JournalError> {
        let txn = begin_write(&self.db)?;
        {
            let mut jobs = txn.open_table(JOBS)?;
            let mut counts = txn.open_table(COUNTS)?;
            let mut failed = txn.open_table(FAILED)?;
            let mut suspects = txn.open_table(SUSPECTS)?;
            let mut delta: HashMap<String, i64> = HashMap::new();
            // Only a row's last record in a commit reaches the disk, so the
            // others are skipped: a row's three states often fall in one
            // window, and each write decodes the old record and encodes anew.
            let mut last: HashMap<u64, usize> = HashMap::with_capacity(updates.len());
            for (i, (row, _)) in updates.iter().enumerate() {
                last.insert(*row, i);
            }
            for (i, (row, rec)) in updates.drain(..).enumerate() {
                if last.get(&row) != Some(&i) {
                    continue;
                }
                if rec.suspect {
                    suspects.insert(row, ())?;
                } else {
                    suspects.remove(row)?;
                }
                let old = jobs
                    .insert(row, encode(&rec).as_slice())?
                    .map(|v| decode::<JobRecord>(v.value(), &self.path))
                    .transpose()?;
                if let Some(old) = &old {
                    for key in count_keys(old) {
                        *delta.entry(key).or_default() -= 1;
                    }
                    if old.state.kind() == StateKind::Failed {
                        failed.remove(row)?;
                    }
                }
                for key in count_keys(&rec) {
                    *delta.entry(key).or_default() += 1;
                }
                if rec.state.kind() == StateKind::Failed {
                    failed.insert(row, ())?;
                }
            }
            for (key, d) in delta {
                let current = counts.get(key.as_str())?.map_or(0, |v| v.value());
                counts.insert(key.as_str(), current.saturating_add_signed(d))?;
            }
            txn.open_table(META)?
                .insert("heartbeat", now_ms().to_le_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }
}

/// The counters a record contributes to.
fn count_keys(rec: &JobRecord) -> Vec<String> {
    let mut keys = vec![rec.state.kind().name().to_string()];
    match &rec.state {
        JobState::Uploaded(u) if u.reused => keys.push("reused".into()),
        JobState::Failed(f) => keys.push(format!("failed:{}", f.class.name())),
        _ => {}
    }
    keys
}

/// Why a journal could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The input file is invalid; nothing was written.
    #[error(transparent)]
    Input(anyhow::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
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

/// A read-only view, for `status` while a run may be writing.
pub struct ReadJournal {
    db: ReadOnlyDatabase,
    path: PathBuf,
}

impl ReadJournal {
    pub fn open(state_dir: &Path) -> Result<ReadJournal, JournalError> {
        let path = Journal::path_in(state_dir);
        if !path.exists() {
            return Err(JournalError::Missing(state_dir.to_path_buf()));
        }
        let mut builder = Database::builder();
        builder
            .set_cache_size(CACHE_BYTES)
            .set_concurrency_mode(ConcurrencyMode::SingleWriter);
        let db = match builder.open_read_only(&path) {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                return Err(JournalError::Busy(state_dir.to_path_buf()));
            }
            // Left by a killed run and not repaired yet: a writable open repairs it.
            Err(DatabaseError::RepairAborted) => {
                drop(Journal::open_db(&path)?);
                builder.open_read_only(&path)?
            }
            Err(e) => return Err(e.into()),
        };
        Ok(ReadJournal { db, path })
    }

    pub fn run_info(&self) -> Result<RunInfo, JournalError> {
        run_info(&self.db.begin_read()?, &self.path)
    }

    pub fn counts(&self) -> Result<Counts, JournalError> {
        counts(&self.db.begin_read()?)
    }

    /// Milliseconds since the Unix epoch of the writer's last commit.
    pub fn heartbeat_ms(&self) -> Result<Option<u64>, JournalError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get("heartbeat")?.and_then(|v| {
            let bytes: [u8; 8] = v.value().try_into().ok()?;
            Some(u64::from_le_bytes(bytes))
        }))
    }

    /// Visits every failed row in input order, in one read transaction,
    /// holding one record at a time: `status --failures` on any number.
    pub fn for_each_failure(
        &self,
        mut visit: impl FnMut(u64, &JobRecord) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let txn = self.db.begin_read()?;
        let failed = txn.open_table(FAILED)?;
        let jobs = txn.open_table(JOBS)?;
        for entry in failed.range(0..)? {
            let row = entry?.0.value();
            if let Some(v) = jobs.get(row)? {
                let rec: JobRecord = decode(v.value(), &self.path)?;
                visit(row, &rec)?;
            }
        }
        Ok(())
    }

    /// The first `limit` failed rows, in input order.
    pub fn failures(&self, limit: usize) -> Result<(u64, Vec<(u64, JobRecord)>), JournalError> {
        let txn = self.db.begin_read()?;
        let failed = txn.open_table(FAILED)?;
        let jobs = txn.open_table(JOBS)?;
        let total = failed.len()?;
        let mut out = Vec::new();
        for entry in failed.range(0..)?.take(limit) {
            let (row, _) = entry?;
            if let Some(v) = jobs.get(row.value())? {
                out.push((row.value(), decode(v.value(), &self.path)?));
            }
        }
        Ok((total, out))
    }
}

fn begin_write(db: &Database) -> Result<WriteTransaction, JournalError> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    Ok(txn)
}

fn run_info(txn: &ReadTransaction, path: &Path) -> Result<RunInfo, JournalError> {
    let meta = txn.open_table(META).map_err(|e| incompatible(path, e))?;
    let value = meta.get("run")?.ok_or_else(|| JournalError::Incompatible {
        path: path.to_path_buf(),
        detail: "no run information".into(),
    })?;
    decode(value.value(), path)
}

fn counts(txn: &ReadTransaction) -> Result<Counts, JournalError> {
    let table = txn.open_table(COUNTS)?;
    let mut c = Counts::default();
    for state in StateKind::ALL {
        let n = table.get(state.name())?.map_or(0, |v| v.value());
        c.by_state.push((state.name(), n));
    }
    c.reused = table.get("reused")?.map_or(0, |v| v.value());
    for entry in table.range("failed:".."failed;")? {
        let (k, v) = entry?;
        if v.value() > 0
            && let Some(name) = k.value().strip_prefix("failed:")
            && let Some(class) = FailureClass::ALL.iter().find(|c| c.name() == name)
        {
            c.failed_by_class.push((class.name(), v.value()));
        }
    }
    Ok(c)
}

fn incompatible(path: &Path, e: impl std::fmt::Display) -> JournalError {
    JournalError::Incompatible {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    postcard::to_io(value, &mut out).expect("serialising to a Vec cannot fail");
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T, JournalError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| incompatible(path, e))
        }
        Some((v, _)) => Err(incompatible(
            path,
            format!("record format {v}, expected {FORMAT_VERSION}"),
        )),
        None => Err(incompatible(path, "empty record")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_the_commonest_failures_first() {
        let by_class = [
            ("invalid-url", 1),
            ("network", 7),
            ("http-status", 20),
            ("not-an-image", 1),
            ("upload", 2),
        ];
        let counts = |by: &[(&'static str, u64)]| Counts {
            failed_by_class: by.to_vec(),
            ..Counts::default()
        };
        assert_eq!(
            counts(&by_class).top_failures(3),
            "http-status: 20, network: 7, upload: 2, 2 other"
        );
        assert_eq!(counts(&by_class[..1]).top_failures(3), "invalid-url: 1");
        assert_eq!(counts(&[]).top_failures(3), "");
    }
}
