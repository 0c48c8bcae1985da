//! Reading the `Cookie` header and writing `Set-Cookie` values.

use http::HeaderMap;

/// The value of cookie `name` in the request's `Cookie` headers (first occurrence).
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    get_in(
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        name,
    )
}

/// The value of cookie `name` in raw `Cookie` header strings.
pub fn get_in<'a>(headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<String> {
    headers.into_iter().find_map(|h| {
        h.split(';').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
        })
    })
}

/// `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `Strict`.
    Strict,
    /// `Lax` (Kratos's default).
    Lax,
    /// `None`.
    None,
}

impl SameSite {
    /// Parses the config spelling (`Strict`, `Lax`, `None`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Strict" => Some(SameSite::Strict),
            "Lax" => Some(SameSite::Lax),
            "None" => Some(SameSite::None),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// Attributes shared by the cookies a component sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieOptions {
    /// `Path`.
    pub path: String,
    /// `Domain`, when configured.
    pub domain: Option<String>,
    /// `Secure`.
    pub secure: bool,
    /// `SameSite`.
    pub same_site: SameSite,
}

impl CookieOptions {
    /// A `Set-Cookie` value; `max_age` `None` makes a browser-session cookie, `Some(0)` or less
    /// deletes it.
    pub fn set_cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut s = format!("{name}={value}; Path={}", self.path);
        if let Some(domain) = &self.domain {
            s.push_str("; Domain=");
            s.push_str(domain);
        }
        if let Some(age) = max_age {
            if age <= 0 {
                s.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
            } else {
                s.push_str(&format!("; Max-Age={age}"));
            }
        }
        s.push_str("; HttpOnly");
        if self.secure {
            s.push_str("; Secure");
        }
        // Browsers drop SameSite=None cookies that are not Secure; Kratos forces Lax then.
        let same_site = if !self.secure && self.same_site == SameSite::None {
            SameSite::Lax
        } else {
            self.same_site
        };
        s.push_str("; SameSite=");
        s.push_str(same_site.as_str());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_cookies() {
        assert_eq!(
            get_in(["a=1; ory_kratos_session=xyz", "b=2"], "ory_kratos_session"),
            Some("xyz".into())
        );
        assert_eq!(get_in(["a=1"], "b"), None);
        let opts = CookieOptions {
            path: "/".into(),
            domain: None,
            secure: true,
            same_site: SameSite::Lax,
        };
        assert_eq!(
            opts.set_cookie("n", "v", Some(60)),
            "n=v; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Lax"
        );
    }
}
