//! The Prometheus endpoint (`--metrics-addr`): the process's counters, and
//! rows by state and failure class read from the journal at each scrape, so
//! the endpoint, `status` and the summary always agree. The text is encoded
//! by `prometheus-client`, the Prometheus project's own crate (OpenMetrics
//! text, which Prometheus scrapes natively).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::job::{FailureClass, StateKind};
use crate::journal::Journal;
use crate::memory::Budget;
use crate::metrics::get;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

pub struct Sources {
    pub journal: Arc<Journal>,
    pub budget: Budget,
}

/// The exposition of everything, in OpenMetrics text.
pub fn render(sources: &Sources) -> Result<String, String> {
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
    get().register(&mut registry);
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
