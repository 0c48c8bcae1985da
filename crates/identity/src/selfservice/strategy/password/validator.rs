//! The password policy applied at registration: minimum length (4000032) and similarity to
//! the identifier (4000031), with Kratos's thresholds. Breached-password lookups are in
//! [`super::breach`].

use crate::text::{self, Text};

/// Kratos's minimum Levenshtein distance between identifier and password.
const MIN_IDENTIFIER_DISTANCE: usize = 5;
/// Kratos's maximum share of the password that may be a substring of the identifier.
const MAX_COMMON_SUBSTRING_RATIO: f64 = 0.5;
/// Longer strings skip the quadratic similarity check, as in Kratos.
const SIMILARITY_MAX_LEN: usize = 256;

/// The configured policy.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    /// `selfservice.methods.password.config.min_password_length`.
    pub min_length: usize,
    /// `identifier_similarity_check_enabled`.
    pub identifier_similarity: bool,
    /// The longest password in bytes the hasher accepts (72 for bcrypt).
    pub max_length: Option<usize>,
}

impl PasswordPolicy {
    /// Checks `password` for the account identified by `identifier`.
    pub fn check(&self, identifier: &str, password: &str) -> Result<(), Text> {
        let len = password.chars().count();
        if len < self.min_length {
            return Err(text::password_too_short(self.min_length, len));
        }
        if let Some(max) = self.max_length.filter(|max| password.len() > *max) {
            return Err(text::password_too_long(max, password.len()));
        }
        if self.identifier_similarity && !identifier.is_empty() {
            let id = identifier.to_lowercase();
            let pw = password.to_lowercase();
            if id.len() <= SIMILARITY_MAX_LEN && pw.len() <= SIMILARITY_MAX_LEN {
                let id: Vec<char> = id.chars().collect();
                let pw: Vec<char> = pw.chars().collect();
                let ratio = longest_common_substring(&id, &pw) as f64 / pw.len().max(1) as f64;
                if levenshtein(&id, &pw) < MIN_IDENTIFIER_DISTANCE
                    || ratio > MAX_COMMON_SUBSTRING_RATIO
                {
                    return Err(text::password_identifier_similar());
                }
            }
        }
        Ok(())
    }
}

fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn longest_common_substring(a: &[char], b: &[char]) -> usize {
    let mut best = 0;
    let mut prev = vec![0usize; b.len() + 1];
    for ca in a {
        let mut cur = vec![0usize; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            if ca == cb {
                cur[j + 1] = prev[j] + 1;
                best = best.max(cur[j + 1]);
            }
        }
        prev = cur;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: PasswordPolicy = PasswordPolicy {
        min_length: 8,
        identifier_similarity: true,
        max_length: None,
    };

    #[test]
    fn bcrypt_limit_refuses_long_passwords() {
        let policy = PasswordPolicy {
            max_length: Some(72),
            ..POLICY
        };
        assert_eq!(
            policy
                .check("a@b.c", &"x1y2z3".repeat(13))
                .map_err(|t| t.id),
            Err(4000033)
        );
        assert!(policy.check("a@b.c", &"x1y2z3".repeat(12)).is_ok());
    }

    #[test]
    fn short_and_similar_passwords_are_refused() {
        assert_eq!(
            POLICY.check("a@b.c", "short").map_err(|t| t.id),
            Err(4000032)
        );
        assert_eq!(
            POLICY
                .check("alice@example.com", "alice@example")
                .map_err(|t| t.id),
            Err(4000031)
        );
        assert!(
            POLICY
                .check("alice@example.com", "correct horse battery")
                .is_ok()
        );
    }

    #[test]
    fn distance_helpers() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(levenshtein(&c("kitten"), &c("sitting")), 3);
        assert_eq!(longest_common_substring(&c("abcdef"), &c("zcdez")), 3);
    }
}
