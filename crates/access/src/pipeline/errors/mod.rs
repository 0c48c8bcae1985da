//! Error handlers and their selection (Oathkeeper's `HandleError`): the rule's own handlers
//! whose `when` matches (exactly one may), else the first of `errors.fallback` whose `when`
//! matches, else a 500.

pub mod json;
pub mod redirect;
pub mod when;
pub mod www_authenticate;

use axum::response::Response;
use serde_json::Value;

use super::{PipelineError, RequestContext};

/// A compiled error handler with its conditions.
pub struct ErrorHandler {
    when: Vec<when::When>,
    kind: HandlerKind,
}

enum HandlerKind {
    Json(json::JsonHandler),
    Redirect(redirect::Redirect),
    WwwAuthenticate(www_authenticate::WwwAuthenticate),
}

impl ErrorHandler {
    /// Compiles the handler `id` from its merged config.
    pub fn compile(id: &str, config: &Value) -> Result<Self, String> {
        let kind = match id {
            "json" => HandlerKind::Json(json::JsonHandler::compile(config)),
            "redirect" => HandlerKind::Redirect(redirect::Redirect::compile(config)?),
            "www_authenticate" => {
                HandlerKind::WwwAuthenticate(www_authenticate::WwwAuthenticate::compile(config)?)
            }
            other => return Err(format!("the {other} error handler is not implemented yet")),
        };
        let when = match config.get("when") {
            None | Some(Value::Null) => Vec::new(),
            Some(w) => serde_json::from_value(w.clone()).map_err(|e| format!("when: {e}"))?,
        };
        Ok(Self { when, kind })
    }

    /// Whether this handler is responsible for `error` on `request`.
    pub fn matches(&self, error: &PipelineError, request: &RequestContext) -> bool {
        when::matches(&self.when, error, &request.headers)
    }

    /// Writes the response.
    pub fn respond(&self, error: &PipelineError, request: &RequestContext) -> Response {
        match &self.kind {
            HandlerKind::Json(h) => h.respond(error),
            HandlerKind::Redirect(h) => h.respond(request),
            HandlerKind::WwwAuthenticate(h) => h.respond(),
        }
    }
}

/// The global fallback chain: each name with its compiled handler, or why it cannot run.
pub type Fallback = Vec<(String, Result<ErrorHandler, String>)>;

/// Picks the handler for `error` and writes the response.
pub fn handle(
    error: &PipelineError,
    request: &RequestContext,
    rule_handlers: &[ErrorHandler],
    fallback: &Fallback,
) -> Response {
    let responsible: Vec<&ErrorHandler> = rule_handlers
        .iter()
        .filter(|h| h.matches(error, request))
        .collect();
    match responsible.as_slice() {
        [one] => return one.respond(error, request),
        [] => {}
        _ => {
            return json::write(
                &PipelineError::internal("more than one error handler is responsible"),
                false,
            );
        }
    }
    for (name, handler) in fallback {
        match handler {
            Ok(h) if h.matches(error, request) => return h.respond(error, request),
            Ok(_) => {}
            Err(reason) => {
                tracing::error!(handler = %name, %reason, "fallback error handler cannot run");
                return json::write(&PipelineError::internal(reason.clone()), false);
            }
        }
    }
    tracing::warn!(error = %error, "no error handler is responsible");
    json::write(
        &PipelineError::internal("no error handler is responsible"),
        false,
    )
}
