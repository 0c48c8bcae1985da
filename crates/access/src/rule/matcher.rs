//! Rule matching exactly as Oathkeeper does it: the match URL is `<scheme>://<host><path>` with
//! the path percent-decoded and cleaned (no query), `<…>` delimits the pattern parts of a rule's
//! `match.url` (everything outside is literal), and the pattern parts are either anchored
//! regular expressions (`regexp`, with capture groups) or gobwas-style globs with `.` and `/`
//! as separators (`glob`). Both compile once, at load, to one anchored regular expression.
//!
//! Oathkeeper's `regexp` engine (dlclark/regexp2, .NET syntax) also accepts lookarounds and
//! backreferences, which the linear-time `regex` crate rejects. A pattern `regex` cannot
//! compile is therefore compiled with the backtracking `fancy-regex` instead; every other
//! pattern (all globs included) keeps the fast engine. A fancy match that exceeds the
//! engine's backtracking limit counts as no match (and is logged).

use regex::Regex;
use serde::{Deserialize, Serialize};

/// `access_rules.matching_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Regular expressions (Oathkeeper's default).
    #[default]
    Regexp,
    /// Globs with `.` and `/` separators.
    Glob,
}

/// A compiled `match` block.
#[derive(Debug, Clone)]
pub struct Matcher {
    methods: Vec<String>,
    pattern: Pattern,
    captures: bool,
}

/// The compiled URL pattern, in the engine it needs.
#[derive(Debug, Clone)]
enum Pattern {
    /// Linear-time matching, for everything `regex` can express.
    Fast(Regex),
    /// Backtracking, for regexps with lookarounds or backreferences.
    Fancy(fancy_regex::Regex),
}

impl Matcher {
    /// Compiles `match.url` with the given strategy; `methods` are compared case-insensitively.
    pub fn compile(url: &str, methods: &[String], strategy: Strategy) -> Result<Self, String> {
        let parts = split_delimited(url)?;
        let mut re = String::from("(?s)^");
        for part in parts {
            match (part, strategy) {
                (Part::Literal(text), _) => re.push_str(&regex::escape(text)),
                (Part::Pattern(p), Strategy::Regexp) => {
                    re.push('(');
                    re.push_str(p);
                    re.push(')');
                }
                (Part::Pattern(p), Strategy::Glob) => re.push_str(&glob_to_regex(p)?),
            }
        }
        re.push('$');
        let pattern = match Regex::new(&re) {
            Ok(fast) => Pattern::Fast(fast),
            Err(e) if strategy == Strategy::Glob => {
                return Err(format!("invalid match.url {url:?}: {e}"));
            }
            Err(_) => fancy_regex::Regex::new(&re)
                .map(Pattern::Fancy)
                .map_err(|e| format!("invalid match.url {url:?}: {e}"))?,
        };
        Ok(Self {
            methods: methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
            pattern,
            captures: strategy == Strategy::Regexp,
        })
    }

    /// Whether the rule matches; on a match, the capture groups (`regexp` only).
    pub fn matches(&self, method: &str, url: &str) -> Option<Vec<String>> {
        if !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            return None;
        }
        let groups = |caps: Vec<Option<&str>>| {
            caps.into_iter()
                .skip(1)
                .map(|c| c.unwrap_or_default().to_string())
                .collect()
        };
        match &self.pattern {
            Pattern::Fast(re) if !self.captures => re.is_match(url).then(Vec::new),
            Pattern::Fast(re) => {
                let caps = re.captures(url)?;
                Some(groups(caps.iter().map(|m| m.map(|m| m.as_str())).collect()))
            }
            Pattern::Fancy(re) => match re.captures(url) {
                Ok(caps) => {
                    let caps = caps?;
                    Some(groups(caps.iter().map(|m| m.map(|m| m.as_str())).collect()))
                }
                Err(error) => {
                    tracing::warn!(%error, url, "match.url pattern gave up; treated as no match");
                    None
                }
            },
        }
    }
}

enum Part<'a> {
    Literal(&'a str),
    Pattern(&'a str),
}

/// Splits at balanced `<…>` delimiters (nesting-aware, as ory/ladon).
fn split_delimited(template: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let (mut level, mut start, mut end) = (0usize, 0usize, 0usize);
    for (i, c) in template.char_indices() {
        match c {
            '<' => {
                level += 1;
                if level == 1 {
                    start = i;
                }
            }
            '>' => {
                if level == 0 {
                    return Err(format!("unbalanced '<' '>' in match.url {template:?}"));
                }
                level -= 1;
                if level == 0 {
                    if start > end {
                        parts.push(Part::Literal(&template[end..start]));
                    }
                    parts.push(Part::Pattern(&template[start + 1..i]));
                    end = i + 1;
                }
            }
            _ => {}
        }
    }
    if level != 0 {
        return Err(format!("unbalanced '<' '>' in match.url {template:?}"));
    }
    if end < template.len() {
        parts.push(Part::Literal(&template[end..]));
    }
    Ok(parts)
}

/// Translates a gobwas glob (separators `.` and `/`) into regex syntax: `*` any run without a
/// separator, `**` any run, `?` one non-separator character, `[…]`/`[!…]` classes, `{a,b}`
/// alternatives (nestable), `\` escapes.
fn glob_to_regex(glob: &str) -> Result<String, String> {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut braces = 0usize;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' => {
                if chars.get(i + 1) == Some(&'*') {
                    out.push_str(".*");
                    i += 1;
                } else {
                    out.push_str("[^./]*");
                }
            }
            '?' => out.push_str("[^./]"),
            '\\' => {
                i += 1;
                let escaped = chars
                    .get(i)
                    .ok_or_else(|| format!("glob {glob:?} ends with an escape"))?;
                out.push_str(&regex::escape(&escaped.to_string()));
            }
            '[' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|&c| c == ']')
                    .map(|p| p + i + 1)
                    .ok_or_else(|| format!("unclosed '[' in glob {glob:?}"))?;
                let mut class = &chars[i + 1..close];
                out.push('[');
                if class.first() == Some(&'!') {
                    out.push('^');
                    class = &class[1..];
                }
                if class.is_empty() {
                    return Err(format!("empty character class in glob {glob:?}"));
                }
                for &k in class {
                    if matches!(k, '\\' | '[' | ']' | '^' | '&' | '~') {
                        out.push('\\');
                    }
                    out.push(k);
                }
                out.push(']');
                i = close;
            }
            '{' => {
                braces += 1;
                out.push_str("(?:");
            }
            '}' if braces > 0 => {
                braces -= 1;
                out.push(')');
            }
            ',' if braces > 0 => out.push('|'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    if braces > 0 {
        return Err(format!("unclosed '{{' in glob {glob:?}"));
    }
    Ok(out)
}

/// Percent-decodes and cleans a request path the way Oathkeeper (v26.2+) does before
/// matching: Go's `URL.Path` decoding, then `path.Clean` (no `.`/`..`, no `//`, no trailing
/// slash except the root). Invalid escapes are an error, as in Go's URL parser.
pub fn normalize_path(raw: &str) -> Result<String, String> {
    let decoded = percent_decode(raw)?;
    Ok(clean(&decoded))
}

fn percent_decode(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding in path {raw:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `path.Clean` for a path made rooted.
pub fn clean(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(url: &str) -> Matcher {
        Matcher::compile(url, &["GET".into(), "post".into()], Strategy::Glob).expect("compiles")
    }

    #[test]
    fn glob_matches_like_gobwas() {
        let m = glob("http://127.0.0.1:4455/.ory/kratos/public/<**>");
        assert!(
            m.matches(
                "GET",
                "http://127.0.0.1:4455/.ory/kratos/public/self-service/login"
            )
            .is_some()
        );
        assert!(
            m.matches("get", "http://127.0.0.1:4455/.ory/kratos/public/x")
                .is_some()
        );
        assert!(
            m.matches("POST", "http://127.0.0.1:4455/.ory/kratos/public/x")
                .is_some()
        );
        assert!(
            m.matches("PUT", "http://127.0.0.1:4455/.ory/kratos/public/x")
                .is_none()
        );
        assert!(
            m.matches("GET", "http://127.0.0.1:4455/.ory/kratos/other")
                .is_none()
        );

        let m = glob("http://127.0.0.1:4455/<{registration,welcome,health/{alive,ready},**.css}>");
        for ok in [
            "registration",
            "welcome",
            "health/alive",
            "health/ready",
            "a/b/site.css",
        ] {
            assert!(
                m.matches("GET", &format!("http://127.0.0.1:4455/{ok}"))
                    .is_some(),
                "{ok}"
            );
        }
        for no in ["login", "health/x", "site.js", "registration/x"] {
            assert!(
                m.matches("GET", &format!("http://127.0.0.1:4455/{no}"))
                    .is_none(),
                "{no}"
            );
        }

        let m = glob("http://h/<*>");
        assert!(m.matches("GET", "http://h/abc").is_some());
        assert!(m.matches("GET", "http://h/a/b").is_none(), "* stops at /");
        assert!(m.matches("GET", "http://h/a.b").is_none(), "* stops at .");
        let m = glob("http://h/<?>x<[!a-c]>");
        assert!(m.matches("GET", "http://h/zxd").is_some());
        assert!(m.matches("GET", "http://h/zxa").is_none());
        // Text outside <> is literal, even glob and regex metacharacters.
        let m = glob("http://h/a*b");
        assert!(m.matches("GET", "http://h/a*b").is_some());
        assert!(m.matches("GET", "http://h/axb").is_none());
        let m = glob("http://h/hello");
        assert!(m.matches("GET", "http://h/hello").is_some());
        assert!(m.matches("GET", "http://h/hello/x").is_none());
        assert!(m.matches("GET", "http://hXhello").is_none());
    }

    #[test]
    fn regexp_is_anchored_with_captures() {
        let m = Matcher::compile(
            "http://h/api/<[0-9]+>/<.*>",
            &["GET".into()],
            Strategy::Regexp,
        )
        .expect("compiles");
        assert_eq!(
            m.matches("GET", "http://h/api/12/x/y"),
            Some(vec!["12".to_string(), "x/y".to_string()])
        );
        assert!(m.matches("GET", "http://h/api/ab/x").is_none());
        assert!(m.matches("GET", "xhttp://h/api/1/x").is_none());
        let m = Matcher::compile("http://h.com/x", &["GET".into()], Strategy::Regexp)
            .expect("compiles");
        assert!(m.matches("GET", "http://hxcom/x").is_none(), "literal dot");
    }

    #[test]
    fn regexp_lookarounds_and_backreferences_work_as_in_oathkeeper() {
        let m = Matcher::compile(
            "http://h/<(?!admin/)[a-z]+>/<.*>",
            &["GET".into()],
            Strategy::Regexp,
        )
        .expect("negative lookahead compiles");
        assert!(matches!(m.pattern, Pattern::Fancy(_)));
        assert_eq!(
            m.matches("GET", "http://h/users/1"),
            Some(vec!["users".to_string(), "1".to_string()])
        );
        assert!(m.matches("GET", "http://h/admin/1").is_none());
        // Each `<…>` is wrapped in a group (as Oathkeeper does), so the pattern's own first
        // group is number 2; a named group avoids counting.
        let m = Matcher::compile(
            "http://h/<(?<c>[a-z])\\k<c>>",
            &["GET".into()],
            Strategy::Regexp,
        )
        .expect("backreference compiles");
        assert!(m.matches("GET", "http://h/aa").is_some());
        assert!(m.matches("GET", "http://h/ab").is_none());
        // Plain patterns stay on the linear-time engine.
        let m = Matcher::compile("http://h/<[a-z]+>", &["GET".into()], Strategy::Regexp)
            .expect("compiles");
        assert!(matches!(m.pattern, Pattern::Fast(_)));
    }

    #[test]
    fn unbalanced_delimiters_are_errors() {
        for bad in ["http://h/<a", "http://h/a>", "http://h/<<a>"] {
            assert!(Matcher::compile(bad, &[], Strategy::Glob).is_err(), "{bad}");
        }
        assert!(Matcher::compile("http://h/<{a>", &[], Strategy::Glob).is_err());
        assert!(Matcher::compile("http://h/<(>", &[], Strategy::Regexp).is_err());
    }

    #[test]
    fn paths_are_decoded_and_cleaned() {
        assert_eq!(
            normalize_path("/public/../admin/x").as_deref(),
            Ok("/admin/x")
        );
        assert_eq!(
            normalize_path("/public/%2e%2e/admin").as_deref(),
            Ok("/admin")
        );
        assert_eq!(
            normalize_path("/public%2F..%2Fadmin").as_deref(),
            Ok("/admin")
        );
        assert_eq!(normalize_path("//a//b/./c/").as_deref(), Ok("/a/b/c"));
        assert_eq!(normalize_path("/").as_deref(), Ok("/"));
        assert_eq!(normalize_path("/../..").as_deref(), Ok("/"));
        assert_eq!(normalize_path("/a%20b").as_deref(), Ok("/a b"));
        assert!(normalize_path("/a%zz").is_err());
        assert!(normalize_path("/a%2").is_err());
    }
}
