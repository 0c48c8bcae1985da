//! The reverse proxy (`serve.proxy`): match → pipeline → forward to the rule's upstream.
//!
//! Forwarding, in order and why:
//! 1. hop-by-hop headers (and any header the client names in `Connection`) are dropped first,
//!    so a client cannot use `Connection` to drop headers the mutators set;
//! 2. `X-Forwarded-*`/`Forwarded` are dropped unless `trust_forwarded_headers` (Oathkeeper
//!    v26 behaviour; GHSA-vhr5-ggp3-qq85);
//! 3. the session's headers (from the mutators) are set last, overriding client headers, so
//!    a client cannot spoof `X-User`-style headers;
//! 4. the path is the upstream's path joined with the cleaned request path, minus
//!    `strip_path`; the query is kept; `Host` is the upstream's unless `preserve_host`.
//!
//! Bodies stream both ways through the pooled upstream client.
//!
//! Upgrades (WebSockets): a request with `Connection: upgrade` that the pipeline allowed is
//! sent upstream with its `Connection`/`Upgrade` headers restored; when the upstream answers
//! `101 Switching Protocols`, both connections are taken over from hyper and bytes are copied
//! both ways until either side closes. A refused upgrade gets the error handlers' answer like
//! any other request, and the connection is never switched.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderValue};
use http::{StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::Access;
use crate::pipeline::errors::json;
use crate::pipeline::{AuthenticationSession, PipelineError, RequestContext};
use crate::request::{self, is_hop_by_hop};
use crate::rule::{Rule, matcher::clean};

pub(crate) fn router(access: Access) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(access)
}

async fn handle(State(access): State<Access>, req: Request) -> Response {
    let (parts, mut body) = req.into_parts();
    let snapshot = access.snapshot();
    let trust = snapshot.config.trust_forwarded_headers;
    let (ctx, valid) = request::for_proxy(&parts, trust);
    if let Err(error) = valid {
        return snapshot.respond(&error.into(), &ctx);
    }
    let outcome = snapshot.decide(&ctx, &mut body).await;
    access.record(crate::metrics::PROXY, &outcome);
    let decision = match outcome {
        Ok(d) => d,
        Err(failure) => return snapshot.respond(&failure, &ctx),
    };
    match forward(
        &access,
        &decision.rule,
        &decision.session,
        &ctx,
        parts,
        body,
        trust,
    )
    .await
    {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(rule = %decision.rule.raw.id, %error, reason = ?error.reason, "upstream failed");
            json::write(&error, false)
        }
    }
}

/// Percent-encodes a decoded path for the request line (Go's `EscapedPath` set).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path.Join(upstream, request)`, then the first `/<strip_path>` removed.
fn upstream_path(upstream: &str, request: &str, strip_path: &str) -> String {
    let mut path = clean(&format!("{upstream}/{request}"));
    let strip = strip_path.trim_matches('/');
    if !strip.is_empty() {
        path = path.replacen(&format!("/{strip}"), "", 1);
    }
    if path.is_empty() {
        "/".to_string()
    } else {
        path
    }
}

async fn forward(
    access: &Access,
    rule: &Rule,
    session: &AuthenticationSession,
    ctx: &RequestContext,
    mut parts: http::request::Parts,
    body: Body,
    trust: bool,
) -> Result<Response, PipelineError> {
    let upstream = rule.upstream.as_ref().ok_or_else(|| {
        PipelineError::internal(format!("access rule {:?} has no upstream URL", rule.raw.id))
    })?;
    let authority = match (upstream.host_str(), upstream.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => return Err(PipelineError::internal("upstream URL has no host")),
    };
    let mut target = format!(
        "{}://{authority}{}",
        upstream.scheme(),
        encode_path(&upstream_path(
            upstream.path(),
            &ctx.path,
            &rule.raw.upstream.strip_path
        ))
    );
    if let Some(q) = &ctx.query {
        target.push('?');
        target.push_str(q);
    }
    parts.uri = target
        .parse::<Uri>()
        .map_err(|e| PipelineError::internal(format!("invalid upstream URL {target}: {e}")))?;
    parts.version = Version::HTTP_11;

    let headers = &mut parts.headers;
    let upgrade = request::upgrade_protocol(headers);
    request::strip_for_upstream(headers, trust);
    let client_side = match &upgrade {
        Some(protocol) => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol.clone());
            parts.extensions.remove::<OnUpgrade>()
        }
        None => None,
    };
    for name in session.header.keys() {
        if is_hop_by_hop(name) || name == header::HOST || name == header::CONTENT_LENGTH {
            continue;
        }
        if let Some(value) = session.header.get(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    if !rule.raw.upstream.preserve_host {
        let host = HeaderValue::try_from(authority.as_str())
            .map_err(|_| PipelineError::internal("upstream host is not a valid header value"))?;
        headers.insert(header::HOST, host);
    }

    let request = http::Request::from_parts(parts, body);
    let mut response = access
        .client()
        .request(request)
        .await
        .map_err(|e| PipelineError::bad_gateway(format!("{upstream}: {e}")))?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_side) = client_side else {
            return Err(PipelineError::bad_gateway(format!(
                "{upstream}: switched protocols without being asked to"
            )));
        };
        let protocol = response.headers().get(header::UPGRADE).cloned();
        let upstream_side = hyper::upgrade::on(&mut response);
        tokio::spawn(tunnel(rule.raw.id.clone(), client_side, upstream_side));
        let (mut parts, _) = response.into_parts();
        request::strip_hop_by_hop(&mut parts.headers);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(protocol) = protocol {
            parts.headers.insert(header::UPGRADE, protocol);
        }
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = response.into_parts();
    request::strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)).into_response())
}

/// Joins a switched client connection to the switched upstream connection, copying bytes
/// both ways until either side closes.
async fn tunnel(rule: String, client: OnUpgrade, upstream: OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(error) => {
            tracing::warn!(%rule, %error, "upgrade failed");
            return;
        }
    };
    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((sent, received)) => {
            tracing::debug!(%rule, sent, received, "upgraded connection closed")
        }
        Err(error) => tracing::debug!(%rule, %error, "upgraded connection ended"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_paths_join_and_strip() {
        assert_eq!(upstream_path("", "/hello", ""), "/hello");
        assert_eq!(upstream_path("/", "/hello", ""), "/hello");
        assert_eq!(upstream_path("/api", "/hello", ""), "/api/hello");
        assert_eq!(
            upstream_path(
                "",
                "/.ory/kratos/public/self-service/login",
                "/.ory/kratos/public/"
            ),
            "/self-service/login"
        );
        assert_eq!(upstream_path("", "/strip", "strip"), "/");
        assert_eq!(encode_path("/a b/%/ü"), "/a%20b/%25/%C3%BC");
    }
}
