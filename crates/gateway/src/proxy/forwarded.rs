//! The forwarding headers Kong sends upstream (notes §3.1): `X-Forwarded-*` and `X-Real-IP`,
//! trusted from the client only when its address is in `trusted_ips`, with the client address
//! taken from `real_ip_header` (nginx's realip module) in that case.

use std::net::IpAddr;

use http::HeaderValue;
use http::header::HeaderName;
use ipnet::IpNet;

use super::fields::{Fields, header_line, is_sendable};
use super::server::ConnInfo;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PATH: HeaderName = HeaderName::from_static("x-forwarded-path");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Kong's `trusted_ips`, `real_ip_header` and `real_ip_recursive` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIps {
    nets: Vec<IpNet>,
    real_ip_header: HeaderName,
    recursive: bool,
}

impl Default for TrustedIps {
    /// Kong's defaults: trust nobody; `X-Real-IP`; not recursive.
    fn default() -> Self {
        Self {
            nets: Vec::new(),
            real_ip_header: X_REAL_IP.clone(),
            recursive: false,
        }
    }
}

impl TrustedIps {
    /// Parses Kong's comma-separated `trusted_ips` (addresses and CIDR blocks; `unix:` is
    /// accepted and ignored, as the proxy listens on TCP only), `real_ip_header` and
    /// `real_ip_recursive`. The error names the offending entry.
    pub fn parse(trusted_ips: &str, real_ip_header: &str, recursive: bool) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in trusted_ips
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if entry == "unix:" {
                continue;
            }
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => entry
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("invalid IP address or CIDR block: {entry}"))?,
            };
            nets.push(net);
        }
        let real_ip_header = HeaderName::from_bytes(real_ip_header.trim().as_bytes())
            .map_err(|_| format!("invalid header name: {real_ip_header}"))?;
        Ok(Self {
            nets,
            real_ip_header,
            recursive,
        })
    }

    /// Whether `ip` is trusted.
    pub fn contains(&self, ip: IpAddr) -> bool {
        !self.nets.is_empty() && self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client address nginx's realip module would derive from a trusted peer's header.
    fn real_ip(&self, h: &impl Fields) -> Option<IpAddr> {
        let addrs: Vec<IpAddr> = h
            .all(&self.real_ip_header)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        if self.recursive {
            // The right-most address that is not itself a trusted proxy.
            addrs
                .iter()
                .rev()
                .find(|a| !self.contains(**a))
                .or(addrs.first())
                .copied()
        } else {
            addrs.last().copied()
        }
    }
}

/// The forwarding facts of one request.
pub(super) struct Forwarded {
    /// The client address (`X-Real-IP`, appended to `X-Forwarded-For`).
    pub client_ip: IpAddr,
    /// `client_ip` as header text.
    client_ip_value: HeaderValue,
    /// The peer is a trusted proxy: its `X-Forwarded-*` headers pass through.
    trusted: bool,
    /// The client used https, as far as Kong is concerned (the TLS listener, or a trusted
    /// peer's `X-Forwarded-Proto`).
    pub https: bool,
    /// The host name (lowercased, no port) the client asked for.
    pub host_name: String,
    port: u16,
}

impl Forwarded {
    /// Derives the facts from the connection and, for trusted peers, the request headers `h`.
    pub fn compute(
        trust: &TrustedIps,
        h: &impl Fields,
        host: Option<&str>,
        conn: &ConnInfo,
    ) -> Self {
        let peer = canonical(conn.peer.ip());
        let trusted = trust.contains(peer);
        let from_client = |name: &HeaderName| {
            trusted
                .then(|| h.first_str(name))
                .flatten()
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let client_ip = if trusted {
            trust.real_ip(h).unwrap_or(peer)
        } else {
            peer
        };
        let https =
            from_client(&X_FORWARDED_PROTO).map_or(conn.tls, |p| p.eq_ignore_ascii_case("https"));
        let host_name = from_client(&X_FORWARDED_HOST)
            .or(host)
            .map(host_name)
            .unwrap_or_default();
        let port = from_client(&X_FORWARDED_PORT)
            .and_then(|p| p.parse().ok())
            .unwrap_or(conn.local_port);
        // Usually the peer itself, whose text the connection made once.
        let client_ip_value = if client_ip == peer {
            conn.peer_ip.clone()
        } else {
            ip_header_value(client_ip)
        };
        Self {
            client_ip,
            client_ip_value,
            trusted,
            https,
            host_name,
            port,
        }
    }

    /// Sets the forwarding headers on the upstream request `h` (the client's headers, edited
    /// in place). `path` is the request path, `stripped_prefix` what `strip_path` removed.
    pub fn apply<F: Fields>(&self, h: &mut F, path: &str, stripped_prefix: Option<&str>) {
        let ip = &self.client_ip_value;
        let xff = match h.first_str(&X_FORWARDED_FOR) {
            Some(prev) if !prev.trim().is_empty() => {
                HeaderValue::from_str(&format!("{prev}, {}", self.client_ip)).ok()
            }
            _ => Some(ip.clone()),
        };
        if let Some(v) = xff {
            h.set(&X_FORWARDED_FOR, v);
        }
        h.set(&X_REAL_IP, ip.clone());
        // A trusted proxy's own X-Forwarded-* values stand; everyone else's are replaced.
        let keep =
            |h: &F, name: &HeaderName| self.trusted && h.first(name).is_some_and(|v| !v.is_empty());
        if !keep(h, &X_FORWARDED_PROTO) {
            h.set(
                &X_FORWARDED_PROTO,
                HeaderValue::from_static(if self.https { "https" } else { "http" }),
            );
        }
        if !keep(h, &X_FORWARDED_HOST) {
            set(h, &X_FORWARDED_HOST, &self.host_name);
        }
        if !keep(h, &X_FORWARDED_PORT) {
            h.set(&X_FORWARDED_PORT, HeaderValue::from(self.port));
        }
        if !keep(h, &X_FORWARDED_PATH) {
            set(h, &X_FORWARDED_PATH, path);
        }
        if !keep(h, &X_FORWARDED_PREFIX) {
            match stripped_prefix {
                Some(prefix) => set(h, &X_FORWARDED_PREFIX, prefix),
                None => h.remove(&X_FORWARDED_PREFIX),
            }
        }
    }
}

impl Forwarded {
    /// Whether the peer is a trusted proxy (whose forwarding headers [`Forwarded::apply`]
    /// reads).
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// What [`Forwarded::apply`] sets on a request that carries none of these headers from
    /// an untrusted peer, appended to `out` as header lines in the same order.
    pub fn write_new(&self, out: &mut Vec<u8>, path: &str, stripped_prefix: Option<&str>) {
        debug_assert!(!self.trusted);
        let ip = self.client_ip_value.as_bytes();
        header_line(out, X_FORWARDED_FOR.as_str(), ip);
        header_line(out, X_REAL_IP.as_str(), ip);
        let proto: &[u8] = if self.https { b"https" } else { b"http" };
        header_line(out, X_FORWARDED_PROTO.as_str(), proto);
        if is_sendable(&self.host_name) {
            header_line(out, X_FORWARDED_HOST.as_str(), self.host_name.as_bytes());
        }
        let mut port = itoa::Buffer::new();
        header_line(
            out,
            X_FORWARDED_PORT.as_str(),
            port.format(self.port).as_bytes(),
        );
        if is_sendable(path) {
            header_line(out, X_FORWARDED_PATH.as_str(), path.as_bytes());
        }
        if let Some(prefix) = stripped_prefix.filter(|p| is_sendable(p)) {
            header_line(out, X_FORWARDED_PREFIX.as_str(), prefix.as_bytes());
        }
    }
}

/// Sets `name` to `value`, or removes it when the value is not [`is_sendable`] (Kong sends
/// no empty forwarding headers) — the rule [`Forwarded::write_new`] applies too.
fn set(h: &mut impl Fields, name: &HeaderName, value: &str) {
    if is_sendable(value)
        && let Ok(v) = HeaderValue::from_str(value)
    {
        h.set(name, v);
    } else {
        h.remove(name);
    }
}

/// `ip` (canonical: IPv4-mapped IPv6 as IPv4) as header text.
pub(super) fn ip_header_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&canonical(ip).to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// An IPv4-mapped IPv6 peer (dual-stack listener) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// nginx's `$host`: the name without the port, lowercased.
fn host_name(raw: &str) -> String {
    let raw = raw.trim_ascii();
    let name = if let Some(rest) = raw.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, _)) => return format!("[{}]", ip.to_ascii_lowercase()),
            None => raw,
        }
    } else {
        raw.bytes()
            .rposition(|b| b == b':')
            .map_or(raw, |i| &raw[..i])
    };
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_ips_parse_addresses_and_blocks() {
        let t = TrustedIps::parse("10.0.0.0/8, 192.168.1.1, ::1, unix:", "X-Real-IP", false)
            .expect("parses");
        assert!(t.contains("10.1.2.3".parse().expect("ip")));
        assert!(t.contains("192.168.1.1".parse().expect("ip")));
        assert!(t.contains("::1".parse().expect("ip")));
        assert!(!t.contains("192.168.1.2".parse().expect("ip")));
        let err = TrustedIps::parse("10.0.0.0/8,nope", "X-Real-IP", false).expect_err("bad");
        assert!(err.contains("nope"), "{err}");
        assert!(!TrustedIps::default().contains("127.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn real_ip_recursive_skips_trusted_hops() {
        let t = TrustedIps::parse("10.0.0.0/8", "X-Forwarded-For", true).expect("parses");
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2, 10.0.0.5"),
        );
        assert_eq!(t.real_ip(&h), "2.2.2.2".parse().ok());
        let flat = TrustedIps::parse("10.0.0.0/8", "X-Forwarded-For", false).expect("parses");
        assert_eq!(flat.real_ip(&h), "10.0.0.5".parse().ok());
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("Example.COM:8000"), "example.com");
        assert_eq!(host_name("[::1]:81"), "[::1]");
        assert_eq!(host_name("h"), "h");
    }
}
