//! `/health/alive` and `/health/ready`, answered as Ory services answer them.

use axum::Json;
use serde_json::{Value, json};

/// The process is up.
pub(super) async fn alive() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can serve pages; the identity server's own health is its own endpoint's
/// business, so an outage there shows on the pages, not here (as in kratos-selfservice-ui-node).
pub(super) async fn ready() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
