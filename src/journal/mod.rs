//! The run's on-disk journal: the only module that touches the embedded database.
//!
//! Why redb: it is maintained, has a stable file format, and a commit is
//! durable when `commit()` returns (see docs/design.md for the choice). One
//! table row per input row, keyed by the row number, so inserts are
//! sequential and reading the rows back in input order is a range scan.
//! Counters per state live beside the rows and are updated in the same
//! transactions, so `status` answers in constant time on a million rows.
//!
//! The journal stores facts; the pipeline decides what they mean. While rows
//! move, their updates go through one writer thread ([`Writer`]) that batches
//! many into one transaction; the rest (the rows of a new journal, the run's
//! information, a crash's suspects) is written before the writer starts or
//! after it stops. redb's quick-repair mode makes reopening after `kill -9`
//! almost instant. Losing the last uncommitted batch in a crash is harmless:
//! the work it recorded is idempotent (see `pipeline`).

mod lock;
pub mod quarantine;
mod read;
mod tables;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase};

use crate::job::{
    Counts, InputRow, JobRecord, JobState, RetryFailed, StateKind, Suspicion, now_ms,
};
use crate::table::Value;
pub use lock::StateLock;
pub use read::ReadJournal;
use tables::{
    COLUMNS, COUNTS, FAILED, JOBS, META, SUSPECTS, begin_write, counts, decode, encode, open_db,
    run_info,
};
pub use tables::{CreateError, JournalError, RunInfo};
pub use writer::{HostLimits, Writer, WriterGone};

/// Rows recorded per transaction while a new journal is filled.
const INGEST_BATCH: usize = 50_000;

/// The journal of one state directory, open for writing.
pub struct Journal {
    db: Arc<Database>,
    path: PathBuf,
    /// Held for as long as this process may write the state directory.
    _lock: StateLock,
}

impl Journal {
    pub fn path_in(state_dir: &Path) -> PathBuf {
        tables::journal_path(state_dir)
    }

    /// Starts a new journal from input rows, replacing a finished one. The file
    /// appears under its real name only once every row is in, so an input
    /// that fails validation half-way leaves no journal behind.
    ///
    /// `finish` completes the run's facts once every row is read (the kept
    /// columns' types, which JSON Lines only settles at its last line).
    pub fn create<I>(
        state_dir: &Path,
        mut run: RunInfo,
        fresh: bool,
        rows: I,
        finish: impl FnOnce(&mut RunInfo),
    ) -> Result<Journal, CreateError>
    where
        I: IntoIterator<Item = Result<InputRow, anyhow::Error>>,
    {
        let lock = StateLock::take(state_dir)?;
        let path = Journal::path_in(state_dir);
        if path.exists() {
            // Opening for writing also repairs a journal left by `kill -9`.
            let old = open_db(&path).map_err(|e| match e {
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
        let tmp = path.with_extension("redb.new");
        let _ = std::fs::remove_file(&tmp);
        let db = open_db(&tmp)?;
        let mut seen: HashMap<[u8; 16], u64> = HashMap::new();
        let mut batch: Vec<(u64, JobRecord, Vec<Value>)> = Vec::with_capacity(INGEST_BATCH);
        let mut counts = (0u64, 0u64); // (pending, duplicates)
        let mut total = 0u64;
        let recorded_ms = now_ms();
        let flush = |db: &Database,
                     batch: &mut Vec<(u64, JobRecord, Vec<Value>)>|
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
            let input = match item {
                Ok(r) => r,
                Err(e) => {
                    drop(db);
                    let _ = std::fs::remove_file(&tmp);
                    return Err(CreateError::Input(e));
                }
            };
            total += 1;
            let InputRow { row, .. } = input;
            // Rows without a URL are each their own row: nothing makes two
            // of them the same work, and each fails with its own line.
            let dup_of = match seen.entry(input.work_key()) {
                _ if input.url.is_empty() => None,
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
            let mut rec = JobRecord::new_at(input.url, dup_of, recorded_ms);
            rec.name = input.name;
            batch.push((row, rec, input.kept));
            if batch.len() >= INGEST_BATCH {
                flush(&db, &mut batch)?;
            }
        }
        flush(&db, &mut batch)?;
        drop(seen);
        finish(&mut run);
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
        quarantine::clear(state_dir);
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
        let db = open_db(&path).map_err(|e| match e {
            JournalError::Busy(_) => JournalError::Busy(state_dir.to_path_buf()),
            e => e,
        })?;
        let journal = Journal {
            db: Arc::new(db),
            path,
            _lock: lock,
        };
        journal.run_info()?;
        Ok(journal)
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
                && rec.suspect.is_none()
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

    /// The suspects of a crash, in input order (see `quarantine`).
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

    /// Records what the quarantine file says a dead process was converting:
    /// `beside` other rows, or `alone`. A fact about the row; the pipeline
    /// decides what it means. Before the writer starts, like `set_run_info`.
    pub fn record_deaths(&self, beside: &[u64], alone: &[u64]) -> Result<(), JournalError> {
        let mut updates = Vec::new();
        {
            let txn = self.db.begin_read()?;
            let jobs = txn.open_table(JOBS)?;
            let facts = beside
                .iter()
                .map(|&r| (r, Suspicion::Beside))
                .chain(alone.iter().map(|&r| (r, Suspicion::Alone)));
            for (row, suspicion) in facts {
                let Some(v) = jobs.get(row)? else { continue };
                let mut rec: JobRecord = decode(v.value(), &self.path)?;
                if matches!(rec.state, JobState::Uploaded(_) | JobState::Failed(_)) {
                    continue;
                }
                rec.suspect = Some(suspicion);
                rec.updated_ms = now_ms();
                updates.push((row, rec));
            }
        }
        if !updates.is_empty() {
            // Before the session's first request: no host's limit has moved.
            tables::commit_updates(&self.db, &self.path, &mut updates, &[])?;
        }
        Ok(())
    }

    /// Starts the single writer; [`Writer::finish`] commits what is queued
    /// and stops it.
    pub fn writer(&self) -> Writer {
        writer::start(Arc::clone(&self.db), self.path.clone())
    }
}

/// Visits every row in input order, resolved: see [`Rows::for_each_resolved`].
pub(crate) fn resolved(
    txn: &redb::ReadTransaction,
    path: &Path,
    mut visit: impl FnMut(u64, &str, &JobRecord, &[Value]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let jobs = txn.open_table(JOBS)?;
    let columns = txn.open_table(COLUMNS)?;
    for entry in jobs.range(0..)? {
        let (row, value) = entry?;
        let rec: JobRecord = decode(value.value(), path)?;
        let kept: Vec<Value> = match columns.get(row.value())? {
            Some(v) => decode(v.value(), path)?,
            None => Vec::new(),
        };
        match rec.dup_of {
            None => visit(row.value(), &rec.url, &rec, &kept)?,
            Some(first) => {
                let orig = jobs
                    .get(first)?
                    .ok_or_else(|| anyhow::anyhow!("row {first} missing from the journal"))?;
                let orig: JobRecord = decode(orig.value(), path)?;
                visit(row.value(), &rec.url, &orig, &kept)?;
            }
        }
    }
    Ok(())
}

/// What visits resolved rows: row number, URL, the record, the kept cells.
pub type Visit<'a> = dyn FnMut(u64, &str, &JobRecord, &[Value]) -> anyhow::Result<()> + 'a;

/// A journal's rows and facts, open for writing or read-only.
pub trait Rows: Send + Sync {
    fn run_info(&self) -> Result<RunInfo, JournalError>;
    /// Visits every row in input order with the record that says what
    /// became of it (a repeated URL's row gets its first row's) and its
    /// kept cells.
    fn for_each_resolved(&self, visit: &mut Visit) -> anyhow::Result<()>;
}

impl Rows for Journal {
    fn run_info(&self) -> Result<RunInfo, JournalError> {
        Journal::run_info(self)
    }
    fn for_each_resolved(&self, visit: &mut Visit) -> anyhow::Result<()> {
        resolved(&self.db.begin_read()?, &self.path, visit)
    }
}
