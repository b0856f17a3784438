//! Which addresses an input URL may make batchimg connect to.
//!
//! Input CSVs come from elsewhere, and batchimg often runs on cloud machines
//! whose metadata service hands out credentials to anyone who can reach it.
//! So every address is checked where it is finally known: IP literals before
//! the request, names after DNS resolution (in the resolver reqwest uses for
//! every connection, redirects included), and each redirect hop's scheme and
//! literal host. Environment proxies are ignored unless `--proxy-from-env`
//! asks for them; a proxy resolves names itself, out of the resolver's sight,
//! so then the fetch stage resolves each target first (`fetch::check_resolved`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

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
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let exempt = self
            .exempt
            .iter()
            .any(|e| e.eq_ignore_ascii_case(name.as_str()));
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
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
    pub fn shared(policy: NetPolicy, exempt: Vec<String>) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            policy,
            exempt: Arc::new(exempt),
        })
    }
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
