//! Password hashing. New passwords are hashed with argon2id (PHC string form,
//! `$argon2id$v=19$m=...`) or, when `hashers.algorithm: bcrypt`, with bcrypt; hashes carry
//! their parameters so they stay verifiable when the configuration changes.
//!
//! Imported hashes (admin API) may also be bcrypt (`$2a$`, `$2b$`, `$2y$`), argon2i,
//! PBKDF2 in Kratos's `$pbkdf2-sha256$i=...,l=...$salt$key` form and scrypt in Kratos's
//! `$scrypt$ln=N,r=...,p=...$salt$key` form (`ln` is the cost N itself, as in Kratos). Every
//! format's cost parameters are bounded ([`verify_limits`]) so a crafted hash cannot make a
//! login attempt exhaust memory or CPU. A hash in another format than the configured one is
//! re-hashed on the next successful login ([`Hasher::needs_rehash`]).
//!
//! argon2id parameters are never below OWASP's minimum (m = 19 MiB, t = 2, p = 1; or
//! m ≥ 46 MiB with t = 1); the bcrypt cost is never below OWASP's minimum work factor 10.
//! Hashing runs on the blocking pool: it is deliberately slow.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params, Version};
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

/// OWASP's minimum bcrypt work factor.
pub const BCRYPT_MIN_COST: u32 = 10;
/// The highest bcrypt cost accepted for hashing and verification (2^16 rounds).
const BCRYPT_MAX_COST: u32 = 16;
/// bcrypt ignores input beyond this many bytes; longer new passwords are refused.
pub const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;
/// The most PBKDF2 iterations an imported hash may demand.
const PBKDF2_MAX_ITERATIONS: u32 = 5_000_000;
/// The most argon2 passes an imported hash may demand.
const ARGON2_MAX_ITERATIONS: u32 = 64;
/// The most bytes an imported scrypt hash may make one verification touch (128·r·N·p).
const SCRYPT_MAX_WORK_BYTES: u64 = 1024 * 1024 * 1024;
/// The longest derived key an imported PBKDF2 or scrypt hash may carry.
const MAX_KEY_BYTES: usize = 128;

/// The algorithm new passwords are hashed with (`hashers.algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// argon2id with [`Argon2Config`].
    Argon2id(Argon2Config),
    /// bcrypt with this cost (at least [`BCRYPT_MIN_COST`]).
    Bcrypt(u32),
}

impl Default for Algorithm {
    fn default() -> Self {
        Self::Argon2id(Argon2Config::default())
    }
}

impl Algorithm {
    /// Raises parameters below OWASP's minimum to it (and caps the bcrypt cost).
    pub fn at_least_owasp(self) -> Self {
        match self {
            Self::Argon2id(c) => Self::Argon2id(c.at_least_owasp()),
            Self::Bcrypt(cost) => Self::Bcrypt(cost.clamp(BCRYPT_MIN_COST, BCRYPT_MAX_COST)),
        }
    }

    /// The longest password (in bytes) this algorithm can hash without truncating it.
    pub fn max_password_bytes(self) -> Option<usize> {
        match self {
            Self::Argon2id(_) => None,
            Self::Bcrypt(_) => Some(BCRYPT_MAX_PASSWORD_BYTES),
        }
    }
}

/// Hashes and verifies passwords.
#[derive(Debug, Clone)]
pub struct Hasher {
    algorithm: Algorithm,
    /// A hash of a random password, verified against when the identifier is unknown so that
    /// "no such user" takes as long as "wrong password".
    decoy: String,
}

impl Hasher {
    /// A hasher for `algorithm` (raised to OWASP's minimum).
    pub fn new(algorithm: Algorithm) -> Result<Self, IdentityError> {
        let algorithm = algorithm.at_least_owasp();
        let decoy = hash_with(algorithm, portcullis_core::random_urlsafe(24).as_bytes())?;
        Ok(Self { algorithm, decoy })
    }

    /// The effective algorithm and parameters.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Hashes `password` with the configured algorithm.
    pub async fn hash(&self, password: Secret<String>) -> Result<String, IdentityError> {
        let algorithm = self.algorithm;
        tokio::task::spawn_blocking(move || hash_with(algorithm, password.expose().as_bytes()))
            .await
            .map_err(|e| IdentityError::Hash(e.to_string()))?
    }

    /// Whether `password` matches `hash` (any supported format); the comparison is
    /// constant-time. A missing hash (unknown identifier) is checked against the decoy and
    /// always fails.
    pub async fn verify(&self, password: Secret<String>, hash: Option<String>) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.clone());
        let ok =
            tokio::task::spawn_blocking(move || verify_with(password.expose().as_bytes(), &hash))
                .await
                .unwrap_or(false);
        ok && known
    }

    /// Whether a hash that just verified should be replaced by one in the configured format.
    pub fn needs_rehash(&self, hash: &str) -> bool {
        match self.algorithm {
            Algorithm::Argon2id(_) => !hash.starts_with("$argon2id$"),
            Algorithm::Bcrypt(_) => Format::of(hash) != Some(Format::Bcrypt),
        }
    }
}

/// The hash formats that can be imported and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `$argon2id$` / `$argon2i$` PHC strings.
    Argon2,
    /// `$2a$`, `$2b$`, `$2x$`, `$2y$`.
    Bcrypt,
    /// `$pbkdf2-sha256$...` (also sha224, sha384, sha512).
    Pbkdf2,
    /// `$scrypt$...`.
    Scrypt,
}

impl Format {
    /// The format `hash` is written in, if supported.
    pub fn of(hash: &str) -> Option<Self> {
        if hash.starts_with("$argon2id$") || hash.starts_with("$argon2i$") {
            Some(Self::Argon2)
        } else if ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| hash.starts_with(p))
        {
            Some(Self::Bcrypt)
        } else if hash.starts_with("$pbkdf2-") {
            Some(Self::Pbkdf2)
        } else if hash.starts_with("$scrypt$") {
            Some(Self::Scrypt)
        } else {
            None
        }
    }
}

/// Checks that `hash` is in a supported format, well formed, and within the cost bounds
/// verification accepts; the error says why not (for the admin API's 400).
pub fn verify_limits(hash: &str) -> Result<Format, String> {
    let format = Format::of(hash).ok_or_else(|| {
        "unsupported hash format; supported are argon2id, argon2i, bcrypt ($2a$, $2b$, $2y$), pbkdf2 ($pbkdf2-sha256$...) and scrypt ($scrypt$...)".to_string()
    })?;
    match format {
        Format::Argon2 => argon2_hash(hash).map(|_| ()),
        Format::Bcrypt => bcrypt_cost(hash).map(|_| ()),
        Format::Pbkdf2 => Pbkdf2Hash::parse(hash).map(|_| ()),
        Format::Scrypt => ScryptHash::parse(hash).map(|_| ()),
    }?;
    Ok(format)
}

fn argon2(config: &Argon2Config) -> Result<Argon2<'static>, IdentityError> {
    let params = Params::new(
        config.memory_kib,
        config.iterations,
        config.parallelism,
        Some(config.key_length),
    )
    .map_err(|e| IdentityError::Hash(e.to_string()))?;
    Ok(Argon2::new(
        argon2::Algorithm::Argon2id,
        Version::V0x13,
        params,
    ))
}

fn hash_with(algorithm: Algorithm, password: &[u8]) -> Result<String, IdentityError> {
    match algorithm {
        Algorithm::Argon2id(config) => {
            let salt = SaltString::encode_b64(&portcullis_core::random_bytes(config.salt_length))
                .map_err(|e| IdentityError::Hash(e.to_string()))?;
            argon2(&config)?
                .hash_password(password, &salt)
                .map(|h| h.to_string())
                .map_err(|e| IdentityError::Hash(e.to_string()))
        }
        Algorithm::Bcrypt(cost) => bcrypt::non_truncating_hash(password, cost)
            .map_err(|e| IdentityError::Hash(e.to_string())),
    }
}

fn verify_with(password: &[u8], hash: &str) -> bool {
    match Format::of(hash) {
        Some(Format::Argon2) => {
            argon2_hash(hash).is_ok_and(|h| Argon2::default().verify_password(password, &h).is_ok())
        }
        Some(Format::Bcrypt) => {
            bcrypt_cost(hash).is_ok() && bcrypt::verify(password, hash).unwrap_or(false)
        }
        Some(Format::Pbkdf2) => Pbkdf2Hash::parse(hash).is_ok_and(|h| h.verify(password)),
        Some(Format::Scrypt) => ScryptHash::parse(hash).is_ok_and(|h| h.verify(password)),
        None => false,
    }
}

fn argon2_hash(hash: &str) -> Result<PasswordHash<'_>, String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("malformed argon2 hash: {e}"))?;
    let param = |name: &str| parsed.params.get_decimal(name);
    let (Some(m), Some(t), Some(p)) = (param("m"), param("t"), param("p")) else {
        return Err("malformed argon2 hash: m, t and p are required".into());
    };
    if m > MAX_VERIFY_MEMORY_KIB || t > ARGON2_MAX_ITERATIONS || p > 64 {
        return Err(format!(
            "argon2 parameters too expensive (at most m={MAX_VERIFY_MEMORY_KIB}, t={ARGON2_MAX_ITERATIONS}, p=64)"
        ));
    }
    Ok(parsed)
}

fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    let cost = hash
        .get(4..6)
        .and_then(|c| c.parse::<u32>().ok())
        .filter(|_| hash.len() == 60 && hash.as_bytes().get(6) == Some(&b'$'))
        .ok_or_else(|| "malformed bcrypt hash".to_string())?;
    if !(4..=BCRYPT_MAX_COST).contains(&cost) {
        return Err(format!(
            "bcrypt cost must be between 4 and {BCRYPT_MAX_COST}"
        ));
    }
    Ok(cost)
}

/// Decodes standard or URL-safe base64, padded or not.
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let s = s.trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(s)
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}

/// The parts of a `$name$params$salt$key` hash.
struct HashParts<'a> {
    name: &'a str,
    params: Vec<(&'a str, &'a str)>,
    salt: Vec<u8>,
    key: Vec<u8>,
}

/// Splits `$name$params$salt$key` into its parts, params as `k=v` pairs.
fn split_hash<'a>(hash: &'a str, what: &str) -> Result<HashParts<'a>, String> {
    let malformed = || format!("malformed {what} hash: expected $name$params$salt$key");
    let mut parts = hash.split('$');
    let (Some(""), Some(name), Some(params), Some(salt), Some(key), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(malformed());
    };
    let params = params
        .split(',')
        .map(|kv| kv.split_once('=').ok_or_else(malformed))
        .collect::<Result<Vec<_>, _>>()?;
    let salt =
        decode_b64(salt).ok_or_else(|| format!("malformed {what} hash: salt is not base64"))?;
    let key = decode_b64(key).ok_or_else(|| format!("malformed {what} hash: key is not base64"))?;
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(format!("{what} key must be 1 to {MAX_KEY_BYTES} bytes"));
    }
    Ok(HashParts {
        name,
        params,
        salt,
        key,
    })
}

fn param<T: std::str::FromStr>(
    params: &[(&str, &str)],
    name: &str,
    what: &str,
) -> Result<T, String> {
    params
        .iter()
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| format!("malformed {what} hash: parameter {name} missing or invalid"))
}

#[derive(Debug, Clone, Copy)]
enum Pbkdf2Digest {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// A parsed Kratos PBKDF2 hash: `$pbkdf2-<digest>$i=<iterations>,l=<key length>$salt$key`.
struct Pbkdf2Hash {
    digest: Pbkdf2Digest,
    iterations: u32,
    salt: Vec<u8>,
    key: Vec<u8>,
}

impl Pbkdf2Hash {
    fn parse(hash: &str) -> Result<Self, String> {
        let HashParts {
            name,
            params,
            salt,
            key,
        } = split_hash(hash, "pbkdf2")?;
        let digest = match name {
            "pbkdf2-sha224" => Pbkdf2Digest::Sha224,
            "pbkdf2-sha256" => Pbkdf2Digest::Sha256,
            "pbkdf2-sha384" => Pbkdf2Digest::Sha384,
            "pbkdf2-sha512" => Pbkdf2Digest::Sha512,
            other => {
                return Err(format!(
                    "unsupported pbkdf2 digest {other:?}; use sha224, sha256, sha384 or sha512"
                ));
            }
        };
        let iterations: u32 = param(&params, "i", "pbkdf2")?;
        if !(1..=PBKDF2_MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "pbkdf2 iterations must be between 1 and {PBKDF2_MAX_ITERATIONS}"
            ));
        }
        let length: usize = param(&params, "l", "pbkdf2")?;
        if length != key.len() {
            return Err("pbkdf2 key length l does not match the key".into());
        }
        Ok(Self {
            digest,
            iterations,
            salt,
            key,
        })
    }

    fn verify(&self, password: &[u8]) -> bool {
        let mut out = vec![0u8; self.key.len()];
        let (salt, rounds) = (&self.salt, self.iterations);
        match self.digest {
            Pbkdf2Digest::Sha224 => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha224>(password, salt, rounds, &mut out)
            }
            Pbkdf2Digest::Sha256 => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, rounds, &mut out)
            }
            Pbkdf2Digest::Sha384 => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha384>(password, salt, rounds, &mut out)
            }
            Pbkdf2Digest::Sha512 => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, rounds, &mut out)
            }
        }
        portcullis_core::constant_time_eq(&out, &self.key)
    }
}

/// A parsed Kratos scrypt hash: `$scrypt$ln=<N>,r=<block size>,p=<parallelism>$salt$key`.
struct ScryptHash {
    params: scrypt::Params,
    salt: Vec<u8>,
    key: Vec<u8>,
}

impl ScryptHash {
    fn parse(hash: &str) -> Result<Self, String> {
        let HashParts {
            name,
            params,
            salt,
            key,
        } = split_hash(hash, "scrypt")?;
        if name != "scrypt" {
            return Err("malformed scrypt hash".into());
        }
        let n: u64 = param(&params, "ln", "scrypt")?;
        let r: u32 = param(&params, "r", "scrypt")?;
        let p: u32 = param(&params, "p", "scrypt")?;
        if n < 2 || !n.is_power_of_two() {
            return Err("scrypt cost ln (N) must be a power of two".into());
        }
        let work = 128u64
            .saturating_mul(u64::from(r))
            .saturating_mul(n)
            .saturating_mul(u64::from(p));
        if r == 0 || p == 0 || work > SCRYPT_MAX_WORK_BYTES {
            return Err(format!(
                "scrypt parameters too expensive (128·r·N·p must stay within {SCRYPT_MAX_WORK_BYTES} bytes)"
            ));
        }
        let log_n = u8::try_from(n.trailing_zeros()).map_err(|e| e.to_string())?;
        let params = scrypt::Params::new(log_n, r, p, key.len())
            .map_err(|e| format!("invalid scrypt parameters: {e}"))?;
        Ok(Self { params, salt, key })
    }

    fn verify(&self, password: &[u8]) -> bool {
        let mut out = vec![0u8; self.key.len()];
        scrypt::scrypt(password, &self.salt, &self.params, &mut out).is_ok()
            && portcullis_core::constant_time_eq(&out, &self.key)
    }
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
        let h = Hasher::new(Algorithm::default()).expect("hasher");
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
        assert_eq!(Algorithm::Bcrypt(4).at_least_owasp(), Algorithm::Bcrypt(10));
    }

    const PASSWORD: &str = "correct horse battery";
    const PBKDF2_SHA256: &str = "$pbkdf2-sha256$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$BVALGMmC/K/8ELErc5VgJxyPFApArIZRCQsqjEgZWJ4";
    const PBKDF2_SHA512: &str = "$pbkdf2-sha512$i=1000,l=64$MDEyMzQ1Njc4OWFiY2RlZg==$7F/Y1rnWXXurLCfFvAmyjyXtbABhgzBTBNcm//wlnvGBOz7OExlgRFs5qwaY5PzB3/WjR7P4yv/ACDQZpDXIfQ==";
    const SCRYPT: &str = "$scrypt$ln=1024,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg==$xXt6EAFzAOlee5Hgl8R5+kLA6sDARjRcMGtm6fZJsa8=";
    /// OpenBSD's test vector for the password `U*U`.
    const BCRYPT_UU: &str = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";

    #[tokio::test]
    async fn imported_formats_verify() {
        let h = Hasher::new(Algorithm::default()).expect("hasher");
        for hash in [PBKDF2_SHA256, PBKDF2_SHA512, SCRYPT] {
            assert!(verify_limits(hash).is_ok(), "{hash}");
            assert!(
                h.verify(Secret::new(PASSWORD.into()), Some(hash.into()))
                    .await,
                "{hash}"
            );
            assert!(
                !h.verify(Secret::new("wrong".into()), Some(hash.into()))
                    .await,
                "{hash}"
            );
            assert!(h.needs_rehash(hash));
        }
        for hash in [
            BCRYPT_UU.to_string(),
            BCRYPT_UU.replacen("$2a$", "$2y$", 1),
            BCRYPT_UU.replacen("$2a$", "$2b$", 1),
        ] {
            assert_eq!(verify_limits(&hash), Ok(Format::Bcrypt));
            assert!(
                h.verify(Secret::new("U*U".into()), Some(hash.clone()))
                    .await,
                "{hash}"
            );
            assert!(!h.verify(Secret::new("U*V".into()), Some(hash)).await);
        }
    }

    #[tokio::test]
    async fn bcrypt_hashing_and_rehash_decisions() {
        let h = Hasher::new(Algorithm::Bcrypt(10)).expect("hasher");
        let hash = h.hash(Secret::new(PASSWORD.into())).await.expect("hash");
        assert!(hash.starts_with("$2b$10$"), "{hash}");
        assert!(
            h.verify(Secret::new(PASSWORD.into()), Some(hash.clone()))
                .await
        );
        assert!(!h.needs_rehash(&hash));
        assert!(h.needs_rehash(SCRYPT));
        let argon = Hasher::new(Algorithm::default()).expect("hasher");
        assert!(argon.needs_rehash(&hash));
        assert!(h.hash(Secret::new("x".repeat(73))).await.is_err());
    }

    #[test]
    fn expensive_or_malformed_hashes_are_refused() {
        for hash in [
            "$2a$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "$2a$05$short",
            "$pbkdf2-sha256$i=999999999,l=32$MDEy$BVALGMmC/K/8ELErc5VgJxyPFApArIZRCQsqjEgZWJ4",
            "$pbkdf2-md4$i=1000,l=32$MDEy$BVALGMmC/K/8ELErc5VgJxyPFApArIZRCQsqjEgZWJ4",
            "$pbkdf2-sha256$i=1000,l=16$MDEy$BVALGMmC/K/8ELErc5VgJxyPFApArIZRCQsqjEgZWJ4",
            "$scrypt$ln=1048576,r=16,p=8$MDEy$xXt6EAFzAOlee5Hgl8R5+kLA6sDARjRcMGtm6fZJsa8=",
            "$scrypt$ln=1000,r=8,p=1$MDEy$xXt6EAFzAOlee5Hgl8R5+kLA6sDARjRcMGtm6fZJsa8=",
            "$scrypt$ln=1024,r=8$MDEy$xXt6",
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$md5$whatever",
            "plain",
        ] {
            assert!(verify_limits(hash).is_err(), "{hash}");
        }
    }
}
