//! Outbound HTTP under the egress policy: the host behind the `fetch` import.
//!
//! The checks, in order, for the first request and every redirect hop:
//! 1. scheme `http`/`https`, and the host on the workspace's allow-list;
//! 2. an IP-literal host is checked against the denied ranges before anything else happens;
//! 3. a name is resolved by `CheckedResolver`, which drops denied addresses, so the client can
//!    only connect to an address that passed the check (DNS rebinding cannot slip through).
//!
//! The client never uses a proxy (that would bypass the address check), never follows redirects
//! itself, and is shared (pooled) by every run of the process.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use refract_core::error::error_chain;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use crate::error::HostError;
use crate::limits::DEFAULT_FETCH_CONNECT_TIMEOUT;

/// Idle connections kept per remote host.
pub const DEFAULT_POOL_IDLE_PER_HOST: usize = 8;

/// Process-wide egress settings.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// Allow loopback addresses (127.0.0.0/8, ::1). For tests and local development only: in
    /// production it would let guests reach services on the worker itself.
    pub allow_loopback: bool,
    /// Connect timeout of every outbound request ([`DEFAULT_FETCH_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Idle connections kept per remote host ([`DEFAULT_POOL_IDLE_PER_HOST`]).
    pub pool_idle_per_host: usize,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            allow_loopback: false,
            connect_timeout: DEFAULT_FETCH_CONNECT_TIMEOUT,
            pool_idle_per_host: DEFAULT_POOL_IDLE_PER_HOST,
        }
    }
}

/// One entry of a workspace's allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Every host (addresses are still checked).
    Any,
    Exact(String),
    /// `*.example.com`: any subdomain of `example.com`, not `example.com` itself. Stored as
    /// `.example.com`.
    Subdomains(String),
}

/// A workspace's egress policy. The default allows no host at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allowed: Vec<HostPattern>,
    /// A narrower list the workspace itself chose: a host must be on both.
    narrowed: Option<Vec<HostPattern>>,
}

impl EgressPolicy {
    /// Builds a policy from host patterns: `api.example.com`, `*.example.com`, or `*` (any host).
    pub fn new<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Result<Self, HostError> {
        Ok(EgressPolicy {
            allowed: parse_patterns(patterns)?,
            narrowed: None,
        })
    }

    /// This policy narrowed by a second list (same patterns): a host must be allowed by both,
    /// so the second list can take hosts away, never add one.
    pub fn narrowed_to<S: AsRef<str>>(
        &self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<Self, HostError> {
        Ok(EgressPolicy {
            allowed: self.allowed.clone(),
            narrowed: Some(parse_patterns(patterns)?),
        })
    }

    /// Any host, subject to the address checks.
    pub fn any_host() -> Self {
        EgressPolicy {
            allowed: vec![HostPattern::Any],
            narrowed: None,
        }
    }

    /// Is `host` (lower-case, IPv6 without brackets) on the allow-list?
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        matches_any(&self.allowed, host)
            && self.narrowed.as_ref().is_none_or(|n| matches_any(n, host))
    }
}

fn matches_any(patterns: &[HostPattern], host: &str) -> bool {
    patterns.iter().any(|p| match p {
        HostPattern::Any => true,
        HostPattern::Exact(h) => h == host,
        HostPattern::Subdomains(suffix) => {
            host.len() > suffix.len() && host.ends_with(suffix.as_str())
        }
    })
}

/// Host patterns, checked: `api.example.com`, `*.example.com`, or `*`.
fn parse_patterns<S: AsRef<str>>(
    patterns: impl IntoIterator<Item = S>,
) -> Result<Vec<HostPattern>, HostError> {
    let mut allowed = Vec::new();
    for p in patterns {
        let p = p.as_ref().trim().to_ascii_lowercase();
        let bad = |m: &str| HostError::Config {
            setting: "egress.allowedHosts",
            message: format!("{p:?}: {m}"),
        };
        if p == "*" {
            allowed.push(HostPattern::Any);
        } else if let Some(rest) = p.strip_prefix("*.") {
            if rest.is_empty() || rest.contains('*') {
                return Err(bad("a wildcard must be `*.domain`"));
            }
            allowed.push(HostPattern::Subdomains(format!(".{rest}")));
        } else if p.is_empty() || p.contains('*') || p.contains('/') {
            return Err(bad("expected a host name, `*.domain` or `*`"));
        } else {
            allowed.push(HostPattern::Exact(p.trim_matches(['[', ']']).to_owned()));
        }
    }
    Ok(allowed)
}

/// Why an address may not be contacted, or `None` when it may.
pub fn denied_reason(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => denied_v4(v4, allow_loopback),
        IpAddr::V6(v6) => denied_v6(v6, allow_loopback),
    }
}

fn denied_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        return Some("cloud-metadata");
    }
    match (a, b, c) {
        (0, _, _) => Some("unspecified"),
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Some("private"),
        (169, 254, _) => Some("link-local"),
        (100, 64..=127, _) => Some("shared (CGNAT)"),
        (192, 0, 0) => Some("IETF protocol assignment"),
        (198, 18..=19, _) => Some("benchmarking"),
        (224..=239, _, _) => Some("multicast"),
        (240..=255, _, _) => Some("reserved or broadcast"),
        _ => None,
    }
}

fn denied_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<&'static str> {
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    let s = ip.segments();
    // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96)
    // addresses reach the embedded IPv4 address: judge that one.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return denied_v4(v4, allow_loopback);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    if s[0..6] == [0, 0, 0, 0, 0, 0] {
        return denied_v4(embedded(s[6], s[7]), allow_loopback).or(Some("IPv4-compatible"));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return denied_v4(embedded(s[6], s[7]), allow_loopback);
    }
    if s[0] == 0x2002 {
        // 6to4 embeds the IPv4 address in bits 16..48.
        return denied_v4(embedded(s[1], s[2]), allow_loopback);
    }
    match s[0] {
        x if x & 0xffc0 == 0xfe80 => Some("link-local"),
        x if x & 0xffc0 == 0xfec0 => Some("site-local"),
        x if x & 0xfe00 == 0xfc00 => Some("unique-local"),
        x if x & 0xff00 == 0xff00 => Some("multicast"),
        0x2001 if s[1] == 0x0db8 => Some("documentation"),
        _ => None,
    }
}

/// The error a refused address raises inside the client (found again in the error chain).
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to refused addresses ({ip}: {reason})")]
struct DeniedAddress {
    host: String,
    ip: IpAddr,
    reason: &'static str,
}

/// DNS resolver that drops every refused address, so the client connects only to checked ones.
struct CheckedResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut denied = None;
            let mut ok = Vec::with_capacity(resolved.len());
            for addr in resolved {
                match denied_reason(addr.ip(), allow_loopback) {
                    None => ok.push(addr),
                    Some(reason) => denied = Some((addr.ip(), reason)),
                }
            }
            if ok.is_empty() {
                if let Some((ip, reason)) = denied {
                    return Err(Box::new(DeniedAddress { host, ip, reason }) as _);
                }
                return Err(format!("{host}: no address").into());
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An outbound request, as the guest asked for it.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// The HTTP method, as the guest spelled it (checked when the request is built).
    pub method: String,
    /// The absolute URL; its host is checked against the policy before anything is sent.
    pub url: String,
    /// Request headers, in order, repeats allowed.
    pub headers: Vec<(String, String)>,
    /// The request body, if any.
    pub body: Option<Vec<u8>>,
}

/// The response to a [`FetchRequest`], after the last redirect, body read in full.
#[derive(Debug, Clone)]
pub struct FetchResponse {
    /// The HTTP status code.
    pub status: u16,
    /// Response headers, in order, repeats kept.
    pub headers: Vec<(String, String)>,
    /// The whole body (at most [`FetchLimits::max_bytes`]).
    pub body: Vec<u8>,
}

/// Per-request limits (from the run's [`crate::Limits`]).
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// Time for the whole request: connects, redirects and body.
    pub total_timeout: Duration,
    /// Largest response body; a bigger one is refused while streaming.
    pub max_bytes: u64,
    /// Redirect hops followed, each re-checked against the policy.
    pub max_redirects: u32,
}

/// Why a request got no response; mirrors the WIT `fetch-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The policy refused the host or one of its addresses; the text says which.
    #[error("denied: {0}")]
    Denied(String),
    /// The request ran out of its total time.
    #[error("timed out")]
    Timeout,
    /// The response body is over the given limit.
    #[error("response body over {0} bytes")]
    TooLarge(u64),
    /// DNS, connect, TLS, the transfer or a redirect failed.
    #[error("connection failed: {0}")]
    ConnectionFailed(String),
    /// The request itself is malformed (method, URL, header).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// The pooled client and the process-wide settings.
pub struct Egress {
    client: reqwest::Client,
    allow_loopback: bool,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("allow_loopback", &self.allow_loopback)
            .finish()
    }
}

impl Egress {
    /// Builds the pooled client: no proxy, redirects handled by us, DNS answers checked.
    pub fn new(config: &EgressConfig) -> Result<Self, HostError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.pool_idle_per_host)
            .dns_resolver(Arc::new(CheckedResolver {
                allow_loopback: config.allow_loopback,
            }))
            .user_agent("refract-automation")
            .build()
            .map_err(|e| HostError::internal("building the egress HTTP client", e))?;
        Ok(Egress {
            client,
            allow_loopback: config.allow_loopback,
        })
    }

    /// Sends `req` under `policy`, following redirects by hand, within `limits`.
    pub async fn fetch(
        &self,
        policy: &EgressPolicy,
        limits: FetchLimits,
        req: FetchRequest,
    ) -> Result<FetchResponse, FetchError> {
        match tokio::time::timeout(limits.total_timeout, self.fetch_inner(policy, limits, req))
            .await
        {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    /// Checks one hop's URL before anything is sent.
    pub fn check_url(&self, policy: &EgressPolicy, url: &Url) -> Result<(), FetchError> {
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(FetchError::InvalidRequest(format!(
                "scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        let Some(raw_host) = url.host_str() else {
            return Err(FetchError::InvalidRequest("URL has no host".into()));
        };
        let host = raw_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if !policy.allows_host(&host) {
            return Err(FetchError::Denied(format!(
                "host {host} is not on the workspace's allow-list"
            )));
        }
        if let Ok(ip) = host.parse::<IpAddr>()
            && let Some(reason) = denied_reason(ip, self.allow_loopback)
        {
            return Err(FetchError::Denied(format!(
                "address {ip} is refused ({reason})"
            )));
        }
        Ok(())
    }

    async fn fetch_inner(
        &self,
        policy: &EgressPolicy,
        limits: FetchLimits,
        req: FetchRequest,
    ) -> Result<FetchResponse, FetchError> {
        let mut method = Method::from_bytes(req.method.as_bytes())
            .map_err(|_| FetchError::InvalidRequest(format!("method {:?}", req.method)))?;
        let mut url =
            Url::parse(&req.url).map_err(|e| FetchError::InvalidRequest(format!("url: {e}")))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &req.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| FetchError::InvalidRequest(format!("header name {name:?}")))?;
            let v = HeaderValue::from_str(value)
                .map_err(|_| FetchError::InvalidRequest(format!("value of header {name}")))?;
            headers.append(n, v);
        }
        // The client sets these from the URL and body; a guest must not forge them.
        headers.remove(reqwest::header::HOST);
        headers.remove(reqwest::header::CONTENT_LENGTH);
        let mut body = req.body;

        let mut hops = 0u32;
        loop {
            self.check_url(policy, &url)?;
            let mut rb = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let mut resp = rb.send().await.map_err(classify)?;
            let status = resp.status();
            let location = resp.headers().get(reqwest::header::LOCATION).cloned();
            if status.is_redirection()
                && let Some(location) = location
            {
                if hops >= limits.max_redirects {
                    return Err(FetchError::ConnectionFailed(format!(
                        "more than {} redirects",
                        limits.max_redirects
                    )));
                }
                hops += 1;
                let location = location.to_str().map_err(|_| {
                    FetchError::ConnectionFailed("redirect with a non-text Location".into())
                })?;
                let next = url.join(location).map_err(|e| {
                    FetchError::ConnectionFailed(format!("redirect to a bad URL: {e}"))
                })?;
                let see_other = status == reqwest::StatusCode::SEE_OTHER;
                let legacy = (status == reqwest::StatusCode::MOVED_PERMANENTLY
                    || status == reqwest::StatusCode::FOUND)
                    && method == Method::POST;
                if see_other || legacy {
                    method = if method == Method::HEAD {
                        Method::HEAD
                    } else {
                        Method::GET
                    };
                    body = None;
                    headers.remove(reqwest::header::CONTENT_TYPE);
                }
                if next.origin() != url.origin() {
                    // Credentials meant for one origin never travel to another.
                    headers.remove(reqwest::header::AUTHORIZATION);
                    headers.remove(reqwest::header::COOKIE);
                    headers.remove(reqwest::header::PROXY_AUTHORIZATION);
                }
                url = next;
                continue;
            }

            if resp.content_length().is_some_and(|n| n > limits.max_bytes) {
                return Err(FetchError::TooLarge(limits.max_bytes));
            }
            let headers_out = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut out = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(classify)? {
                if out.len() as u64 + chunk.len() as u64 > limits.max_bytes {
                    return Err(FetchError::TooLarge(limits.max_bytes));
                }
                out.extend_from_slice(&chunk);
            }
            return Ok(FetchResponse {
                status: status.as_u16(),
                headers: headers_out,
                body: out,
            });
        }
    }
}

fn classify(e: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(denied) = s.downcast_ref::<DeniedAddress>() {
            return FetchError::Denied(denied.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        FetchError::Timeout
    } else if e.is_builder() {
        FetchError::InvalidRequest(error_chain(&e))
    } else {
        FetchError::ConnectionFailed(error_chain(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrowed_policy_allows_only_what_both_lists_allow() {
        let base = EgressPolicy::new(["*.example.com", "api.partner.test"]).unwrap();
        let narrowed = base
            .narrowed_to(["crm.example.com", "evil.test", "*"])
            .unwrap();
        assert!(narrowed.allows_host("crm.example.com"));
        // On the narrower list (`*`) but not on the platform's: still refused.
        assert!(!narrowed.allows_host("evil.test"));
        assert!(narrowed.allows_host("api.partner.test"));
        let only = base.narrowed_to(["crm.example.com"]).unwrap();
        assert!(!only.allows_host("api.partner.test"));
        assert!(!only.allows_host("mail.example.com"));
        assert!(base.narrowed_to(["bad*host"]).is_err());
    }

    fn denied(s: &str) -> bool {
        denied_reason(s.parse().expect("test address"), false).is_some()
    }

    #[test]
    fn refused_ranges() {
        for a in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.0.192",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            assert!(denied(a), "{a} should be refused");
        }
        for a in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!denied(a), "{a} should be allowed");
        }
        assert_eq!(denied_reason("127.0.0.1".parse().expect("ip"), true), None);
        assert_eq!(denied_reason("::1".parse().expect("ip"), true), None);
        assert!(denied_reason("10.0.0.1".parse().expect("ip"), true).is_some());
    }

    #[test]
    fn allow_list_patterns() {
        let p = EgressPolicy::new(["api.example.com", "*.example.org"]).expect("policy");
        assert!(p.allows_host("api.example.com"));
        assert!(!p.allows_host("example.com"));
        assert!(p.allows_host("a.example.org"));
        assert!(p.allows_host("a.b.example.org"));
        assert!(!p.allows_host("example.org"));
        assert!(!p.allows_host("badexample.org"));
        assert!(!EgressPolicy::default().allows_host("api.example.com"));
        assert!(EgressPolicy::any_host().allows_host("anything.test"));
        assert!(EgressPolicy::new(["*.*.com"]).is_err());
        assert!(EgressPolicy::new([""]).is_err());
    }
}
