//! The part of Go's `text/template` that Kratos's e-mail templates use for their data:
//! literal text and field references (`{{ .RecoveryURL }}`, `{{ .Identity.traits.email }}`)
//! with the `{{-`/`-}}` trim markers; a missing field renders empty (Kratos's templates run
//! with `missingkey=zero`). Any other action (`if`, `range`, `define`, functions) is refused
//! when the configuration loads, naming it, so an override never renders differently from
//! Kratos without saying so.

use serde_json::Value;

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Vec<String>),
}

impl GoTemplate {
    /// Parses `text`; the error names the unsupported action.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let mut literal = &rest[..start];
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| "unclosed action: missing }}".to_string())?;
            let mut action = &after[..end];
            let mut next = &after[end + 2..];
            if let Some(a) = action.strip_prefix('-') {
                action = a;
                literal = literal.trim_end();
            }
            if let Some(a) = action.strip_suffix('-') {
                action = a;
                next = next.trim_start();
            }
            if !literal.is_empty() {
                parts.push(Part::Text(literal.to_string()));
            }
            let action = action.trim();
            let path = action
                .strip_prefix('.')
                .filter(|p| {
                    !p.is_empty()
                        && p.split('.').all(|s| {
                            !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
                        })
                })
                .ok_or_else(|| {
                    format!("unsupported template action {{{{ {action} }}}}: only fields such as {{{{ .RecoveryURL }}}} are supported")
                })?;
            parts.push(Part::Field(path.split('.').map(str::to_string).collect()));
            rest = next;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Renders with `data`; strings render bare, other values as JSON, missing fields empty.
    pub fn render(&self, data: &Value) -> String {
        self.render_with(data, |s| s.to_string())
    }

    /// Renders an HTML template: like [`GoTemplate::render`], with every value HTML-escaped
    /// (Kratos renders HTML bodies with Go's `html/template`, which escapes values too).
    pub fn render_html(&self, data: &Value) -> String {
        self.render_with(data, super::template::escape_html)
    }

    fn render_with(&self, data: &Value, escape: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(path) => {
                    let value = path.iter().try_fold(data, |v, key| v.get(key.as_str()));
                    match value {
                        Some(Value::String(s)) => out.push_str(&escape(s)),
                        Some(Value::Null) | None => {}
                        Some(other) => out.push_str(&escape(&other.to_string())),
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_render_and_other_actions_are_refused() {
        let t = GoTemplate::parse("Hi {{ .Identity.traits.email }},\n  {{- .Missing -}}  \nopen {{.RecoveryURL}} ({{ .N }})")
            .expect("parses");
        let data = json!({"Identity": {"traits": {"email": "a@b.c"}}, "RecoveryURL": "http://x/?a=1", "N": 3});
        assert_eq!(t.render(&data), "Hi a@b.c,open http://x/?a=1 (3)");
        let html = GoTemplate::parse("<a href=\"{{ .U }}\">{{ .Identity.traits.email }}</a>")
            .expect("parses");
        let data =
            json!({"U": "http://x/?a=1&b=\"2\"", "Identity": {"traits": {"email": "<b>@c"}}});
        assert_eq!(
            html.render_html(&data),
            "<a href=\"http://x/?a=1&amp;b=&#34;2&#34;\">&lt;b&gt;@c</a>"
        );
        for bad in [
            "{{ if .X }}x{{ end }}",
            "{{ .X | upper }}",
            "{{ . }}",
            "{{ .X",
            "{{ .a..b }}",
        ] {
            assert!(GoTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
