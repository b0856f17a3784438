//! The feeder: a run's rows into the loop. Crash suspects first, one at a
//! time with nothing else running; then the rows that need work, read from
//! the journal in input order in small batches, under the cap on rows in
//! flight; and, once told to stop, the stop grace for the rows in flight.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{FEED_BATCH, Pipeline, Stop};
use crate::job::RetryFailed;
use crate::journal::Journal;
use crate::redact::RawUrl;
use crate::store::ObjectStore;

impl<S: ObjectStore> Pipeline<S> {
    /// Processes every row of the journal that still needs work (`rows` of them).
    pub async fn run(
        self: Arc<Self>,
        journal: Arc<Journal>,
        retry: RetryFailed,
        rows: u64,
    ) -> Stop {
        tracing::info!(
            memory_budget = %bytesize::ByteSize::b(self.budget.total()).display().iec(),
            "images in flight share the memory budget"
        );
        // The hosts' limits are the fetch stage's; the journal records the
        // busiest for `status`. A writer that has stopped is noticed at the
        // first row recorded.
        let _ = self
            .writer
            .follow_host_limits(self.fetch.host_limits())
            .await;
        self.index.load(&self.upload, rows).await;
        let flushing = CancellationToken::new();
        let flusher = {
            let (me, done) = (Arc::clone(&self), flushing.clone());
            tokio::spawn(async move { me.index.keep_flushing(&me.upload, done).await })
        };
        let c = self.settings.concurrency;
        // Enough rows in flight that downloads run ahead of the converters and
        // uploads trail behind them, and no more: each may hold an image in memory.
        let total = self.budget.total();
        let rows_in_flight = Arc::new(Semaphore::new(
            c.downloads_for(total) + c.uploads_for(total) + 2 * c.converts,
        ));
        let stop = self.control.stop.clone();
        let mut tasks = JoinSet::new();
        // Crash suspects first, one at a time with nothing else running.
        let j = Arc::clone(&journal);
        match tokio::task::spawn_blocking(move || j.suspects()).await {
            Ok(Ok(suspects)) => {
                for (row, rec) in suspects {
                    if stop.is_cancelled() {
                        break;
                    }
                    tracing::info!(row, url = %RawUrl(&rec.url), "taking up a crash suspect alone");
                    let permit = Arc::clone(&rows_in_flight)
                        .acquire_owned()
                        .await
                        .expect("never closed");
                    tasks.spawn(Arc::clone(&self).drive(row, rec, permit));
                    self.drain(&mut tasks).await;
                }
            }
            Ok(Err(e)) => self.control.set_fatal(format!(
                "cannot read the journal: {:#}",
                anyhow::Error::from(e)
            )),
            Err(e) => self
                .control
                .set_fatal(format!("journal reader failed: {e}")),
        }
        let mut after = None;
        'feed: loop {
            let (j, retry) = (Arc::clone(&journal), retry.clone());
            let batch =
                tokio::task::spawn_blocking(move || j.next_jobs(after, FEED_BATCH, &retry)).await;
            let batch = match batch {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => {
                    let e = anyhow::Error::from(e);
                    self.control
                        .set_fatal(format!("cannot read the journal: {e:#}"));
                    break;
                }
                Err(e) => {
                    self.control
                        .set_fatal(format!("journal reader failed: {e}"));
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            let network = self.fetch.network();
            for (row, rec) in batch {
                after = Some(row);
                // With no host answering, no new row starts: it would only fail.
                if network.is_down() {
                    let wait = self.settings.host_outage_wait;
                    let up = tokio::select! {
                        biased;
                        _ = stop.cancelled() => break 'feed,
                        up = network.wait_up(wait) => up,
                    };
                    if let Err(down_for) = up {
                        self.control.set_fatal(format!(
                            "no host answered for {} (--host-outage-wait is {}): the network seems \
                             down; rows not started are untouched, and `batchimg resume` continues",
                            humantime::format_duration(Duration::from_secs(down_for.as_secs())),
                            humantime::format_duration(wait)
                        ));
                        break 'feed;
                    }
                }
                let permit = tokio::select! {
                    biased;
                    _ = stop.cancelled() => break 'feed,
                    p = Arc::clone(&rows_in_flight).acquire_owned() => p.expect("never closed"),
                };
                tasks.spawn(Arc::clone(&self).drive(row, rec, permit));
                while tasks.try_join_next().is_some() {}
            }
        }
        self.drain(&mut tasks).await;
        flushing.cancel();
        let _ = flusher.await;
        let fatal = self.control.fatal();
        // A store that just failed would only make the exit wait for retries.
        if fatal.is_none() || !self.upload.failing() {
            self.index.flush(&self.upload).await;
        }
        let abandoned = self.control.abandoned.load(Ordering::Relaxed);
        match fatal {
            Some(reason) => Stop::Fatal(reason),
            None if stop.is_cancelled() => Stop::Interrupted,
            None if abandoned > 0 => Stop::Fatal(format!(
                "{abandoned} row(s) could not be finished ({}); nothing is lost: \
                 `batchimg resume` continues them",
                self.control.left_why()
            )),
            None => Stop::Completed,
        }
    }

    /// Waits for the rows in flight. Once the run is told to stop, they get
    /// the stop grace; what is still running then is dropped where it is: its
    /// journal state is the last one recorded, which `resume` continues from
    /// (a download or conversion is redone, an upload is checked by HEAD).
    async fn drain(&self, tasks: &mut JoinSet<()>) {
        let stop = self.control.stop.clone();
        loop {
            if stop.is_cancelled() {
                break;
            }
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { return },
                _ = stop.cancelled() => {}
            }
        }
        let grace = self.settings.stop_grace;
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { return },
                _ = &mut deadline => break,
            }
        }
        let left = tasks.len();
        tracing::warn!(
            rows = left,
            "{left} row(s) still in flight after the {} stop grace; leaving them for `batchimg resume`",
            humantime::format_duration(grace)
        );
        self.control
            .abandoned
            .fetch_add(left as u64, Ordering::Relaxed);
        tasks.shutdown().await;
    }
}
