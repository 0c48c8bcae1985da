//! The runtime snapshot the proxy reads: the compiled router plus, per route, everything
//! needed to forward without touching the store.

use std::sync::Arc;

use http::HeaderValue;
use portcullis_http::{Timeouts, UpstreamClient};
use portcullis_router::Router;
use uuid::Uuid;

use crate::balancer::{Balancer, HealthRegistry};
use crate::entity::{Route, Service, Target as UpstreamTarget, Upstream as UpstreamEntity};

/// Where a matched route sends requests, precomputed at build time.
#[derive(Debug)]
pub struct Upstream {
    /// The service id.
    pub service_id: Uuid,
    /// `http` or `https` (others are not proxied).
    pub protocol: String,
    /// The pooled client whose TLS settings are the service's (`tls_verify`,
    /// `tls_verify_depth`, `ca_certificates`, `client_certificate`); shared with every
    /// service of the same settings.
    pub client: UpstreamClient,
    /// `host:port` for the request URI (unused when `balancer` is set).
    pub authority: String,
    /// The upstream the service's host names, balanced per request.
    pub balancer: Option<Arc<Balancer>>,
    /// The Host header value sent upstream (the port omitted when it is the default).
    pub host_header: HeaderValue,
    /// The service's time limits: to connect, per waiting write, per waiting read (the
    /// response head, then each part of the body).
    pub timeouts: Timeouts,
    /// Further tries after a failed one, for requests that can be replayed.
    pub retries: u32,
}

/// A route's runtime data: the router's payload.
#[derive(Debug)]
pub struct Target {
    /// The route id.
    pub route_id: Uuid,
    /// `None` when the route has no service: Kong answers 503.
    pub upstream: Option<Upstream>,
    /// Forward the client's Host header.
    pub preserve_host: bool,
    /// The route accepts plain HTTP.
    pub accepts_http: bool,
    /// Status for plain-HTTP requests when it does not.
    pub https_redirect_status_code: u16,
}

/// The compiled table: immutable, swapped whole after every change.
pub type Table = Router<Arc<Target>>;

/// Errors building a table.
pub type TableError = portcullis_router::RouterError;

/// Everything a table is compiled from.
pub struct Snapshot {
    /// Every service.
    pub services: Vec<Service>,
    /// Every route.
    pub routes: Vec<Route>,
    /// Every upstream.
    pub upstreams: Vec<UpstreamEntity>,
    /// Every target.
    pub targets: Vec<UpstreamTarget>,
    /// Every service's upstream client (see [`crate::upstream_tls`]).
    pub clients: std::collections::HashMap<Uuid, UpstreamClient>,
}

/// Compiles a snapshot into a table. Routes of disabled services are left out; a service
/// whose host names an upstream is balanced over that upstream's targets, with runtime
/// state kept in `health`.
pub fn build(snapshot: Snapshot, health: &HealthRegistry) -> Result<Table, TableError> {
    let Snapshot {
        services,
        routes,
        upstreams,
        targets,
        clients,
    } = snapshot;
    let balancers: std::collections::HashMap<&str, Arc<Balancer>> = upstreams
        .iter()
        .map(|u| {
            let own: Vec<&UpstreamTarget> =
                targets.iter().filter(|t| t.upstream.id == u.id).collect();
            (u.name.as_str(), Arc::new(Balancer::build(u, &own, health)))
        })
        .collect();
    let by_id: std::collections::HashMap<Uuid, &Service> =
        services.iter().map(|s| (s.id, s)).collect();
    let mut specs = Vec::with_capacity(routes.len());
    for r in routes {
        let service = r.service.and_then(|fk| by_id.get(&fk.id).copied());
        if service.is_some_and(|s| !s.enabled) {
            continue;
        }
        let upstream = service.map(|s| {
            let client = clients
                .get(&s.id)
                .cloned()
                .unwrap_or_else(portcullis_http::upstream_client_unverified);
            upstream_of(s, balancers.get(s.host.as_str()), client)
        });
        let target = Target {
            route_id: r.id,
            upstream,
            preserve_host: r.preserve_host,
            accepts_http: r.protocols.iter().any(|p| p == "http"),
            https_redirect_status_code: u16::try_from(r.https_redirect_status_code).unwrap_or(426),
        };
        specs.push(portcullis_router::Route {
            id: r.id.to_string(),
            paths: r.paths.unwrap_or_default(),
            hosts: r.hosts.unwrap_or_default(),
            methods: r.methods.unwrap_or_default(),
            headers: r
                .headers
                .map(|h| h.into_iter().collect())
                .unwrap_or_default(),
            snis: r.snis.unwrap_or_default(),
            strip_path: r.strip_path,
            regex_priority: r.regex_priority,
            service_path: service.and_then(|s| s.path.clone()),
            data: Arc::new(target),
        });
    }
    Router::new(specs)
}

fn upstream_of(s: &Service, balancer: Option<&Arc<Balancer>>, client: UpstreamClient) -> Upstream {
    let host = if s.host.contains(':') {
        format!("[{}]", s.host)
    } else {
        s.host.clone()
    };
    let authority = format!("{host}:{}", s.port);
    let default_port = matches!(
        (s.protocol.as_str(), s.port),
        ("http" | "grpc", 80) | ("https" | "grpcs", 443)
    );
    let header = if default_port {
        host
    } else {
        authority.clone()
    };
    Upstream {
        service_id: s.id,
        protocol: s.protocol.clone(),
        client,
        authority,
        balancer: balancer.cloned(),
        host_header: HeaderValue::from_str(&header)
            .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
        timeouts: s.timeouts(),
        retries: u32::try_from(s.retries).unwrap_or(5),
    }
}
