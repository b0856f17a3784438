//! The HTTP side of a download: the client (network policy in its resolver,
//! proxies only when asked, timeouts), and one GET that follows redirects hop
//! by hop, so that each hop is checked, paced and stripped of credentials
//! like the first.

use std::time::Duration;

use reqwest::{Client, StatusCode, redirect};
use url::Url;

use super::error::FetchError;
use super::hosts::Hosts;
use super::url::{check_target, host_key};
use std::sync::Arc;

use crate::netguard::{Blocked, Dns, DnsFailure, GuardedResolver, NetPolicy};
use crate::settings::Settings;

/// The download client, shared by every download.
pub struct HttpClient {
    client: Client,
    policy: NetPolicy,
    max_redirects: usize,
    /// Downloads go through the environment's proxy (`--proxy-from-env`).
    proxied: bool,
    /// Extra request headers (`--header`), values marked sensitive.
    headers: reqwest::header::HeaderMap,
    /// The resolver the client's connections use, for the checks made
    /// before a request goes to a proxy.
    dns: Arc<Dns>,
}

impl HttpClient {
    /// The client for `settings`, keeping up to `most_per_host` idle
    /// connections to a host: the most requests one host can have in flight
    /// ([`Hosts::most_per_host`]), so none has to be opened again.
    pub fn new(settings: &Settings, most_per_host: usize) -> Result<HttpClient, reqwest::Error> {
        let policy = NetPolicy {
            allow_private: settings.allow_private_networks,
        };
        let limits = settings.limits;
        let http = &settings.http;
        crate::tls::install();
        // Redirects are followed by `get`, hop by hop.
        let mut client = Client::builder()
            .user_agent(
                http.user_agent
                    .clone()
                    .unwrap_or_else(|| crate::version::USER_AGENT.into()),
            )
            .redirect(redirect::Policy::none())
            .retry(reqwest::retry::never())
            .connect_timeout(limits.connect_timeout)
            .read_timeout(limits.read_timeout)
            .timeout(limits.download_timeout)
            .pool_max_idle_per_host(most_per_host);
        let dns = Arc::new(Dns::new(http.dns_server));
        client = if http.proxy_from_env {
            // reqwest reads the variables itself; the proxies' own names are
            // the operator's choice, so the resolver lets them through.
            client.dns_resolver(GuardedResolver::shared(
                policy,
                http.proxy_hosts.clone(),
                Arc::clone(&dns),
            ))
        } else {
            client.no_proxy().dns_resolver(GuardedResolver::shared(
                policy,
                Vec::new(),
                Arc::clone(&dns),
            ))
        };
        Ok(HttpClient {
            client: client.build()?,
            dns,
            policy,
            max_redirects: limits.max_redirects,
            proxied: http.proxy_from_env,
            headers: http.headers.clone(),
        })
    }

    /// The response to a GET of `url`, following redirects hop by hop: each
    /// hop's target is checked by the network policy (resolved here first
    /// when a proxy would resolve it), paced as a request to its host, and
    /// sent without the `--header` headers once it leaves the origin (curl
    /// and reqwest drop only Authorization and Cookie; any of them may be a
    /// key). A status other than success is an error.
    pub async fn get(&self, url: &Url, hosts: &Hosts) -> Result<reqwest::Response, FetchError> {
        let mut url = url.clone();
        let mut headers = self.headers.clone();
        let mut hops = 0;
        let response = loop {
            if self.proxied {
                self.check_resolved(&url).await?;
            }
            let response = self
                .client
                .get(url.clone())
                .headers(headers.clone())
                .send()
                .await
                .map_err(request_error)?;
            if !response.status().is_redirection() {
                break response;
            }
            let Some(to) = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                break response;
            };
            let shown = crate::redact::RawUrl(to);
            let next = url
                .join(to)
                .map_err(|_| FetchError::Blocked(format!("redirect to {shown} is not a URL")))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(FetchError::Blocked(format!(
                    "redirect to {shown} not followed (only http and https)"
                )));
            }
            check_target(&next, self.policy).map_err(FetchError::Blocked)?;
            hops += 1;
            if hops > self.max_redirects {
                return Err(FetchError::Redirects(self.max_redirects));
            }
            // The headers were given for the row's host: an API key in
            // `X-Api-Key` is as secret as one in `Authorization`.
            if host_key(&next) != host_key(&url) || next.scheme() != url.scheme() {
                headers.clear();
            }
            hosts
                .get(&host_key(&next), next.scheme() == "https")
                .pace()
                .await;
            url = next;
        };
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                status: status.as_u16(),
                retry_after: retry_after(&response, status),
            });
        }
        Ok(response)
    }

    /// With a proxy, the proxy resolves names, out of the resolver's sight:
    /// the target is resolved here first, and every address it has must pass
    /// the policy. A name this machine cannot resolve is left to the proxy
    /// (networks where only the proxy resolves names are common).
    async fn check_resolved(&self, url: &Url) -> Result<(), FetchError> {
        let Some(url::Host::Domain(name)) = url.host() else {
            return Ok(()); // literals are checked by `check_target`
        };
        match self.dns.lookup(name).await {
            Ok(addrs) => {
                for ip in addrs {
                    if let Some(why) = self.policy.refusal(ip) {
                        return Err(FetchError::Blocked(format!("{name} resolves to {why}")));
                    }
                }
            }
            Err(e) => {
                tracing::debug!(host = name, error = %e, "not resolvable here; left to the proxy")
            }
        }
        Ok(())
    }
}

fn retry_after(response: &reqwest::Response, status: StatusCode) -> Option<Duration> {
    if !(status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) {
        return None;
    }
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Sorts a reqwest error into the cases that are retried and those that are not.
pub fn request_error(e: reqwest::Error) -> FetchError {
    if let Some(b) = find_source::<Blocked>(&e) {
        return FetchError::Blocked(b.0.clone());
    }
    if let Some(d) = find_source::<DnsFailure>(&e) {
        return FetchError::Dns {
            message: d.to_string(),
            unanswered: !d.no_such_name,
        };
    }
    if e.is_timeout() {
        FetchError::Timeout(e)
    } else if e.is_connect() {
        FetchError::Connect(e)
    } else if e.is_body() || e.is_decode() {
        FetchError::Body(e)
    } else {
        FetchError::Request(e)
    }
}

fn find_source<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}
