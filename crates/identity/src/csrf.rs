//! Anti-CSRF tokens the way ory/nosurf makes them: a random 32-byte token lives in an HttpOnly
//! cookie named `csrf_token_<sha256hex(public base URL)>`; forms carry it masked with a fresh
//! one-time pad (`base64(pad ‖ pad XOR token)`), so the value in the page changes on every
//! issue while the cookie stays, and comparison is constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

const TOKEN_LEN: usize = 32;

/// The CSRF cookie's name for a public base URL.
pub fn cookie_name(public_base_url: &str) -> String {
    format!(
        "csrf_token_{}",
        hex::encode(Sha256::digest(public_base_url.as_bytes()))
    )
}

/// A new cookie value (base64 of 32 random bytes).
pub fn generate() -> String {
    STANDARD.encode(portcullis_core::random_bytes(TOKEN_LEN))
}

/// Masks the cookie token for a form field.
pub fn mask(cookie_value: &str) -> String {
    let real = decode_real(cookie_value).unwrap_or_default();
    let pad = portcullis_core::random_bytes(TOKEN_LEN);
    let mut out = pad.clone();
    out.extend(pad.iter().zip(real.iter()).map(|(p, r)| p ^ r));
    STANDARD.encode(out)
}

/// Whether the masked `submitted` token was made from `cookie_value`.
pub fn verify(cookie_value: &str, submitted: &str) -> bool {
    match (decode_real(cookie_value), unmask(submitted)) {
        (Some(real), Some(sent)) => portcullis_core::constant_time_eq(&real, &sent),
        _ => false,
    }
}

fn decode_real(cookie_value: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(cookie_value.trim())
        .ok()
        .filter(|b| b.len() == TOKEN_LEN)
}

fn unmask(masked: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(masked.trim()).ok()?;
    if bytes.len() != 2 * TOKEN_LEN {
        return None;
    }
    let (pad, xored) = bytes.split_at(TOKEN_LEN);
    Some(pad.iter().zip(xored).map(|(p, x)| p ^ x).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_tokens_differ_but_verify() {
        let cookie = generate();
        let a = mask(&cookie);
        let b = mask(&cookie);
        assert_ne!(a, b);
        assert!(verify(&cookie, &a) && verify(&cookie, &b));
        assert!(!verify(&generate(), &a));
        assert!(!verify(&cookie, "garbage"));
        assert_eq!(
            cookie_name("http://127.0.0.1:4433/").len(),
            "csrf_token_".len() + 64
        );
    }
}
