//! What a run has done, as numbers a machine can collect: Prometheus metrics
//! served during the run (`--metrics-addr`) and the counters behind the
//! progress lines and the summary.
//!
//! The counters are process-wide, like the tracing subscriber: every stage
//! adds to them without a handle threaded through each constructor, and an
//! increment is one relaxed atomic whether or not anything is served. Rows by
//! state and failure class are not counted here: they are read from the
//! journal at each scrape, so the endpoint, `status` and the summary always
//! agree. The text is encoded by `prometheus-client`, the Prometheus project's
//! own crate (OpenMetrics text, which Prometheus scrapes natively).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::job::{FailureClass, StateKind};
use crate::journal::Journal;
use crate::pipeline::memory::Budget;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub kind: &'static str,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

fn stage_histogram() -> Histogram {
    // 1 ms to about 65 s: a lossless conversion to a download that retried.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The process's counters.
pub struct Metrics {
    /// Bytes of image bodies received and of objects uploaded.
    pub downloaded_bytes: Counter,
    pub uploaded_bytes: Counter,
    /// Time each stage spent working on a row, the waits excluded.
    stage_seconds: Family<StageLabel, Histogram, fn() -> Histogram>,
    /// Time rows waited for a stage's slot.
    wait_seconds: Family<StageLabel, Histogram, fn() -> Histogram>,
    /// Retries (not first attempts) per operation.
    retries: Family<OperationLabel, Counter>,
    /// Requests to the object store by kind and HTTP status (`error` when none came back).
    store_requests: Family<RequestLabels, Counter>,
    /// Operations in flight per stage.
    in_flight: Family<StageLabel, Gauge>,
    /// Rows this process finished, by outcome.
    finished: Family<OutcomeLabel, Counter>,
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        downloaded_bytes: Counter::default(),
        uploaded_bytes: Counter::default(),
        stage_seconds: Family::new_with_constructor(stage_histogram),
        wait_seconds: Family::new_with_constructor(stage_histogram),
        retries: Family::default(),
        store_requests: Family::default(),
        in_flight: Family::default(),
        finished: Family::default(),
    })
}

/// An operation in flight, counted until dropped.
pub struct InFlight(&'static str);

impl Drop for InFlight {
    fn drop(&mut self) {
        get()
            .in_flight
            .get_or_create(&StageLabel { stage: self.0 })
            .dec();
    }
}

impl Metrics {
    /// `stage` worked on a row for `busy`.
    pub fn stage_time(&self, stage: &'static str, busy: Duration) {
        self.stage_seconds
            .get_or_create(&StageLabel { stage })
            .observe(busy.as_secs_f64());
    }

    /// A row waited `waited` for a slot of `stage`.
    pub fn stage_wait(&self, stage: &'static str, waited: Duration) {
        self.wait_seconds
            .get_or_create(&StageLabel { stage })
            .observe(waited.as_secs_f64());
    }

    /// Counts an operation of `stage` in flight while the guard lives.
    pub fn in_flight(&self, stage: &'static str) -> InFlight {
        self.in_flight.get_or_create(&StageLabel { stage }).inc();
        InFlight(stage)
    }

    pub fn retried(&self, operation: &str) {
        self.retries
            .get_or_create(&OperationLabel {
                operation: operation.to_string(),
            })
            .inc();
    }

    /// One request to the store answered `status`, or none (`None`: a
    /// connection error or a timeout).
    pub fn store_request(&self, kind: &'static str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        self.store_requests
            .get_or_create(&RequestLabels { kind, status })
            .inc();
    }

    /// A row this process finished: `uploaded`, `reused` or `failed`.
    pub fn row_finished(&self, outcome: &'static str) {
        self.finished.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Rows this process finished with `outcome`.
    pub fn finished(&self, outcome: &'static str) -> u64 {
        self.finished.get_or_create(&OutcomeLabel { outcome }).get()
    }
}

/// What a scrape reads besides the counters: the journal's rows by state
/// and failure class, and the memory budget.
pub struct Sources {
    pub journal: Arc<Journal>,
    pub budget: Budget,
}

/// The exposition of everything, in OpenMetrics text.
pub fn render(sources: &Sources) -> Result<String, String> {
    let m = get();
    let mut registry = Registry::with_prefix("batchimg");
    let counts = sources.journal.counts().map_err(|e| e.to_string())?;
    let rows = Family::<StateLabel, Gauge>::default();
    for kind in StateKind::ALL {
        rows.get_or_create(&StateLabel { state: kind.name() })
            .set(counts.get(kind) as i64);
    }
    registry.register(
        "rows",
        "Rows of the run by state, as the journal has them",
        rows,
    );
    let failed = Family::<ClassLabel, Gauge>::default();
    for class in FailureClass::ALL {
        let n = counts
            .failed_by_class
            .iter()
            .find(|(c, _)| *c == class.name())
            .map_or(0, |(_, n)| *n);
        failed
            .get_or_create(&ClassLabel {
                class: class.name(),
            })
            .set(n as i64);
    }
    registry.register("rows_failed", "Failed rows by failure class", failed);
    let reused = Gauge::<i64>::default();
    reused.set(counts.reused as i64);
    registry.register(
        "rows_already_present",
        "Uploaded rows whose object was already in the bucket",
        reused,
    );
    registry.register(
        "rows_finished",
        "Rows this process finished, by outcome (uploaded, reused, failed)",
        m.finished.clone(),
    );
    registry.register(
        "downloaded_bytes",
        "Bytes of image bodies received",
        m.downloaded_bytes.clone(),
    );
    registry.register(
        "uploaded_bytes",
        "Bytes of images uploaded",
        m.uploaded_bytes.clone(),
    );
    registry.register(
        "stage_duration_seconds",
        "Time a stage spent on a row, waits excluded",
        m.stage_seconds.clone(),
    );
    registry.register(
        "stage_wait_seconds",
        "Time a row waited for a slot of a stage",
        m.wait_seconds.clone(),
    );
    registry.register(
        "retries",
        "Retries of failed operations (first attempts not counted)",
        m.retries.clone(),
    );
    registry.register(
        "store_requests",
        "Requests to the object store by kind and HTTP status",
        m.store_requests.clone(),
    );
    registry.register(
        "in_flight",
        "Operations in flight per stage",
        m.in_flight.clone(),
    );
    let budget_total = Gauge::<i64>::default();
    budget_total.set(sources.budget.total() as i64);
    registry.register(
        "memory_budget_bytes",
        "The memory budget images in flight share",
        budget_total,
    );
    let budget_used = Gauge::<i64>::default();
    budget_used.set(sources.budget.in_use() as i64);
    registry.register(
        "memory_budget_in_use_bytes",
        "The part of the memory budget leased now",
        budget_used,
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(|e| e.to_string())?;
    Ok(text)
}

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, sources: Sources) {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let sources = Arc::new(sources);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let sources = Arc::clone(&sources);
            async move {
                match tokio::task::spawn_blocking(move || render(&sources)).await {
                    Ok(Ok(text)) => (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                }
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "the metrics endpoint stopped");
    }
}
