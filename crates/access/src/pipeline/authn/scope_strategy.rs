//! `scope_strategy`: how a granted scope satisfies a required one (fosite's strategies, which
//! Oathkeeper uses): `exact`, `hierarchic` (`foo` grants `foo.bar`), `wildcard` (`foo.*`
//! grants `foo.bar`, a shorter grant is a prefix), and `none` (scopes cannot be checked: a
//! rule that requires scopes with it fails).

/// A compiled `scope_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeStrategy {
    /// No strategy: required scopes are an error.
    None,
    /// Exact string equality.
    Exact,
    /// Dot-separated hierarchy.
    Hierarchic,
    /// `*` matches one non-empty segment.
    Wildcard,
}

impl ScopeStrategy {
    /// Parses the config value; unknown values are `none`, as Oathkeeper treats them.
    pub fn parse(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "exact" => Self::Exact,
            "hierarchic" => Self::Hierarchic,
            "wildcard" => Self::Wildcard,
            _ => Self::None,
        }
    }

    /// Whether `granted` satisfies `needle`.
    pub fn allows(self, granted: &[String], needle: &str) -> bool {
        match self {
            Self::None => false,
            Self::Exact => granted.iter().any(|g| g == needle),
            Self::Hierarchic => granted.iter().any(|g| {
                g == needle
                    || (needle.len() > g.len()
                        && needle.starts_with(g.as_str())
                        && needle.as_bytes().get(g.len()) == Some(&b'.'))
            }),
            Self::Wildcard => {
                let needle_parts: Vec<&str> = needle.split('.').collect();
                granted.iter().any(|g| {
                    let parts: Vec<&str> = g.split('.').collect();
                    if parts.len() > needle_parts.len() {
                        return false;
                    }
                    needle_parts
                        .iter()
                        .enumerate()
                        .all(|(k, n)| match parts.get(k) {
                            None => true,
                            Some(&"*") => !n.is_empty(),
                            Some(p) => p == n,
                        })
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn strategies_follow_fosite() {
        let g = s(&["foo", "bar.*", "baz.qux"]);
        assert!(ScopeStrategy::Exact.allows(&g, "foo"));
        assert!(!ScopeStrategy::Exact.allows(&g, "foo.bar"));
        assert!(ScopeStrategy::Hierarchic.allows(&g, "foo.bar"));
        assert!(!ScopeStrategy::Hierarchic.allows(&g, "foobar"));
        assert!(!ScopeStrategy::Hierarchic.allows(&g, "baz"));
        assert!(ScopeStrategy::Wildcard.allows(&g, "bar.x"));
        assert!(!ScopeStrategy::Wildcard.allows(&g, "bar"));
        assert!(ScopeStrategy::Wildcard.allows(&g, "baz.qux"));
        assert!(!ScopeStrategy::Wildcard.allows(&g, "baz.quux"));
        assert!(!ScopeStrategy::None.allows(&g, "foo"));
        assert_eq!(
            ScopeStrategy::parse("HIERARCHIC"),
            ScopeStrategy::Hierarchic
        );
        assert_eq!(ScopeStrategy::parse("bogus"), ScopeStrategy::None);
    }
}
