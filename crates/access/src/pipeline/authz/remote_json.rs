//! `remote_json`: asks a policy service. POSTs the rendered `payload` (a template that must
//! produce JSON) with `Content-Type: application/json`, the request's `Authorization` and the
//! rendered `headers` (empty values skipped). 200 allows; 403 denies; 429 is passed through;
//! anything else is a 500. Headers listed in `forward_response_headers_to_upstream` are
//! copied from the answer onto the session (so they reach the upstream).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;

use crate::pipeline::{
    AuthenticationSession, CompileContext, PipelineError, RequestContext, remote,
};
use crate::template::Template;

#[derive(Deserialize)]
struct Config {
    remote: String,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    forward_response_headers_to_upstream: Vec<String>,
}

/// The `remote_json` authorizer (and, with `payload: None`, `remote`).
pub struct RemoteJson {
    remote: http::Uri,
    payload: Option<Template>,
    headers: Vec<(HeaderName, Template)>,
    forward: Vec<HeaderName>,
    timeout: Duration,
    client: portcullis_http::UpstreamClient,
}

impl RemoteJson {
    /// Compiles the merged config; `json` selects `remote_json` (payload) over `remote`
    /// (the request's own body).
    pub fn compile(config: &Value, ctx: &CompileContext, json: bool) -> Result<Self, String> {
        let c: Config = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let remote = c
            .remote
            .parse::<http::Uri>()
            .map_err(|e| format!("invalid remote {:?}: {e}", c.remote))?;
        let payload = json
            .then(|| Template::parse(&c.payload).map_err(|e| format!("payload: {e}")))
            .transpose()?;
        let headers = c
            .headers
            .iter()
            .map(|(name, t)| {
                let header = HeaderName::try_from(name.as_str())
                    .map_err(|_| format!("headers: invalid header name {name:?}"))?;
                Ok((
                    header,
                    Template::parse(t).map_err(|e| format!("headers.{name}: {e}"))?,
                ))
            })
            .collect::<Result<_, String>>()?;
        let forward = c
            .forward_response_headers_to_upstream
            .iter()
            .map(|h| {
                HeaderName::try_from(h.as_str()).map_err(|_| {
                    format!("forward_response_headers_to_upstream: invalid header name {h:?}")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            remote,
            payload,
            headers,
            forward,
            timeout: remote::timeout(config)?,
            client: ctx.client.clone(),
        })
    }

    /// Whether this is `remote`, which sends the request's own body.
    pub fn forwards_body(&self) -> bool {
        self.payload.is_none()
    }

    /// Asks the remote; `body` is the request's body (for `remote`).
    pub async fn authorize(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
        body: Option<bytes::Bytes>,
    ) -> Result<(), PipelineError> {
        let data = session.template_data(request);
        let mut builder = http::Request::builder()
            .method(Method::POST)
            .uri(self.remote.clone());
        let body = match &self.payload {
            Some(template) => {
                let rendered = template
                    .render(&data)
                    .map_err(|e| PipelineError::internal(format!("payload: {e}")))?;
                serde_json::from_str::<Value>(&rendered).map_err(|e| {
                    PipelineError::internal(format!("payload is not valid JSON: {e}"))
                })?;
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(rendered)
            }
            None => {
                if let Some(ct) = request.headers.get(header::CONTENT_TYPE) {
                    builder = builder.header(header::CONTENT_TYPE, ct.clone());
                }
                body.map(Body::from).unwrap_or_else(Body::empty)
            }
        };
        if let Some(auth) = request.headers.get(header::AUTHORIZATION) {
            builder = builder.header(header::AUTHORIZATION, auth.clone());
        }
        for (name, template) in &self.headers {
            let value = template
                .render(&data)
                .map_err(|e| PipelineError::internal(format!("headers.{name}: {e}")))?;
            if value.is_empty() {
                continue;
            }
            let value = HeaderValue::try_from(value).map_err(|_| {
                PipelineError::internal(format!(
                    "the value rendered for {name} is not a valid header"
                ))
            })?;
            builder = builder.header(name.clone(), value);
        }
        let call = builder
            .body(body)
            .map_err(|e| PipelineError::internal(e.to_string()))?;
        let (parts, _) = remote::call(&self.client, call, self.timeout)
            .await
            .map_err(PipelineError::internal)?;
        match parts.status {
            StatusCode::OK => {}
            StatusCode::FORBIDDEN => {
                return Err(PipelineError::forbidden().with_reason("the remote authorizer denied"));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                return Err(PipelineError::too_many_requests(
                    parts
                        .headers
                        .get(header::RETRY_AFTER)
                        .map(|v| (header::RETRY_AFTER, v.clone()))
                        .into_iter()
                        .collect(),
                ));
            }
            other => {
                return Err(PipelineError::internal(format!(
                    "the remote authorizer answered {other}"
                )));
            }
        }
        for name in &self.forward {
            if let Some(value) = parts.headers.get(name) {
                session.header.insert(name.clone(), value.clone());
            }
        }
        Ok(())
    }
}
