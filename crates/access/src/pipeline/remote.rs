//! Calls from the pipeline to other services (`remote`, `remote_json`, `hydrator`): one
//! request over the shared upstream client, bounded by the handler's
//! `retry.give_up_after` (Oathkeeper's schema default: 1s).

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;

use super::parse_duration;

/// Without a `retry` block, how long a call may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The deadline from a handler's `retry` config.
pub fn timeout(config: &Value) -> Result<Duration, String> {
    match config
        .pointer("/retry/give_up_after")
        .and_then(Value::as_str)
    {
        Some(text) => parse_duration(text).map_err(|e| format!("retry.give_up_after: {e}")),
        None => Ok(DEFAULT_TIMEOUT),
    }
}

/// Sends `request` and reads the whole answer; errors are transport failures or the deadline.
pub async fn call(
    client: &portcullis_http::UpstreamClient,
    request: http::Request<Body>,
    deadline: Duration,
) -> Result<(http::response::Parts, Bytes), String> {
    let uri = request.uri().clone();
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok::<_, String>((parts, body))
    };
    match tokio::time::timeout(deadline, exchange).await {
        Ok(result) => result.map_err(|e| format!("{uri}: {e}")),
        Err(_) => Err(format!("{uri}: no answer within {deadline:?}")),
    }
}
