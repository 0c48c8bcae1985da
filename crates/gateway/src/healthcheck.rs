//! Active health checks (notes §4.2, Kong's `healthchecks.active`): each node probes the
//! targets of every upstream with an active interval set and feeds the outcomes into the
//! same per-target state the passive checks and `/upstreams/{u}/health` use.
//!
//! Healthy targets are probed every `active.healthy.interval` seconds and unhealthy ones
//! every `active.unhealthy.interval` (0 = not probed), at most `concurrency` at a time, each
//! on a fresh connection bounded by `timeout`. `http` sends `GET http_path` with `headers`;
//! `https` does the same over TLS (SNI `https_sni`, else the target's host name; the
//! certificate verified against the system's roots unless `https_verify_certificate` is
//! false, the upstream's `client_certificate` presented when the target asks for one, a
//! failed handshake counting as a TCP failure); `tcp` only connects.
//!
//! Extension (not in Kong): a target that passive checks alone made unhealthy gets no
//! traffic, so Kong never sees it recover without active checks. When the upstream has no
//! `active.unhealthy.interval`, such a target is re-probed every
//! [`GatewayOptions::passive_recovery`](crate::GatewayOptions) with the active settings and
//! marked healthy after `active.healthy.successes` (else `passive.healthy.successes`, else 1)
//! good answers.
//!
//! Key decision: probers are compiled from the same snapshot as the routing table. Each
//! upstream's prober is restarted only when its health-check settings, its target list or
//! its client certificate (id and version) change, so rebuilds caused by unrelated writes
//! do not reset probe timers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::balancer::{Cause, HealthRegistry, Outcome, TargetState, Thresholds};
use crate::entity::{Certificate, Target, Upstream};

/// How a probe talks to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeType {
    Http,
    Https,
    Tcp,
}

/// One upstream's active-check settings.
#[derive(Debug, Clone)]
struct Settings {
    kind: ProbeType,
    /// `https` probes: the TLS client settings (built once per prober) and `https_sni`.
    tls: Option<Arc<rustls::ClientConfig>>,
    https_sni: Option<String>,
    path: String,
    timeout: Duration,
    concurrency: usize,
    headers: Vec<(HeaderName, HeaderValue)>,
    host_header: Option<String>,
    healthy_interval: Option<Duration>,
    unhealthy_interval: Option<Duration>,
    thresholds: Thresholds,
    /// Successes that bring back a target passive checks made unhealthy.
    recovery_successes: u64,
}

fn seconds(v: &Value) -> Option<Duration> {
    v.as_f64()
        .filter(|s| *s > 0.0 && s.is_finite())
        .map(Duration::from_secs_f64)
}

impl Settings {
    /// The settings of `u`, whose client certificate (if any) is looked up in `certs`.
    fn from_upstream(u: &Upstream, certs: &HashMap<Uuid, &Certificate>) -> Self {
        let a = &u.healthchecks["active"];
        let kind = match a["type"].as_str() {
            Some("tcp") => ProbeType::Tcp,
            Some("https") => ProbeType::Https,
            _ => ProbeType::Http,
        };
        let mut headers = Vec::new();
        if let Some(map) = a["headers"].as_object() {
            for (name, values) in map {
                let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                    continue;
                };
                let values: Vec<&Value> = match values {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for v in values {
                    if let Some(v) = v.as_str().and_then(|v| HeaderValue::from_str(v).ok()) {
                        headers.push((name.clone(), v));
                    }
                }
            }
        }
        let tls = (kind == ProbeType::Https).then(|| {
            let verify = a["https_verify_certificate"].as_bool().unwrap_or(true);
            let mut config = portcullis_http::tls_client_config(&portcullis_http::UpstreamTls {
                verify: verify.then(portcullis_http::Verify::default),
                client_certificate: client_certificate(u, certs),
            });
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        });
        let thresholds = Thresholds::from_config(&u.healthchecks, "active");
        let passive = Thresholds::from_config(&u.healthchecks, "passive");
        let recovery_successes = [thresholds.successes, passive.successes, 1]
            .into_iter()
            .find(|n| *n > 0)
            .unwrap_or(1);
        Self {
            kind,
            tls,
            https_sni: a["https_sni"].as_str().map(str::to_string),
            path: a["http_path"].as_str().unwrap_or("/").to_string(),
            timeout: seconds(&a["timeout"]).unwrap_or(Duration::from_secs(1)),
            concurrency: a["concurrency"]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(10),
            headers,
            host_header: u.host_header.clone(),
            healthy_interval: seconds(&a["healthy"]["interval"]),
            unhealthy_interval: seconds(&a["unhealthy"]["interval"]),
            thresholds,
            recovery_successes,
        }
    }
}

/// The upstream's `client_certificate` as rustls keys (see [`crate::upstream_tls::client_keys`]).
fn client_certificate(
    u: &Upstream,
    certs: &HashMap<Uuid, &Certificate>,
) -> Option<Arc<rustls::sign::CertifiedKey>> {
    crate::upstream_tls::client_keys(certs, u.client_certificate?.id, "upstream", u.id)
}

/// A target as the prober sees it.
#[derive(Debug, Clone)]
struct Probed {
    authority: String,
    state: Arc<TargetState>,
}

/// The running probers, one per upstream that needs one; dropping it stops them all.
#[derive(Debug, Default)]
pub(crate) struct Checkers {
    running: std::sync::Mutex<HashMap<Uuid, (String, JoinSet<()>)>>,
}

impl Checkers {
    /// Starts, restarts or stops probers to match `upstreams` and `targets` (and the
    /// `certificates` the upstreams present).
    pub(crate) fn update(
        &self,
        upstreams: &[Upstream],
        targets: &[Target],
        certificates: &[Certificate],
        registry: &HealthRegistry,
        passive_recovery: Option<Duration>,
    ) {
        let mut running = match self.running.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        let certs: HashMap<Uuid, &Certificate> = certificates.iter().map(|c| (c.id, c)).collect();
        let mut wanted = HashMap::new();
        for u in upstreams {
            let settings = Settings::from_upstream(u, &certs);
            let recovery = passive_recovery.filter(|_| settings.unhealthy_interval.is_none());
            if settings.healthy_interval.is_none()
                && settings.unhealthy_interval.is_none()
                && recovery.is_none()
            {
                continue;
            }
            let mut own: Vec<&Target> = targets
                .iter()
                .filter(|t| t.upstream.id == u.id && t.weight > 0)
                .collect();
            own.sort_by(|a, b| a.target.cmp(&b.target));
            own.dedup_by(|a, b| a.target == b.target);
            let names: Vec<&str> = own.iter().map(|t| t.target.as_str()).collect();
            // A new version of the client certificate restarts the prober with it.
            let client = u
                .client_certificate
                .map(|fk| (fk.id, certs.get(&fk.id).map(|c| c.updated_at)));
            let fingerprint = format!(
                "{}|{:?}|{:?}|{recovery:?}|{client:?}",
                u.healthchecks, names, u.host_header
            );
            let probed: Vec<Probed> = own
                .iter()
                .map(|t| Probed {
                    authority: t.target.clone(),
                    state: registry.state(u.id, &t.target),
                })
                .collect();
            wanted.insert(u.id, (fingerprint, settings, recovery, probed));
        }
        running.retain(|id, (fp, _)| wanted.get(id).is_some_and(|(w, ..)| w == fp));
        for (id, (fingerprint, settings, recovery, probed)) in wanted {
            if running.contains_key(&id) || probed.is_empty() {
                continue;
            }
            let mut set = JoinSet::new();
            let settings = Arc::new(settings);
            let probed = Arc::new(probed);
            if let Some(every) = settings.healthy_interval {
                set.spawn(probe_loop(
                    Arc::clone(&settings),
                    Arc::clone(&probed),
                    every,
                    Which::Healthy,
                ));
            }
            if let Some(every) = settings.unhealthy_interval {
                set.spawn(probe_loop(
                    Arc::clone(&settings),
                    Arc::clone(&probed),
                    every,
                    Which::Unhealthy,
                ));
            }
            if let Some(every) = recovery {
                set.spawn(probe_loop(
                    Arc::clone(&settings),
                    Arc::clone(&probed),
                    every,
                    Which::PassiveRecovery,
                ));
            }
            running.insert(id, (fingerprint, set));
        }
    }
}

/// Which targets a loop probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Healthy,
    Unhealthy,
    /// Unhealthy by passive checks (the extension).
    PassiveRecovery,
}

impl Which {
    fn wants(self, state: &TargetState) -> bool {
        match self {
            Which::Healthy => state.is_healthy(),
            Which::Unhealthy => !state.is_healthy(),
            Which::PassiveRecovery => !state.is_healthy() && state.cause() == Cause::Passive,
        }
    }
}

async fn probe_loop(
    settings: Arc<Settings>,
    targets: Arc<Vec<Probed>>,
    every: Duration,
    which: Which,
) {
    let limit = Arc::new(Semaphore::new(settings.concurrency));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut round = JoinSet::new();
        for t in targets.iter().filter(|t| which.wants(&t.state)) {
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                return;
            };
            let settings = Arc::clone(&settings);
            let t = t.clone();
            round.spawn(async move {
                let outcome = probe(&settings, &t.authority).await;
                let thresholds = if which == Which::PassiveRecovery {
                    Thresholds {
                        successes: settings.recovery_successes,
                        ..settings.thresholds.clone()
                    }
                } else {
                    settings.thresholds.clone()
                };
                if let Some(healthy) = t.state.record(outcome, &thresholds, Cause::Active) {
                    tracing::warn!(target = %t.authority, healthy, "target health changed by active health checks");
                }
                drop(permit);
            });
        }
        while round.join_next().await.is_some() {}
    }
}

/// One probe, bounded by the timeout.
async fn probe(s: &Settings, authority: &str) -> Outcome {
    let attempt = async {
        let stream = match TcpStream::connect(authority).await {
            Ok(stream) => stream,
            Err(_) => return Outcome::TcpFailure,
        };
        match (s.kind, &s.tls) {
            (ProbeType::Tcp, _) => Outcome::Connected,
            (ProbeType::Https, Some(tls)) => {
                let Some(name) = server_name(s.https_sni.as_deref(), authority) else {
                    return Outcome::TcpFailure;
                };
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls));
                match connector.connect(name, stream).await {
                    Ok(stream) => http_probe(s, authority, stream).await,
                    Err(e) => {
                        tracing::debug!(target = %authority, error = %e,
                            "health check TLS handshake failed");
                        Outcome::TcpFailure
                    }
                }
            }
            _ => http_probe(s, authority, stream).await,
        }
    };
    tokio::time::timeout(s.timeout, attempt)
        .await
        .unwrap_or(Outcome::Timeout)
}

/// The name a TLS probe asks for: `https_sni`, else the target's host (an IP address is
/// verified as such and sends no SNI).
fn server_name(
    https_sni: Option<&str>,
    authority: &str,
) -> Option<rustls::pki_types::ServerName<'static>> {
    let host = https_sni.unwrap_or_else(|| {
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host);
        host.trim_start_matches('[').trim_end_matches(']')
    });
    rustls::pki_types::ServerName::try_from(host.to_string()).ok()
}

async fn http_probe<S>(s: &Settings, authority: &str, stream: S) -> Outcome
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ok((mut sender, conn)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
    else {
        return Outcome::TcpFailure;
    };
    tokio::spawn(conn);
    let host = s.host_header.as_deref().unwrap_or(authority);
    let default_port = if s.kind == ProbeType::Https {
        ":443"
    } else {
        ":80"
    };
    let host = host.strip_suffix(default_port).unwrap_or(host);
    let mut req = match Request::get(s.path.as_str())
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "portcullis-healthcheck")
        .body(Empty::new())
    {
        Ok(req) => req,
        Err(_) => return Outcome::TcpFailure,
    };
    for (name, value) in &s.headers {
        req.headers_mut().append(name.clone(), value.clone());
    }
    match sender.send_request(req).await {
        Ok(res) => Outcome::Status(res.status().as_u16()),
        Err(_) => Outcome::TcpFailure,
    }
}
