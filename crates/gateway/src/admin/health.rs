//! Per-node target health (notes §4.2): `GET /upstreams/{u}/health` and
//! `PUT /upstreams/{u}/targets/{t}/healthy|unhealthy`. Health lives in memory on each node,
//! as in Kong; nothing here touches the database beyond looking the entities up.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use http::StatusCode;
use serde_json::{Value, json};

use super::crud::find;
use super::error::AdminError;
use super::{Gw, Result};
use crate::Inner;
use crate::balancer::checks_enabled;
use crate::entity::{Entity, Target, Upstream};

/// The upstream's targets, oldest first.
async fn targets_of(inner: &Inner, upstream: &Upstream) -> Result<Vec<Target>> {
    let mut all: Vec<Target> = inner.store.all().await?;
    all.retain(|t| t.upstream.id == upstream.id);
    all.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
    Ok(all)
}

/// `HEALTHY`, `UNHEALTHY` or, with every check off and no manual mark, `HEALTHCHECKS_OFF`.
fn health_word(healthy: bool, checks: bool) -> &'static str {
    match (healthy, checks) {
        (false, _) => "UNHEALTHY",
        (true, false) => "HEALTHCHECKS_OFF",
        (true, true) => "HEALTHY",
    }
}

/// `GET /upstreams/{u}/health[?balancer_health=1]`.
pub(crate) async fn upstream_health(
    State(inner): Gw,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>> {
    let upstream: Upstream = find(&inner, &key, None).await?;
    let targets = targets_of(&inner, &upstream).await?;
    let checks = checks_enabled(&upstream.healthchecks);
    let node_id = inner.node_id;
    let balancer_health = form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "balancer_health" && v != "0" && v != "false");
    let mut total = 0i64;
    let mut available = 0i64;
    let mut data = Vec::with_capacity(targets.len());
    for t in &targets {
        let healthy = inner.health.state(upstream.id, &t.target).is_healthy();
        total += t.weight;
        if healthy {
            available += t.weight;
        }
        let word = health_word(healthy, checks);
        let (host, port) = t.target.rsplit_once(':').unwrap_or((&t.target, "8000"));
        let mut entry = serde_json::to_value(t).unwrap_or_else(|_| json!({}));
        entry["health"] = json!(word);
        entry["data"] = json!({
            "addresses": [{
                "ip": host.trim_start_matches('[').trim_end_matches(']'),
                "port": port.parse::<u16>().unwrap_or(8000),
                "health": word,
                "weight": t.weight,
            }],
            "weight": {
                "total": t.weight,
                "available": if healthy { t.weight } else { 0 },
                "unavailable": if healthy { 0 } else { t.weight },
            },
        });
        data.push(entry);
    }
    if balancer_health {
        let threshold = upstream.healthchecks["threshold"].as_f64().unwrap_or(0.0);
        let ok = total > 0 && (available as f64) * 100.0 / (total as f64) > threshold;
        let word = health_word(ok || total == 0, checks);
        return Ok(Json(json!({
            "data": {
                "id": upstream.id,
                "health": word,
                "balancer_health": word,
                "details": {
                    "weight": {
                        "total": total,
                        "available": available,
                        "unavailable": total - available,
                    },
                },
            },
            "next": null,
            "node_id": node_id,
        })));
    }
    Ok(Json(json!({
        "data": data,
        "next": null,
        "node_id": node_id,
        "total": data.len(),
    })))
}

async fn set(inner: &Inner, key: &str, child: &str, healthy: bool) -> Result<StatusCode> {
    let upstream: Upstream = find(inner, key, None).await?;
    let wanted = <Target as Entity>::normalize_key(child);
    let target = targets_of(inner, &upstream)
        .await?
        .into_iter()
        .rev()
        .find(|t| t.id.to_string() == wanted || t.target == wanted)
        .ok_or(AdminError::NotFound)?;
    inner
        .health
        .state(upstream.id, &target.target)
        .set_healthy(healthy);
    tracing::info!(upstream = %upstream.name, target = %target.target, healthy,
        "target health set through the Admin API");
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /upstreams/{u}/targets/{t}/healthy`: 204.
pub(crate) async fn set_healthy(
    State(inner): Gw,
    Path((key, child)): Path<(String, String)>,
) -> Result<StatusCode> {
    set(&inner, &key, &child, true).await
}

/// `PUT /upstreams/{u}/targets/{t}/unhealthy`: 204.
pub(crate) async fn set_unhealthy(
    State(inner): Gw,
    Path((key, child)): Path<(String, String)>,
) -> Result<StatusCode> {
    set(&inner, &key, &child, false).await
}
