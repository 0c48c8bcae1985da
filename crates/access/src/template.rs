//! The part of Go's `text/template` (with Oathkeeper's function map: sprig plus `print` and
//! `printIndex`) that Oathkeeper's docs and quickstarts use: literal text, `{{ .Field.path }}`,
//! pipelines (`{{ .Extra | toJson }}`), function calls with string, number and field
//! arguments, `.MatchContext.Header.Get "X-Name"`, the `{{-`/`-}}` trim markers and
//! `missingkey=zero`. Functions: `print`, `printIndex`, `index`, `len`, `urlquery`, and the
//! sprig subset `toJson`, `toPrettyJson`, `upper`, `lower`, `title`, `trim`, `trimPrefix`,
//! `trimSuffix`, `replace`, `quote`, `squote`, `default`, `empty`, `join`, `splitList`,
//! `contains`, `hasPrefix`, `hasSuffix`, `b64enc`, `b64dec`.
//!
//! The Go-template crate on crates.io, `gtmpl` (0.7), brings its own value model and lacks
//! `missingkey=zero` and the sprig functions, so this is a small evaluator over
//! `serde_json::Value` instead. Anything else —
//! `if`/`range`, variables, parentheses — is rejected when the rule loads, naming the
//! construct, so a rule never silently renders differently from Oathkeeper.

use base64::Engine as _;
use serde_json::Value;

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Action(Vec<Command>),
}

/// One stage of a pipeline: a function call or (first stage only) a value.
#[derive(Debug, Clone)]
enum Command {
    Value(Arg),
    Call(Func, Vec<Arg>),
    /// `.X.Header.Get "name"`: Go's `http.Header.Get` on a header map.
    HeaderGet(Vec<String>, Vec<Arg>),
}

#[derive(Debug, Clone)]
enum Arg {
    Field(Vec<String>),
    Str(String),
    Number(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy)]
enum Func {
    Print,
    PrintIndex,
    Index,
    Len,
    Urlquery,
    ToJson,
    ToPrettyJson,
    Upper,
    Lower,
    Title,
    Trim,
    TrimPrefix,
    TrimSuffix,
    Replace,
    Quote,
    Squote,
    Default,
    Empty,
    Join,
    SplitList,
    Contains,
    HasPrefix,
    HasSuffix,
    B64enc,
    B64dec,
}

impl Func {
    fn by_name(name: &str) -> Option<Self> {
        Some(match name {
            "print" => Self::Print,
            "printIndex" => Self::PrintIndex,
            "index" => Self::Index,
            "len" => Self::Len,
            "urlquery" => Self::Urlquery,
            "toJson" => Self::ToJson,
            "toPrettyJson" => Self::ToPrettyJson,
            "upper" => Self::Upper,
            "lower" => Self::Lower,
            "title" => Self::Title,
            "trim" => Self::Trim,
            "trimPrefix" => Self::TrimPrefix,
            "trimSuffix" => Self::TrimSuffix,
            "replace" => Self::Replace,
            "quote" => Self::Quote,
            "squote" => Self::Squote,
            "default" => Self::Default,
            "empty" => Self::Empty,
            "join" => Self::Join,
            "splitList" => Self::SplitList,
            "contains" => Self::Contains,
            "hasPrefix" => Self::HasPrefix,
            "hasSuffix" => Self::HasSuffix,
            "b64enc" => Self::B64enc,
            "b64dec" => Self::B64dec,
            _ => return None,
        })
    }

    /// How many arguments the function takes (`None`: any number).
    fn arity(self) -> Option<usize> {
        match self {
            Self::Print => None,
            Self::PrintIndex | Self::Index | Self::Default | Self::Join | Self::SplitList => {
                Some(2)
            }
            Self::Contains | Self::HasPrefix | Self::HasSuffix => Some(2),
            Self::TrimPrefix | Self::TrimSuffix => Some(2),
            Self::Replace => Some(3),
            _ => Some(1),
        }
    }
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

    /// Renders against `data` (see `AuthenticationSession::template_data`); errors are
    /// runtime failures Go reports too (e.g. `b64dec` of something that is not base64).
    pub fn render(&self, data: &Value) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Action(pipeline) => match eval_pipeline(pipeline, data)? {
                    Value::Null => out.push_str("<no value>"),
                    v => out.push_str(&go_format(&v)),
                },
            }
        }
        Ok(out)
    }
}

fn parse_action(inner: &str) -> Result<Vec<Command>, String> {
    let words = tokenize(inner)?;
    if words.is_empty() {
        return Err("empty template action {{ }}".into());
    }
    let mut commands = Vec::new();
    for (stage, command) in words.split(|w| w == "|").enumerate() {
        let Some((first, args)) = command.split_first() else {
            return Err(format!("missing command in pipeline {{{{ {inner} }}}}"));
        };
        let args: Vec<Arg> = args
            .iter()
            .map(|a| parse_arg(a))
            .collect::<Result<_, _>>()?;
        if let Some(func) = Func::by_name(first) {
            let given = args.len() + usize::from(stage > 0);
            if let Some(n) = func.arity().filter(|n| *n != given) {
                return Err(format!(
                    "{first} takes {n} argument(s), {given} given in {{{{ {inner} }}}}"
                ));
            }
            commands.push(Command::Call(func, args));
        } else if let Some(path) = first.strip_prefix('.').and_then(|p| p.strip_suffix(".Get")) {
            if args.len() + usize::from(stage > 0) != 1 {
                return Err(format!(
                    "Header.Get takes one argument in {{{{ {inner} }}}}"
                ));
            }
            let Arg::Field(fields) = parse_arg(&format!(".{path}"))? else {
                return Err(format!("invalid field in {{{{ {inner} }}}}"));
            };
            commands.push(Command::HeaderGet(fields, args));
        } else if stage == 0 && args.is_empty() {
            commands.push(Command::Value(parse_arg(first)?));
        } else if first.starts_with('.') || first.starts_with('"') {
            return Err(format!(
                "template action {{{{ {inner} }}}} is not supported (a value cannot take arguments or follow a pipe)"
            ));
        } else {
            return Err(format!(
                "template function {first:?} is not supported (see the template module's list)"
            ));
        }
    }
    Ok(commands)
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
        } else if c == '|' {
            chars.next();
            words.push("|".into());
        } else if c == '(' || c == ')' || c == '$' {
            return Err(format!(
                "template syntax {c:?} in {{{{ {inner} }}}} is not supported"
            ));
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' {
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
    if word == "true" || word == "false" {
        return Ok(Arg::Bool(word == "true"));
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
        .map_err(|_| format!("template argument {word:?} is not supported"))
}

impl Arg {
    /// The argument's value; missing fields are nil (`missingkey=zero`).
    fn eval(&self, data: &Value) -> Value {
        match self {
            Arg::Str(s) => Value::String(s.clone()),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Number(n) => serde_json::Number::from_f64(*n)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Arg::Field(path) => {
                let mut cur = data;
                for f in path {
                    match cur.as_object().and_then(|o| o.get(f)) {
                        Some(v) => cur = v,
                        None => return Value::Null,
                    }
                }
                cur.clone()
            }
        }
    }
}

fn eval_pipeline(commands: &[Command], data: &Value) -> Result<Value, String> {
    let mut result: Option<Value> = None;
    for command in commands {
        let mut args: Vec<Value> = match command {
            Command::Value(arg) => {
                result = Some(arg.eval(data));
                continue;
            }
            Command::Call(_, args) | Command::HeaderGet(_, args) => {
                args.iter().map(|a| a.eval(data)).collect()
            }
        };
        args.extend(result.take());
        result = Some(match command {
            Command::HeaderGet(path, _) => {
                let name = args.first().map(go_string).unwrap_or_default();
                let first = Arg::Field(path.clone())
                    .eval(data)
                    .get(crate::pipeline::canonical_header(&name))
                    .and_then(|v| v.get(0))
                    .cloned();
                first.unwrap_or_else(|| Value::String(String::new()))
            }
            Command::Call(func, _) => apply(*func, &args)?,
            Command::Value(_) => Value::Null,
        });
    }
    Ok(result.unwrap_or(Value::Null))
}

fn str_value(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

/// A value as a Go string argument (nil is empty).
fn go_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => go_format(other),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn apply(func: Func, args: &[Value]) -> Result<Value, String> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
    let s = |i: usize| go_string(&arg(i));
    Ok(match func {
        Func::Print => str_value(go_print(args)),
        Func::PrintIndex => {
            let item = match (arg(0), arg(1)) {
                (Value::Array(items), Value::Number(n)) => n
                    .as_f64()
                    .filter(|i| *i >= 0.0 && i.fract() == 0.0)
                    .and_then(|i| items.get(i as usize).cloned()),
                _ => None,
            };
            str_value(
                item.filter(|v| !v.is_null())
                    .map(|v| go_format(&v))
                    .unwrap_or_default(),
            )
        }
        Func::Index => match (arg(0), arg(1)) {
            (Value::Object(map), key) => map.get(&go_string(&key)).cloned().unwrap_or(Value::Null),
            (Value::Array(items), Value::Number(n)) => n
                .as_f64()
                .filter(|i| *i >= 0.0 && i.fract() == 0.0)
                .and_then(|i| items.get(i as usize).cloned())
                .ok_or_else(|| format!("index {n} out of range"))?,
            (Value::Null, _) => Value::Null,
            (other, _) => return Err(format!("cannot index {}", go_format(&other))),
        },
        Func::Len => Value::from(match arg(0) {
            Value::String(s) => s.len(),
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::Null => 0,
            other => return Err(format!("len of {}", go_format(&other))),
        }),
        Func::Urlquery => {
            str_value(url::form_urlencoded::byte_serialize(s(0).as_bytes()).collect::<String>())
        }
        Func::ToJson => str_value(go_json(&arg(0), false)),
        Func::ToPrettyJson => str_value(go_json(&arg(0), true)),
        Func::Upper => str_value(s(0).to_uppercase()),
        Func::Lower => str_value(s(0).to_lowercase()),
        Func::Title => {
            let mut out = String::new();
            let mut start = true;
            for c in s(0).chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            str_value(out)
        }
        Func::Trim => str_value(s(0).trim()),
        Func::TrimPrefix => {
            let (prefix, text) = (s(0), s(1));
            str_value(text.strip_prefix(&prefix).unwrap_or(&text))
        }
        Func::TrimSuffix => {
            let (suffix, text) = (s(0), s(1));
            str_value(text.strip_suffix(&suffix).unwrap_or(&text))
        }
        Func::Replace => str_value(s(2).replace(&s(0), &s(1))),
        Func::Quote => str_value(if arg(0).is_null() {
            String::new()
        } else {
            Value::String(s(0)).to_string()
        }),
        Func::Squote => str_value(if arg(0).is_null() {
            String::new()
        } else {
            format!("'{}'", s(0))
        }),
        Func::Default => {
            if is_empty(&arg(1)) {
                arg(0)
            } else {
                arg(1)
            }
        }
        Func::Empty => Value::Bool(is_empty(&arg(0))),
        Func::Join => {
            let items = match arg(1) {
                Value::Array(items) => items.iter().map(go_string).collect::<Vec<_>>(),
                Value::Null => Vec::new(),
                other => vec![go_string(&other)],
            };
            str_value(items.join(&s(0)))
        }
        Func::SplitList => Value::Array(s(1).split(s(0).as_str()).map(str_value).collect()),
        Func::Contains => Value::Bool(s(1).contains(&s(0))),
        Func::HasPrefix => Value::Bool(s(1).starts_with(&s(0))),
        Func::HasSuffix => Value::Bool(s(1).ends_with(&s(0))),
        Func::B64enc => str_value(base64::engine::general_purpose::STANDARD.encode(s(0))),
        Func::B64dec => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s(0))
                .map_err(|e| format!("b64dec: {e}"))?;
            str_value(String::from_utf8_lossy(&bytes))
        }
    })
}

/// Go's `json.Marshal` (via sprig's `toJson`): map keys sorted, `<`, `>`, `&` escaped.
fn go_json(value: &Value, pretty: bool) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let v = sorted(value);
    let text = if pretty {
        serde_json::to_string_pretty(&v)
    } else {
        serde_json::to_string(&v)
    }
    .unwrap_or_default();
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Oathkeeper's `print`: nil prints nothing, other values as Go's `fmt.Sprint` (spaces only
/// between operands when neither is a string).
fn go_print(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = true;
    for (i, value) in args.iter().enumerate() {
        if args.len() == 1 && value.is_null() {
            return String::new();
        }
        let is_string = value.is_string();
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        out.push_str(&go_format(value));
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
               "MatchContext": {"RegexpCaptureGroups": ["g0"], "Header": {"X-Forwarded-User": ["bob"]}}})
    }

    fn render(t: &str) -> String {
        Template::parse(t)
            .expect("parses")
            .render(&data())
            .expect("renders")
    }

    #[test]
    fn renders_the_supported_subset() {
        assert_eq!(
            render("id={{ print .Subject }};mail={{ print .Extra.identity.traits.email }}"),
            "id=u1;mail=a@x"
        );
        assert_eq!(
            render("{{ .Subject }}|{{ print .Extra.missing }}|{{ .Extra.missing }}"),
            "u1||<no value>"
        );
        assert_eq!(
            render(
                "{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}{{ printIndex .MatchContext.RegexpCaptureGroups 5 }}"
            ),
            "g0"
        );
        assert_eq!(
            render("  {{- print .Extra.n -}}  x {{ print .Extra.big }}"),
            "3x 1.234567e+06"
        );
    }

    #[test]
    fn pipelines_and_sprig_functions() {
        assert_eq!(
            render("{{ .Extra.identity | toJson }}"),
            r#"{"traits":{"email":"a@x"}}"#
        );
        assert_eq!(render("{{ .Subject | upper | quote }}"), r#""U1""#);
        assert_eq!(render(r#"{{ .Extra.nope | default "guest" }}"#), "guest");
        assert_eq!(render(r#"{{ default "guest" .Subject }}"#), "u1");
        assert_eq!(
            render(
                r#"{{ .MatchContext.Header.Get "x-forwarded-user" }}|{{ .MatchContext.Header.Get "nope" }}"#
            ),
            "bob|"
        );
        assert_eq!(
            render(r#"{{ index .Extra.identity.traits "email" }}"#),
            "a@x"
        );
        assert_eq!(
            render(r#"{{ join "," .MatchContext.RegexpCaptureGroups }}"#),
            "g0"
        );
        assert_eq!(render(r#"{{ "a<b" | toJson }}"#), r#""a\u003cb""#);
        assert_eq!(render(r#"{{ .Subject | b64enc | b64dec }}"#), "u1");
        assert_eq!(render(r#"{{ trimPrefix "u" .Subject }}"#), "1");
        let bad = Template::parse(r#"{{ "%%%" | b64dec }}"#).expect("parses");
        assert!(bad.render(&data()).is_err());
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let err = Template::parse("{{ if .Subject }}x{{ end }}").expect_err("if unsupported");
        assert!(err.contains("\"if\""), "{err}");
        let err = Template::parse("{{ frobnicate .Subject }}").expect_err("unknown function");
        assert!(err.contains("frobnicate"), "{err}");
        let err = Template::parse("{{ .Nope }}").expect_err("unknown field");
        assert!(err.contains(".Nope"), "{err}");
        let err = Template::parse("{{ upper }}").expect_err("arity");
        assert!(err.contains("upper takes 1"), "{err}");
        let err = Template::parse("{{ (upper .Subject) }}").expect_err("parens");
        assert!(err.contains("'('"), "{err}");
        assert!(Template::parse("{{ .Subject").is_err());
    }
}
