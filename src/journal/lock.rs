//! The state directory's lock: one process writes a state directory at a time.

use std::path::Path;

use super::tables::JournalError;

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
