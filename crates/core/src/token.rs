//! Random identifiers and bearer tokens from the operating system's CSPRNG.

use base64::Engine;
use rand::{Rng, RngCore, distr::Alphanumeric};

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// `n` random ASCII letters and digits (the alphabet of Kratos's `ory_st_` tokens).
pub fn random_alphanumeric(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// `n` random bytes as unpadded URL-safe base64, for secrets stored as text.
pub fn random_urlsafe(n: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(n))
}

/// A new random (v4) UUID.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_requested_shape_and_differ() {
        let a = random_alphanumeric(32);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, random_alphanumeric(32));
        assert_eq!(random_bytes(16).len(), 16);
        assert_eq!(random_urlsafe(32).len(), 43);
    }
}
