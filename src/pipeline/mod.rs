//! The run: its limits, the feeder, cancellation, and the one loop that moves
//! each row from state to state.
//!
//! Each row is one task running [`Pipeline::drive`]: a `match` on the row's
//! recorded state calls the stage for that state, records the state the stage
//! returns, and repeats until the row is uploaded or failed. That loop is the
//! only code that changes a row's state and the only caller of
//! [`Writer::record`]; the journal writes rows itself only when it
//! creates them (`Pending`) and when it records a crash's suspects before the
//! loop starts, neither a change of state. So "what does resume do with a
//! Processed row?" is answered by reading one arm of [`Pipeline::step`].
//! Shortcuts end a row from inside the arm of the state they apply to, in a
//! state the loop records like any other, never around it: a file a killed
//! run left behind is what the fetch and convert stages return; an object
//! already in the bucket is what the upload stage answers; the URL index and
//! identical content in flight are checked by the arm itself. The journal
//! stores facts (a process died converting this row); the loop decides what
//! they mean (convert it alone, or fail it as `crashed`).
//!
//! A state read from the journal may have been acted on by a process that
//! died after recording it: its first step is a recovered one, and a stage
//! that could repeat work (the upload stage's PUT) checks first.
//!
//! Limits follow uv's model: each stage takes a permit from its own semaphore
//! only while it works (many downloads and uploads at once, one conversion per
//! core on dedicated threads), and a cap on rows in flight keeps memory flat
//! whatever the input size. Semaphores rather than channels between stages: a
//! row holds nothing while it waits, and the cap on rows is the back-pressure.
//! The feeder reads rows that need work from the journal in input order, in
//! small batches, and stops feeding on the first Ctrl-C.
//!
//! Every step is idempotent, which is what makes a crash at any moment safe: a
//! download or output under its final name is whole (written to `.part`, then
//! renamed), and an upload is a conditional PUT under a key that names its
//! content, or, for a chosen name (`--key-template`), carries the content key
//! as its tag, which the upload stage checks before it counts the object as
//! this row's.

mod control;
pub mod convert;
mod feed;
pub mod fetch;
pub mod identical;
mod report;
pub mod upload;
pub mod url_index;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::format::ImageFormat;
use crate::image::magick;
use crate::job::{
    Failure, FailureClass, JobRecord, JobState, SourceFacts, SourceFile, Suspicion, Systemic,
    Uploaded, now_ms,
};
use crate::journal::Writer;
use crate::journal::quarantine::Quarantine;
use crate::keys::{self, ObjectTarget};
use crate::memory::{Budget, Lease};
use crate::redact::RawUrl;
use crate::settings::Settings;
use crate::store::ObjectStore;
pub use control::Stop;
use control::{Control, Setback};
use convert::{Converter, Input};
use fetch::Fetcher;
use identical::{Claim, Role, Shared};
use report::{Figures, log_failed};
pub use report::{ROWS, Reporter};
use upload::Uploader;
use url_index::UrlIndex;

/// Rows read from the journal per batch.
const FEED_BATCH: usize = 256;
/// Steps after which a row that has not settled is failed as a bug. A row
/// needs at most five (a file gone twice, a follower whose leader vanished).
const MAX_STEPS: u32 = 16;

/// The stages and the run state every row task shares.
pub struct Pipeline<S> {
    settings: Arc<Settings>,
    fetch: Fetcher,
    convert: Converter,
    upload: Uploader<S>,
    budget: Budget,
    identical: Arc<identical::Table>,
    index: UrlIndex,
    /// The fingerprint of the object options that are part of every key.
    key_options: Option<String>,
    writer: Writer,
    reporter: Arc<dyn Reporter>,
    control: Arc<Control>,
}

/// What a row holds between its steps within this process: bytes it need
/// not read back from a file just written, its lead on identical content,
/// and its log line's figures. Nothing here changes what a step decides, so
/// nothing is lost when a crash loses it.
#[derive(Default)]
struct Carry {
    /// The source's bytes and the budget they hold, when this process fetched them.
    source: Option<(Bytes, Lease)>,
    /// The output's bytes and the budget they hold, when this process converted them.
    output: Option<(Bytes, Lease)>,
    /// This row leads the rows with identical content.
    claim: Option<Claim>,
    figures: Figures,
}

impl<S: ObjectStore> Pipeline<S> {
    pub fn new(
        settings: Arc<Settings>,
        store: S,
        writer: Writer,
        reporter: Arc<dyn Reporter>,
        quarantine: Arc<Quarantine>,
    ) -> anyhow::Result<Pipeline<S>> {
        let work_in = settings.work_dir.join("in");
        let work_out = settings.work_dir.join("out");
        for dir in [&work_in, &work_out] {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            crate::workfile::remove_parts(dir);
        }
        let c = settings.concurrency;
        let budget = Budget::new(crate::memory::budget_bytes(settings.memory_budget));
        let work_dir = std::path::absolute(&settings.work_dir)?;
        magick::set_memory(budget.total(), &work_dir).map_err(|e| anyhow::anyhow!(e))?;
        let fetch = Fetcher::new(std::path::absolute(&work_in)?, budget.clone(), &settings)?;
        let control = Arc::new(Control::default());
        let key_options = settings.store.object.fingerprint();
        let named = settings.key_template.is_some();
        let uploads = c.uploads_for(budget.total());
        Ok(Pipeline {
            fetch,
            convert: Converter::new(
                std::path::absolute(&work_out)?,
                &settings,
                budget.clone(),
                quarantine,
            ),
            budget,
            upload: Uploader::new(store, uploads, Arc::clone(&control))
                .with_policy(settings.heads_before_put(), named),
            identical: Arc::default(),
            // The URL index names content keys; a chosen name is its own index.
            index: UrlIndex::new(
                settings.url_markers && !named,
                &settings.store.prefix,
                settings.jpeg_engine,
                settings.transform.fingerprint(),
                key_options.clone(),
            ),
            key_options,
            writer,
            reporter,
            control,
            settings,
        })
    }

    /// The memory budget the stages share, for the metrics endpoint.
    pub fn budget(&self) -> Budget {
        self.budget.clone()
    }

    /// The token that stops feeding new rows (Ctrl-C, fatal errors).
    pub fn stop_token(&self) -> CancellationToken {
        self.control.stop.clone()
    }

    /// Moves one row until it is uploaded or failed, recording every state it reaches.
    async fn drive(self: Arc<Self>, row: u64, mut rec: JobRecord, _permit: OwnedSemaphorePermit) {
        let started = Instant::now();
        rec.attempts += 1;
        // A failed row picked up again (`--retry-failed`) starts over.
        if let JobState::Failed(_) = rec.state {
            rec.state = JobState::Pending;
        }
        let mut carry = Carry::default();
        for steps in 1.. {
            rec.state = match self.decide(row, &rec, &mut carry, steps == 1).await {
                Ok(next) => next,
                Err(Setback::Failed(failure)) => JobState::Failed(failure),
                Err(Setback::Abandoned(why)) => {
                    // The breaker (store) or the disk stops the run; the row
                    // keeps what the journal last recorded for it.
                    if let Systemic::DiskFull { .. } = why {
                        self.control.set_fatal(format!(
                            "{why}; stopping. Nothing is lost: free some space, then `batchimg resume`"
                        ));
                    }
                    tracing::debug!(row, url = %RawUrl(&rec.url), reason = %why, "left for resume");
                    self.control.left(&why);
                    return;
                }
            };
            if steps >= MAX_STEPS && !matches!(rec.state, JobState::Uploaded(_)) {
                rec.state = JobState::Failed(Failure::new(
                    FailureClass::Internal,
                    format!("internal error: no final state after {steps} steps"),
                ));
            }
            rec.updated_ms = now_ms();
            if matches!(rec.state, JobState::Uploaded(_) | JobState::Failed(_)) {
                rec.suspect = None;
            }
            if self.writer.record(row, rec.clone()).await.is_err() {
                self.control
                    .set_fatal("the journal writer stopped; see the error above".into());
                return;
            }
            match &rec.state {
                JobState::Uploaded(done) => {
                    return self.uploaded(row, &rec.url, done, carry, started).await;
                }
                JobState::Failed(failure) => return self.failed(row, &rec.url, failure, carry),
                _ => {}
            }
        }
    }

    /// The state a row reaches next: the crash rule, else its stage's step,
    /// with a bug in a stage (a panic) failing the row and not the run.
    async fn decide(
        &self,
        row: u64,
        rec: &JobRecord,
        carry: &mut Carry,
        recovered: bool,
    ) -> Result<JobState, Setback> {
        // A process died while this row was converting alone: it did it.
        if rec.suspect == Some(Suspicion::Alone) {
            return Err(Setback::Failed(Failure::new(
                FailureClass::Crashed,
                "the process died while converting this image, twice; the second time it was \
                 converting alone",
            )));
        }
        let step = std::panic::AssertUnwindSafe(self.step(row, rec, carry, recovered));
        match step.catch_unwind().await {
            Ok(next) => next,
            Err(panic) => Err(Setback::Failed(Failure::new(
                FailureClass::Internal,
                format!("internal error: {}", panic_message(panic.as_ref())),
            ))),
        }
    }

    /// One step of a row's life: the stage for its state, and the state it
    /// reaches. `recovered`: the state was read from the journal.
    async fn step(
        &self,
        row: u64,
        rec: &JobRecord,
        carry: &mut Carry,
        recovered: bool,
    ) -> Result<JobState, Setback> {
        match &rec.state {
            // Nothing recorded: an earlier run may have uploaded this URL
            // (the URL index says so); else fetch it, or take the whole
            // download a killed run left behind.
            JobState::Pending => {
                if let Some(Err(why)) = &rec.name {
                    let failure = Failure::new(FailureClass::ObjectName, why.clone());
                    return Err(Setback::Failed(failure));
                }
                if let Some(key) = self.index.lookup(&rec.url, &self.upload).await? {
                    let input = self.fetch.left_behind_path(&rec.url);
                    return Ok(self.reused(&key, None, input, self.kept_output(&key)));
                }
                let fetched = self.fetch.fetch(&rec.url).await?;
                carry.figures.fetched(&fetched);
                carry.source = Some((fetched.body, fetched.lease));
                Ok(JobState::Downloaded {
                    source: fetched.source,
                })
            }
            // The source is here (or must be fetched again if its file is
            // gone or changed). Identical content in flight, or an object
            // already in the bucket, ends the row; else convert.
            JobState::Downloaded { source } => {
                // A chosen name with the output's size needs the header first.
                let size = match &rec.name {
                    Some(Ok(name)) if name.needs_size() => {
                        let held = carry.source.as_ref().map(|(body, _)| body);
                        self.convert.output_size(source, held).await
                    }
                    _ => None,
                };
                let target = self.target(rec, source, size);
                let input = Some(source.path.clone());
                if let Some(shared) = self.lead_or_follow(&target, carry).await {
                    return shared
                        .map(|out| self.reused(&target.key, Some(source.facts()), input, out))
                        .map_err(Setback::Failed);
                }
                let held = carry.source.take();
                let Some(ready) = self.convert.prepare(source, held, &target.content).await else {
                    return Ok(JobState::Pending);
                };
                if self.upload.stored_before(&target).await? {
                    return Ok(self.reused(
                        &target.key,
                        Some(source.facts()),
                        input,
                        self.kept_output(&target.content),
                    ));
                }
                let alone = rec.suspect.is_some();
                let job = Input {
                    row,
                    source,
                    ready,
                    alone,
                };
                let Some(out) = self.convert.convert(job, &target.content).await? else {
                    return Ok(JobState::Pending);
                };
                carry.figures.converted(&out);
                let output = out.path.clone();
                carry.output = Some((out.body, out.lease));
                Ok(JobState::Processed {
                    source: source.clone(),
                    output,
                    key: target.key,
                    image: out.image,
                })
            }
            // The output is here (or is made again from the source if its
            // file is gone): upload it unless it is in the bucket already.
            JobState::Processed {
                source,
                output,
                key,
                image,
            } => {
                let named = matches!(rec.name, Some(Ok(_)));
                let target =
                    ObjectTarget::recorded(key, named, output.file_name().and_then(|n| n.to_str()));
                let input = || (!recovered || source.path.exists()).then(|| source.path.clone());
                if let Some(shared) = self.lead_or_follow(&target, carry).await {
                    return shared
                        .map(|out| self.reused(key, Some(source.facts()), input(), out))
                        .map_err(Setback::Failed);
                }
                let (body, _lease) = match carry.output.take() {
                    Some(held) => held,
                    None => match self.convert.reuse(output).await {
                        Some(out) => (out.body, out.lease),
                        None => {
                            return Ok(JobState::Downloaded {
                                source: source.clone(),
                            });
                        }
                    },
                };
                let stored = self
                    .upload
                    .store_image(
                        &target,
                        body,
                        self.output_format(source.format).mime(),
                        recovered,
                    )
                    .await?;
                carry.figures.stored(stored.timing);
                Ok(JobState::Uploaded(Uploaded {
                    key: key.clone(),
                    s3url: self.upload.object_url(key),
                    reused: stored.reused,
                    input: input(),
                    output: Some(output.clone()),
                    source: Some(source.facts()),
                    image: *image,
                }))
            }
            // Final states are never stepped; returning them ends the loop.
            JobState::Uploaded(_) | JobState::Failed(_) => Ok(rec.state.clone()),
        }
    }

    /// Where a downloaded row's object goes (see [`ObjectTarget`]). `size`: the
    /// output's, for a chosen name with `{width}` or `{height}`.
    fn target(
        &self,
        rec: &JobRecord,
        source: &SourceFile,
        size: Option<(u32, u32)>,
    ) -> ObjectTarget {
        let transform = &self.settings.transform;
        let prefix = &self.settings.store.prefix;
        let output = self.output_format(source.format);
        let content = if transform.applies_to(source.format) {
            keys::transformed_key(
                prefix,
                &source.hash,
                output,
                &transform.canonical(),
                self.key_options.as_deref(),
            )
        } else {
            keys::object_key(
                prefix,
                &source.hash,
                source.format,
                self.settings.jpeg_engine,
                self.key_options.as_deref(),
            )
        };
        let name = match &rec.name {
            Some(Ok(name)) => Some(name),
            _ => None,
        };
        let format = output.coder().to_ascii_lowercase();
        let out = keys::Output {
            extension: output.extension(),
            format: &format,
            size,
        };
        ObjectTarget::new(content, name, &out)
    }

    /// The format an input of `input`'s format is written in.
    fn output_format(&self, input: ImageFormat) -> ImageFormat {
        let transform = &self.settings.transform;
        if transform.applies_to(input) {
            transform.output_format(input)
        } else {
            input
        }
    }

    /// The work file an earlier run left for content key `content`, if any.
    fn kept_output(&self, content: &str) -> Option<PathBuf> {
        let output = self.convert.output_path(content);
        output.exists().then_some(output)
    }

    /// Makes this row the leader for the target, or waits for the row that
    /// is (holding nothing meanwhile). `Some` is the leader's outcome: the
    /// output it kept, or its failure.
    async fn lead_or_follow(
        &self,
        target: &ObjectTarget,
        carry: &mut Carry,
    ) -> Option<Result<Option<PathBuf>, Failure>> {
        if carry.claim.is_some() {
            return None;
        }
        let source = &mut carry.source;
        match self
            .identical
            .lead_or_follow(&target.claim(), || *source = None)
            .await
        {
            Role::Lead(claim) => {
                carry.claim = Some(claim);
                None
            }
            Role::Followed(outcome) => Some(outcome),
        }
    }

    /// The state of a row whose object was already in the bucket.
    fn reused(
        &self,
        key: &str,
        source: Option<SourceFacts>,
        input: Option<PathBuf>,
        output: Option<PathBuf>,
    ) -> JobState {
        JobState::Uploaded(Uploaded {
            key: key.to_string(),
            s3url: self.upload.object_url(key),
            reused: true,
            input,
            output,
            source,
            image: None,
        })
    }

    async fn uploaded(&self, row: u64, url: &str, done: &Uploaded, carry: Carry, started: Instant) {
        if let Some(claim) = carry.claim {
            claim.finish(Shared::Stored {
                output: done.output.clone(),
            });
        }
        self.index.note(url, &done.key, &self.upload).await;
        if self.settings.delete_local {
            for p in [&done.input, &done.output].into_iter().flatten() {
                let _ = tokio::fs::remove_file(p).await;
            }
        }
        crate::metrics::get().row_finished(if done.reused { "reused" } else { "uploaded" });
        carry
            .figures
            .log_uploaded(row, url, done, started.elapsed());
        self.reporter.row_finished(true);
    }

    fn failed(&self, row: u64, url: &str, failure: &Failure, carry: Carry) {
        match (carry.claim, failure.class) {
            // A bug is not the content's fault: rows with the same bytes try themselves.
            (Some(claim), FailureClass::Internal) => drop(claim),
            (Some(claim), _) => claim.finish(Shared::Failed(failure.clone())),
            (None, _) => {}
        }
        crate::metrics::get().row_finished("failed");
        log_failed(row, url, failure);
        self.reporter.row_finished(false);
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
