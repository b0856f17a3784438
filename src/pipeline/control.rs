//! How a run is told to stop, and why a row's step did not reach a new state.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use tokio_util::sync::CancellationToken;

use crate::job::{Classify, Failure, Systemic};

/// Why a run stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Every pending row was processed.
    Completed,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// Something every row depends on failed.
    Fatal(String),
}

/// Why a step did not reach a new state.
pub enum Setback {
    /// The row's own fault: it is failed with this reason.
    Failed(Failure),
    /// Not the row's fault (the store is down, the disk is full): the row is
    /// left in its last recorded state, which `resume` continues from.
    Abandoned(Systemic),
}

impl<E: Classify> From<E> for Setback {
    fn from(e: E) -> Setback {
        match e.systemic() {
            Some(why) => Setback::Abandoned(why),
            None => Setback::Failed(Failure::of(&e)),
        }
    }
}

/// How the run is told to stop, shared with the stages that can decide it
/// (the upload stage's breaker, the journal writer's failure).
#[derive(Default)]
pub struct Control {
    pub stop: CancellationToken,
    fatal: Mutex<Option<String>>,
    /// Rows left unfinished because something they all need failed.
    pub abandoned: AtomicU64,
}

impl Control {
    /// Stops feeding rows and records why the run cannot go on; the first reason wins.
    pub fn set_fatal(&self, reason: String) {
        let mut fatal = self.fatal.lock().expect("fatal lock");
        if fatal.is_none() {
            tracing::error!("{reason}");
            *fatal = Some(reason);
        }
        self.stop.cancel();
    }

    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().expect("fatal lock").clone()
    }
}
