//! Request-path normalization and Kong's v0 upstream path join (notes §2.2, §2.5).

/// Normalizes a request path the way Kong does before matching: percent-encoded unreserved
/// characters are decoded (reserved ones stay encoded, hex digits upper-cased), `.` and `..`
/// segments are resolved and runs of `/` are merged. The result always starts with `/`.
pub fn normalize(raw: &str) -> String {
    if is_normal(raw) {
        return raw.to_string();
    }
    normalize_slow(raw)
}

/// [`normalize`] without the shortcut for paths already normal.
fn normalize_slow(raw: &str) -> String {
    let decoded = decode_unreserved(raw);
    let mut out: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with('/')
        || decoded.ends_with("/.")
        || decoded.ends_with("/..")
        || decoded == "."
        || decoded == "..";
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len() + 1);
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if path.is_empty() || trailing {
        path.push('/');
    }
    path
}

/// Whether `raw` is already in normal form (the common case, checked without allocating):
/// it starts with `/` and has no percent-encoding, no empty segment and no segment that
/// starts with a dot (which covers `.` and `..`).
fn is_normal(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.first() == Some(&b'/')
        && !b.contains(&b'%')
        && !b
            .windows(2)
            .any(|w| w[0] == b'/' && matches!(w[1], b'/' | b'.'))
}

/// `a` followed by `b`, in one allocation.
fn join(a: &str, b: &str) -> String {
    let mut out = String::with_capacity(a.len() + b.len());
    out.push_str(a);
    out.push_str(b);
    out
}

fn decode_unreserved(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            let c = h * 16 + l;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(c));
            } else {
                out.push('%');
                out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
            }
            i += 3;
            continue;
        }
        // Non-ASCII input is copied through character by character.
        let ch_len = utf8_len(bytes[i]);
        out.push_str(&raw[i..(i + ch_len).min(raw.len())]);
        i += ch_len;
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Joins the service path (`base`, `None` meaning `/`) and the normalized request path `req`
/// per Kong's `path_handling = v0`; `prefix` is what the route matched and is removed from
/// `req` only when `strip_path` is set.
pub fn upstream_path_v0(base: Option<&str>, req: &str, prefix: &str, strip_path: bool) -> String {
    let base = base.filter(|b| !b.is_empty()).unwrap_or("/");
    let base_slash = base.ends_with('/');
    let trimmed = base.strip_suffix('/').unwrap_or(base);
    if !strip_path {
        return if base_slash {
            join(base, req.strip_prefix('/').unwrap_or(req))
        } else if req == "/" {
            base.to_string()
        } else {
            join(base, req)
        };
    }
    let postfix = postfix(req, prefix);
    if base_slash {
        if postfix.is_empty() {
            if base == "/" {
                "/".to_string()
            } else if req.ends_with('/') {
                base.to_string()
            } else {
                trimmed.to_string()
            }
        } else if postfix.starts_with('/') {
            join(trimmed, postfix)
        } else {
            join(base, postfix)
        }
    } else if postfix.is_empty() {
        if req.ends_with('/') && req != "/" {
            join(base, "/")
        } else {
            base.to_string()
        }
    } else if postfix.starts_with('/') {
        join(base, postfix)
    } else {
        let mut out = join(base, "/");
        out.push_str(postfix);
        out
    }
}

fn postfix<'a>(req: &'a str, prefix: &str) -> &'a str {
    let rest = req.strip_prefix(prefix).unwrap_or(req);
    let rest = rest
        .strip_prefix("./")
        .or_else(|| rest.strip_prefix("../"))
        .unwrap_or(rest);
    if rest == "." || rest == ".." {
        ""
    } else {
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_form_shortcut_agrees_with_the_full_normalization() {
        for raw in [
            "/", "/a", "/a/", "/a/b/c", "/a-b_c~d", "/é/ü", "/a;b,c", "/.a", "/a/..", "/a//b",
            "//", "/a/./b", "/%41", "a", "", "/a/b/",
        ] {
            assert_eq!(normalize(raw), normalize_slow(raw), "{raw}");
            if is_normal(raw) {
                assert_eq!(normalize_slow(raw), raw, "{raw}");
            }
        }
    }

    #[test]
    fn normalization_follows_kong() {
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("//a///b"), "/a/b");
        assert_eq!(normalize("/a/./b/../c"), "/a/c");
        assert_eq!(normalize("/a/.."), "/");
        assert_eq!(normalize("/a/b/"), "/a/b/");
        assert_eq!(normalize("/%7euser/%41"), "/~user/A");
        assert_eq!(normalize("/a%2fb"), "/a%2Fb");
        assert_eq!(normalize("/%zz"), "/%zz");
        assert_eq!(normalize("/%4"), "/%4");
        assert_eq!(normalize("/ä/x"), "/ä/x");
    }

    #[test]
    fn v0_join_matches_kongs_table() {
        // (service path, request, route prefix, strip_path, expected)
        let cases = [
            (Some("/s"), "/r", "/r", true, "/s"),
            (Some("/s"), "/r/", "/r", true, "/s/"),
            (Some("/s"), "/r/a", "/r", true, "/s/a"),
            (Some("/s"), "/ra", "/r", true, "/s/a"),
            (Some("/s"), "/r/a", "/r", false, "/s/r/a"),
            (Some("/s"), "/", "/", false, "/s"),
            (None, "/r/a", "/r", true, "/a"),
            (None, "/r", "/r", true, "/"),
            (None, "/hello", "/", true, "/hello"),
            (None, "/", "/", true, "/"),
            (None, "/hello", "/", false, "/hello"),
            (Some("/s/"), "/r", "/r", true, "/s"),
            (Some("/s/"), "/r/", "/r", true, "/s/"),
            (Some("/s/"), "/r/a", "/r", true, "/s/a"),
            (Some("/s/"), "/ra", "/r", true, "/s/a"),
            (Some("/s/"), "/r/a", "/r", false, "/s/r/a"),
        ];
        for (base, req, prefix, strip, want) in cases {
            assert_eq!(
                upstream_path_v0(base, req, prefix, strip),
                want,
                "base={base:?} req={req} prefix={prefix} strip={strip}"
            );
        }
    }
}
