//! Password hashing with argon2id, in PHC string form (`$argon2id$v=19$m=...`), so hashes
//! carry their parameters and stay verifiable when the configuration changes.
//!
//! Parameters are never below OWASP's minimum (m = 19 MiB, t = 2, p = 1; or m ≥ 46 MiB with
//! t = 1). Hashing runs on the blocking pool: it is deliberately slow.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use portcullis_core::Secret;

use crate::error::IdentityError;

/// OWASP's minimum memory for t = 2, in KiB.
const OWASP_MIN_MEMORY_KIB: u32 = 19 * 1024;
/// From this much memory (KiB) OWASP accepts a single pass.
const OWASP_ONE_PASS_MEMORY_KIB: u32 = 46 * 1024;
/// Imported hashes may not demand more than this (KiB), so a crafted hash cannot exhaust memory.
const MAX_VERIFY_MEMORY_KIB: u32 = 1024 * 1024;

/// argon2id parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Config {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Salt bytes.
    pub salt_length: usize,
    /// Output bytes.
    pub key_length: usize,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory_kib: OWASP_MIN_MEMORY_KIB,
            iterations: 2,
            parallelism: 1,
            salt_length: 16,
            key_length: 32,
        }
    }
}

impl Argon2Config {
    /// Raises parameters below OWASP's minimum to it.
    pub fn at_least_owasp(mut self) -> Self {
        self.memory_kib = self.memory_kib.max(OWASP_MIN_MEMORY_KIB);
        if self.memory_kib < OWASP_ONE_PASS_MEMORY_KIB {
            self.iterations = self.iterations.max(2);
        }
        self.iterations = self.iterations.max(1);
        self.parallelism = self.parallelism.clamp(1, 64);
        self.salt_length = self.salt_length.clamp(16, 64);
        self.key_length = self.key_length.clamp(16, 64);
        self
    }
}

/// Hashes and verifies passwords.
#[derive(Debug, Clone)]
pub struct Hasher {
    config: Argon2Config,
    /// A hash of a random password, verified against when the identifier is unknown so that
    /// "no such user" takes as long as "wrong password".
    decoy: String,
}

impl Hasher {
    /// A hasher with `config` (raised to OWASP's minimum).
    pub fn new(config: Argon2Config) -> Result<Self, IdentityError> {
        let config = config.at_least_owasp();
        let decoy = hash_with(&config, portcullis_core::random_urlsafe(24).as_bytes())?;
        Ok(Self { config, decoy })
    }

    /// The effective parameters.
    pub fn config(&self) -> Argon2Config {
        self.config
    }

    /// Hashes `password` into a PHC string.
    pub async fn hash(&self, password: Secret<String>) -> Result<String, IdentityError> {
        let config = self.config;
        tokio::task::spawn_blocking(move || hash_with(&config, password.expose().as_bytes()))
            .await
            .map_err(|e| IdentityError::Hash(e.to_string()))?
    }

    /// Whether `password` matches `phc`; the comparison is constant-time. A missing hash
    /// (unknown identifier) is checked against the decoy and always fails.
    pub async fn verify(&self, password: Secret<String>, phc: Option<String>) -> bool {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.decoy.clone());
        let ok =
            tokio::task::spawn_blocking(move || verify_with(password.expose().as_bytes(), &phc))
                .await
                .unwrap_or(false);
        ok && known
    }
}

fn argon2(config: &Argon2Config) -> Result<Argon2<'static>, IdentityError> {
    let params = Params::new(
        config.memory_kib,
        config.iterations,
        config.parallelism,
        Some(config.key_length),
    )
    .map_err(|e| IdentityError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_with(config: &Argon2Config, password: &[u8]) -> Result<String, IdentityError> {
    let salt = SaltString::encode_b64(&portcullis_core::random_bytes(config.salt_length))
        .map_err(|e| IdentityError::Hash(e.to_string()))?;
    argon2(config)?
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| IdentityError::Hash(e.to_string()))
}

fn verify_with(password: &[u8], phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if !hash.algorithm.as_str().starts_with("argon2") {
        // Other formats (bcrypt, pbkdf2, ...) arrive with credential import.
        return false;
    }
    let demanded = hash
        .params
        .get_decimal("m")
        .unwrap_or(MAX_VERIFY_MEMORY_KIB + 1);
    if demanded > MAX_VERIFY_MEMORY_KIB {
        return false;
    }
    Argon2::default().verify_password(password, &hash).is_ok()
}

/// Parses Kratos's byte sizes (`128MB`, `64KB`, `1GB`) into KiB.
pub fn parse_byte_size_kib(s: &str) -> Option<u32> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let bytes = match unit {
        "B" => n,
        "KB" => n.checked_mul(1024)?,
        "MB" => n.checked_mul(1024 * 1024)?,
        "GB" => n.checked_mul(1024 * 1024 * 1024)?,
        _ => return None,
    };
    u32::try_from(bytes / 1024).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_decoy_never_matches() {
        let h = Hasher::new(Argon2Config::default()).expect("hasher");
        let phc = h
            .hash(Secret::new("correct horse".into()))
            .await
            .expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            h.verify(Secret::new("correct horse".into()), Some(phc.clone()))
                .await
        );
        assert!(!h.verify(Secret::new("wrong".into()), Some(phc)).await);
        assert!(!h.verify(Secret::new("anything".into()), None).await);
        assert!(
            !h.verify(Secret::new("x".into()), Some("$2a$08$garbage".into()))
                .await
        );
    }

    #[test]
    fn weak_parameters_are_raised() {
        let c = Argon2Config {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 0,
            salt_length: 4,
            key_length: 8,
        }
        .at_least_owasp();
        assert_eq!((c.memory_kib, c.iterations, c.parallelism), (19456, 2, 1));
        assert_eq!(parse_byte_size_kib("128MB"), Some(131072));
        assert_eq!(parse_byte_size_kib("12XB"), None);
    }
}
