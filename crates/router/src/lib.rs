//! Kong route matching as a pure library: a [`Router`] is compiled once from route
//! definitions into an immutable, precedence-ordered table, then asked per request which
//! route wins and what path to send upstream.
//!
//! Key decision: precedence is a comparable summary ([`Priority`]), computed at build time for
//! every (route, path) pair exactly as Kong's `traditional_compatible` router ranks its
//! matchers (notes §2.3), so `find` is a first-match scan over a sorted list with no
//! tie-breaking logic at request time. The crate performs no I/O and knows nothing about
//! storage or HTTP libraries, so the gateway can rebuild a table off the request path and swap
//! it in atomically.

pub mod path;

pub use path::{normalize, upstream_path_v0};

/// Errors compiling a route table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouterError {
    /// A `~` path (or a `~*` header value) is not a valid regular expression.
    #[error("route {route}: invalid regex in {path:?}: {reason}")]
    InvalidRegex {
        /// The route's id.
        route: String,
        /// The path as configured (with its `~`), or `header NAME`.
        path: String,
        /// The regex engine's explanation.
        reason: String,
    },
}

/// One route as the router sees it: the matching fields plus what the path join needs.
/// `T` is the caller's payload (the gateway attaches its compiled service target).
#[derive(Debug, Clone)]
pub struct Route<T> {
    /// The route's id (a lowercase hyphenated UUID); the larger id wins a full tie, as in Kong.
    pub id: String,
    /// Prefix paths (`/foo`) and regex paths (`~/foo/\d+`). Empty means any path.
    pub paths: Vec<String>,
    /// Hosts, optionally with `:port`, with at most one leading or trailing `*` label.
    pub hosts: Vec<String>,
    /// Upper-case methods.
    pub methods: Vec<String>,
    /// Header constraints: each (name, values) pair must match (names ANDed); a request
    /// header matches when any of its values equals one of `values` case-insensitively, or
    /// matches a `~*` value as a regex.
    pub headers: Vec<(String, Vec<String>)>,
    /// TLS server names (exact, `*.example.com` or `example.*`). They constrain only
    /// requests that arrived over TLS, which must have sent one of them; as in Kong
    /// ("protocol is not https, or the SNI matches"), plain-HTTP requests are not checked.
    pub snis: Vec<String>,
    /// Whether the matched prefix is removed before joining onto the service path.
    pub strip_path: bool,
    /// Orders regex routes among themselves; higher wins.
    pub regex_priority: i64,
    /// The service's path (`None` behaves as `/`).
    pub service_path: Option<String>,
    /// The caller's payload, handed back in [`Match`].
    pub data: T,
}

/// Access to request header values by (lower-case) name, so the router stays independent of
/// any HTTP library.
pub trait HeaderSource {
    /// Every value of header `name`.
    fn values(&self, name: &str) -> Vec<&str>;
}

/// No headers.
impl HeaderSource for () {
    fn values(&self, _: &str) -> Vec<&str> {
        Vec::new()
    }
}

/// `(name, value)` pairs; names compared case-insensitively.
impl HeaderSource for &[(&str, &str)] {
    fn values(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect()
    }
}

/// What the router needs to know about a request.
#[derive(Clone, Copy)]
pub struct RequestHead<'a> {
    /// The request method, e.g. `GET`.
    pub method: &'a str,
    /// The `Host` header (a port, if any, is ignored except for `host:port` routes).
    pub host: Option<&'a str>,
    /// The raw request path without the query string; it is normalized before matching.
    pub path: &'a str,
    /// The local port the request arrived on, for `host:port` routes.
    pub port: Option<u16>,
    /// The request headers, consulted only by routes with header constraints.
    pub headers: &'a (dyn HeaderSource + Sync),
    /// The request arrived over TLS (the connection's scheme is `https`).
    pub tls: bool,
    /// The server name the TLS client sent, if any.
    pub sni: Option<&'a str>,
}

/// The winning route and the path to request upstream.
#[derive(Debug)]
pub struct Match<'r, T> {
    /// The route that matched.
    pub route: &'r Route<T>,
    /// The normalized request path used for matching.
    pub request_path: String,
    /// The path prefix the route matched (the regex match for regex paths), empty when the
    /// route has no paths.
    pub matched_prefix: String,
    /// The upstream path per Kong's v0 join (without the query string).
    pub upstream_path: String,
    /// A regex path's captures as Kong's `uri_captures`: numbered (`"1"`, …) and named,
    /// `(name, value)`; empty for other paths.
    pub captures: Vec<(String, String)>,
}

impl<T> Match<'_, T> {
    /// The prefix removed by `strip_path`, for `X-Forwarded-Prefix`: present only when
    /// something other than `/` was stripped.
    pub fn stripped_prefix(&self) -> Option<&str> {
        (self.route.strip_path && !self.matched_prefix.is_empty() && self.matched_prefix != "/")
            .then_some(self.matched_prefix.as_str())
    }
}

/// A matcher's rank, compared field by field (notes §2.3); higher wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority {
    /// How many of methods, hosts, headers, snis, paths the route sets.
    pub fields: u8,
    /// Hosts are set and none is a wildcard.
    pub plain_hosts: bool,
    /// How many distinct header names the route constrains.
    pub headers: usize,
    /// The path is a regex (a regex route outranks a prefix route).
    pub regex: bool,
    /// `regex_priority`, counted for regex paths only.
    pub regex_priority: i64,
    /// Length of the prefix path.
    pub prefix_len: usize,
}

#[derive(Debug)]
enum PathMatcher {
    Any,
    Prefix(String),
    Regex(regex::Regex),
}

#[derive(Debug)]
enum HostMatcher {
    Exact(String),
    /// `*.example.com`: the stored suffix is `.example.com`.
    Suffix(String),
    /// `example.*`: the stored prefix is `example.`.
    Prefix(String),
}

#[derive(Debug)]
struct HostRule {
    matcher: HostMatcher,
    port: Option<u16>,
}

#[derive(Debug)]
enum HeaderValueMatcher {
    /// Lower-cased literal.
    Exact(String),
    /// `~*` value: a case-insensitive regex.
    Regex(regex::Regex),
}

#[derive(Debug)]
struct HeaderRule {
    name: String,
    values: Vec<HeaderValueMatcher>,
}

impl HeaderRule {
    fn matches(&self, headers: &dyn HeaderSource) -> bool {
        headers.values(&self.name).iter().any(|v| {
            self.values.iter().any(|m| match m {
                HeaderValueMatcher::Exact(e) => v.eq_ignore_ascii_case(e),
                HeaderValueMatcher::Regex(re) => re.is_match(v),
            })
        })
    }
}

#[derive(Debug)]
struct Matcher {
    route: usize,
    priority: Priority,
    path: PathMatcher,
}

/// The compiled, immutable route table.
#[derive(Debug)]
pub struct Router<T> {
    routes: Vec<Route<T>>,
    hosts: Vec<Vec<HostRule>>,
    headers: Vec<Vec<HeaderRule>>,
    /// Per route: its `snis` as host matchers (no ports).
    snis: Vec<Vec<HostMatcher>>,
    matchers: Vec<Matcher>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            hosts: Vec::new(),
            headers: Vec::new(),
            snis: Vec::new(),
            matchers: Vec::new(),
        }
    }
}

/// Checks that a `~` path compiles, returning the regex engine's message when it does not.
pub fn check_regex_path(path: &str) -> Result<(), String> {
    compile_regex(path).map(|_| ()).map_err(|e| e.to_string())
}

/// Checks that a `~*` header value compiles, returning the regex engine's message when it
/// does not.
pub fn check_header_regex(value: &str) -> Result<(), String> {
    compile_header_value(value)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn compile_header_value(value: &str) -> Result<HeaderValueMatcher, regex::Error> {
    match value.strip_prefix("~*") {
        Some(re) => regex::Regex::new(&format!("(?i){re}")).map(HeaderValueMatcher::Regex),
        None => Ok(HeaderValueMatcher::Exact(value.to_ascii_lowercase())),
    }
}

fn compile_regex(path: &str) -> Result<regex::Regex, regex::Error> {
    let body = path.strip_prefix('~').unwrap_or(path);
    regex::Regex::new(&format!("^(?:{body})"))
}

impl<T> Router<T> {
    /// Compiles `routes` into a table ordered by Kong's precedence.
    pub fn new(routes: Vec<Route<T>>) -> Result<Self, RouterError> {
        let mut matchers = Vec::new();
        let mut hosts = Vec::with_capacity(routes.len());
        let mut headers = Vec::with_capacity(routes.len());
        let mut snis = Vec::with_capacity(routes.len());
        for (index, route) in routes.iter().enumerate() {
            let mut header_rules = Vec::with_capacity(route.headers.len());
            for (name, values) in &route.headers {
                let values = values
                    .iter()
                    .map(|v| compile_header_value(v))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| RouterError::InvalidRegex {
                        route: route.id.clone(),
                        path: format!("header {name}"),
                        reason: e.to_string(),
                    })?;
                header_rules.push(HeaderRule {
                    name: name.to_ascii_lowercase(),
                    values,
                });
            }
            let rules: Vec<HostRule> = route.hosts.iter().map(|h| host_rule(h)).collect();
            let plain_hosts = !rules.is_empty()
                && rules
                    .iter()
                    .all(|r| matches!(r.matcher, HostMatcher::Exact(_)));
            let fields = u8::from(!route.methods.is_empty())
                + u8::from(!route.hosts.is_empty())
                + u8::from(!header_rules.is_empty())
                + u8::from(!route.snis.is_empty())
                + u8::from(!route.paths.is_empty());
            let base = Priority {
                fields,
                plain_hosts,
                headers: header_rules.len(),
                regex: false,
                regex_priority: 0,
                prefix_len: 0,
            };
            if route.paths.is_empty() {
                matchers.push(Matcher {
                    route: index,
                    priority: base,
                    path: PathMatcher::Any,
                });
            }
            for p in &route.paths {
                let (priority, path) = if p.starts_with('~') {
                    let re = compile_regex(p).map_err(|e| RouterError::InvalidRegex {
                        route: route.id.clone(),
                        path: p.clone(),
                        reason: e.to_string(),
                    })?;
                    let priority = Priority {
                        regex: true,
                        regex_priority: route.regex_priority,
                        ..base
                    };
                    (priority, PathMatcher::Regex(re))
                } else {
                    let priority = Priority {
                        prefix_len: p.len(),
                        ..base
                    };
                    (priority, PathMatcher::Prefix(p.clone()))
                };
                matchers.push(Matcher {
                    route: index,
                    priority,
                    path,
                });
            }
            hosts.push(rules);
            headers.push(header_rules);
            snis.push(route.snis.iter().map(|n| sni_matcher(n)).collect());
        }
        matchers.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| routes[b.route].id.cmp(&routes[a.route].id))
        });
        Ok(Self {
            routes,
            hosts,
            headers,
            snis,
            matchers,
        })
    }

    /// The number of routes in the table.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The highest-ranked route matching `req`, with the upstream path computed.
    pub fn find(&self, req: &RequestHead<'_>) -> Option<Match<'_, T>> {
        let path = normalize(req.path);
        // Split (and lowercased) only once a route with `hosts` asks.
        let host = std::cell::OnceCell::new();
        let sni = req
            .sni
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase());
        for m in &self.matchers {
            let route = &self.routes[m.route];
            if !route.methods.is_empty() && !route.methods.iter().any(|x| x == req.method) {
                continue;
            }
            let rules = &self.hosts[m.route];
            if !rules.is_empty() {
                let Some((name, _)) = host.get_or_init(|| req.host.map(split_host)) else {
                    continue;
                };
                if !rules.iter().any(|r| r.matches(name, req.port)) {
                    continue;
                }
            }
            let snis = &self.snis[m.route];
            if req.tls
                && !snis.is_empty()
                && !sni
                    .as_deref()
                    .is_some_and(|n| snis.iter().any(|s| s.matches(n)))
            {
                continue;
            }
            if !self.headers[m.route].iter().all(|r| r.matches(req.headers)) {
                continue;
            }
            let mut captures = Vec::new();
            let prefix = match &m.path {
                PathMatcher::Any => String::new(),
                PathMatcher::Prefix(p) if path.starts_with(p.as_str()) => p.clone(),
                PathMatcher::Prefix(_) => continue,
                PathMatcher::Regex(re) => match re.captures(&path) {
                    Some(found) => {
                        captures = uri_captures(re, &found);
                        found.get(0).map_or("", |m| m.as_str()).to_string()
                    }
                    None => continue,
                },
            };
            let upstream_path = upstream_path_v0(
                route.service_path.as_deref(),
                &path,
                &prefix,
                route.strip_path,
            );
            return Some(Match {
                route,
                request_path: path,
                matched_prefix: prefix,
                upstream_path,
                captures,
            });
        }
        None
    }

    /// The (route id, priority) pairs in the order they are tried, for diagnostics and tests.
    pub fn order(&self) -> impl Iterator<Item = (&str, Priority)> {
        self.matchers
            .iter()
            .map(|m| (self.routes[m.route].id.as_str(), m.priority))
    }
}

/// Kong's `uri_captures` for a regex match: every group that took part, by number and, when
/// it has one, by name.
fn uri_captures(re: &regex::Regex, found: &regex::Captures<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, name) in re.capture_names().enumerate().skip(1) {
        if let Some(m) = found.get(i) {
            out.push((i.to_string(), m.as_str().to_string()));
            if let Some(name) = name {
                out.push((name.to_string(), m.as_str().to_string()));
            }
        }
    }
    out
}

impl HostRule {
    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        if self.port.is_some() && self.port != port {
            return false;
        }
        self.matcher.matches(host)
    }
}

impl HostMatcher {
    /// `name` is lower-case and has no port.
    fn matches(&self, name: &str) -> bool {
        match self {
            HostMatcher::Exact(h) => h == name,
            HostMatcher::Suffix(s) => name.len() > s.len() && name.ends_with(s.as_str()),
            HostMatcher::Prefix(p) => name.len() > p.len() && name.starts_with(p.as_str()),
        }
    }

    /// A host name with at most one leading or trailing `*` label, lower-cased.
    fn new(name: String) -> Self {
        if let Some(rest) = name.strip_prefix('*') {
            HostMatcher::Suffix(rest.to_string())
        } else if let Some(rest) = name.strip_suffix('*') {
            HostMatcher::Prefix(rest.to_string())
        } else {
            HostMatcher::Exact(name)
        }
    }
}

/// A route's SNI as a matcher: wildcards as for hosts, a trailing dot dropped (Kong).
fn sni_matcher(configured: &str) -> HostMatcher {
    HostMatcher::new(configured.trim_end_matches('.').to_ascii_lowercase())
}

/// Splits `host[:port]` (IPv6 in brackets) and lowercases the name, as nginx's `$host` does.
fn split_host(raw: &str) -> (String, Option<u16>) {
    let raw = raw.trim();
    let (name, port) = if let Some(rest) = raw.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (raw, None),
        }
    } else {
        match raw.rsplit_once(':') {
            Some((n, p)) if !n.contains(':') => (n, p.parse().ok()),
            _ => (raw, None),
        }
    };
    (name.to_ascii_lowercase(), port)
}

fn host_rule(configured: &str) -> HostRule {
    let (name, port) = split_host(configured);
    HostRule {
        matcher: HostMatcher::new(name),
        port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str, paths: &[&str], hosts: &[&str], methods: &[&str]) -> Route<()> {
        Route {
            id: id.to_string(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            headers: Vec::new(),
            snis: Vec::new(),
            strip_path: true,
            regex_priority: 0,
            service_path: None,
            data: (),
        }
    }

    fn head<'a>(method: &'a str, host: &'a str, path: &'a str) -> RequestHead<'a> {
        RequestHead {
            method,
            host: Some(host),
            path,
            port: Some(8000),
            headers: &(),
            tls: false,
            sni: None,
        }
    }

    fn winner(router: &Router<()>, method: &str, host: &str, path: &str) -> Option<String> {
        router
            .find(&head(method, host, path))
            .map(|m| m.route.id.clone())
    }

    #[test]
    fn precedence_table() {
        let mut regex_low = route("re-low", &[r"~/users/\d+"], &[], &[]);
        regex_low.regex_priority = 1;
        let mut regex_high = route("re-high", &[r"~/users/\d+$"], &[], &[]);
        regex_high.regex_priority = 5;
        let mut sni = route("sni", &["/s"], &[], &[]);
        sni.snis = vec![
            "secure.test.".into(),
            "*.wild.test".into(),
            "other.*".into(),
        ];
        let router = Router::new(vec![
            route("root", &["/"], &[], &[]),
            route("users", &["/users"], &[], &[]),
            route("users-long", &["/users/admin"], &[], &[]),
            route("post-users", &["/users"], &[], &["POST"]),
            route("host-plain", &["/users"], &["api.example.com"], &[]),
            route("host-wild", &["/users"], &["*.example.com"], &[]),
            route("host-only", &[], &["only.example.com"], &[]),
            regex_low,
            regex_high,
            sni,
            route("s-long", &["/s/long"], &[], &[]),
        ])
        .expect("router");
        let cases = [
            // (method, host, path, TLS SNI (None: plain HTTP), winner) and why
            ("GET", "x.test", "/", None, "root"), // only the catch-all
            ("GET", "x.test", "/nothing", None, "root"), // prefix "/" matches everything
            ("GET", "x.test", "/users", None, "users"), // longer prefix beats "/"
            ("GET", "x.test", "/usersfoo", None, "users"), // prefix is a plain string test
            ("GET", "x.test", "/users/admin/x", None, "users-long"), // longest prefix first
            ("POST", "x.test", "/users/admin", None, "post-users"), // more fields beats longer path
            ("GET", "api.example.com", "/users", None, "host-plain"), // plain host beats wildcard
            ("GET", "a.b.example.com", "/users", None, "host-wild"), // wildcard covers deep names
            ("GET", "API.EXAMPLE.COM:8000", "/users", None, "host-plain"), // case and port ignored
            ("GET", "only.example.com", "/users", None, "host-wild"), // host + path: 2 fields beat 1
            ("GET", "only.example.com", "/x", None, "host-only"), // 1 field each; plain host wins
            ("GET", "x.test", "/users/42", None, "re-high"), // regex beats prefix; priority orders
            ("GET", "x.test", "/users/42/x", None, "re-low"), // re-high is `$`-anchored
            // snis + path (2 fields) beat a longer prefix; the configured trailing dot and
            // the case of the client's name do not matter
            ("GET", "x.test", "/s/long", Some("SECURE.test"), "sni"),
            ("GET", "x.test", "/s/long", Some("a.b.wild.test"), "sni"), // `*.` as for hosts
            ("GET", "x.test", "/s/long", Some("other.example"), "sni"), // `.*` as for hosts
            ("GET", "x.test", "/s/long", Some("nope.test"), "s-long"),  // SNI not listed: skipped
            ("GET", "x.test", "/s/long", Some(""), "s-long"), // a TLS client that sent no name
            // Kong: "protocol is not https, or the SNI matches": plain HTTP is not checked
            ("GET", "x.test", "/s/long", None, "sni"),
        ];
        for (method, host, path, sni, want) in cases {
            let head = RequestHead {
                tls: sni.is_some(),
                sni: sni.filter(|n| !n.is_empty()),
                ..head(method, host, path)
            };
            assert_eq!(
                router.find(&head).map(|m| m.route.id.as_str()),
                Some(want),
                "{method} {host} {path} {sni:?}"
            );
        }
    }

    #[test]
    fn full_ties_go_to_the_larger_id() {
        let router = Router::new(vec![
            route("00000000-0000-4000-8000-000000000001", &["/a"], &[], &[]),
            route("00000000-0000-4000-8000-000000000002", &["/a"], &[], &[]),
        ])
        .expect("router");
        assert_eq!(
            winner(&router, "GET", "h", "/a").as_deref(),
            Some("00000000-0000-4000-8000-000000000002")
        );
    }

    #[test]
    fn no_match_and_constraints() {
        let router = Router::new(vec![
            route("get-a", &["/a"], &[], &["GET"]),
            route("port", &[], &["p.test:9000"], &[]),
        ])
        .expect("router");
        assert_eq!(winner(&router, "POST", "h", "/a"), None);
        assert_eq!(winner(&router, "GET", "h", "/b"), None);
        assert_eq!(winner(&router, "GET", "p.test", "/b"), None); // port 8000 != 9000
        let head = RequestHead {
            method: "GET",
            host: Some("p.test"),
            path: "/b",
            port: Some(9000),
            headers: &(),
            tls: false,
            sni: None,
        };
        assert_eq!(
            router.find(&head).map(|m| m.route.id.as_str()),
            Some("port")
        );
        assert!(Router::<()>::default().find(&head).is_none());
    }

    #[test]
    fn strip_path_and_service_path_shape_the_upstream_path() {
        let mut keep = route("keep", &["/keep"], &[], &[]);
        keep.strip_path = false;
        keep.service_path = Some("/svc".into());
        let mut strip = route("strip", &["/api"], &[], &[]);
        strip.service_path = Some("/v1/".into());
        let regex = route("re", &[r"~/items/\d+"], &[], &[]);
        let router = Router::new(vec![keep, strip, regex]).expect("router");
        let m = router.find(&head("GET", "h", "/keep/x")).expect("keep");
        assert_eq!(m.upstream_path, "/svc/keep/x");
        assert_eq!(m.stripped_prefix(), None);
        let m = router
            .find(&head("GET", "h", "/api//users/./1"))
            .expect("strip");
        assert_eq!(m.upstream_path, "/v1/users/1");
        assert_eq!(m.stripped_prefix(), Some("/api"));
        let m = router
            .find(&head("GET", "h", "/items/12/detail"))
            .expect("regex");
        assert_eq!(m.matched_prefix, "/items/12");
        assert_eq!(m.upstream_path, "/detail");
    }

    #[test]
    fn header_constraints_match_and_outrank() {
        let mut versioned = route("v2", &["/api"], &[], &[]);
        versioned.headers = vec![(
            "X-Version".into(),
            vec!["V2".into(), "~*^beta-\\d+$".into()],
        )];
        let router =
            Router::new(vec![route("plain", &["/api/long"], &[], &[]), versioned]).expect("router");
        let find = |h: &[(&str, &str)]| {
            router
                .find(&RequestHead {
                    method: "GET",
                    host: None,
                    path: "/api/long",
                    port: None,
                    headers: &h,
                    tls: false,
                    sni: None,
                })
                .map(|m| m.route.id.clone())
        };
        // A header adds a field, so it beats a longer prefix; values are case-insensitive.
        assert_eq!(find(&[("x-version", "v2")]).as_deref(), Some("v2"));
        assert_eq!(find(&[("X-VERSION", "Beta-7")]).as_deref(), Some("v2"));
        assert_eq!(find(&[("x-version", "v3")]).as_deref(), Some("plain"));
        assert_eq!(find(&[]).as_deref(), Some("plain"));
        assert!(check_header_regex("~*(").is_err());
        assert!(check_header_regex("plain(").is_ok());
    }

    #[test]
    fn invalid_regex_is_reported_with_the_route() {
        let err =
            Router::new(vec![route("bad", &["~/(unclosed"], &[], &[])]).expect_err("invalid regex");
        assert!(matches!(err, RouterError::InvalidRegex { ref route, .. } if route == "bad"));
        assert!(check_regex_path("~/ok/\\d+").is_ok());
        assert!(check_regex_path("~/(").is_err());
    }
}
