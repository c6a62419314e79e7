//! Secret material: random tokens, their SHA-256 fingerprints, argon2 password hashes, and a
//! string wrapper whose `Debug` never prints the secret.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Random bytes in a session token and a CSRF token: 256 bits, beyond any guessing.
pub(crate) const TOKEN_BYTES: usize = 32;

/// A secret string (token, password) whose `Debug` is redacted, so a stray `?value` in a log
/// line cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`, redacted from here on.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `n` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)?;
    Ok(buf)
}

/// A fresh opaque token: base64url of [`TOKEN_BYTES`] random bytes (43 characters).
pub(crate) fn random_token() -> Result<Secret, getrandom::Error> {
    Ok(Secret(
        URL_SAFE_NO_PAD.encode(random_bytes::<TOKEN_BYTES>()?),
    ))
}

/// Lowercase hex SHA-256 of `value`: what is stored instead of a token, so a leaked cache or
/// database does not hand out working credentials.
pub(crate) fn fingerprint(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a password could not be hashed or checked (a server fault, never the user's input).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HashError {
    #[error("no randomness for the salt: {0}")]
    Random(#[from] getrandom::Error),
    #[error("argon2: {0}")]
    Argon2(String),
}

/// The argon2id PHC string of `password` with a fresh salt. CPU-heavy: call it off the async
/// threads (`spawn_blocking`).
pub(crate) fn hash_password(password: &str) -> Result<String, HashError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| HashError::Argon2(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// Whether `password` matches the PHC string `stored`. A malformed stored hash never matches.
/// CPU-heavy, like [`hash_password`].
pub(crate) fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Verifies `password` against a fixed hash, so a login with an unknown email costs the same
/// time as one with a wrong password and does not reveal which emails have accounts.
pub(crate) fn verify_against_dummy(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(hash) = DUMMY.get_or_init(|| hash_password("refract-dummy-password").ok()) {
        let _ = verify_password(password, hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_redacted() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "Secret(***)");
        assert_eq!(fingerprint("x").len(), 64);
        assert!(
            constant_time_eq(b"abc", b"abc")
                && !constant_time_eq(b"abc", b"abd")
                && !constant_time_eq(b"a", b"ab")
        );
    }

    #[test]
    fn passwords_round_trip_through_argon2() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
