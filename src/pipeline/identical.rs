//! Rows whose bytes are identical share one conversion and one upload.
//!
//! The first row to reach a key leads: it holds a [`Claim`] while it converts
//! and uploads. Rows that reach the same key meanwhile follow: they wait for
//! the leader's outcome and take it as their own. The claim is a guard whose
//! `Drop` removes the table entry, so a leader that panics or is abandoned
//! never leaves its followers (or every later row with those bytes) stuck; a
//! follower whose leader vanished without an outcome tries again, and one of
//! them becomes the new leader.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::job::Failure;

/// What a leader leaves for its followers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shared {
    /// The object is in the bucket; its converted file, if kept, is `output`.
    Stored { output: Option<PathBuf> },
    /// The leader failed, for a reason that is the content's (a corrupt image, say).
    Failed(Failure),
}

/// Keys being converted or uploaded right now.
#[derive(Default)]
pub struct Table {
    slots: Mutex<HashMap<String, watch::Receiver<Option<Shared>>>>,
}

/// What [`Table::lead_or_follow`] made of a row.
pub enum Role {
    /// This row does the work, then [`Claim::finish`]es.
    Lead(Claim),
    /// Another row did it: the output it kept, or its failure.
    Followed(Result<Option<PathBuf>, Failure>),
}

/// What [`Table::enter`] makes of a row.
pub enum Entry {
    /// No other row has this key: do the work, then [`Claim::finish`].
    Lead(Claim),
    /// Another row is doing the work: wait for it.
    Follow(Waiter),
}

impl Table {
    pub fn enter(self: &Arc<Self>, key: &str) -> Entry {
        let mut slots = self.slots.lock().expect("identical-content lock");
        if let Some(rx) = slots.get(key) {
            return Entry::Follow(Waiter(rx.clone()));
        }
        let (tx, rx) = watch::channel(None);
        slots.insert(key.to_string(), rx);
        Entry::Lead(Claim {
            table: Arc::clone(self),
            key: key.to_string(),
            tx,
        })
    }

    /// Makes the row the leader for `claim_key` (see `ObjectTarget::claim`), or
    /// waits for the row that is, calling `on_wait` first so that it waits
    /// holding nothing (the leader may need the room). `Lead` hands back the
    /// claim; `Followed` is the leader's outcome: the output it kept, or its
    /// failure.
    pub async fn lead_or_follow(self: &Arc<Self>, claim_key: &str, on_wait: impl FnOnce()) -> Role {
        let mut on_wait = Some(on_wait);
        loop {
            let waiter = match self.enter(claim_key) {
                Entry::Lead(claim) => return Role::Lead(claim),
                Entry::Follow(waiter) => waiter,
            };
            if let Some(f) = on_wait.take() {
                f();
            }
            match waiter.outcome().await {
                Some(Shared::Stored { output }) => return Role::Followed(Ok(output)),
                Some(Shared::Failed(f)) => return Role::Followed(Err(f)),
                // The leader vanished (a panic): try to lead.
                None => continue,
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().unwrap().len()
    }
}

/// A leader's hold on a key; dropping it frees the key.
pub struct Claim {
    table: Arc<Table>,
    key: String,
    tx: watch::Sender<Option<Shared>>,
}

impl Claim {
    /// Hands the outcome to every follower, then frees the key.
    pub fn finish(self, outcome: Shared) {
        self.tx.send_replace(Some(outcome));
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Only the leader inserts or removes its key, so the entry is ours.
        self.table
            .slots
            .lock()
            .expect("identical-content lock")
            .remove(&self.key);
    }
}

/// A follower's view of its leader.
pub struct Waiter(watch::Receiver<Option<Shared>>);

impl Waiter {
    /// The leader's outcome, or `None` if it went away without one.
    pub async fn outcome(mut self) -> Option<Shared> {
        let outcome = self.0.wait_for(Option::is_some).await.map(|v| v.clone());
        outcome.unwrap_or_else(|_| self.0.borrow().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_outcome() {
        let table = Arc::new(Table::default());
        let Entry::Lead(claim) = table.enter("k") else {
            panic!("first row leads")
        };
        let Entry::Follow(waiter) = table.enter("k") else {
            panic!("second row follows")
        };
        let outcome = Shared::Stored { output: None };
        claim.finish(outcome.clone());
        assert_eq!(waiter.outcome().await, Some(outcome));
        assert_eq!(table.len(), 0, "the key is free again");
    }

    #[tokio::test]
    async fn a_leader_that_panics_frees_the_key_and_wakes_its_followers() {
        let table = Arc::new(Table::default());
        let Entry::Lead(claim) = table.enter("k") else {
            panic!("first row leads")
        };
        let Entry::Follow(waiter) = table.enter("k") else {
            panic!("second row follows")
        };
        let leader = tokio::spawn(async move {
            let _claim = claim;
            panic!("a bug in the leader");
        });
        assert!(leader.await.is_err());
        assert_eq!(waiter.outcome().await, None);
        assert!(
            matches!(table.enter("k"), Entry::Lead(_)),
            "the next row leads"
        );
    }
}
