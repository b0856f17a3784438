//! Which addresses an input URL may make batchimg connect to.
//!
//! Input CSVs come from elsewhere, and batchimg often runs on cloud machines
//! whose metadata service hands out credentials to anyone who can reach it.
//! So every address is checked where it is finally known: IP literals before
//! the request, names after DNS resolution (in the resolver reqwest uses for
//! every connection, redirects included), and each redirect hop's scheme and
//! literal host. Environment proxies are ignored unless `--proxy-from-env`
//! asks for them; a proxy resolves names itself, out of the resolver's sight,
//! so then the fetch stage resolves each target first (`HttpClient::check_resolved`
//! in `pipeline::fetch::client`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How an address is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// On the public internet.
    Public,
    /// Loopback, RFC 1918, CGNAT or unique-local: refused unless allowed.
    Private,
    /// Link-local, cloud metadata, unspecified, multicast: always refused.
    Forbidden,
}

/// The network policy: one switch, `--allow-private-networks`.
#[derive(Debug, Clone, Copy)]
pub struct NetPolicy {
    pub allow_private: bool,
}

impl NetPolicy {
    /// Why `ip` is refused, or `None` when it is allowed.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        match classify(ip) {
            AddrClass::Public => None,
            AddrClass::Private if self.allow_private => None,
            AddrClass::Private => Some(format!(
                "{ip} is a private or loopback address (allow with --allow-private-networks)"
            )),
            AddrClass::Forbidden => Some(format!(
                "{ip} is a link-local, metadata or reserved address, which is never allowed"
            )),
        }
    }
}

/// Sorts an address into the policy's three classes.
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and NAT64 well-known prefix reach v4 hosts.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return classify_v4(v4);
            }
            const EC2_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
            if v6 == EC2_METADATA
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80
            {
                AddrClass::Forbidden
            } else if v6.is_loopback() || (s[0] & 0xfe00) == 0xfc00 {
                AddrClass::Private
            } else {
                AddrClass::Public
            }
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    let o = ip.octets();
    // Alibaba Cloud's metadata service sits inside the CGNAT range.
    if ip.is_link_local()
        || o[0] == 0
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip == Ipv4Addr::new(100, 100, 100, 200)
        || o[0] >= 240
    {
        AddrClass::Forbidden
    } else if ip.is_loopback()
        || ip.is_private()
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
    {
        AddrClass::Private
    } else {
        AddrClass::Public
    }
}

/// A DNS resolver that drops refused addresses, and fails when none is left.
#[derive(Clone)]
pub struct GuardedResolver {
    pub policy: NetPolicy,
    /// Names resolved without the policy: the proxies the operator configured.
    pub exempt: Arc<Vec<String>>,
    pub dns: Arc<Dns>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let (policy, dns) = (self.policy, Arc::clone(&self.dns));
        let exempt = self
            .exempt
            .iter()
            .any(|e| e.eq_ignore_ascii_case(name.as_str()));
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> = dns
                .lookup(&host)
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if exempt {
                return Ok(Box::new(resolved.into_iter()) as Addrs);
            }
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match policy.refusal(a.ip()) {
                    None => true,
                    Some(why) => {
                        refusal.get_or_insert(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refusal.unwrap_or_else(|| "no addresses".into());
                return Err(Box::new(Blocked(format!("{host} resolves to {why}")))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl GuardedResolver {
    pub fn shared(policy: NetPolicy, exempt: Vec<String>, dns: Arc<Dns>) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            policy,
            exempt: Arc::new(exempt),
            dns,
        })
    }
}

/// Names resolved in process, with a cache, for every download of a run.
///
/// getaddrinfo per connection has no cache, and in a pod (`ndots:5`) one
/// external name can cost ten queries; at web scale that is the first thing
/// to fail. hickory-resolver reads `/etc/resolv.conf` (servers, search
/// domains, ndots), and `--dns-server` points it elsewhere. Answers are kept
/// here for their TTL (at most an hour), a name that does not exist for five
/// minutes, a server's failure for a few seconds; concurrent lookups of one
/// name wait for the first, so a burst of rows on a new host asks once.
pub struct Dns {
    resolver: Option<hickory_resolver::TokioResolver>,
    /// Lookups of one name (by hash) go one at a time, so the second finds
    /// the first's answer here.
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Answers until their TTL runs out, failures for a short while.
    answers: std::sync::Mutex<HashMap<String, (Answer, Instant)>>,
}

type Answer = Result<Vec<IpAddr>, DnsFailure>;

/// Names cached at most; a run's hosts rarely come near it.
const DNS_CACHE_ENTRIES: usize = 65_536;
const DNS_STRIPES: usize = 1024;
/// How long a name that does not exist is taken not to exist, and how long
/// a server's failure for a name is remembered (so that a hundred rows on a
/// failing name do not ask a hundred times).
const NO_SUCH_NAME_FOR: Duration = Duration::from_secs(300);
const FAILURE_FOR: Duration = Duration::from_secs(5);
/// The longest an answer is kept, whatever its TTL.
const LONGEST_TTL: Duration = Duration::from_secs(3600);

impl Dns {
    /// The system's resolver configuration, or `server` alone. Without
    /// either (no readable resolv.conf), the system's getaddrinfo.
    pub fn new(server: Option<SocketAddr>) -> Dns {
        use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
        use hickory_resolver::net::runtime::TokioRuntimeProvider;
        let provider = TokioRuntimeProvider::default();
        let builder = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                Ok(hickory_resolver::TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    provider,
                ))
            }
            None => hickory_resolver::TokioResolver::builder(provider),
        };
        let resolver = builder.and_then(|b| b.build());
        let resolver = match resolver {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::debug!(error = %e, "no resolver configuration; names go to getaddrinfo");
                None
            }
        };
        Dns {
            resolver,
            stripes: (0..DNS_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            answers: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, name: &str) -> Option<Answer> {
        let answers = self.answers.lock().expect("DNS cache lock");
        let (answer, until) = answers.get(name)?;
        (Instant::now() < *until).then(|| answer.clone())
    }

    fn remember(&self, name: String, answer: Answer, until: Instant) {
        let mut answers = self.answers.lock().expect("DNS cache lock");
        if answers.len() >= DNS_CACHE_ENTRIES {
            let now = Instant::now();
            answers.retain(|_, (_, until)| *until > now);
            if answers.len() >= DNS_CACHE_ENTRIES {
                answers.clear();
            }
        }
        answers.insert(name, (answer, until));
    }

    /// The addresses of `host`.
    pub async fn lookup(&self, host: &str) -> Result<Vec<std::net::IpAddr>, DnsFailure> {
        let Some(resolver) = &self.resolver else {
            return tokio::net::lookup_host((host, 0))
                .await
                .map(|addrs| addrs.map(|a| a.ip()).collect())
                .map_err(|e| DnsFailure {
                    name: host.to_string(),
                    no_such_name: false,
                    detail: e.to_string(),
                });
        };
        let stripe = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            host.to_ascii_lowercase().hash(&mut h);
            (h.finish() % self.stripes.len() as u64) as usize
        };
        let name = host.to_ascii_lowercase();
        if let Some(answer) = self.cached(&name) {
            return answer;
        }
        let _one_at_a_time = self.stripes[stripe].lock().await;
        if let Some(answer) = self.cached(&name) {
            return answer;
        }
        let now = Instant::now();
        let (answer, until) = match resolver.lookup_ip(host).await {
            Ok(ips) => {
                let until = ips.valid_until().min(now + LONGEST_TTL);
                (Ok(ips.iter().collect()), until)
            }
            Err(e) => {
                let no_such_name = e.is_nx_domain() || e.is_no_records_found();
                let failure = DnsFailure {
                    name: host.to_string(),
                    no_such_name,
                    detail: e.to_string(),
                };
                let keep = if no_such_name {
                    NO_SUCH_NAME_FOR
                } else {
                    FAILURE_FOR
                };
                (Err(failure), now + keep)
            }
        };
        self.remember(name, answer.clone(), until);
        answer
    }
}

/// A name that did not resolve; found in error chains by `fetch`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{name}: {}", if *.no_such_name { "no such name".to_string() } else { format!("name resolution failed ({})", .detail) })]
pub struct DnsFailure {
    pub name: String,
    /// The name does not exist (or has no address): final, not transient.
    pub no_such_name: bool,
    pub detail: String,
}

/// The host names of the proxies the environment configures, as reqwest
/// reads them (a value without a scheme is an http:// proxy).
pub fn proxy_hosts() -> Vec<String> {
    let mut hosts = Vec::new();
    for var in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"] {
        for name in [var.to_string(), var.to_ascii_lowercase()] {
            let Some(value) = std::env::var(&name).ok().filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let value = value.trim();
            let value = if value.contains("://") {
                value.to_string()
            } else {
                format!("http://{value}")
            };
            if let Ok(url) = url::Url::parse(&value)
                && let Some(url::Host::Domain(host)) = url.host()
            {
                hosts.push(host.to_ascii_lowercase());
            }
        }
    }
    hosts
}

/// A connection refused by the policy; found in error chains by `fetch`.
#[derive(Debug, thiserror::Error)]
#[error("blocked: {0}")]
pub struct Blocked(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddrClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn metadata_and_link_local_are_always_forbidden() {
        for a in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "0.0.0.0",
            "::",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert_eq!(class(a), AddrClass::Forbidden, "{a}");
        }
    }

    #[test]
    fn private_ranges_need_the_switch() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(class(a), AddrClass::Private, "{a}");
            let ip: IpAddr = a.parse().unwrap();
            let closed = NetPolicy {
                allow_private: false,
            };
            let open = NetPolicy {
                allow_private: true,
            };
            assert!(closed.refusal(ip).is_some());
            assert!(open.refusal(ip).is_none());
        }
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let open = NetPolicy {
            allow_private: true,
        };
        assert!(open.refusal(metadata).is_some());
    }

    #[test]
    fn public_addresses_pass() {
        for a in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert_eq!(class(a), AddrClass::Public, "{a}");
        }
    }
}
