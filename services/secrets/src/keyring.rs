//! The keyring: AES-256-GCM keys by id, the first one sealing, every one opening.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// Bytes of a key (AES-256).
const KEY_BYTES: usize = 32;
/// Bytes of a nonce (GCM's 96 bits, random per value).
const NONCE_BYTES: usize = 12;
/// Longest key id.
const MAX_ID: usize = 32;

/// A value sealed under one key of a [`Keyring`]: stored as is, opened with the same key and
/// the same associated data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The id of the key that sealed it.
    pub key: String,
    /// The random nonce, base64.
    pub nonce: String,
    /// Ciphertext and tag, base64.
    pub data: String,
}

/// Why a keyring could not be read or a value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// The keyring text is malformed; the text says how.
    #[error(
        "secrets keyring: {0} (expected `<id>:<base64 of 32 bytes>` entries separated by commas, the sealing key first)"
    )]
    Malformed(String),
    /// The value was sealed under a key the keyring does not hold (removed too early).
    #[error("sealed under key {0:?}, which the secrets keyring does not hold")]
    UnknownKey(String),
    /// The ciphertext or its associated data was altered, or the key is not the one that
    /// sealed it.
    #[error("a sealed value does not open: altered, moved, or sealed under another key")]
    Corrupt,
    /// The system's random source failed.
    #[error("no randomness for a nonce: {0}")]
    Random(String),
}

/// AES-256-GCM keys by id. The first seals; all open. Its `Debug` never shows a key.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, Aes256Gcm)>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("keys", &ids).finish()
    }
}

impl Keyring {
    /// Reads `<id>:<base64 key>[,<id>:<base64 key>…]`; the first key seals new values.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, key) = entry
                .split_once(':')
                .ok_or_else(|| KeyringError::Malformed("an entry has no `:`".into()))?;
            let id = id.trim();
            if id.is_empty()
                || id.len() > MAX_ID
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            {
                return Err(KeyringError::Malformed(format!(
                    "key id {id:?} is not 1 to {MAX_ID} of A-Z a-z 0-9 - _"
                )));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(KeyringError::Malformed(format!(
                    "key id {id:?} appears twice"
                )));
            }
            let bytes = B64
                .decode(key.trim())
                .map_err(|_| KeyringError::Malformed(format!("key {id:?} is not base64")))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
                KeyringError::Malformed(format!("key {id:?} is not {KEY_BYTES} bytes"))
            })?;
            keys.push((id.to_owned(), cipher));
        }
        if keys.is_empty() {
            return Err(KeyringError::Malformed("no key".into()));
        }
        Ok(Self { keys })
    }

    /// A keyring of one new random key named `id`, as [`parse`](Self::parse) reads it back.
    pub fn generate(id: &str) -> Result<(Self, String), KeyringError> {
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key).map_err(|e| KeyringError::Random(e.to_string()))?;
        let text = format!("{id}:{}", B64.encode(key));
        Ok((Self::parse(&text)?, text))
    }

    /// A keyring of one random key for this process only: what is sealed with it is lost with
    /// the process. For tests and defaults that a binary always replaces.
    ///
    /// # Panics
    ///
    /// When the system's random source fails.
    pub fn ephemeral() -> Self {
        Self::generate("ephemeral")
            .map(|(ring, _)| ring)
            .expect("the system's random source works")
    }

    /// The id of the key that seals.
    pub fn sealing_key(&self) -> &str {
        &self.keys[0].0
    }

    /// Seals `plain` under the first key, bound to `aad` (what the value belongs to: a value
    /// moved elsewhere no longer opens).
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Sealed, KeyringError> {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| KeyringError::Random(e.to_string()))?;
        let data = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
            .map_err(|_| KeyringError::Corrupt)?;
        Ok(Sealed {
            key: id.clone(),
            nonce: B64.encode(nonce),
            data: B64.encode(data),
        })
    }

    /// Opens `sealed` with the key that sealed it, checking it belongs to `aad`.
    pub fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, KeyringError> {
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key)
            .ok_or_else(|| KeyringError::UnknownKey(sealed.key.clone()))?;
        let nonce: [u8; NONCE_BYTES] = B64
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(KeyringError::Corrupt)?;
        let data = B64
            .decode(&sealed.data)
            .map_err(|_| KeyringError::Corrupt)?;
        cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: &data, aad })
            .map_err(|_| KeyringError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_open_with_their_key_and_data_only() {
        let (ring, _) = Keyring::generate("k1").unwrap();
        let sealed = ring.seal(b"ws1:token", b"s3cret").unwrap();
        assert_eq!(sealed.key, "k1");
        assert!(!sealed.data.contains("s3cret"));
        assert_eq!(ring.open(b"ws1:token", &sealed).unwrap(), b"s3cret");
        // Moved to another workspace or name: refused.
        assert_eq!(ring.open(b"ws2:token", &sealed), Err(KeyringError::Corrupt));
        // Altered: refused.
        let mut altered = sealed.clone();
        altered.data = B64.encode(b"0123456789abcdef0123456789");
        assert_eq!(
            ring.open(b"ws1:token", &altered),
            Err(KeyringError::Corrupt)
        );
        // Two seals of one value differ (random nonces).
        assert_ne!(
            ring.seal(b"a", b"v").unwrap(),
            ring.seal(b"a", b"v").unwrap()
        );
    }

    #[test]
    fn a_rotated_keyring_seals_with_the_new_key_and_opens_the_old_values() {
        let (old, old_text) = Keyring::generate("k1").unwrap();
        let before = old.seal(b"aad", b"old value").unwrap();
        let (_, new_text) = Keyring::generate("k2").unwrap();
        let rotated = Keyring::parse(&format!("{new_text}, {old_text}")).unwrap();
        assert_eq!(rotated.sealing_key(), "k2");
        assert_eq!(rotated.open(b"aad", &before).unwrap(), b"old value");
        let after = rotated.seal(b"aad", b"new value").unwrap();
        assert_eq!(after.key, "k2");
        // The old keyring alone cannot open what the new key sealed.
        assert_eq!(
            old.open(b"aad", &after),
            Err(KeyringError::UnknownKey("k2".into()))
        );
    }

    #[test]
    fn malformed_keyrings_name_the_problem_and_debug_shows_no_key() {
        for (text, needle) in [
            ("", "no key"),
            ("k1", "no `:`"),
            ("k1:***", "not base64"),
            ("k1:AAAA", "not 32 bytes"),
            ("k 1:AAAA", "key id"),
        ] {
            let e = Keyring::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let (_, text) = Keyring::generate("k1").unwrap();
        let twice = format!("{text},{text}");
        assert!(
            Keyring::parse(&twice)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let ring = Keyring::parse(&text).unwrap();
        let shown = format!("{ring:?}");
        let key = text.split_once(':').unwrap().1;
        assert!(shown.contains("k1") && !shown.contains(key), "{shown}");
    }
}
