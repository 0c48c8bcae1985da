//! The part of Go's `text/template` that Oathkeeper's header templates use in practice:
//! literal text, `{{ .Field.path }}`, `{{ print ... }}` and `{{ printIndex list i }}`, with the
//! `{{-`/`-}}` trim markers and Oathkeeper's `missingkey=zero` behaviour. Anything else is
//! rejected when the rule is loaded, naming the unsupported construct, so a rule never renders
//! differently from Oathkeeper silently.

use serde_json::Value;

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Action(Action),
}

#[derive(Debug, Clone)]
enum Action {
    /// `{{ .A.b }}`: Go prints a missing value as `<no value>`.
    Value(Arg),
    /// `{{ print a b }}`.
    Print(Vec<Arg>),
    /// `{{ printIndex list i }}`.
    PrintIndex(Arg, Arg),
}

#[derive(Debug, Clone)]
enum Arg {
    Field(Vec<String>),
    Str(String),
    Number(f64),
}

/// Top-level fields of Oathkeeper's `AuthenticationSession`.
const FIELDS: &[&str] = &["Subject", "Extra", "Header", "MatchContext"];

impl Template {
    /// Parses `text`; errors name the unsupported construct.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let mut literal = &rest[..start];
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed action in template {text:?}"))?;
            let mut inner = &after[..end];
            if let Some(stripped) = inner.strip_prefix("- ") {
                literal = literal.trim_end();
                inner = stripped;
            }
            let mut trim_next = false;
            if let Some(stripped) = inner.strip_suffix(" -") {
                trim_next = true;
                inner = stripped;
            }
            if !literal.is_empty() {
                parts.push(Part::Text(literal.to_string()));
            }
            parts.push(Part::Action(parse_action(inner.trim())?));
            rest = &after[end + 2..];
            if trim_next {
                rest = rest.trim_start();
            }
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Renders against `data` (see `AuthenticationSession::template_data`).
    pub fn render(&self, data: &Value) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Action(Action::Value(arg)) => match arg.eval(data) {
                    Some(Value::Null) | None => out.push_str("<no value>"),
                    Some(v) => out.push_str(&go_format(&v)),
                },
                Part::Action(Action::Print(args)) => out.push_str(&go_print(args, data)),
                Part::Action(Action::PrintIndex(list, index)) => {
                    let item = match (list.eval(data), index.eval(data)) {
                        (Some(Value::Array(items)), Some(Value::Number(n))) => n
                            .as_f64()
                            .filter(|i| *i >= 0.0 && i.fract() == 0.0)
                            .and_then(|i| items.get(i as usize).cloned()),
                        _ => None,
                    };
                    if let Some(v) = item.filter(|v| !v.is_null()) {
                        out.push_str(&go_format(&v));
                    }
                }
            }
        }
        out
    }
}

fn parse_action(inner: &str) -> Result<Action, String> {
    let words = tokenize(inner)?;
    let Some((first, args)) = words.split_first() else {
        return Err("empty template action {{ }}".into());
    };
    match first.as_str() {
        "print" => Ok(Action::Print(
            args.iter()
                .map(|a| parse_arg(a))
                .collect::<Result<_, _>>()?,
        )),
        "printIndex" => match args {
            [list, index] => Ok(Action::PrintIndex(parse_arg(list)?, parse_arg(index)?)),
            _ => Err("printIndex takes exactly two arguments".into()),
        },
        w if w.starts_with('.') && args.is_empty() => Ok(Action::Value(parse_arg(w)?)),
        w if w.starts_with('.') => Err(format!(
            "template action {{{{ {inner} }}}} is not supported (method calls and pipelines are not implemented yet)"
        )),
        w => Err(format!(
            "template function {w:?} is not supported yet (supported: print, printIndex, .Field)"
        )),
    }
}

fn tokenize(inner: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::from("\"");
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(other) => s.push(other),
                        None => return Err("unterminated string in template".into()),
                    },
                    Some('"') => break,
                    Some(other) => s.push(other),
                    None => return Err("unterminated string in template".into()),
                }
            }
            words.push(s);
        } else if c == '|' || c == '(' || c == ')' || c == '$' {
            return Err(format!(
                "template syntax {c:?} in {{{{ {inner} }}}} is not supported yet"
            ));
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
            words.push(w);
        }
    }
    Ok(words)
}

fn parse_arg(word: &str) -> Result<Arg, String> {
    if let Some(s) = word.strip_prefix('"') {
        return Ok(Arg::Str(s.to_string()));
    }
    if word == "." {
        return Ok(Arg::Field(Vec::new()));
    }
    if let Some(path) = word.strip_prefix('.') {
        let fields: Vec<String> = path.split('.').map(str::to_string).collect();
        if fields.iter().any(String::is_empty) {
            return Err(format!("invalid field {word:?} in template"));
        }
        if !FIELDS.contains(&fields[0].as_str()) {
            return Err(format!(
                "template field {word:?} does not exist (fields: .Subject, .Extra, .Header, .MatchContext)"
            ));
        }
        return Ok(Arg::Field(fields));
    }
    word.parse::<f64>()
        .map(Arg::Number)
        .map_err(|_| format!("template argument {word:?} is not supported yet"))
}

impl Arg {
    fn eval(&self, data: &Value) -> Option<Value> {
        match self {
            Arg::Str(s) => Some(Value::String(s.clone())),
            Arg::Number(n) => serde_json::Number::from_f64(*n).map(Value::Number),
            Arg::Field(path) => {
                let mut cur = data;
                for f in path {
                    cur = cur.as_object()?.get(f)?;
                }
                Some(cur.clone())
            }
        }
    }
}

/// Oathkeeper's `print`: nil prints nothing, other values as Go's `fmt.Sprint` (spaces only
/// between operands when neither is a string).
fn go_print(args: &[Arg], data: &Value) -> String {
    let mut out = String::new();
    let mut prev_string = true;
    for (i, arg) in args.iter().enumerate() {
        let value = arg.eval(data).unwrap_or(Value::Null);
        if args.len() == 1 && value.is_null() {
            return String::new();
        }
        let is_string = value.is_string();
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        out.push_str(&go_format(&value));
        prev_string = is_string;
    }
    out
}

/// Go's `%v` for values decoded from JSON.
fn go_format(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map(go_float).unwrap_or_else(|| n.to_string()),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_format).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_format(&map[k])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Go's `%v` of a float64 (`strconv` 'g' with the shortest precision: exponent form from 1e+06
/// or below 1e-04, which is why Go templates print large JSON numbers as `1.234567e+06`).
fn go_float(f: f64) -> String {
    let sci = format!("{f:e}");
    let exp: i32 = sci
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let (mantissa, _) = sci.split_once('e').unwrap_or((&sci, ""));
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({"Subject": "u1", "Extra": {"identity": {"traits": {"email": "a@x"}}, "n": 3.0, "big": 1234567.0},
               "MatchContext": {"RegexpCaptureGroups": ["g0"]}})
    }

    #[test]
    fn renders_the_supported_subset() {
        let t = Template::parse(
            "id={{ print .Subject }};mail={{ print .Extra.identity.traits.email }}",
        )
        .expect("parses");
        assert_eq!(t.render(&data()), "id=u1;mail=a@x");
        let t = Template::parse("{{ .Subject }}|{{ print .Extra.missing }}|{{ .Extra.missing }}")
            .expect("parses");
        assert_eq!(t.render(&data()), "u1||<no value>");
        let t = Template::parse("{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}{{ printIndex .MatchContext.RegexpCaptureGroups 5 }}").expect("parses");
        assert_eq!(t.render(&data()), "g0");
        let t =
            Template::parse("  {{- print .Extra.n -}}  x {{ print .Extra.big }}").expect("parses");
        assert_eq!(t.render(&data()), "3x 1.234567e+06");
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let err = Template::parse("{{ .Extra | toJson }}").expect_err("pipes unsupported");
        assert!(err.contains("'|'"), "{err}");
        let err = Template::parse("{{ upper .Subject }}").expect_err("unknown function");
        assert!(err.contains("upper"), "{err}");
        let err = Template::parse("{{ .Nope }}").expect_err("unknown field");
        assert!(err.contains(".Nope"), "{err}");
        assert!(Template::parse("{{ .Subject").is_err());
    }
}
