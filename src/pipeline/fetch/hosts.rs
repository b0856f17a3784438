//! Per-host state: each host's share of the downloads (its slots) and its
//! pace, made at its first request. The pushback a host gives is its own, so
//! what a host is allowed lives here, apart from the global download slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

/// One host's share of the downloads: its slots and its pace.
pub struct Host {
    pub slots: Semaphore,
    pace: Option<governor::DefaultDirectRateLimiter>,
}

impl Host {
    /// Waits until the host may be sent another request.
    pub async fn pace(&self) {
        if let Some(limiter) = &self.pace {
            limiter.until_ready().await;
        }
    }
}

/// Every host seen so far, by its key (see `url::host_key`).
pub struct Hosts {
    by_key: Mutex<HashMap<String, Arc<Host>>>,
    /// Downloads in flight to one host (`--per-host`).
    per_host: usize,
    /// Least time between two requests to one host (`--per-host-rps`).
    period: Option<Duration>,
}

impl Hosts {
    pub fn new(per_host: usize, per_host_rps: Option<f64>) -> Hosts {
        Hosts {
            by_key: Mutex::new(HashMap::new()),
            per_host,
            period: per_host_rps.map(|rps| Duration::from_secs_f64(1.0 / rps)),
        }
    }

    /// The slots and pace of the host named `key`.
    pub fn get(&self, key: &str) -> Arc<Host> {
        let mut map = self.by_key.lock().expect("per-host lock");
        if let Some(host) = map.get(key) {
            return Arc::clone(host);
        }
        let host = Arc::new(Host {
            slots: Semaphore::new(self.per_host),
            pace: self.period.map(|period| {
                // One request per period and no burst: a CDN that allows N
                // a second sees at most N in any second.
                let quota = governor::Quota::with_period(period).expect("positive period");
                governor::RateLimiter::direct(quota)
            }),
        });
        map.insert(key.to_string(), Arc::clone(&host));
        host
    }
}
