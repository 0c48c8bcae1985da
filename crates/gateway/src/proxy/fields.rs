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
    /// Whether any field's name satisfies `pred` (given the name as sent).
    fn any_name(&self, pred: impl Fn(&str) -> bool) -> bool;
    /// Replaces every value of `name` with `value`.
    fn set(&mut self, name: &HeaderName, value: HeaderValue);
    /// Adds a value of `name` after the existing ones.
    fn append(&mut self, name: &HeaderName, value: HeaderValue);
    /// Removes every value of `name`.
    fn remove(&mut self, name: &HeaderName);
    /// Removes every field whose name (as sent) satisfies `pred`, in one pass.
    fn remove_where(&mut self, pred: impl Fn(&str) -> bool);

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
    fn any_name(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.keys().any(|n| pred(n.as_str()))
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
    fn remove_where(&mut self, pred: impl Fn(&str) -> bool) {
        let doomed: Vec<HeaderName> = self.keys().filter(|n| pred(n.as_str())).cloned().collect();
        for name in doomed {
            HeaderMap::remove(self, name);
        }
    }
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
    /// Whether this is `name`, whose text is `text` (looked up once per scan, not per
    /// field): a received name in any case, a set one by equality (no text needed).
    fn is(&self, name: &HeaderName, text: &str) -> bool {
        match self {
            Name::Raw(s) => s.len() == text.len() && s.eq_ignore_ascii_case(text),
            Name::Known(n) => n == name,
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

/// Header fields borrowed from a parsed message head (names keep their case), plus the
/// gateway's edits, written back out in order by [`RawFields::write`].
pub(super) struct RawFields<'a> {
    list: Vec<(Name<'a>, Value<'a>)>,
}

impl<'a> RawFields<'a> {
    /// The fields of a head `httparse` parsed.
    pub fn new(parsed: &[httparse::Header<'a>]) -> Self {
        let mut list = Vec::with_capacity(parsed.len() + 10);
        list.extend(
            parsed
                .iter()
                .map(|h| (Name::Raw(h.name), Value::Raw(h.value))),
        );
        Self { list }
    }

    /// Appends every field as `name: value\r\n` to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        for (n, v) in &self.list {
            out.extend_from_slice(n.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Every value of `name` that is text (what the router reads).
    pub fn values_str(&self, name: &str) -> Vec<&str> {
        self.list
            .iter()
            .filter(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v.as_bytes()).ok())
            .collect()
    }

    /// The fields as a [`HeaderMap`] (what consistent hashing reads); invalid ones are
    /// left out.
    pub fn to_header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.list.len());
        for (n, v) in &self.list {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.as_str().as_bytes()),
                HeaderValue::from_bytes(v.as_bytes()),
            ) {
                map.append(n, v);
            }
        }
        map
    }
}

impl Fields for RawFields<'_> {
    fn first(&self, name: &HeaderName) -> Option<&[u8]> {
        let target = name.as_str();
        self.list
            .iter()
            .find(|(n, _)| n.is(name, target))
            .map(|(_, v)| v.as_bytes())
    }
    fn all<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s [u8]> {
        let target = name.as_str();
        self.list
            .iter()
            .filter(move |(n, _)| n.is(name, target))
            .map(|(_, v)| v.as_bytes())
    }
    fn any_name(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.list.iter().any(|(n, _)| pred(n.as_str()))
    }
    fn set(&mut self, name: &HeaderName, value: HeaderValue) {
        let target = name.as_str();
        match self.list.iter().position(|(n, _)| n.is(name, target)) {
            Some(i) => {
                self.list[i].1 = Value::Known(value);
                let mut j = i + 1;
                while j < self.list.len() {
                    if self.list[j].0.is(name, target) {
                        self.list.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => self
                .list
                .push((Name::Known(name.clone()), Value::Known(value))),
        }
    }
    fn append(&mut self, name: &HeaderName, value: HeaderValue) {
        self.list
            .push((Name::Known(name.clone()), Value::Known(value)));
    }
    fn remove(&mut self, name: &HeaderName) {
        let target = name.as_str();
        if self.list.iter().any(|(n, _)| n.is(name, target)) {
            self.list.retain(|(n, _)| !n.is(name, target));
        }
    }
    fn remove_where(&mut self, pred: impl Fn(&str) -> bool) {
        self.list.retain(|(n, _)| !pred(n.as_str()));
    }
}

/// Whether `name` (any case) is one of the fixed hop-by-hop headers.
fn is_hop_by_hop(name: &str) -> bool {
    // By length first: most names are compared with nothing.
    let candidates: &[&str] = match name.len() {
        2 => &["te"],
        5 => &["proxy"],
        7 => &["trailer", "upgrade"],
        10 => &["connection", "keep-alive"],
        16 => &["proxy-connection"],
        17 => &["transfer-encoding"],
        _ => return false,
    };
    candidates.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Removes hop-by-hop headers, including those the `Connection` header names. One pass
/// over the names finds whether there is anything to remove (usually not, or only
/// `Connection`), so the common case does no lookups.
pub(super) fn strip_hop_by_hop(h: &mut impl Fields) {
    if !h.any_name(is_hop_by_hop) {
        return;
    }
    // Names the `Connection` header lists besides the fixed ones (usually none: it most
    // often says `keep-alive` or `close`).
    let named: Vec<String> = h
        .all(&header::CONNECTION)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty() && !is_hop_by_hop(n))
        .map(str::to_ascii_lowercase)
        .collect();
    h.remove_where(|n| is_hop_by_hop(n) || named.iter().any(|t| t.eq_ignore_ascii_case(n)));
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
}
