//! Load balancing over an upstream's targets (notes §4): round-robin, least-connections and
//! consistent-hashing, with passive health checks.
//!
//! Key decision: a [`Balancer`] is compiled with the routing table (targets, weights, hash
//! ring, health-check thresholds) and is immutable except for per-target runtime state
//! ([`TargetState`]: health, in-flight count, check counters). That state lives in the
//! gateway's [`HealthRegistry`], keyed by upstream and target, so a table rebuild keeps what
//! the node has learnt; like Kong, health is per node and never written to the database.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use uuid::Uuid;

use crate::entity::{Target, Upstream};

/// One target's per-node runtime state.
#[derive(Debug)]
pub struct TargetState {
    healthy: AtomicBool,
    /// Who made the target unhealthy last ([`Cause`] as a byte).
    cause: AtomicU8,
    in_flight: AtomicUsize,
    counters: Mutex<Counters>,
}

/// What last changed a target's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Nothing yet, or `PUT .../healthy|unhealthy`.
    Manual = 0,
    /// Passive checks (proxied traffic).
    Passive = 1,
    /// Active probes.
    Active = 2,
}

#[derive(Debug, Default)]
struct Counters {
    successes: u64,
    http_failures: u64,
    tcp_failures: u64,
    timeouts: u64,
}

impl TargetState {
    fn new() -> Self {
        Self {
            healthy: AtomicBool::new(true),
            cause: AtomicU8::new(Cause::Manual as u8),
            in_flight: AtomicUsize::new(0),
            counters: Mutex::new(Counters::default()),
        }
    }

    /// Whether the target may receive traffic.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Sets the health by hand (`PUT .../healthy|unhealthy`), clearing the counters.
    pub fn set_healthy(&self, healthy: bool) {
        self.set(healthy, Cause::Manual);
    }

    /// Sets the health, clearing the counters and remembering why.
    fn set(&self, healthy: bool, cause: Cause) {
        if let Ok(mut c) = self.counters.lock() {
            *c = Counters::default();
        }
        self.cause.store(cause as u8, Ordering::Release);
        self.healthy.store(healthy, Ordering::Release);
    }

    /// What last changed the health.
    pub fn cause(&self) -> Cause {
        match self.cause.load(Ordering::Acquire) {
            1 => Cause::Passive,
            2 => Cause::Active,
            _ => Cause::Manual,
        }
    }

    /// Counts one check outcome against `t`'s thresholds, flipping the health when one is
    /// reached (Kong's shared success/failure counters: a success clears the failures, a
    /// failure clears the successes). Returns the new health when it changed.
    pub(crate) fn record(&self, outcome: Outcome, t: &Thresholds, cause: Cause) -> Option<bool> {
        let Ok(mut c) = self.counters.lock() else {
            return None;
        };
        let healthy = self.is_healthy();
        let failure = |c: &mut Counters, which: fn(&mut Counters) -> &mut u64, limit: u64| {
            c.successes = 0;
            let n = which(c);
            *n += 1;
            limit > 0 && *n >= limit
        };
        let success = match outcome {
            Outcome::Connected => true,
            Outcome::Status(s) => t.healthy_statuses.contains(&s),
            _ => false,
        };
        let flip = match outcome {
            _ if success => {
                c.successes += 1;
                c.http_failures = 0;
                c.tcp_failures = 0;
                c.timeouts = 0;
                !healthy && t.successes > 0 && c.successes >= t.successes
            }
            Outcome::Status(s) if t.unhealthy_statuses.contains(&s) => {
                healthy && failure(&mut c, |c| &mut c.http_failures, t.http_failures)
            }
            Outcome::Status(_) | Outcome::Connected => false,
            Outcome::TcpFailure => {
                healthy && failure(&mut c, |c| &mut c.tcp_failures, t.tcp_failures)
            }
            Outcome::Timeout => healthy && failure(&mut c, |c| &mut c.timeouts, t.timeouts),
        };
        if !flip {
            return None;
        }
        *c = Counters::default();
        self.cause.store(cause as u8, Ordering::Release);
        self.healthy.store(!healthy, Ordering::Release);
        Some(!healthy)
    }
}

/// Per-node health and connection state of every target, surviving table rebuilds.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    states: Mutex<HashMap<(Uuid, String), Arc<TargetState>>>,
}

impl HealthRegistry {
    /// The state of `target` (a normalized `host:port`) of upstream `upstream`.
    pub fn state(&self, upstream: Uuid, target: &str) -> Arc<TargetState> {
        let mut states = match self.states.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(
            states
                .entry((upstream, target.to_string()))
                .or_insert_with(|| Arc::new(TargetState::new())),
        )
    }
}

/// What `hash_on` / `hash_fallback` hash.
#[derive(Debug, Clone)]
enum HashInput {
    None,
    /// The authenticated consumer's id, else the credential's ([`HashContext`]).
    Consumer,
    Ip,
    Header(String),
    Cookie(String),
    Path,
    QueryArg(String),
    /// A named capture of the matched route's regex path ([`HashContext`]).
    UriCapture(String),
}

impl HashInput {
    fn new(
        kind: &str,
        header: Option<&String>,
        cookie: Option<&String>,
        arg: Option<&String>,
        capture: Option<&String>,
    ) -> Self {
        let named = |v: Option<&String>| v.cloned().unwrap_or_default();
        match kind {
            "consumer" => Self::Consumer,
            "ip" => Self::Ip,
            "header" => Self::Header(named(header).to_ascii_lowercase()),
            "cookie" => Self::Cookie(named(cookie)),
            "path" => Self::Path,
            "query_arg" => Self::QueryArg(named(arg)),
            "uri_capture" => Self::UriCapture(named(capture)),
            _ => Self::None,
        }
    }
}

/// The parts of a request consistent hashing can read.
pub struct RequestKey<'a> {
    /// The client address.
    pub client: Option<IpAddr>,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request path (before stripping).
    pub path: &'a str,
    /// The raw query string.
    pub query: Option<&'a str>,
}

/// What the proxy knows about a request beyond the request itself, for `hash_on` /
/// `hash_fallback` = `consumer` and `uri_capture`. The default (nothing known) makes both
/// empty, so the fallback applies.
#[derive(Debug, Default, Clone, Copy)]
pub struct HashContext<'a> {
    /// The authenticated consumer's id.
    pub consumer_id: Option<&'a str>,
    /// The authenticated credential's id, used when there is no consumer (as in Kong).
    pub credential_id: Option<&'a str>,
    /// The matched route's named regex captures, `(name, value)`.
    pub uri_captures: &'a [(String, String)],
}

impl RequestKey<'_> {
    fn read(&self, input: &HashInput, ctx: &HashContext<'_>) -> Option<String> {
        let value = match input {
            HashInput::None => None,
            HashInput::Consumer => ctx.consumer_id.or(ctx.credential_id).map(str::to_string),
            HashInput::UriCapture(name) => ctx
                .uri_captures
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
            HashInput::Ip => self.client.map(|ip| ip.to_string()),
            HashInput::Header(name) => {
                let values: Vec<&str> = self
                    .headers
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                (!values.is_empty()).then(|| values.join(","))
            }
            HashInput::Cookie(name) => cookie(self.headers, name),
            HashInput::Path => Some(self.path.to_string()),
            HashInput::QueryArg(name) => self.query.and_then(|q| {
                let values: Vec<String> = form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
                    .collect();
                (!values.is_empty()).then(|| values.join(","))
            }),
        };
        value.filter(|v| !v.is_empty())
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    RoundRobin,
    LeastConnections,
    ConsistentHashing,
}

/// Health-check thresholds of one kind of check (0 disables a counter).
#[derive(Debug, Clone, Default)]
pub(crate) struct Thresholds {
    pub(crate) healthy_statuses: Vec<u16>,
    pub(crate) successes: u64,
    pub(crate) unhealthy_statuses: Vec<u16>,
    pub(crate) http_failures: u64,
    pub(crate) tcp_failures: u64,
    pub(crate) timeouts: u64,
}

impl Thresholds {
    /// Reads `healthchecks.passive` or `healthchecks.active` (`kind`).
    pub(crate) fn from_config(healthchecks: &Value, kind: &str) -> Self {
        let p = &healthchecks[kind];
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let statuses = |v: &Value| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_u64().and_then(|s| u16::try_from(s).ok()))
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            healthy_statuses: statuses(&p["healthy"]["http_statuses"]),
            successes: n(&p["healthy"]["successes"]),
            unhealthy_statuses: statuses(&p["unhealthy"]["http_statuses"]),
            http_failures: n(&p["unhealthy"]["http_failures"]),
            tcp_failures: n(&p["unhealthy"]["tcp_failures"]),
            timeouts: n(&p["unhealthy"]["timeouts"]),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.successes + self.http_failures + self.tcp_failures + self.timeouts > 0
    }
}

/// Whether `healthchecks` turns any check on (Kong's `HEALTHCHECKS_OFF` otherwise).
pub fn checks_enabled(healthchecks: &Value) -> bool {
    let active = &healthchecks["active"];
    let interval = |v: &Value| v["interval"].as_f64().unwrap_or(0.0) > 0.0;
    Thresholds::from_config(healthchecks, "passive").enabled()
        || interval(&active["healthy"])
        || interval(&active["unhealthy"])
}

/// The outcome of one try, as the passive checker sees it.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// A response head with this status.
    Status(u16),
    /// The connection failed or broke.
    TcpFailure,
    /// No response within the timeout.
    Timeout,
    /// A TCP health probe connected (a success).
    Connected,
}

/// One balanced target.
#[derive(Debug)]
pub struct Member {
    /// `host:port`, used as the request authority.
    pub authority: String,
    /// The Host header for this target (the upstream's `host_header` when set).
    pub host_header: HeaderValue,
    weight: u64,
    state: Arc<TargetState>,
}

/// A compiled upstream: its targets and the algorithm choosing between them.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    members: Vec<Member>,
    /// Consistent hashing: sorted `(point, member index)` pairs, `slots` in all.
    ring: Vec<(u32, usize)>,
    hash_on: HashInput,
    hash_fallback: HashInput,
    /// Name and path of the cookie to generate for `hash_on = cookie`.
    cookie: Option<(String, String)>,
    passive: Thresholds,
    /// Percentage of healthy weight at or below which the whole upstream is unhealthy.
    threshold: f64,
    /// Smooth weighted round-robin: each member's current weight.
    current: Mutex<Vec<i64>>,
    /// Rotates least-connections' tie-breaks.
    cursor: AtomicUsize,
}

/// A chosen target, with what the response must carry.
pub struct Pick<'a> {
    /// Index of the member, to exclude it on a retry.
    pub index: usize,
    /// The member.
    pub member: &'a Member,
    /// A generated hash cookie to set on the response (`hash_on = cookie`).
    pub set_cookie: Option<HeaderValue>,
    /// Counts the request as in flight on the target until dropped.
    pub in_flight: InFlight,
}

/// Counts a request in flight on a target (for least-connections) until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<TargetState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// 32-bit FNV-1a: stable across builds and platforms, so rings agree between nodes.
fn hash32(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    // A final avalanche (murmur3's fmix32) spreads FNV's weak low bits across the ring.
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

fn host_header(authority: &str) -> HeaderValue {
    let value = authority.strip_suffix(":80").unwrap_or(authority);
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

impl Balancer {
    /// Compiles `upstream` over its `targets`; targets of weight 0 are left out and, as in
    /// Kong, the latest entry for a given `host:port` wins.
    pub fn build(upstream: &Upstream, targets: &[&Target], registry: &HealthRegistry) -> Self {
        let mut latest: Vec<&Target> = Vec::new();
        for t in targets {
            match latest.iter_mut().find(|l| l.target == t.target) {
                Some(l) if l.created_at <= t.created_at => *l = t,
                Some(_) => {}
                None => latest.push(t),
            }
        }
        latest.sort_by(|a, b| a.target.cmp(&b.target));
        let fixed_host = upstream
            .host_header
            .as_deref()
            .and_then(|h| HeaderValue::from_str(h).ok());
        let members: Vec<Member> = latest
            .into_iter()
            .filter(|t| t.weight > 0)
            .map(|t| Member {
                authority: t.target.clone(),
                host_header: fixed_host.clone().unwrap_or_else(|| host_header(&t.target)),
                weight: u64::try_from(t.weight).unwrap_or(1),
                state: registry.state(upstream.id, &t.target),
            })
            .collect();
        let algorithm = match upstream.algorithm.as_str() {
            "least-connections" => Algorithm::LeastConnections,
            "consistent-hashing" => Algorithm::ConsistentHashing,
            // `latency` is balanced round-robin until response times are tracked.
            _ => Algorithm::RoundRobin,
        };
        let ring = if algorithm == Algorithm::ConsistentHashing {
            ring(&members, u64::try_from(upstream.slots).unwrap_or(10_000))
        } else {
            Vec::new()
        };
        let u = upstream;
        let cookie = (u.hash_on == "cookie").then(|| {
            (
                u.hash_on_cookie.clone().unwrap_or_default(),
                u.hash_on_cookie_path.clone(),
            )
        });
        Self {
            algorithm,
            current: Mutex::new(vec![0; members.len()]),
            members,
            ring,
            hash_on: HashInput::new(
                &u.hash_on,
                u.hash_on_header.as_ref(),
                u.hash_on_cookie.as_ref(),
                u.hash_on_query_arg.as_ref(),
                u.hash_on_uri_capture.as_ref(),
            ),
            hash_fallback: HashInput::new(
                &u.hash_fallback,
                u.hash_fallback_header.as_ref(),
                None,
                u.hash_fallback_query_arg.as_ref(),
                u.hash_fallback_uri_capture.as_ref(),
            ),
            cookie,
            passive: Thresholds::from_config(&u.healthchecks, "passive"),
            threshold: u.healthchecks["threshold"].as_f64().unwrap_or(0.0),
            cursor: AtomicUsize::new(0),
        }
    }

    /// Chooses a healthy target not in `exclude` (the ones already tried), or `None`: no
    /// healthy target is left, or the healthy weight is at or below the threshold.
    /// Consumer and URI-capture hashing see nothing (see [`Balancer::pick_with`]).
    pub fn pick(&self, key: &RequestKey<'_>, exclude: &[usize]) -> Option<Pick<'_>> {
        self.pick_with(key, &HashContext::default(), exclude)
    }

    /// [`Balancer::pick`] with what the proxy knows about the consumer and the route's
    /// captures.
    pub fn pick_with(
        &self,
        key: &RequestKey<'_>,
        ctx: &HashContext<'_>,
        exclude: &[usize],
    ) -> Option<Pick<'_>> {
        let total: u64 = self.members.iter().map(|m| m.weight).sum();
        let healthy: u64 = self
            .members
            .iter()
            .filter(|m| m.state.is_healthy())
            .map(|m| m.weight)
            .sum();
        if total == 0
            || (healthy as f64) * 100.0 / (total as f64) <= self.threshold && self.threshold > 0.0
        {
            return None;
        }
        let eligible = |i: usize| !exclude.contains(&i) && self.members[i].state.is_healthy();
        let mut set_cookie = None;
        let index = match self.algorithm {
            Algorithm::RoundRobin => self.round_robin(&eligible)?,
            Algorithm::LeastConnections => self.least_connections(&eligible)?,
            Algorithm::ConsistentHashing => {
                let value = match key.read(&self.hash_on, ctx) {
                    Some(v) => v,
                    None => match &self.cookie {
                        Some((name, path)) => {
                            let v = portcullis_core::new_id().to_string();
                            set_cookie =
                                HeaderValue::from_str(&format!("{name}={v}; Path={path}")).ok();
                            v
                        }
                        None => key.read(&self.hash_fallback, ctx).unwrap_or_default(),
                    },
                };
                self.hashed(hash32(value.as_bytes()), &eligible)?
            }
        };
        let member = &self.members[index];
        member.state.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(Pick {
            index,
            member,
            set_cookie,
            in_flight: InFlight(Arc::clone(&member.state)),
        })
    }

    /// nginx's smooth weighted round-robin.
    fn round_robin(&self, eligible: &dyn Fn(usize) -> bool) -> Option<usize> {
        let mut current = match self.current.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, m) in self.members.iter().enumerate() {
            if !eligible(i) {
                continue;
            }
            let w = i64::try_from(m.weight).unwrap_or(i64::MAX);
            current[i] += w;
            total += w;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        current[b] -= total;
        Some(b)
    }

    /// Fewest `(in flight + 1) / weight`, ties rotated.
    fn least_connections(&self, eligible: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = self.members.len();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, u128)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !eligible(i) {
                continue;
            }
            let m = &self.members[i];
            let load = m.state.in_flight.load(Ordering::Acquire) as u128 + 1;
            // Compare load_i / w_i < load_b / w_b as load_i * w_b < load_b * w_i.
            match best {
                Some((b, load_b))
                    if load * u128::from(self.members[b].weight)
                        >= load_b * u128::from(m.weight) => {}
                _ => best = Some((i, load)),
            }
        }
        best.map(|(i, _)| i)
    }

    /// The first eligible target clockwise from `point` on the ring.
    fn hashed(&self, point: u32, eligible: &dyn Fn(usize) -> bool) -> Option<usize> {
        if self.ring.is_empty() {
            return None;
        }
        let start = self.ring.partition_point(|(p, _)| *p < point);
        (0..self.ring.len())
            .map(|k| self.ring[(start + k) % self.ring.len()].1)
            .find(|i| eligible(*i))
    }

    /// Feeds the outcome of a try on `index` to the passive health checker.
    pub fn report(&self, index: usize, outcome: Outcome) {
        if !self.passive.enabled() {
            return;
        }
        let Some(m) = self.members.get(index) else {
            return;
        };
        if m.state.record(outcome, &self.passive, Cause::Passive) == Some(false) {
            tracing::warn!(target = %m.authority, "target marked unhealthy by passive health checks");
        }
    }
}

/// Places `slots` points on the ring, shared out by weight (at least one per target).
fn ring(members: &[Member], slots: u64) -> Vec<(u32, usize)> {
    let total: u64 = members.iter().map(|m| m.weight).sum();
    if total == 0 {
        return Vec::new();
    }
    let mut points = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let share = (slots * m.weight / total).max(1);
        for k in 0..share {
            points.push((hash32(format!("{}#{k}", m.authority).as_bytes()), i));
        }
    }
    points.sort_unstable();
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(algorithm: &str) -> Upstream {
        let mut map = serde_json::Map::new();
        map.insert("name".into(), "u".into());
        map.insert("algorithm".into(), algorithm.into());
        <Upstream as crate::entity::Entity>::from_input(map, Uuid::nil(), 0, 0).expect("upstream")
    }

    fn target(t: &str, weight: i64) -> Target {
        Target {
            id: Uuid::nil(),
            target: t.into(),
            weight,
            upstream: crate::entity::ForeignKey { id: Uuid::nil() },
            tags: None,
            created_at: 0.0,
            updated_at: 0.0,
        }
    }

    fn key(headers: &HeaderMap) -> RequestKey<'_> {
        RequestKey {
            client: None,
            headers,
            path: "/",
            query: None,
        }
    }

    #[test]
    fn smooth_round_robin_follows_weights() {
        let registry = HealthRegistry::default();
        let (a, b, z) = (target("a:1", 3), target("b:1", 1), target("z:1", 0));
        let b = Balancer::build(&upstream("round-robin"), &[&a, &b, &z], &registry);
        let h = HeaderMap::new();
        let picks: Vec<String> = (0..8)
            .map(|_| {
                b.pick(&key(&h), &[])
                    .expect("pick")
                    .member
                    .authority
                    .clone()
            })
            .collect();
        assert_eq!(picks.iter().filter(|p| *p == "a:1").count(), 6);
        assert_eq!(picks.iter().filter(|p| *p == "b:1").count(), 2);
        // Smooth: never three of `a` in a row within a cycle of four.
        assert_eq!(picks[..4], ["a:1", "a:1", "b:1", "a:1"]);
    }

    #[test]
    fn least_connections_counts_in_flight() {
        let registry = HealthRegistry::default();
        let (a, b) = (target("a:1", 1), target("b:1", 1));
        let bal = Balancer::build(&upstream("least-connections"), &[&a, &b], &registry);
        let h = HeaderMap::new();
        let first = bal.pick(&key(&h), &[]).expect("pick");
        let second = bal.pick(&key(&h), &[]).expect("pick");
        assert_ne!(first.index, second.index);
        drop(second);
        let third = bal.pick(&key(&h), &[]).expect("pick");
        assert_ne!(first.index, third.index);
    }

    fn hashing(fields: &[(&str, &str)]) -> Upstream {
        let mut map = serde_json::Map::new();
        map.insert("name".into(), "u".into());
        for (k, v) in fields {
            map.insert((*k).into(), (*v).into());
        }
        <Upstream as crate::entity::Entity>::from_input(map, Uuid::nil(), 0, 0).expect("upstream")
    }

    /// The target chosen for `key` and `ctx`, over ten targets.
    fn chosen(u: &Upstream, key: &RequestKey<'_>, ctx: &HashContext<'_>) -> String {
        let registry = HealthRegistry::default();
        let ts: Vec<Target> = (0..10).map(|i| target(&format!("t{i}:1"), 100)).collect();
        let refs: Vec<&Target> = ts.iter().collect();
        let bal = Balancer::build(u, &refs, &registry);
        bal.pick_with(key, ctx, &[])
            .expect("pick")
            .member
            .authority
            .clone()
    }

    #[test]
    fn every_hash_input_is_sticky_and_distinct() {
        let mut headers = HeaderMap::new();
        headers.insert("x-user", HeaderValue::from_static("alice"));
        headers.insert("cookie", HeaderValue::from_static("a=1; sticky=s1"));
        let base = RequestKey {
            client: Some("10.0.0.1".parse().expect("ip")),
            headers: &headers,
            path: "/p/one",
            query: Some("user=u1&x=2"),
        };
        let captures = vec![("tenant".to_string(), "acme".to_string())];
        let ctx = HashContext {
            consumer_id: Some("c-1"),
            credential_id: None,
            uri_captures: &captures,
        };
        let cases: Vec<Upstream> = vec![
            hashing(&[("hash_on", "ip")]),
            hashing(&[("hash_on", "header"), ("hash_on_header", "X-User")]),
            hashing(&[("hash_on", "cookie"), ("hash_on_cookie", "sticky")]),
            hashing(&[("hash_on", "path")]),
            hashing(&[("hash_on", "query_arg"), ("hash_on_query_arg", "user")]),
            hashing(&[("hash_on", "consumer")]),
            hashing(&[
                ("hash_on", "uri_capture"),
                ("hash_on_uri_capture", "tenant"),
            ]),
        ];
        for u in &cases {
            let first = chosen(u, &base, &ctx);
            assert_eq!(first, chosen(u, &base, &ctx), "{} is sticky", u.hash_on);
            // Across many key values, more than one target is used.
            let spread: std::collections::HashSet<String> = (0..40)
                .map(|i| {
                    let value = format!("v{i}");
                    let mut h = HeaderMap::new();
                    h.insert("x-user", HeaderValue::from_str(&value).expect("value"));
                    h.insert(
                        "cookie",
                        HeaderValue::from_str(&format!("sticky={value}")).expect("value"),
                    );
                    let path = format!("/p/{value}");
                    let query = format!("user={value}");
                    let key = RequestKey {
                        client: Some(format!("10.0.1.{i}").parse().expect("ip")),
                        headers: &h,
                        path: &path,
                        query: Some(&query),
                    };
                    let captures = vec![("tenant".to_string(), value.clone())];
                    let ctx = HashContext {
                        consumer_id: Some(&value),
                        credential_id: None,
                        uri_captures: &captures,
                    };
                    chosen(u, &key, &ctx)
                })
                .collect();
            assert!(spread.len() > 1, "{} spreads", u.hash_on);
        }
    }

    #[test]
    fn empty_inputs_fall_back() {
        let h = HeaderMap::new();
        let key = RequestKey {
            client: Some("10.0.0.9".parse().expect("ip")),
            headers: &h,
            path: "/",
            query: None,
        };
        let by_ip = chosen(
            &hashing(&[("hash_on", "ip")]),
            &key,
            &HashContext::default(),
        );
        // No consumer, no capture: hash_fallback = ip decides, as hashing on ip does.
        let consumer = hashing(&[("hash_on", "consumer"), ("hash_fallback", "ip")]);
        assert_eq!(chosen(&consumer, &key, &HashContext::default()), by_ip);
        let capture = hashing(&[
            ("hash_on", "uri_capture"),
            ("hash_on_uri_capture", "x"),
            ("hash_fallback", "ip"),
        ]);
        assert_eq!(chosen(&capture, &key, &HashContext::default()), by_ip);
        // The credential stands in for a missing consumer.
        let cred = HashContext {
            consumer_id: None,
            credential_id: Some("cred-7"),
            uri_captures: &[],
        };
        let with_consumer = HashContext {
            consumer_id: Some("cred-7"),
            ..HashContext::default()
        };
        let plain = hashing(&[("hash_on", "consumer")]);
        assert_eq!(
            chosen(&plain, &key, &cred),
            chosen(&plain, &key, &with_consumer)
        );
    }

    #[test]
    fn ring_spreads_and_skips_unhealthy() {
        let registry = HealthRegistry::default();
        let ts: Vec<Target> = (0..3).map(|i| target(&format!("t{i}:1"), 100)).collect();
        let refs: Vec<&Target> = ts.iter().collect();
        let bal = Balancer::build(&upstream("consistent-hashing"), &refs, &registry);
        assert_eq!(bal.ring.len(), 9999);
        let mut counts = [0; 3];
        for k in 0..3000u32 {
            let i = bal
                .hashed(hash32(&k.to_le_bytes()), &|_| true)
                .expect("hit");
            counts[i] += 1;
        }
        assert!(counts.iter().all(|c| *c > 600), "{counts:?}");
        let p = hash32(b"x");
        let first = bal.hashed(p, &|_| true).expect("hit");
        let next = bal.hashed(p, &|i| i != first).expect("hit");
        assert_ne!(first, next);
    }
}
