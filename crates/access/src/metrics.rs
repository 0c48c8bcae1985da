//! Prometheus metrics in the text exposition format, served at `/metrics` on the API server.
//!
//! Oathkeeper's own series, with its names and labels, so existing dashboards keep working:
//! `<prefix>requests_total{service,method,request,status_code}` and the
//! `<prefix>requests_duration_seconds` histogram (`service` is `oathkeeper-proxy` or
//! `oathkeeper-api`; `request` is the first path segment, Oathkeeper's default
//! `collapse_request_paths`; health and metrics requests are not counted). Added:
//! `<prefix>decisions_total{service,rule,decision}` — per rule, `allowed` or the error
//! name (`unauthorized`, `forbidden`, `not_found`, …) — which Oathkeeper lacks and is the
//! question an access proxy's operator asks first. The prefix is
//! `serve.prometheus.metric_name_prefix`.
//!
//! A handful of mutex-guarded maps: no metrics crate is needed for counters and one histogram.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::Access;

/// Histogram bucket bounds in seconds (Prometheus' defaults).
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `service` label of the proxy.
pub(crate) const PROXY: &str = "oathkeeper-proxy";
/// `service` label of the API.
pub(crate) const API: &str = "oathkeeper-api";

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Series {
    requests: BTreeMap<(String, String, String, u16), u64>,
    durations: BTreeMap<(String, String, String), Histogram>,
    decisions: BTreeMap<(String, String, String), u64>,
}

/// The access proxy's metrics.
pub(crate) struct Metrics {
    prefix: String,
    state: Mutex<Series>,
}

impl Metrics {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            state: Mutex::new(Series::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn request(&self, service: &str, method: &str, path: &str, status: u16, took: Duration) {
        let request = collapse(path);
        let mut state = self.lock();
        *state
            .requests
            .entry((service.into(), method.into(), request.clone(), status))
            .or_default() += 1;
        let h = state
            .durations
            .entry((service.into(), method.into(), request))
            .or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Counts one pipeline outcome for `rule` (empty when no rule matched).
    pub(crate) fn decision(&self, service: &str, rule: &str, decision: &str) {
        *self
            .lock()
            .decisions
            .entry((service.into(), rule.into(), decision.into()))
            .or_default() += 1;
    }

    /// The exposition text.
    pub(crate) fn render(&self) -> String {
        let p = &self.prefix;
        let state = self.lock();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP {p}requests_total Total number of requests");
        let _ = writeln!(out, "# TYPE {p}requests_total counter");
        for ((service, method, request, status), n) in &state.requests {
            let _ = writeln!(
                out,
                "{p}requests_total{{service=\"{}\",method=\"{}\",request=\"{}\",status_code=\"{status}\"}} {n}",
                esc(service),
                esc(method),
                esc(request)
            );
        }
        let _ = writeln!(
            out,
            "# HELP {p}requests_duration_seconds Time spent serving requests"
        );
        let _ = writeln!(out, "# TYPE {p}requests_duration_seconds histogram");
        for ((service, method, request), h) in &state.durations {
            let labels = format!(
                "service=\"{}\",method=\"{}\",request=\"{}\"",
                esc(service),
                esc(method),
                esc(request)
            );
            for (bound, n) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(
                    out,
                    "{p}requests_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "{p}requests_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "{p}requests_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "{p}requests_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP {p}decisions_total Pipeline outcomes by access rule"
        );
        let _ = writeln!(out, "# TYPE {p}decisions_total counter");
        for ((service, rule, decision), n) in &state.decisions {
            let _ = writeln!(
                out,
                "{p}decisions_total{{service=\"{}\",rule=\"{}\",decision=\"{}\"}} {n}",
                esc(service),
                esc(rule),
                esc(decision)
            );
        }
        out
    }
}

/// Oathkeeper's `collapse_request_paths`: only the first path segment.
fn collapse(path: &str) -> String {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    format!("/{first}")
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware counting and timing every request of one server (`service`).
pub(crate) async fn track(
    State((access, service)): State<(Access, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let skip = path.starts_with("/health/") || path == "/metrics";
    let start = Instant::now();
    let response = next.run(request).await;
    if !skip {
        access.metrics().request(
            service,
            &method,
            &path,
            response.status().as_u16(),
            start.elapsed(),
        );
    }
    response
}
