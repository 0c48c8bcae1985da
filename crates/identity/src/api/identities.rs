//! Admin identity reads and batch creation: `GET /admin/identities` (keyset pagination with
//! Kratos's `Link` header, legacy `page`/`per_page`, filters `ids`, `credentials_identifier`
//! and `preview_credentials_identifier_similar`), `GET /admin/identities/{id}`, both with
//! `include_credential`, and `PATCH /admin/identities` (batch create with per-item results).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::admin::{CreateIdentityBody, create_from_body, identity_not_found};
use crate::driver::Registry;
use crate::error::ApiError;
use crate::identity::{Identity, View};
use crate::persistence::{IdentityQuery, IdentityStore};
use crate::schema::normalize_identifier;
use crate::x::{self, Ctx};

/// Kratos's default and largest `page_size` for identities.
const DEFAULT_PAGE_SIZE: i64 = 250;
const MAX_PAGE_SIZE: i64 = 500;
/// Legacy `per_page` limit.
const MAX_PER_PAGE: i64 = 1000;
/// The most ids one `ids` filter may name.
const MAX_IDS: usize = 500;
/// The most identities one batch may create, and with plain-text passwords (which are
/// hashed during the request).
const MAX_BATCH: usize = 1000;
const MAX_BATCH_PLAINTEXT: usize = 200;
/// The keyset token of the first page.
const FIRST_PAGE_TOKEN: &str = "00000000-0000-0000-0000-000000000000";

/// The query string as ordered pairs (repeated keys kept).
fn query_pairs(ctx: &Ctx) -> Vec<(String, String)> {
    form_urlencoded::parse(ctx.uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn all<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    all(pairs, name).into_iter().next()
}

/// The identity's admin JSON; credentials named in `include` carry their `config` (for
/// passwords the stored hash), as Kratos's `include_credential` does.
pub(crate) fn admin_json(reg: &Registry, identity: &Identity, include: &[&str]) -> Value {
    let mut v = identity.to_json(&reg.config.public_base_url, View::Admin);
    for kind in include {
        if let (Some(cred), Some(slot)) = (
            identity.credentials.get(*kind),
            v.pointer_mut(&format!("/credentials/{kind}"))
                .and_then(Value::as_object_mut),
        ) {
            slot.insert("config".into(), cred.config.clone());
        }
    }
    v
}

/// `GET /admin/identities/{id}?include_credential=`.
pub(crate) async fn get(
    State(reg): State<Arc<Registry>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return identity_not_found().into_response();
    };
    let pairs = query_pairs(&ctx);
    let include = all(&pairs, "include_credential");
    match reg.store.get_identity(id, true).await {
        Ok(Some(i)) => Json(admin_json(&reg, &i, &include)).into_response(),
        Ok(None) => identity_not_found().into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn parse_size(value: Option<&str>, name: &str, max: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n.min(max))
            .ok_or_else(|| ApiError::bad_request(format!("could not parse parameter {name}"))),
    }
}

/// `GET /admin/identities`.
pub(crate) async fn list(
    State(reg): State<Arc<Registry>>,
    OriginalUri(original): OriginalUri,
    ctx: Ctx,
) -> Response {
    let pairs = query_pairs(&ctx);
    match list_inner(&reg, original.path(), &pairs).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn list_inner(
    reg: &Registry,
    path: &str,
    pairs: &[(String, String)],
) -> Result<Response, ApiError> {
    let include = all(pairs, "include_credential");
    let ids = all(pairs, "ids");
    let ids = if ids.is_empty() {
        None
    } else if ids.len() > MAX_IDS {
        return Err(ApiError::bad_request(format!(
            "The ids filter may name at most {MAX_IDS} identities."
        )));
    } else {
        Some(
            ids.iter()
                .map(|id| {
                    Uuid::parse_str(id).map_err(|_| {
                        ApiError::bad_request(format!("Unable to parse \"{id}\" as an UUID."))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let exact = first(pairs, "credentials_identifier");
    let similar = first(pairs, "preview_credentials_identifier_similar")
        .or_else(|| first(pairs, "credentials_identifier_similar"));
    if exact.is_some() && similar.is_some() {
        return Err(ApiError::bad_request(
            "Cannot pass both credentials_identifier and preview_credentials_identifier_similar.",
        ));
    }
    let mut query = IdentityQuery {
        ids,
        credentials_identifier: exact.map(normalize_identifier),
        identifier_similar: similar.map(str::to_string),
        ..IdentityQuery::default()
    };
    let legacy = first(pairs, "page_token").is_none()
        && (first(pairs, "page").is_some() || first(pairs, "per_page").is_some());
    if legacy {
        let per_page = parse_size(first(pairs, "per_page"), "per_page", MAX_PER_PAGE)?;
        let page = match first(pairs, "page") {
            None => 0,
            Some(p) => p
                .parse::<i64>()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| ApiError::bad_request("could not parse parameter page"))?,
        };
        query.limit = per_page;
        query.offset = page.saturating_mul(per_page);
        let list = reg.store.query_identities(&query).await?;
        let full = i64::try_from(list.len()).unwrap_or(0) == per_page;
        let body: Vec<Value> = list.iter().map(|i| admin_json(reg, i, &include)).collect();
        let mut links = vec![link(
            path,
            pairs,
            "first",
            &[("page", "0".into()), ("per_page", per_page.to_string())],
        )];
        if full {
            links.push(link(
                path,
                pairs,
                "next",
                &[
                    ("page", (page + 1).to_string()),
                    ("per_page", per_page.to_string()),
                ],
            ));
        }
        return Ok(with_link(Json(body).into_response(), &links));
    }
    let size = parse_size(first(pairs, "page_size"), "page_size", MAX_PAGE_SIZE)?;
    let after = match first(pairs, "page_token") {
        None => Uuid::nil(),
        Some(t) => Uuid::parse_str(t).map_err(|_| {
            ApiError::bad_request("The page token is invalid, do not craft your own page tokens.")
        })?,
    };
    query.after = Some(after);
    query.limit = size + 1;
    let mut list = reg.store.query_identities(&query).await?;
    let is_last = i64::try_from(list.len()).unwrap_or(i64::MAX) <= size;
    list.truncate(usize::try_from(size).unwrap_or(0));
    let body: Vec<Value> = list.iter().map(|i| admin_json(reg, i, &include)).collect();
    let mut links = vec![link(
        path,
        pairs,
        "first",
        &[
            ("page_token", FIRST_PAGE_TOKEN.into()),
            ("page_size", size.to_string()),
        ],
    )];
    if let (false, Some(last)) = (is_last, list.last()) {
        links.push(link(
            path,
            pairs,
            "next",
            &[
                ("page_token", last.id.to_string()),
                ("page_size", size.to_string()),
            ],
        ));
    }
    Ok(with_link(Json(body).into_response(), &links))
}

/// One `Link` entry as Kratos (ory/x) writes it: the request path with its query, `set`
/// replacing those keys, all keys sorted as Go's `url.Values.Encode` does.
fn link(path: &str, pairs: &[(String, String)], rel: &str, set: &[(&str, String)]) -> String {
    let mut kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| !set.iter().any(|(s, _)| s == k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(set.iter().map(|(k, v)| (*k, v.as_str())))
        .collect();
    kept.sort_by(|a, b| a.0.cmp(b.0));
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in kept {
        query.append_pair(k, v);
    }
    format!("<{path}?{}>; rel=\"{rel}\"", query.finish())
}

fn with_link(mut res: Response, links: &[String]) -> Response {
    if let Ok(v) = HeaderValue::from_str(&links.join(",")) {
        res.headers_mut().insert(header::LINK, v);
    }
    res
}

/// `patchIdentitiesBody`.
#[derive(Debug, Deserialize)]
struct BatchBody {
    identities: Option<Vec<Value>>,
}

/// `PATCH /admin/identities`: creates each `create` item independently and answers 200 with
/// one `identityPatchResponse` per item (`create` with the new id, or `error`).
pub(crate) async fn batch_patch(
    State(reg): State<Arc<Registry>>,
    ctx: Ctx,
    body: Body,
) -> Response {
    let value = match x::read_body(body)
        .await
        .and_then(|b| x::parse_body(&ctx, &b))
    {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let items = match serde_json::from_value::<BatchBody>(value) {
        Ok(BatchBody {
            identities: Some(items),
        }) => items,
        Ok(_) => {
            return ApiError::bad_request("The request body must contain identities.")
                .into_response();
        }
        Err(e) => {
            return ApiError::bad_request(format!("Unable to decode JSON payload: {e}"))
                .into_response();
        }
    };
    let plaintext = items.iter().any(|i| {
        i.pointer("/create/credentials/password/config/password")
            .is_some_and(|p| !p.is_null())
    });
    let max = if plaintext {
        MAX_BATCH_PLAINTEXT
    } else {
        MAX_BATCH
    };
    if items.len() > max {
        return ApiError::bad_request(format!(
            "The maximum number of identities that can be created at once is {max}{}.",
            if plaintext {
                " when plain-text passwords are imported"
            } else {
                ""
            }
        ))
        .into_response();
    }
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        results.push(patch_one(&reg, item).await);
    }
    Json(json!({ "identities": results })).into_response()
}

async fn patch_one(reg: &Registry, item: Value) -> Value {
    let patch_id = item
        .get("patch_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut out = json!({});
    let outcome = async {
        if let Some(id) = &patch_id {
            Uuid::parse_str(id).map_err(|_| {
                ApiError::bad_request(format!("Unable to parse patch_id \"{id}\" as an UUID."))
            })?;
        }
        let create = item
            .get("create")
            .filter(|c| !c.is_null())
            .cloned()
            .ok_or_else(|| ApiError::bad_request("Only create patches are supported."))?;
        let body: CreateIdentityBody = serde_json::from_value(create)
            .map_err(|e| ApiError::bad_request(format!("Unable to decode JSON payload: {e}")))?;
        create_from_body(reg, body).await
    }
    .await;
    if let Some(map) = out.as_object_mut() {
        match outcome {
            Ok(identity) => {
                map.insert("action".into(), json!("create"));
                map.insert("identity".into(), json!(identity.id));
            }
            Err(e) => {
                map.insert("action".into(), json!("error"));
                map.insert("error".into(), e.error_object());
            }
        }
        if let Some(id) = patch_id.filter(|id| Uuid::parse_str(id).is_ok()) {
            map.insert("patch_id".into(), json!(id));
        }
    }
    out
}
