//! Crash quarantine: which rows were converting when the process died.
//!
//! A conversion can still kill the whole process (a crash in a C library, a
//! memory budget set above what the container really has). Without this, the
//! row that did it would be retried on every resume and kill every resume:
//! the shard could never finish. So the rows being converted right now are
//! kept in a small file beside the journal, `<state-dir>/converting`, one line
//! `<row> <alone>` each, rewritten at every start and end of a conversion. A
//! plain write is enough: a process that dies (SIGKILL, OOM) does not lose
//! what it wrote, only a machine that dies does, and then the state volume
//! goes with it.
//!
//! At the next start the file is read: rows that were converting beside
//! others become suspects (recorded in the journal), and the run converts
//! suspects one at a time, alone, before anything else. A row that was
//! converting alone when the process died again is failed as `crashed`.
//! Rows that were merely downloading or uploading are never suspects.
//!
//! The process after a crash also converts everything else one image at a
//! time ("careful"), so that if another image kills it, the file names that
//! image alone and the next start fails it at once: a shard with two images
//! that each kill the process finishes on the third resume, not the fifth.
//! The process after that, started without a crash, is back to full speed.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const FILE_NAME: &str = "converting";

/// What a dead process left in the file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Left {
    /// Rows that were converting beside others: suspects.
    pub suspects: Vec<u64>,
    /// Rows that were converting alone: they killed the process.
    pub crashed: Vec<u64>,
}

/// Removes what a previous process left, when a new journal replaces its rows.
pub fn clear(state_dir: &Path) {
    let _ = std::fs::remove_file(state_dir.join(FILE_NAME));
}

/// The file of conversions in progress, owned by the running process.
pub struct Quarantine {
    /// The file, and the length last written to it.
    file: Mutex<Option<(std::fs::File, usize)>>,
    path: PathBuf,
    /// The previous process died converting: this one converts one image at
    /// a time, so that another death names its image for certain.
    pub careful: bool,
    /// Row → converting alone.
    converting: Mutex<BTreeMap<u64, bool>>,
}

impl Quarantine {
    /// What the previous process left in `state_dir`, read without changing it.
    pub fn left_in(state_dir: &Path) -> Left {
        let mut left = Left::default();
        let Ok(text) = std::fs::read_to_string(state_dir.join(FILE_NAME)) else {
            return left;
        };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(row), Some(alone)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(row) = row.parse() else { continue };
            match alone {
                "1" => left.crashed.push(row),
                _ => left.suspects.push(row),
            }
        }
        left
    }

    /// Starts an empty file for this process; call once what it held is in
    /// the journal. `careful` after a crash (see the field).
    pub fn start(state_dir: &Path, careful: bool) -> Quarantine {
        let path = state_dir.join(FILE_NAME);
        let file = std::fs::File::create(&path)
            .inspect_err(|e| {
                tracing::warn!(
                    "cannot write {}: crash quarantine is off for this run ({e})",
                    path.display()
                )
            })
            .ok()
            .map(|f| (f, 0));
        Quarantine {
            file: Mutex::new(file),
            path,
            careful,
            converting: Mutex::new(BTreeMap::new()),
        }
    }

    /// A quarantine that records nothing (unit tests).
    #[cfg(test)]
    pub fn off() -> Quarantine {
        Quarantine {
            file: Mutex::new(None),
            path: PathBuf::new(),
            careful: false,
            converting: Mutex::new(BTreeMap::new()),
        }
    }

    /// Notes that `row` starts converting; the guard notes its end.
    pub fn converting(self: &Arc<Self>, row: u64, alone: bool) -> Converting {
        let mut rows = self.converting.lock().expect("quarantine lock");
        rows.insert(row, alone);
        self.write(&rows);
        Converting {
            q: Arc::clone(self),
            row,
        }
    }

    fn write(&self, rows: &BTreeMap<u64, bool>) {
        let mut text = String::with_capacity(rows.len() * 12);
        for (row, alone) in rows {
            text.push_str(&format!("{row} {}\n", u8::from(*alone)));
        }
        let mut file = self.file.lock().expect("quarantine file lock");
        let Some((f, len)) = file.as_mut() else {
            return;
        };
        // One write at offset 0, no truncation: a shorter list is padded with
        // spaces over the end of the longer one, which the reader skips as
        // blank lines. Two of these per conversion, so one syscall, not three.
        if text.len() < *len {
            text.push_str(&" ".repeat(*len - text.len()));
        }
        *len = text.len();
        if let Err(e) = f.write_all_at(text.as_bytes(), 0) {
            tracing::warn!(
                "cannot write {}: crash quarantine is off ({e})",
                self.path.display()
            );
            *file = None;
        }
    }
}

/// A conversion in progress; dropping it removes the row from the file.
pub struct Converting {
    q: Arc<Quarantine>,
    row: u64,
}

impl Drop for Converting {
    fn drop(&mut self) {
        let mut rows = self.q.converting.lock().expect("quarantine lock");
        rows.remove(&self.row);
        self.q.write(&rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_killed_process_was_converting_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(Quarantine::start(dir.path(), false));
        let a = q.converting(3, false);
        let b = q.converting(9, false);
        let c = q.converting(12, true);
        drop(b);
        // The process dies here: the guards of 3 and 12 never run.
        std::mem::forget(a);
        std::mem::forget(c);
        assert_eq!(
            Quarantine::left_in(dir.path()),
            Left {
                suspects: vec![3],
                crashed: vec![12]
            }
        );
        // The next process starts with an empty file.
        let _next = Quarantine::start(dir.path(), false);
        assert_eq!(Quarantine::left_in(dir.path()), Left::default());
    }
}
