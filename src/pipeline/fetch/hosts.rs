//! Per-host state: how many downloads each host gets at once, its pace, its
//! pauses, and whether it is down.
//!
//! The pushback a host gives is its own, so what a host is allowed lives
//! here, apart from the global download slots. A host's limit adapts, as TCP
//! and Netflix's concurrency-limits do: it starts polite
//! ([`Concurrency::INITIAL_PER_HOST`]), grows by one per success while the
//! limit is what holds requests back and the host answers about as fast as
//! it ever did (doubling per round trip until the first pushback, by one per
//! round trip after it), and shrinks when the host pushes back: a 429 or 503
//! says the host had no room for the request it answered, so the limit falls
//! below the concurrency that request was sent at; a reset or a timeout
//! halves it. A `Retry-After` pauses the whole host. After a pushback the
//! limit grows again only slowly, so a host with a fixed room is probed now
//! and then, not pushed every round trip. `--per-host N` pins the limit.
//!
//! A host that fails requests of several rows in a row (refused, reset,
//! timeouts, 5xx) is taken to be down: its rows wait, without spending their
//! attempts, while one request at a time probes it, and when it has been down
//! longer than the outage wait the rows still waiting are left for `resume`.
//! One URL that keeps failing is that row's problem, not the host's: only
//! failures of distinct rows count.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::network::Network;
use crate::options::Concurrency;

/// Distinct rows whose requests must fail in a row, with nothing between
/// them that shows the host alive, before the host is taken to be down.
const DOWN_AFTER_ROWS: usize = 3;
/// The first probe of a down host, and the longest wait between two probes.
const FIRST_PROBE: Duration = Duration::from_millis(500);
const LONGEST_PROBE: Duration = Duration::from_secs(5);
/// After a pushback, the limit grows by one at most this often.
const PROBE_ROOM_EVERY: Duration = Duration::from_secs(10);
/// A success counts as "as fast as ever" while its latency is within this
/// factor (plus a small allowance) of the host's fastest.
const SLOWER_FACTOR: f64 = 2.0;
const SLOWER_ALLOWANCE: Duration = Duration::from_millis(2);

/// What one request to a host came to, as far as the host's limit and
/// breaker are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer, taking this long to its end.
    Answered(Duration),
    /// The host is alive but the request was the row's fault (404, not an
    /// image, too large): no signal about the host's room.
    RowFault,
    /// 429: no room, with the host's `Retry-After` if it gave one.
    Pushback(Option<Duration>),
    /// 503: no room, and a failure the breaker counts, as the host may be
    /// down behind its load balancer.
    Overloaded(Option<Duration>),
    /// Refused, reset, timed out, or another 5xx.
    Failed,
    /// The resolver did not answer for the host's name (not "no such
    /// name"): a sign about the network, not the host.
    Unresolved,
}

/// The limits that moved, by host key: a host appears once its limit
/// first moves (a pinned one never does). Whoever wants them follows the
/// channel ([`Hosts::limits`]); the journal records the busiest for `status`.
pub type Limits = BTreeMap<String, usize>;

/// One host's share of the downloads.
pub struct Host {
    name: String,
    state: Mutex<State>,
    changed: Notify,
    pace: Option<governor::DefaultDirectRateLimiter>,
    /// Every host's moved limits, shared with [`Hosts`].
    moved: Arc<watch::Sender<Limits>>,
    /// Every host reports to the network as a whole, shared with [`Hosts`].
    network: Arc<Network>,
}

struct State {
    limit: f64,
    /// `--per-host`: the limit never moves.
    pinned: bool,
    /// The most the limit may grow to (the global download slots).
    most: usize,
    in_flight: usize,
    /// The host has answered a request: until then it gets one at a time,
    /// so that the first connection's handshake says whether it speaks
    /// HTTP/2 (ALPN), and an HTTP/2 host's rows share that connection
    /// instead of each opening its own. A host reached without TLS cannot
    /// offer HTTP/2, so it starts as if it had answered.
    answered: bool,
    /// How many times the limit was reached (a request took the last place,
    /// or one had to wait): a request during which it was reached was held
    /// back by the limit, so its success says a larger one would help.
    full: u64,
    /// Doubling per round trip, until the first pushback.
    slow_start: bool,
    /// No growth before then (after a pushback).
    grow_after: Option<Instant>,
    fastest: Option<Duration>,
    paused_until: Option<Instant>,
    /// Rows (by URL hash) whose requests failed since the host last answered.
    failing: Vec<u64>,
    down_since: Option<Instant>,
    probing: bool,
    next_probe: Instant,
    probe_every: Duration,
}

/// Why a request to a host was not sent.
#[derive(Debug, Clone)]
pub struct HostGone {
    pub host: String,
    pub down_for: Duration,
}

/// A request's place in its host's limit; report how it went with
/// [`Permit::done`]. Dropped without a report, it frees its place only.
/// Either way the place is given back in `Drop`, the one exit.
pub struct Permit {
    host: Arc<Host>,
    /// Requests in flight to the host when this one was sent, itself included.
    sent_at: usize,
    /// [`State::full`] when the request was sent.
    full_seen: u64,
    row: u64,
    /// What [`Permit::done`] reported, for `Drop` to hand to the host.
    outcome: Option<Outcome>,
}

impl Host {
    fn new(
        name: &str,
        pinned: Option<usize>,
        most: usize,
        period: Option<Duration>,
        moved: Arc<watch::Sender<Limits>>,
        network: Arc<Network>,
        tls: bool,
    ) -> Host {
        let start = pinned.unwrap_or(Concurrency::INITIAL_PER_HOST.min(most));
        Host {
            name: name.to_string(),
            moved,
            network,
            state: Mutex::new(State {
                limit: start as f64,
                pinned: pinned.is_some(),
                most: most.max(start),
                in_flight: 0,
                answered: !tls,
                full: 0,
                slow_start: true,
                grow_after: None,
                fastest: None,
                paused_until: None,
                failing: Vec::new(),
                down_since: None,
                probing: false,
                next_probe: Instant::now(),
                probe_every: FIRST_PROBE,
            }),
            changed: Notify::new(),
            pace: period.map(|period| {
                // One request per period and no burst: a CDN that allows N
                // a second sees at most N in any second.
                let quota = governor::Quota::with_period(period).expect("positive period");
                governor::RateLimiter::direct(quota)
            }),
        }
    }

    /// Waits until the host may be sent another request for the row whose
    /// URL hashes to `row`: a place within its limit, past any pause, and,
    /// while it is down, the turn to probe it. `Err` once it has been down
    /// longer than `outage_wait`.
    pub async fn admit(
        self: &Arc<Self>,
        row: u64,
        outage_wait: Duration,
    ) -> Result<Permit, HostGone> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let until = {
                let mut s = self.state.lock().expect("host lock");
                let now = Instant::now();
                match s.down_since {
                    Some(since) if now.duration_since(since) >= outage_wait => {
                        return Err(HostGone {
                            host: self.name.clone(),
                            down_for: now.duration_since(since),
                        });
                    }
                    Some(since) => {
                        if !s.probing && now >= s.next_probe {
                            s.probing = true;
                            return Ok(self.permit(&mut s, row));
                        }
                        Some(s.next_probe.min(since + outage_wait))
                    }
                    None => match s.paused_until.filter(|&p| now < p) {
                        Some(p) => Some(p),
                        // Held back for the first answer, not by the limit:
                        // not a sign that a larger limit would help.
                        None if !s.answered && s.in_flight > 0 => None,
                        None if s.in_flight < s.limit.floor() as usize => {
                            return Ok(self.permit(&mut s, row));
                        }
                        None => {
                            s.full += 1;
                            None
                        }
                    },
                }
            };
            match until {
                Some(t) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(t.into()) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    fn permit(self: &Arc<Self>, s: &mut State, row: u64) -> Permit {
        s.in_flight += 1;
        let full_seen = s.full;
        if s.in_flight >= s.limit.floor() as usize {
            s.full += 1;
        }
        Permit {
            host: Arc::clone(self),
            sent_at: s.in_flight,
            full_seen,
            row,
            outcome: None,
        }
    }

    /// Waits until the host may be sent another request at its pace.
    pub async fn pace(&self) {
        if let Some(limiter) = &self.pace {
            limiter.until_ready().await;
        }
    }

    /// Whether the host is taken to be down.
    pub fn is_down(&self) -> bool {
        self.state.lock().expect("host lock").down_since.is_some()
    }

    /// The host's current limit on requests in flight.
    #[cfg(test)]
    fn limit(&self) -> usize {
        self.state.lock().expect("host lock").limit.floor() as usize
    }

    fn finish(&self, permit: &Permit, outcome: Option<Outcome>) {
        let mut s = self.state.lock().expect("host lock");
        s.in_flight -= 1;
        let was_down = s.down_since.is_some();
        let before = s.limit.floor() as usize;
        if let Some(outcome) = outcome {
            match outcome {
                Outcome::Answered(_) | Outcome::RowFault | Outcome::Pushback(_) => {
                    self.network.answered()
                }
                Outcome::Failed | Outcome::Overloaded(_) | Outcome::Unresolved => {
                    self.network.failed(permit.row, &self.name)
                }
            }
            let network_down = self.network.is_down();
            s.learn(permit, outcome, &self.name, network_down);
        }
        let after = s.limit.floor() as usize;
        if was_down && s.down_since.is_none() {
            tracing::warn!(host = %self.name, "the host answers again; its rows go on");
        }
        if before != after && !s.pinned {
            tracing::debug!(host = %self.name, limit = after, "host limit");
            crate::metrics::get().host_limit(&self.name, after);
            // Under the host's lock, so two moves of one host reach the
            // channel in the order they were made.
            self.moved.send_modify(|moved| {
                moved.insert(self.name.clone(), after);
            });
        }
        drop(s);
        self.changed.notify_waiters();
    }
}

impl State {
    /// `network_down`: no host answers, so a failure here is not this
    /// host's alone and it is taken to be down at once.
    fn learn(&mut self, permit: &Permit, outcome: Outcome, name: &str, network_down: bool) {
        let now = Instant::now();
        match outcome {
            Outcome::Unresolved if network_down => self.failed(permit, now, name, true),
            Outcome::Unresolved => {}
            Outcome::Answered(latency) => {
                self.alive();
                let fastest = *self.fastest.get_or_insert(latency);
                self.fastest = Some(fastest.min(latency));
                let as_fast = latency.as_secs_f64()
                    <= fastest.as_secs_f64() * SLOWER_FACTOR + SLOWER_ALLOWANCE.as_secs_f64();
                let may_grow = self.grow_after.is_none_or(|t| now >= t);
                let limited = self.full > permit.full_seen;
                if !self.pinned && limited && as_fast && may_grow {
                    self.limit = (self.limit + 1.0).min(self.most as f64);
                    if !self.slow_start {
                        self.grow_after = Some(now + PROBE_ROOM_EVERY);
                    }
                }
            }
            Outcome::RowFault => self.alive(),
            Outcome::Overloaded(retry_after) => {
                self.pushback(permit, retry_after, now);
                self.failed(permit, now, name, network_down);
            }
            Outcome::Pushback(retry_after) => {
                self.alive();
                self.pushback(permit, retry_after, now);
            }
            Outcome::Failed => {
                // One halving per burst of failures, not one per request
                // of the burst.
                if !self.pinned && self.grow_after.is_none_or(|t| now >= t) {
                    self.limit = (self.limit / 2.0).max(1.0);
                    self.slow_start = false;
                    self.grow_after = Some(now + PROBE_ROOM_EVERY);
                }
                self.failed(permit, now, name, network_down);
            }
        }
    }

    /// The host had no room for a request sent with `sent_at` in flight:
    /// stay below that, and wait as long as it asked.
    fn pushback(&mut self, permit: &Permit, retry_after: Option<Duration>, now: Instant) {
        if !self.pinned {
            // At most a halving per pushback: a request whose answer says
            // "no room" may have been sent when our count lagged the host's.
            let room = permit.sent_at.saturating_sub(1).max(1) as f64;
            let floor = (self.limit / 2.0).max(1.0);
            self.limit = self.limit.min(room).max(floor);
            self.slow_start = false;
            self.grow_after = Some(now + PROBE_ROOM_EVERY);
        }
        if let Some(wait) = retry_after {
            let until = now + wait;
            self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        }
    }

    /// A request failed as an outage would fail it: a row more against the
    /// host, or a failed probe.
    fn failed(&mut self, permit: &Permit, now: Instant, name: &str, network_down: bool) {
        if !self.failing.contains(&permit.row) {
            self.failing.push(permit.row);
        }
        if self.down_since.is_some() {
            // A failed probe: the next one waits longer.
            self.probing = false;
            self.probe_every = (self.probe_every * 2).min(LONGEST_PROBE);
            self.next_probe = now + self.probe_every;
        } else if self.failing.len() >= DOWN_AFTER_ROWS || network_down {
            self.down_since = Some(now);
            self.probing = false;
            self.probe_every = FIRST_PROBE;
            self.next_probe = now + FIRST_PROBE;
            tracing::warn!(
                host = %name,
                "the host fails every request; its rows wait while it is probed"
            );
        }
    }

    /// The host answered: it is not down, and no row is failing against it.
    /// Back from an outage, its limit grows fast again, as after a start.
    fn alive(&mut self) {
        self.answered = true;
        self.failing.clear();
        self.probing = false;
        if self.down_since.take().is_some() {
            self.slow_start = true;
            self.grow_after = None;
        }
    }
}

impl Permit {
    /// Reports how the request went: the host's limit and breaker learn from
    /// it. The latency of an [`Outcome::Answered`] is the caller's to
    /// measure: the request alone, from its send to its body's end, not the
    /// waits for a download slot and the host's pace that came after the
    /// permit, which say nothing about how fast the host answers.
    pub fn done(mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let outcome = self.outcome.take();
        self.host.finish(self, outcome);
    }
}

/// Every host seen so far, by its key (see `url::host_key`).
pub struct Hosts {
    by_key: Mutex<HashMap<String, Arc<Host>>>,
    /// `--per-host`, when pinned.
    pinned: Option<usize>,
    /// The most any host's limit grows to.
    most: usize,
    /// Least time between two requests to one host (`--per-host-rps`).
    period: Option<Duration>,
    moved: Arc<watch::Sender<Limits>>,
    network: Arc<Network>,
}

impl Hosts {
    pub fn new(pinned: Option<usize>, most: usize, per_host_rps: Option<f64>) -> Hosts {
        Hosts {
            by_key: Mutex::new(HashMap::new()),
            pinned,
            most,
            period: per_host_rps.map(|rps| Duration::from_secs_f64(1.0 / rps)),
            moved: Arc::new(watch::Sender::new(Limits::new())),
            network: Arc::default(),
        }
    }

    /// The hosts as one: whether the network itself seems down.
    pub fn network(&self) -> Arc<Network> {
        Arc::clone(&self.network)
    }

    /// The hosts' limits that moved, now and as they move.
    pub fn limits(&self) -> watch::Receiver<Limits> {
        self.moved.subscribe()
    }

    /// The most requests one host can have in flight: `--per-host` when
    /// pinned, else what every limit may grow to.
    pub fn most_per_host(&self) -> usize {
        self.pinned.unwrap_or(self.most)
    }

    /// The host named `key`, reached over TLS or not (when first seen).
    pub fn get(&self, key: &str, tls: bool) -> Arc<Host> {
        let mut map = self.by_key.lock().expect("per-host lock");
        if let Some(host) = map.get(key) {
            return Arc::clone(host);
        }
        let host = Arc::new(Host::new(
            key,
            self.pinned,
            self.most,
            self.period,
            Arc::clone(&self.moved),
            Arc::clone(&self.network),
            tls,
        ));
        map.insert(key.to_string(), Arc::clone(&host));
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(pinned: Option<usize>) -> Arc<Host> {
        let (moved, network) = (Arc::default(), Arc::default());
        Arc::new(Host::new("h:80", pinned, 64, None, moved, network, false))
    }

    async fn take(h: &Arc<Host>, n: usize) -> Vec<Permit> {
        let mut permits = Vec::new();
        for i in 0..n {
            permits.push(h.admit(i as u64, Duration::from_secs(60)).await.unwrap());
        }
        permits
    }

    #[tokio::test]
    async fn a_new_host_gets_one_request_until_it_answers() {
        let hosts = Hosts::new(None, 64, None);
        let h = hosts.get("new:443", true);
        let first = h.admit(0, Duration::from_secs(60)).await.unwrap();
        let second = {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.admit(1, Duration::from_secs(60)).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished(), "a second request before any answer");
        first.done(Outcome::Answered(Duration::ZERO));
        second.await.unwrap().unwrap();
        // Answered once, it has its whole limit; a host reached without TLS
        // (no HTTP/2 to learn of) has it from the start.
        let permits = take(&h, Concurrency::INITIAL_PER_HOST).await;
        assert_eq!(permits.len(), Concurrency::INITIAL_PER_HOST);
        let plain = hosts.get("plain:80", false);
        assert_eq!(take(&plain, Concurrency::INITIAL_PER_HOST).await.len(), 8);
    }

    #[tokio::test]
    async fn with_the_network_down_a_failing_host_is_down_at_once() {
        let hosts = Hosts::new(None, 64, None);
        let (a, b) = (hosts.get("a:80", false), hosts.get("b:80", false));
        // Three rows of each fail: the network is down (six rows, two hosts)
        // and both hosts with it.
        for row in 0..3 {
            for (i, h) in [&a, &b].into_iter().enumerate() {
                let permit = h.admit(2 * row + i as u64, Duration::from_secs(60));
                permit.await.unwrap().done(Outcome::Failed);
            }
        }
        assert!(hosts.network().is_down());
        // A third host's first failure takes it down, with no wait for
        // three of its rows.
        let c = hosts.get("c:80", false);
        c.admit(7, Duration::from_secs(60))
            .await
            .unwrap()
            .done(Outcome::Unresolved);
        assert!(c.is_down());
        // One answer anywhere and the network is back.
        let d = hosts.get("d:80", false);
        d.admit(8, Duration::from_secs(60))
            .await
            .unwrap()
            .done(Outcome::RowFault);
        assert!(!hosts.network().is_down());
    }

    #[tokio::test]
    async fn a_host_starts_polite_and_doubles_per_round_trip_while_limited() {
        let h = host(None);
        assert_eq!(h.limit(), Concurrency::INITIAL_PER_HOST);
        for round in 0..3 {
            let limit = h.limit();
            let permits = take(&h, limit).await;
            for p in permits {
                p.done(Outcome::Answered(Duration::ZERO));
            }
            assert_eq!(h.limit(), 2 * limit, "round {round}");
        }
    }

    #[tokio::test]
    async fn a_pushback_sets_the_limit_below_the_concurrency_it_came_at() {
        let h = host(None);
        // Grow to 32, then the host turns away requests sent past 16.
        for _ in 0..2 {
            let permits = take(&h, h.limit()).await;
            permits
                .into_iter()
                .for_each(|p| p.done(Outcome::Answered(Duration::ZERO)));
        }
        assert_eq!(h.limit(), 32);
        let permits = take(&h, 32).await;
        for (i, p) in permits.into_iter().enumerate() {
            if i < 16 {
                p.done(Outcome::Answered(Duration::ZERO));
            } else {
                p.done(Outcome::Pushback(None));
            }
        }
        // Within one of the room: each pushback at most halves the limit,
        // so the first (from 48 after the successes) lands on 24, the next
        // on the room it says.
        let limit = h.limit();
        assert!((16..=17).contains(&limit), "{limit}");
        // No growth right after a pushback, however well it goes.
        let permits = take(&h, limit).await;
        permits
            .into_iter()
            .for_each(|p| p.done(Outcome::Answered(Duration::ZERO)));
        assert_eq!(h.limit(), limit);
    }

    #[tokio::test]
    async fn a_pinned_host_never_moves_and_a_slow_host_does_not_grow() {
        let pinned = host(Some(3));
        let permits = take(&pinned, 3).await;
        permits.into_iter().for_each(|p| p.done(Outcome::Failed));
        assert_eq!(pinned.limit(), 3);

        let h = host(None);
        let permits = take(&h, 8).await;
        permits
            .into_iter()
            .for_each(|p| p.done(Outcome::Answered(Duration::ZERO)));
        assert_eq!(h.limit(), 16);
        // Answers that take far longer than the fastest one: the host is
        // saturated, the limit holds.
        h.state.lock().unwrap().fastest = Some(Duration::from_millis(1));
        let permits = take(&h, 16).await;
        permits
            .into_iter()
            .for_each(|p| p.done(Outcome::Answered(Duration::from_millis(60))));
        assert_eq!(h.limit(), 16);
    }

    #[tokio::test]
    async fn the_latency_reported_is_the_one_judged_not_the_time_a_permit_was_held() {
        // Permits held a while before their requests went out (waiting for a
        // download slot, say), then answered fast: the host is as fast as
        // ever, and the limit grows.
        let h = host(None);
        h.state.lock().unwrap().fastest = Some(Duration::from_millis(1));
        let limit = h.limit();
        let permits = take(&h, limit).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        permits
            .into_iter()
            .for_each(|p| p.done(Outcome::Answered(Duration::from_millis(1))));
        assert_eq!(h.limit(), 2 * limit);
    }

    #[tokio::test]
    async fn the_limits_that_move_are_published_to_whoever_follows_them() {
        let hosts = Hosts::new(None, 64, None);
        let limits = hosts.limits();
        let (a, b) = (hosts.get("a:443", false), hosts.get("b:443", false));
        take(&b, 1).await.into_iter().for_each(drop);
        assert!(limits.borrow().is_empty(), "nothing moved yet");
        for p in take(&a, a.limit()).await {
            p.done(Outcome::Answered(Duration::ZERO));
        }
        let moved: Vec<(String, usize)> = limits
            .borrow()
            .iter()
            .map(|(h, l)| (h.clone(), *l))
            .collect();
        assert_eq!(moved, [("a:443".to_string(), a.limit())]);

        let pinned = Hosts::new(Some(2), 64, None);
        let limits = pinned.limits();
        let c = pinned.get("c:443", false);
        take(&c, 2)
            .await
            .into_iter()
            .for_each(|p| p.done(Outcome::Failed));
        assert!(limits.borrow().is_empty(), "a pinned limit never moves");
    }

    #[tokio::test]
    async fn permits_give_their_host_back_whether_reported_or_dropped() {
        let h = host(None);
        let baseline = Arc::strong_count(&h);
        for _ in 0..20 {
            let permits = take(&h, h.limit()).await;
            assert_eq!(Arc::strong_count(&h), baseline + permits.len());
            // Half reported, half dropped (a request cancelled mid-flight).
            for (i, p) in permits.into_iter().enumerate() {
                if i % 2 == 0 {
                    p.done(Outcome::Answered(Duration::ZERO));
                } else {
                    drop(p);
                }
            }
            assert_eq!(Arc::strong_count(&h), baseline);
            assert_eq!(h.state.lock().unwrap().in_flight, 0);
        }
    }

    #[tokio::test]
    async fn failures_of_several_rows_take_the_host_down_and_one_answer_brings_it_back() {
        let h = host(None);
        // One row failing again and again is that row's problem.
        for _ in 0..5 {
            let p = h.admit(7, Duration::from_secs(60)).await.unwrap();
            p.done(Outcome::Failed);
        }
        assert!(!h.is_down());
        for row in 0..3 {
            let p = h.admit(row, Duration::from_secs(60)).await.unwrap();
            p.done(Outcome::Failed);
        }
        assert!(h.is_down());
        // The probe comes after a pause; its answer ends the outage.
        let probe = h.admit(9, Duration::from_secs(60)).await.unwrap();
        probe.done(Outcome::RowFault);
        assert!(!h.is_down());
    }

    #[tokio::test]
    async fn a_host_down_longer_than_the_wait_is_gone() {
        let h = host(None);
        for row in 0..3 {
            h.admit(row, Duration::from_secs(60))
                .await
                .unwrap()
                .done(Outcome::Failed);
        }
        let gone = h.admit(5, Duration::from_millis(1)).await;
        assert!(gone.is_err());
    }

    #[tokio::test]
    async fn a_retry_after_pauses_the_whole_host() {
        let h = host(None);
        h.admit(0, Duration::from_secs(60))
            .await
            .unwrap()
            .done(Outcome::Pushback(Some(Duration::from_millis(200))));
        let asked = Instant::now();
        let _p = h.admit(1, Duration::from_secs(60)).await.unwrap();
        assert!(asked.elapsed() >= Duration::from_millis(190));
    }
}
