//! How a run is told to stop, and why a row's step did not reach a new state.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Why the latest of them was left.
    left_why: Mutex<Option<Systemic>>,
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

    /// Counts a row left for `resume` for `why`.
    pub fn left(&self, why: &Systemic) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
        *self.left_why.lock().expect("left lock") = Some(why.clone());
    }

    /// Why rows were left, as the run's last line says it.
    pub fn left_why(&self) -> String {
        match &*self.left_why.lock().expect("left lock") {
            Some(Systemic::HostDown { host, .. }) => {
                format!("{host} did not answer for longer than --host-outage-wait")
            }
            Some(Systemic::Store { .. }) | None => "the object store failed them".into(),
            Some(why) => why.to_string(),
        }
    }

    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().expect("fatal lock").clone()
    }
}
