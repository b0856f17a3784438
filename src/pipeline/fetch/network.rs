//! The network as a whole: when every host fails at once, the trouble is
//! ours (a cable, a NAT gateway, the resolver), not theirs, and the run
//! pauses instead of failing rows.
//!
//! Each host's breaker ([`super::hosts`]) sees only its own rows, and needs
//! several of them failing before it calls the host down; a crawl of many
//! hosts with a few rows each would fail row after row while the network is
//! gone. So the hosts also report here: failures that look like an outage
//! (refused, reset, timed out, 5xx, a resolver that does not answer) from
//! distinct rows of at least two hosts, with no answer from any host in
//! between, mean the network is down. While it is, the feeder starts no new
//! row, every host that fails is taken to be down at once (so its rows wait
//! while one request at a time probes it), and the first answer from any
//! host ends the pause. Down longer than `--host-outage-wait`, the run
//! stops with exit 3 and a plain `resume` continues.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Distinct rows, of at least [`DOWN_AFTER_HOSTS`] hosts, whose requests
/// must fail with no answer from any host between them before the network
/// is taken to be down.
const DOWN_AFTER_ROWS: usize = 6;
const DOWN_AFTER_HOSTS: usize = 2;

/// Whether any host answers.
#[derive(Default)]
pub struct Network {
    state: Mutex<State>,
    changed: Notify,
    /// Some request failed since the last answer (or the network is down):
    /// while not, an answer, the common case, takes no lock.
    troubled: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Rows (by URL hash) and hosts whose requests failed since any host
    /// last answered.
    failing_rows: HashSet<u64>,
    failing_hosts: HashSet<String>,
    down_since: Option<Instant>,
}

impl Network {
    /// A host answered (with anything: a 404 is an answer).
    pub fn answered(&self) {
        if !self.troubled.load(Ordering::Acquire) {
            return;
        }
        let mut s = self.state.lock().expect("network lock");
        self.troubled.store(false, Ordering::Release);
        s.failing_rows.clear();
        s.failing_hosts.clear();
        if let Some(since) = s.down_since.take() {
            tracing::warn!(
                down_s = since.elapsed().as_secs(),
                "a host answers again: the network is back, new rows start again"
            );
            drop(s);
            self.changed.notify_waiters();
        }
    }

    /// A request of row `row` to `host` failed as an outage would fail it.
    pub fn failed(&self, row: u64, host: &str) {
        let mut s = self.state.lock().expect("network lock");
        self.troubled.store(true, Ordering::Release);
        if s.down_since.is_some() {
            return;
        }
        s.failing_rows.insert(row);
        if !s.failing_hosts.contains(host) {
            s.failing_hosts.insert(host.to_string());
        }
        if s.failing_rows.len() >= DOWN_AFTER_ROWS && s.failing_hosts.len() >= DOWN_AFTER_HOSTS {
            s.down_since = Some(Instant::now());
            tracing::warn!(
                hosts = s.failing_hosts.len(),
                rows = s.failing_rows.len(),
                "no host answers: the network seems down; no new row starts while each host is probed"
            );
        }
    }

    /// Whether the network is taken to be down.
    pub fn is_down(&self) -> bool {
        self.state
            .lock()
            .expect("network lock")
            .down_since
            .is_some()
    }

    /// Returns once the network is not down; `Err` with how long it has been
    /// down once that is `outage_wait` or more.
    pub async fn wait_up(&self, outage_wait: Duration) -> Result<(), Duration> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let since = match self.state.lock().expect("network lock").down_since {
                None => return Ok(()),
                Some(since) => since,
            };
            let down_for = since.elapsed();
            if down_for >= outage_wait {
                return Err(down_for);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(outage_wait - down_for) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_of_several_hosts_with_no_answer_between_are_the_network() {
        let n = Network::default();
        // One host failing, however many rows: its own breaker's business.
        for row in 0..20 {
            n.failed(row, "a:443");
        }
        assert!(!n.is_down());
        // A second host, and the rows add up.
        n.failed(100, "b:443");
        assert!(n.is_down());
        n.answered();
        assert!(!n.is_down());
        // An answer in between starts the count again.
        for row in 0..5 {
            n.failed(row, if row % 2 == 0 { "a:443" } else { "b:443" });
        }
        n.answered();
        n.failed(9, "c:443");
        assert!(!n.is_down());
    }

    #[tokio::test]
    async fn the_feeder_waits_until_an_answer_or_the_outage_wait() {
        let n = std::sync::Arc::new(Network::default());
        for row in 0..6 {
            n.failed(row, if row % 2 == 0 { "a:443" } else { "b:443" });
        }
        let waiting = {
            let n = n.clone();
            tokio::spawn(async move { n.wait_up(Duration::from_secs(60)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        n.answered();
        assert_eq!(waiting.await.unwrap(), Ok(()));
        for row in 0..6 {
            n.failed(row, if row % 2 == 0 { "a:443" } else { "b:443" });
        }
        let gone = n.wait_up(Duration::from_millis(30)).await;
        assert!(gone.is_err_and(|d| d >= Duration::from_millis(30)));
    }
}
