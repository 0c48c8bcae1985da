//! Header fields as both proxy paths edit them: hyper's [`HeaderMap`] and the fast path's
//! [`RawFields`] (borrowed from the connection's read buffer). Every header rule (hop-by-hop
//! stripping, `Via`, `X-Forwarded-*`, latency headers) is written once, against [`Fields`].

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};

/// Read and edit access to one message's header fields.
pub(super) trait Fields {
    /// The first value of `name`.
    fn first(&self, name: &HeaderName) -> Option<&[u8]>;
    /// Every value of `name`, in order.
    fn all<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s [u8]>;
    /// Whether any fixed hop-by-hop header is present.
    fn has_hop_by_hop(&self) -> bool;
    /// Replaces every value of `name` with `value`.
    fn set(&mut self, name: &HeaderName, value: HeaderValue);
    /// Adds a value of `name` after the existing ones.
    fn append(&mut self, name: &HeaderName, value: HeaderValue);
    /// Removes every value of `name`.
    fn remove(&mut self, name: &HeaderName);
    /// Removes, in one pass, the fixed hop-by-hop headers and those named in `named`
    /// (lowercase).
    fn remove_hop_by_hop(&mut self, named: &[String]);

    /// The first value of `name` as text.
    fn first_str(&self, name: &HeaderName) -> Option<&str> {
        self.first(name).and_then(|v| std::str::from_utf8(v).ok())
    }
    /// Whether `name` is present.
    fn contains(&self, name: &HeaderName) -> bool {
        self.first(name).is_some()
    }
}

impl Fields for HeaderMap {
    fn first(&self, name: &HeaderName) -> Option<&[u8]> {
        self.get(name).map(HeaderValue::as_bytes)
    }
    fn all<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s [u8]> {
        self.get_all(name).iter().map(HeaderValue::as_bytes)
    }
    fn has_hop_by_hop(&self) -> bool {
        self.keys()
            .any(|n| tracked_lowercase(n.as_str().as_bytes()) & HOP_BY_HOP != 0)
    }
    fn set(&mut self, name: &HeaderName, value: HeaderValue) {
        self.insert(name.clone(), value);
    }
    fn append(&mut self, name: &HeaderName, value: HeaderValue) {
        HeaderMap::append(self, name.clone(), value);
    }
    fn remove(&mut self, name: &HeaderName) {
        HeaderMap::remove(self, name);
    }
    fn remove_hop_by_hop(&mut self, named: &[String]) {
        let doomed: Vec<HeaderName> = self
            .keys()
            .filter(|n| {
                tracked_lowercase(n.as_str().as_bytes()) & HOP_BY_HOP != 0
                    || named.iter().any(|t| t == n.as_str())
            })
            .cloned()
            .collect();
        for name in doomed {
            HeaderMap::remove(self, name);
        }
    }
}

/// Bits for the header names the gateway looks up or edits: a [`RawFields`] records which of
/// them it holds, so looking up, setting or removing one it does not hold scans nothing,
/// and one it holds is found by comparing bits instead of names.
pub(super) mod bit {
    pub const HOST: u32 = 1 << 0;
    pub const VIA: u32 = 1 << 1;
    pub const SERVER: u32 = 1 << 2;
    pub const DATE: u32 = 1 << 3;
    pub const CONTENT_LENGTH: u32 = 1 << 4;
    pub const CONTENT_TYPE: u32 = 1 << 5;
    pub const ACCEPT: u32 = 1 << 6;
    pub const SET_COOKIE: u32 = 1 << 7;
    pub const CONNECTION: u32 = 1 << 8;
    pub const KEEP_ALIVE: u32 = 1 << 9;
    pub const TE: u32 = 1 << 10;
    pub const TRAILER: u32 = 1 << 11;
    pub const UPGRADE: u32 = 1 << 12;
    pub const TRANSFER_ENCODING: u32 = 1 << 13;
    pub const PROXY_CONNECTION: u32 = 1 << 14;
    pub const PROXY: u32 = 1 << 15;
    pub const X_FORWARDED_FOR: u32 = 1 << 16;
    pub const X_FORWARDED_PROTO: u32 = 1 << 17;
    pub const X_FORWARDED_HOST: u32 = 1 << 18;
    pub const X_FORWARDED_PORT: u32 = 1 << 19;
    pub const X_FORWARDED_PATH: u32 = 1 << 20;
    pub const X_FORWARDED_PREFIX: u32 = 1 << 21;
    pub const X_REAL_IP: u32 = 1 << 22;
    pub const X_KONG_REQUEST_ID: u32 = 1 << 23;
    pub const X_KONG_UPSTREAM_LATENCY: u32 = 1 << 24;
    pub const X_KONG_PROXY_LATENCY: u32 = 1 << 25;
    pub const EXPECT: u32 = 1 << 26;
}

/// The fixed hop-by-hop headers (RFC 7230 §6.1 and the usual extras), as [`bit`]s.
pub(super) const HOP_BY_HOP: u32 = bit::CONNECTION
    | bit::KEEP_ALIVE
    | bit::TE
    | bit::TRAILER
    | bit::UPGRADE
    | bit::TRANSFER_ENCODING
    | bit::PROXY_CONNECTION
    | bit::PROXY;

/// The [`bit`] of `name`, which is lowercase (as every [`HeaderName`] is), or 0 for a
/// name the gateway does not track.
fn tracked_lowercase(name: &[u8]) -> u32 {
    match name {
        b"host" => bit::HOST,
        b"via" => bit::VIA,
        b"server" => bit::SERVER,
        b"date" => bit::DATE,
        b"content-length" => bit::CONTENT_LENGTH,
        b"content-type" => bit::CONTENT_TYPE,
        b"accept" => bit::ACCEPT,
        b"set-cookie" => bit::SET_COOKIE,
        b"connection" => bit::CONNECTION,
        b"keep-alive" => bit::KEEP_ALIVE,
        b"te" => bit::TE,
        b"trailer" => bit::TRAILER,
        b"upgrade" => bit::UPGRADE,
        b"transfer-encoding" => bit::TRANSFER_ENCODING,
        b"proxy-connection" => bit::PROXY_CONNECTION,
        b"proxy" => bit::PROXY,
        b"x-forwarded-for" => bit::X_FORWARDED_FOR,
        b"x-forwarded-proto" => bit::X_FORWARDED_PROTO,
        b"x-forwarded-host" => bit::X_FORWARDED_HOST,
        b"x-forwarded-port" => bit::X_FORWARDED_PORT,
        b"x-forwarded-path" => bit::X_FORWARDED_PATH,
        b"x-forwarded-prefix" => bit::X_FORWARDED_PREFIX,
        b"x-real-ip" => bit::X_REAL_IP,
        b"x-kong-request-id" => bit::X_KONG_REQUEST_ID,
        b"x-kong-upstream-latency" => bit::X_KONG_UPSTREAM_LATENCY,
        b"x-kong-proxy-latency" => bit::X_KONG_PROXY_LATENCY,
        b"expect" => bit::EXPECT,
        _ => 0,
    }
}

/// The [`bit`] of `name` as received (any case), or 0 for a name the gateway does not track.
fn tracked(name: &str) -> u32 {
    // No tracked name is longer than this.
    let mut lower = [0u8; 23];
    let Some(buf) = lower.get_mut(..name.len()) else {
        return 0;
    };
    for (l, b) in buf.iter_mut().zip(name.bytes()) {
        *l = b.to_ascii_lowercase();
    }
    tracked_lowercase(buf)
}

/// A field name: as received, or one the gateway sets.
enum Name<'a> {
    Raw(&'a str),
    Known(HeaderName),
}

impl Name<'_> {
    fn as_str(&self) -> &str {
        match self {
            Name::Raw(s) => s,
            Name::Known(n) => n.as_str(),
        }
    }
}

/// A field value: as received, or one the gateway sets.
enum Value<'a> {
    Raw(&'a [u8]),
    Known(HeaderValue),
}

impl Value<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Value::Raw(b) => b,
            Value::Known(v) => v.as_bytes(),
        }
    }
}

/// One field of a [`RawFields`], with its name's [`bit`] (0: not tracked).
struct Field<'a> {
    bit: u32,
    name: Name<'a>,
    value: Value<'a>,
}

/// What a lookup compares fields with: a tracked name by its bit, another by its text
/// (found once per lookup, not per field).
struct Key<'n> {
    name: &'n HeaderName,
    text: &'n str,
    bit: u32,
}

impl<'n> Key<'n> {
    fn of(name: &'n HeaderName) -> Self {
        let text = name.as_str();
        Self {
            name,
            text,
            bit: tracked_lowercase(text.as_bytes()),
        }
    }
    /// Whether `f` has this name: a received name in any case, a set one by equality.
    fn matches(&self, f: &Field<'_>) -> bool {
        if self.bit != 0 {
            return f.bit == self.bit;
        }
        f.bit == 0
            && match &f.name {
                Name::Raw(s) => s.len() == self.text.len() && s.eq_ignore_ascii_case(self.text),
                Name::Known(n) => n == self.name,
            }
    }
    /// Whether a list holding the tracked names `present` surely lacks this one.
    fn absent_from(&self, present: u32) -> bool {
        self.bit != 0 && present & self.bit == 0
    }
}

/// Header fields borrowed from a parsed message head (names keep their case), plus the
/// gateway's edits, written back out in order by [`RawFields::write`].
pub(super) struct RawFields<'a> {
    list: Vec<Field<'a>>,
    /// The [`bit`]s of the tracked names the list may hold (a clear bit: surely absent).
    present: u32,
}

impl<'a> RawFields<'a> {
    /// The fields of a head `httparse` parsed.
    pub fn new(parsed: &[httparse::Header<'a>]) -> Self {
        // Room for the received fields only: the common case adds none (the fast path
        // writes its additions straight out), and a larger block cost a slower allocation.
        let mut list = Vec::with_capacity(parsed.len());
        let mut present = 0;
        list.extend(parsed.iter().map(|h| {
            let bit = tracked(h.name);
            present |= bit;
            Field {
                bit,
                name: Name::Raw(h.name),
                value: Value::Raw(h.value),
            }
        }));
        Self { list, present }
    }

    /// Appends every field as `name: value\r\n` to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        self.write_except(out, 0);
    }

    /// Whether the list may hold any of the tracked names in `mask` (a set of [`bit`]s);
    /// `false` means it surely holds none.
    pub fn holds(&self, mask: u32) -> bool {
        self.present & mask != 0
    }

    /// The received fields whose names are in `mask` (a set of [`bit`]s), as (bit, value).
    pub fn tracked_in(&self, mask: u32) -> impl Iterator<Item = (u32, &[u8])> {
        let any = self.holds(mask);
        self.list
            .iter()
            .filter(move |f| any && f.bit & mask != 0)
            .map(|f| (f.bit, f.value.as_bytes()))
    }

    /// Appends, as [`RawFields::write`] does, every field whose name is not in `skip` (a
    /// set of [`bit`]s).
    pub fn write_except(&self, out: &mut Vec<u8>, skip: u32) {
        for f in self.list.iter().filter(|f| f.bit & skip == 0) {
            header_line(out, f.name.as_str(), f.value.as_bytes());
        }
    }

    /// Whether every name the `Connection` header lists (if any) is a fixed hop-by-hop
    /// header, so stripping hop-by-hop headers removes exactly the fields with
    /// [`HOP_BY_HOP`] bits.
    pub fn connection_names_only_hop_by_hop(&self) -> bool {
        !self.holds(bit::CONNECTION)
            || self.all(&header::CONNECTION).all(|v| {
                v.split(|b| *b == b',').all(|token| {
                    let token = token.trim_ascii();
                    let Ok(token) = std::str::from_utf8(token) else {
                        return false;
                    };
                    // `close` names no field, as a rule; the rules would strip one if it did.
                    token.is_empty()
                        || tracked(token) & HOP_BY_HOP != 0
                        || (token.eq_ignore_ascii_case("close")
                            && !self
                                .list
                                .iter()
                                .any(|f| f.name.as_str().eq_ignore_ascii_case(token)))
                })
            })
    }

    /// Every value of `name` that is text (what the router reads).
    pub fn values_str(&self, name: &str) -> Vec<&str> {
        self.list
            .iter()
            .filter(|f| f.name.as_str().eq_ignore_ascii_case(name))
            .filter_map(|f| std::str::from_utf8(f.value.as_bytes()).ok())
            .collect()
    }

    /// The fields as a [`HeaderMap`] (what consistent hashing reads); invalid ones are
    /// left out.
    pub fn to_header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.list.len());
        for f in &self.list {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(f.name.as_str().as_bytes()),
                HeaderValue::from_bytes(f.value.as_bytes()),
            ) {
                map.append(n, v);
            }
        }
        map
    }

    fn push(&mut self, key: &Key<'_>, value: HeaderValue) {
        self.present |= key.bit;
        self.list.push(Field {
            bit: key.bit,
            name: Name::Known(key.name.clone()),
            value: Value::Known(value),
        });
    }
}

impl Fields for RawFields<'_> {
    fn first(&self, name: &HeaderName) -> Option<&[u8]> {
        let key = Key::of(name);
        if key.absent_from(self.present) {
            return None;
        }
        self.list
            .iter()
            .find(|f| key.matches(f))
            .map(|f| f.value.as_bytes())
    }
    fn all<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s [u8]> {
        let key = Key::of(name);
        let skip = key.absent_from(self.present);
        self.list
            .iter()
            .filter(move |f| !skip && key.matches(f))
            .map(|f| f.value.as_bytes())
    }
    fn has_hop_by_hop(&self) -> bool {
        self.present & HOP_BY_HOP != 0
    }
    fn set(&mut self, name: &HeaderName, value: HeaderValue) {
        let key = Key::of(name);
        let found = if key.absent_from(self.present) {
            None
        } else {
            self.list.iter().position(|f| key.matches(f))
        };
        match found {
            Some(i) => {
                self.list[i].value = Value::Known(value);
                let mut j = i + 1;
                while j < self.list.len() {
                    if key.matches(&self.list[j]) {
                        self.list.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => self.push(&key, value),
        }
    }
    fn append(&mut self, name: &HeaderName, value: HeaderValue) {
        self.push(&Key::of(name), value);
    }
    fn remove(&mut self, name: &HeaderName) {
        let key = Key::of(name);
        if key.absent_from(self.present) {
            return;
        }
        self.list.retain(|f| !key.matches(f));
        self.present &= !key.bit;
    }
    fn remove_hop_by_hop(&mut self, named: &[String]) {
        self.list.retain(|f| {
            f.bit & HOP_BY_HOP == 0
                && (named.is_empty()
                    || !named
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(f.name.as_str())))
        });
        self.present = self.list.iter().fold(0, |acc, f| acc | f.bit);
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names. The common
/// case (none, or only `Connection` naming nothing else) costs no lookups.
pub(super) fn strip_hop_by_hop(h: &mut impl Fields) {
    if !h.has_hop_by_hop() {
        return;
    }
    // Names the `Connection` header lists besides the fixed ones (usually none: it most
    // often says `keep-alive` or `close`).
    let named: Vec<String> = h
        .all(&header::CONNECTION)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty() && tracked(n) & HOP_BY_HOP == 0)
        .map(str::to_ascii_lowercase)
        .collect();
    h.remove_hop_by_hop(&named);
}

/// Appends the header line `name: value\r\n` to `out`.
#[inline]
pub(super) fn header_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether `value` is non-empty and one [`HeaderValue::from_str`] accepts (no control
/// characters but tabs): the forwarding headers the gateway would otherwise leave out.
pub(super) fn is_sendable(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Appends `token` to the `Via` header (creating it when absent).
pub(super) fn append_via(h: &mut impl Fields, token: &'static str) {
    let value = match h.first_str(&header::VIA) {
        Some(p) if !p.trim().is_empty() => HeaderValue::from_str(&format!("{p}, {token}")).ok(),
        _ => Some(HeaderValue::from_static(token)),
    };
    if let Some(v) = value {
        h.set(&header::VIA, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_fields_edit_like_a_header_map() {
        let parsed = [
            httparse::Header {
                name: "Host",
                value: b"a",
            },
            httparse::Header {
                name: "X-A",
                value: b"1",
            },
            httparse::Header {
                name: "x-a",
                value: b"2",
            },
            httparse::Header {
                name: "Connection",
                value: b"keep-alive, X-Secret",
            },
            httparse::Header {
                name: "X-Secret",
                value: b"s",
            },
        ];
        let mut raw = RawFields::new(&parsed);
        let name = HeaderName::from_static("x-a");
        assert_eq!(raw.all(&name).count(), 2);
        raw.set(&name, HeaderValue::from_static("3"));
        assert_eq!(raw.all(&name).collect::<Vec<_>>(), vec![b"3".as_slice()]);
        strip_hop_by_hop(&mut raw);
        append_via(&mut raw, "1.1 kong/3.10.0");
        raw.append(&header::SET_COOKIE, HeaderValue::from_static("c=1"));
        let mut out = Vec::new();
        raw.write(&mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "Host: a\r\nX-A: 3\r\nvia: 1.1 kong/3.10.0\r\nset-cookie: c=1\r\n"
        );
        assert_eq!(raw.values_str("HOST"), vec!["a"]);
        assert_eq!(raw.to_header_map().len(), 4);
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    /// The same edits on a [`RawFields`] and on a [`HeaderMap`] of the same head leave the
    /// same fields (names compared in lowercase, values in order).
    #[test]
    fn raw_fields_agree_with_a_header_map() {
        let heads: [&[(&str, &str)]; 4] = [
            &[("Host", "a"), ("Accept", "*/*")],
            &[
                ("HOST", "b"),
                ("X-Forwarded-For", "1.2.3.4"),
                ("x-forwarded-for", "5.6.7.8"),
                ("CONNECTION", "close, X-Custom, Host"),
                ("X-Custom", "1"),
                ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"),
                ("Via", "1.0 fred"),
                ("X-Other", "2"),
            ],
            &[
                ("x-kong-request-id", "old"),
                ("Set-Cookie", "a=1"),
                ("Upgrade", "h2c"),
            ],
            &[
                ("X-Real-IP", "9.9.9.9"),
                ("Proxy", "p"),
                ("Date", "d"),
                ("Server", "s"),
            ],
        ];
        let custom = HeaderName::from_static("x-custom-untracked");
        for head in heads {
            let parsed: Vec<httparse::Header<'_>> = head
                .iter()
                .map(|(n, v)| httparse::Header {
                    name: n,
                    value: v.as_bytes(),
                })
                .collect();
            let mut raw = RawFields::new(&parsed);
            let mut map = HeaderMap::new();
            for (n, v) in head {
                map.append(
                    HeaderName::from_bytes(n.as_bytes()).expect("name"),
                    HeaderValue::from_static(v),
                );
            }
            fn edit(h: &mut impl Fields, custom: &HeaderName) -> Vec<Option<Vec<u8>>> {
                strip_hop_by_hop(h);
                append_via(h, "1.1 kong/3.10.0");
                h.set(
                    &HeaderName::from_static("x-forwarded-for"),
                    HeaderValue::from_static("10.0.0.1"),
                );
                h.set(
                    &HeaderName::from_static("x-real-ip"),
                    HeaderValue::from_static("10.0.0.1"),
                );
                h.set(custom, HeaderValue::from_static("c"));
                h.append(&header::SET_COOKIE, HeaderValue::from_static("b=2"));
                h.remove(&header::DATE);
                h.remove(&HeaderName::from_static("x-other"));
                [
                    header::HOST,
                    header::ACCEPT,
                    header::SERVER,
                    header::VIA,
                    custom.clone(),
                ]
                .iter()
                .map(|n| h.first(n).map(<[u8]>::to_vec))
                .collect()
            }
            assert_eq!(edit(&mut raw, &custom), edit(&mut map, &custom), "{head:?}");
            let mut from_raw: Vec<(String, Vec<u8>)> = raw
                .to_header_map()
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect();
            let mut from_map: Vec<(String, Vec<u8>)> = map
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect();
            from_raw.sort();
            from_map.sort();
            assert_eq!(from_raw, from_map, "{head:?}");
            assert!(!raw.has_hop_by_hop() && !map.has_hop_by_hop());
        }
    }
}
