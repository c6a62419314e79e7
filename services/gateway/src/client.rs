//! Who the client is on the network (`spec/http-api.md` §1.5): its address, and the scheme and
//! host it used, as far as the gateway can trust them. Behind a load balancer every socket peer
//! is the balancer, so the operator lists the proxies to trust (`trusted_proxies`,
//! `TRUSTED_PROXIES`); `X-Forwarded-*` headers are read only when the socket peer is one of
//! them, and the client address is the nearest `X-Forwarded-For` hop that is not. Anything a
//! client wrote itself in those headers never moves its address, so it cannot pick its own
//! rate-limit key or forge the IP of its events.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, header};
use ipnet::IpNet;

/// The networks whose `X-Forwarded-*` headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`, `::1`) and networks (`10.0.0.0/8`, `fd00::/8`); the error
    /// names the entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is neither an IP address nor a CIDR network"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The client hop as the gateway established it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHop {
    /// The client's address: the socket peer, or behind trusted proxies the nearest
    /// `X-Forwarded-For` hop that is not one.
    pub ip: Option<IpAddr>,
    /// `http` or `https`, when a trusted proxy said so.
    pub proto: Option<String>,
    /// The host the client asked for: a trusted proxy's `X-Forwarded-Host`, else `Host`.
    pub host: Option<String>,
}

/// Reads the client hop from the socket `peer` and, only when the peer is a trusted proxy,
/// from its `X-Forwarded-For`, `-Proto` and `-Host` headers.
pub fn resolve(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> ClientHop {
    let own_host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let peer_ip = peer.map(|p| p.ip().to_canonical());
    let Some(peer_ip) = peer_ip.filter(|ip| trusted.contains(*ip)) else {
        return ClientHop {
            ip: peer_ip,
            proto: None,
            host: own_host,
        };
    };
    // Nearest hop first: each proxy appends the address it received the request from.
    let mut ip = peer_ip;
    let hops: Vec<&str> = values(headers, "x-forwarded-for").collect();
    for hop in hops.into_iter().rev() {
        let Some(addr) = parse_hop(hop) else {
            // Garbage can only come from the client side of the nearest trusted proxy.
            break;
        };
        ip = addr;
        if !trusted.contains(addr) {
            break;
        }
    }
    let proto = values(headers, "x-forwarded-proto")
        .next()
        .map(str::to_ascii_lowercase)
        .filter(|p| p == "http" || p == "https");
    let host = values(headers, "x-forwarded-host")
        .next()
        .filter(|h| h.parse::<axum::http::uri::Authority>().is_ok())
        .map(str::to_string)
        .or(own_host);
    ClientHop {
        ip: Some(ip),
        proto,
        host,
    }
}

/// The comma-separated values of header `name`, over every occurrence, in order.
fn values<'a>(headers: &'a HeaderMap, name: &'static str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `1.2.3.4`, `1.2.3.4:56`, `::1` or `[::1]:56`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn entries_are_addresses_or_networks() {
        let t = TrustedProxies::parse(&["10.0.0.0/8", " 192.0.2.1 ", "fd00::/8"]).unwrap();
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(t.contains("192.0.2.1".parse().unwrap()));
        assert!(!t.contains("192.0.2.2".parse().unwrap()));
        // An IPv4 peer seen on a dual-stack socket.
        assert!(t.contains("::ffff:10.0.0.1".parse().unwrap()));
        let err = TrustedProxies::parse(&["10.0.0.0/33"]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(TrustedProxies::parse(&["lb.internal"]).is_err());
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_peer() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let forged = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("host", "api.example.org"),
        ]);
        let direct = resolve(peer("198.51.100.4"), &forged, &trusted);
        assert_eq!(direct.ip, Some("198.51.100.4".parse().unwrap()));
        assert_eq!(direct.proto, None);
        assert_eq!(direct.host.as_deref(), Some("api.example.org"));

        let via_lb = resolve(peer("10.0.0.2"), &forged, &trusted);
        assert_eq!(via_lb.ip, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(via_lb.proto.as_deref(), Some("https"));
        assert_eq!(via_lb.host.as_deref(), Some("evil.example"));
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_hop() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        // The client wrote the first value itself; the balancer appended its real address,
        // then an inner proxy appended the balancer's.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.5"),
        ]);
        let hop = resolve(peer("10.0.0.2"), &h, &trusted);
        assert_eq!(hop.ip, Some("203.0.113.9".parse().unwrap()));
        // Every hop trusted: the farthest one.
        let h = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.5")]);
        assert_eq!(
            resolve(peer("10.0.0.2"), &h, &trusted).ip,
            Some("10.0.0.9".parse().unwrap())
        );
        // Garbage stops the walk at the last trusted hop.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, nonsense, 10.0.0.5")]);
        assert_eq!(
            resolve(peer("10.0.0.2"), &h, &trusted).ip,
            Some("10.0.0.5".parse().unwrap())
        );
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(
            resolve(peer("10.0.0.2"), &h, &trusted).ip,
            Some("2001:db8::1".parse().unwrap())
        );
        // No header: the peer itself.
        assert_eq!(
            resolve(peer("10.0.0.2"), &HeaderMap::new(), &trusted).ip,
            Some("10.0.0.2".parse().unwrap())
        );
    }
}
