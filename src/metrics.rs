//! What a run has done, as counters a machine can collect: the numbers
//! behind the Prometheus endpoint (`serve`), the progress lines and the summary.
//!
//! The counters are process-wide, like the tracing subscriber: every stage
//! adds to them without a handle threaded through each constructor, and an
//! increment is one relaxed atomic whether or not anything is served. Rows by
//! state and failure class are not counted here: they are read from the
//! journal at each scrape, so the endpoint, `status` and the summary always
//! agree. The text is encoded by `prometheus-client`, the Prometheus project's
//! own crate (OpenMetrics text, which Prometheus scrapes natively).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
struct OutcomeLabel {
    outcome: &'static str,
}

fn stage_histogram() -> Histogram {
    // 1 ms to about 65 s: a lossless conversion to a download that retried.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabel {
    pub host: String,
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
    /// Each host's adapted limit on downloads in flight, once it moved.
    host_limits: Family<HostLabel, Gauge>,
    /// The same limits, for the progress lines.
    limits: Mutex<BTreeMap<String, usize>>,
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
        host_limits: Family::default(),
        limits: Mutex::new(BTreeMap::new()),
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

    /// A host's limit on downloads in flight moved (only hosts busy enough
    /// for it to move are ever named).
    pub fn host_limit(&self, host: &str, limit: usize) {
        self.host_limits
            .get_or_create(&HostLabel {
                host: host.to_string(),
            })
            .set(limit as i64);
        self.limits
            .lock()
            .expect("host limits lock")
            .insert(host.to_string(), limit);
    }

    /// The `n` hosts with the largest adapted limits, largest first.
    pub fn top_host_limits(&self, n: usize) -> Vec<(String, usize)> {
        let limits = self.limits.lock().expect("host limits lock");
        let mut all: Vec<(String, usize)> = limits.iter().map(|(h, l)| (h.clone(), *l)).collect();
        all.sort_by_key(|(_, l)| std::cmp::Reverse(*l));
        all.truncate(n);
        all
    }

    /// Rows this process finished with `outcome`.
    pub fn finished(&self, outcome: &'static str) -> u64 {
        self.finished.get_or_create(&OutcomeLabel { outcome }).get()
    }
}

/// The counters' exposition; what a scrape reads besides them (rows from
/// the journal, the memory budget) is added by `serve`.
impl Metrics {
    /// Registers the process-wide counters, in the order they are exposed.
    pub fn register(&self, registry: &mut Registry) {
        let m = self;
        registry.register(
            "host_limit",
            "Downloads in flight each busy host is allowed now (its adapted limit)",
            m.host_limits.clone(),
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
    }
}
