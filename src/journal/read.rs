//! A read-only view of a journal, for `status` while a run may be writing.

use std::path::{Path, PathBuf};

use redb::{
    ConcurrencyMode, Database, DatabaseError, ReadOnlyDatabase, ReadableDatabase,
    ReadableTableMetadata,
};

use super::tables::{
    CACHE_BYTES, FAILED, JOBS, JournalError, META, RunInfo, counts, decode, journal_path, open_db,
    run_info,
};
use crate::job::{Counts, JobRecord};

/// A read-only view, for `status` while a run may be writing.
pub struct ReadJournal {
    db: ReadOnlyDatabase,
    path: PathBuf,
}

impl ReadJournal {
    pub fn open(state_dir: &Path) -> Result<ReadJournal, JournalError> {
        let path = journal_path(state_dir);
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
                drop(open_db(&path)?);
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

    /// The busiest hosts' adapted limits at the writer's last commit.
    pub fn host_limits(&self) -> Result<Vec<(String, usize)>, JournalError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        match meta.get("hosts")? {
            Some(v) => decode(v.value(), &self.path),
            None => Ok(Vec::new()),
        }
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

impl super::Rows for ReadJournal {
    fn run_info(&self) -> Result<RunInfo, JournalError> {
        ReadJournal::run_info(self)
    }

    fn for_each_resolved(&self, visit: &mut super::Visit) -> anyhow::Result<()> {
        super::resolved(&self.db.begin_read()?, &self.path, visit)
    }
}
