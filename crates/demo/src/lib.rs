//! The tutorial's two demo microservices, `hello` and `world`, that sit behind the access proxy.
//!
//! Key decision: each service is a plain [`axum::Router`] with one fixed JSON route and no
//! state, so the binary can serve them on their own listeners (`:8090`, `:8091`) or merge them,
//! and tests can serve them on `127.0.0.1:0`.

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

/// The `hello` service: `GET /hello` answers `{"message":"Hello microservice"}`.
pub fn hello_router() -> Router {
    Router::new().route("/hello", get(hello))
}

/// The `world` service: `GET /world` answers `{"message":"World microservice"}`.
pub fn world_router() -> Router {
    Router::new().route("/world", get(world))
}

async fn hello() -> Json<Value> {
    Json(json!({ "message": "Hello microservice" }))
}

async fn world() -> Json<Value> {
    Json(json!({ "message": "World microservice" }))
}
