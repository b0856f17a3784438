//! The journal's tables, its record format, and the one way a row's record
//! is updated: with its counters, its entry in the failure index and its
//! entry in the suspect index, all in the same transaction. (A new journal's
//! rows are written in bulk by `Journal::create`, all `Pending`, with their
//! counter set once at the end.)
//!
//! Every stored value starts with a format version byte, then postcard.
//! Postcard writes an enum variant as its index, so a variant added to a
//! stored enum goes at its end, and the version is bumped whenever a stored
//! struct changes shape (the domain crate pins the bytes of a record).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use redb::{
    ConcurrencyMode, Database, DatabaseError, ReadTransaction, ReadableTable, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::job::{Counts, FailureClass, JobRecord, JobState, StateKind, now_ms};
use crate::settings::Settings;

pub(super) const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("counts");
pub(super) const FAILED: TableDefinition<u64, ()> = TableDefinition::new("failed");
/// Rows converting when a process died (see `quarantine`).
pub(super) const SUSPECTS: TableDefinition<u64, ()> = TableDefinition::new("suspects");
/// The input's other columns of each row, with `--keep-columns`.
pub(super) const COLUMNS: TableDefinition<u64, &[u8]> = TableDefinition::new("columns");

/// Bumped whenever a stored struct changes shape. 2: states carry their data.
/// 3: kept columns and object options. 4: HTTP settings, key templates.
/// 5: how a process died while converting a row (`Suspicion`).
/// 6: typed kept columns. 7: the transform (`--resize`, `--format`…).
/// 8: timestamps with their unit and zone, dates, decimals.
pub(super) const FORMAT_VERSION: u8 = 8;
/// Hosts whose adapted limits the journal keeps for `status`.
const HOSTS_SHOWN: usize = 5;
const FILE_NAME: &str = "journal.redb";
/// Small on purpose: the journal is read sequentially and peak RSS matters more.
pub(super) const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Where the journal of `state_dir` is.
pub(super) fn journal_path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

pub(super) fn open_db(path: &Path) -> Result<Database, JournalError> {
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
    /// The input columns kept beside the URL (`--keep-columns`), with their types.
    pub kept_columns: Vec<crate::table::Column>,
}

impl RunInfo {
    /// A run of this version starting at `now_ms` over an input of
    /// `input_hash`; its counts are filled in as its rows are recorded.
    pub fn new(settings: Settings, input_hash: String, now_ms: u64) -> RunInfo {
        RunInfo {
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            settings,
            input_hash,
            rows: 0,
            duplicates: 0,
            created_ms: now_ms,
            finished_ms: None,
            session_started_ms: now_ms,
            session_done_at_start: 0,
            kept_columns: Vec::new(),
        }
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

/// Why a journal could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The input file is invalid; nothing was written.
    #[error(transparent)]
    Input(anyhow::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Writes `updates` (a row's last record wins) with their counters and
/// index entries, the heartbeat, and `hosts`: the busiest hosts' adapted
/// limits, for `status` in another process.
pub(super) fn commit_updates(
    db: &Database,
    path: &Path,
    updates: &mut Vec<(u64, JobRecord)>,
    hosts: &[(String, usize)],
) -> Result<(), JournalError> {
    let txn = begin_write(db)?;
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
            if rec.suspect.is_some() {
                suspects.insert(row, ())?;
            } else {
                suspects.remove(row)?;
            }
            let old = jobs
                .insert(row, encode(&rec).as_slice())?
                .map(|v| decode::<JobRecord>(v.value(), path))
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
        txn.open_table(META)?
            .insert("hosts", encode(&hosts).as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

/// The [`HOSTS_SHOWN`] hosts with the largest limits, largest first (ties
/// in name order).
pub(super) fn busiest(limits: &BTreeMap<String, usize>) -> Vec<(String, usize)> {
    let mut all: Vec<(&String, usize)> = limits.iter().map(|(h, l)| (h, *l)).collect();
    all.sort_by_key(|(_, l)| std::cmp::Reverse(*l));
    all.into_iter()
        .take(HOSTS_SHOWN)
        .map(|(h, l)| (h.clone(), l))
        .collect()
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

pub(super) fn begin_write(db: &Database) -> Result<WriteTransaction, JournalError> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    Ok(txn)
}

pub(super) fn run_info(txn: &ReadTransaction, path: &Path) -> Result<RunInfo, JournalError> {
    let meta = txn.open_table(META).map_err(|e| incompatible(path, e))?;
    let value = meta.get("run")?.ok_or_else(|| JournalError::Incompatible {
        path: path.to_path_buf(),
        detail: "no run information".into(),
    })?;
    decode(value.value(), path)
}

pub(super) fn counts(txn: &ReadTransaction) -> Result<Counts, JournalError> {
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

pub(super) fn incompatible(path: &Path, e: impl std::fmt::Display) -> JournalError {
    JournalError::Incompatible {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Most records are under 128 bytes: one allocation, no regrowth.
    let mut out = Vec::with_capacity(128);
    out.push(FORMAT_VERSION);
    postcard::to_io(value, &mut out).expect("serialising to a Vec cannot fail");
    out
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T, JournalError> {
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
