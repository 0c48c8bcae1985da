//! `header`: sets upstream headers from templates over the session
//! (`X-User: {{ print .Subject }}`).

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::pipeline::{AuthenticationSession, PipelineError, RequestContext};
use crate::template::Template;

/// The `header` mutator.
pub struct Header {
    headers: Vec<(HeaderName, Template)>,
}

impl Header {
    /// Compiles `{headers: {Name: template}}`; bad names and unsupported templates are errors.
    pub fn compile(config: &Value) -> Result<Self, String> {
        let raw: BTreeMap<String, String> = config
            .get("headers")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| format!("headers: {e}"))?
            .unwrap_or_default();
        let headers = raw
            .into_iter()
            .map(|(name, template)| {
                let header = HeaderName::try_from(name.as_str())
                    .map_err(|_| format!("headers: invalid header name {name:?}"))?;
                let template =
                    Template::parse(&template).map_err(|e| format!("headers.{name}: {e}"))?;
                Ok((header, template))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { headers })
    }

    /// Renders every header and sets it on the session.
    pub fn mutate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        let data = session.template_data(request);
        for (name, template) in &self.headers {
            let rendered = template
                .render(&data)
                .map_err(|e| PipelineError::internal(format!("headers.{name}: {e}")))?;
            let value = HeaderValue::try_from(rendered).map_err(|_| {
                PipelineError::internal(format!(
                    "header mutator: the value rendered for {name} is not a valid header value"
                ))
            })?;
            session.header.insert(name.clone(), value);
        }
        Ok(())
    }
}
