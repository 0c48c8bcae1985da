//! `json`: Oathkeeper's JSON error body `{"error":{"code","status","message","reason"}}`;
//! without `verbose`, the generic message for the status and no reason.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::pipeline::PipelineError;

/// The `json` error handler.
pub struct JsonHandler {
    verbose: bool,
}

impl JsonHandler {
    /// Compiles `{verbose}`.
    pub fn compile(config: &Value) -> Self {
        Self {
            verbose: config
                .get("verbose")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    /// Writes the error.
    pub fn respond(&self, error: &PipelineError) -> Response {
        write(error, self.verbose)
    }
}

/// The generic message herodot uses for a status.
fn generic_message(error: &PipelineError) -> String {
    match error.status.as_u16() {
        400 => "The request was malformed or contained invalid parameters".into(),
        401 => "The request could not be authorized".into(),
        403 => "The requested action was forbidden".into(),
        404 => "The requested resource could not be found".into(),
        429 => "Too many requests".into(),
        500 => "An internal server error occurred, please contact the system administrator".into(),
        _ => error.message.clone(),
    }
}

/// Writes `error` in Oathkeeper's JSON shape.
pub fn write(error: &PipelineError, verbose: bool) -> Response {
    let mut body = json!({
        "code": error.status.as_u16(),
        "status": error.status_text(),
        "message": if verbose { error.message.clone() } else { generic_message(error) },
    });
    if let (true, Some(reason), Some(obj)) = (verbose, &error.reason, body.as_object_mut()) {
        obj.insert("reason".into(), Value::String(reason.clone()));
    }
    let mut response = (error.status, Json(json!({"error": body}))).into_response();
    for (name, value) in &error.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}
