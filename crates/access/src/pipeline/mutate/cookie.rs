//! `cookie`: sets upstream cookies from templates. The `Cookie` header sent upstream is the
//! rendered cookies (by name) followed by the request's cookies that none of them replaces.

use std::collections::BTreeMap;

use http::HeaderValue;
use http::header::COOKIE;
use serde_json::Value;

use crate::pipeline::{AuthenticationSession, PipelineError, RequestContext};
use crate::template::Template;

/// The `cookie` mutator.
pub struct Cookie {
    cookies: Vec<(String, Template)>,
}

impl Cookie {
    /// Compiles `{cookies: {name: template}}`.
    pub fn compile(config: &Value) -> Result<Self, String> {
        let raw: BTreeMap<String, String> = config
            .get("cookies")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| format!("cookies: {e}"))?
            .unwrap_or_default();
        let cookies = raw
            .into_iter()
            .map(|(name, t)| {
                let template = Template::parse(&t).map_err(|e| format!("cookies.{name}: {e}"))?;
                Ok((name, template))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { cookies })
    }

    /// Renders the cookies into the session's `Cookie` header.
    pub fn mutate(
        &self,
        request: &RequestContext,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        let data = session.template_data(request);
        let mut pairs = Vec::new();
        for (name, template) in &self.cookies {
            let value = template
                .render(&data)
                .map_err(|e| PipelineError::internal(format!("cookies.{name}: {e}")))?;
            pairs.push(format!("{name}={value}"));
        }
        for existing in request
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let name = existing.split_once('=').map_or(existing, |(n, _)| n);
            if !self.cookies.iter().any(|(n, _)| n == name) {
                pairs.push(existing.to_string());
            }
        }
        let value = HeaderValue::try_from(pairs.join("; ")).map_err(|_| {
            PipelineError::internal("cookie mutator: a rendered cookie is not a valid header value")
        })?;
        session.header.insert(COOKIE, value);
        Ok(())
    }
}
