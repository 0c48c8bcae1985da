//! `when`: the conditions under which an error handler is responsible. Entries are ORed; inside
//! one entry `error` and `request` are ANDed; list values are ORed. An empty `when` is always
//! responsible.
//!
//! Media types: the handler's wildcards expand (`text/*`, `*/*`), the request's are taken
//! literally (so a browser's trailing `*/*;q=0.8` does not make every handler match), and a
//! missing header counts as `application/octet-stream`. `request.cidr` (allowed by the schema)
//! is ignored, as Oathkeeper ignores it.

use http::HeaderMap;
use http::header::{ACCEPT, CONTENT_TYPE};
use serde::Deserialize;

use crate::pipeline::PipelineError;

/// One `when` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct When {
    #[serde(default)]
    error: Vec<String>,
    #[serde(default)]
    request: Option<RequestCondition>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RequestCondition {
    #[serde(default)]
    header: Option<HeaderCondition>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct HeaderCondition {
    #[serde(default)]
    accept: Vec<String>,
    #[serde(default)]
    content_type: Vec<String>,
}

/// Whether any entry of `whens` matches (an empty list always does).
pub fn matches(whens: &[When], error: &PipelineError, headers: &HeaderMap) -> bool {
    whens.is_empty() || whens.iter().any(|w| w.matches(error, headers))
}

impl When {
    fn matches(&self, error: &PipelineError, headers: &HeaderMap) -> bool {
        if !self.error.is_empty() {
            let name = error.kind_name();
            if !self.error.contains(&name) {
                return false;
            }
        }
        let Some(header) = self.request.as_ref().and_then(|r| r.header.as_ref()) else {
            return true;
        };
        media_matches(&header.accept, headers, ACCEPT)
            && media_matches(&header.content_type, headers, CONTENT_TYPE)
    }
}

fn media_matches(wanted: &[String], headers: &HeaderMap, name: http::HeaderName) -> bool {
    if wanted.is_empty() {
        return true;
    }
    let mut offered: Vec<String> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|t| !t.is_empty())
        .collect();
    if offered.is_empty() {
        offered.push("application/octet-stream".into());
    }
    wanted.iter().any(|w| {
        let w = w.to_ascii_lowercase();
        let (wt, ws) = w.split_once('/').unwrap_or((w.as_str(), "*"));
        offered.iter().any(|o| {
            let (ot, os) = o.split_once('/').unwrap_or((o.as_str(), ""));
            (wt == "*" || wt == ot) && (ws == "*" || ws == os)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn when(v: serde_json::Value) -> Vec<When> {
        serde_json::from_value(v).expect("valid when")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn tutorial_condition_selects_browsers_only() {
        let w = when(
            json!([{"error": ["unauthorized", "forbidden"], "request": {"header": {"accept": ["text/html"]}}}]),
        );
        let browser = headers(&[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")]);
        assert!(matches(&w, &PipelineError::unauthorized(), &browser));
        assert!(matches(&w, &PipelineError::forbidden(), &browser));
        assert!(!matches(&w, &PipelineError::no_rule(), &browser));
        assert!(!matches(
            &w,
            &PipelineError::unauthorized(),
            &headers(&[("accept", "application/json")])
        ));
        assert!(!matches(
            &w,
            &PipelineError::unauthorized(),
            &headers(&[("accept", "*/*")])
        ));
        assert!(!matches(
            &w,
            &PipelineError::unauthorized(),
            &HeaderMap::new()
        ));
    }

    #[test]
    fn handler_wildcards_expand_and_missing_headers_are_octet_stream() {
        let w = when(json!([{"request": {"header": {"content_type": ["application/*"]}}}]));
        assert!(matches(
            &w,
            &PipelineError::unauthorized(),
            &HeaderMap::new()
        ));
        assert!(matches(
            &w,
            &PipelineError::unauthorized(),
            &headers(&[("content-type", "application/json; charset=utf-8")])
        ));
        assert!(!matches(
            &w,
            &PipelineError::unauthorized(),
            &headers(&[("content-type", "text/plain")])
        ));
        assert!(matches(
            &[],
            &PipelineError::internal("x"),
            &HeaderMap::new()
        ));
    }
}
