//! Opaque secrets (session ids, one-time links) and the server's keys under `keys/`.

mod keyring;
mod secret_box;
pub mod signing;

pub use keyring::Keyring;
pub(crate) use keyring::load_or_create_secret;
pub use secret_box::{SecretUnreadable, UpstreamSecrets};
pub use signing::{SigningAlg, SigningKey, SigningKeys};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A high-entropy secret handed to a browser or put in a link: 256 random bits, base64url.
/// Only its [`TokenDigest`] is ever stored.
#[derive(Clone)]
pub struct OpaqueToken(String);

impl OpaqueToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Wraps a value received from a client; `None` when it cannot be one of ours (so that
    /// garbage is refused before it reaches the store).
    pub fn from_client(value: &str) -> Option<Self> {
        let ok = value.len() == 43
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }
}

impl std::fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueToken(…)")
    }
}

/// SHA-256 of an [`OpaqueToken`]: what the database holds. Lookups are by digest, so a
/// database reader cannot replay a session or a link.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// SHA-256 of any presented value (a client secret, a JWT for a cache key).
    pub fn of(value: &str) -> Self {
        Self(Sha256::digest(value.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_round_trip() {
        let a = OpaqueToken::generate();
        let b = OpaqueToken::generate();
        assert_ne!(a.as_str(), b.as_str());
        let back = OpaqueToken::from_client(a.as_str()).unwrap();
        assert_eq!(back.digest(), a.digest());
        assert!(OpaqueToken::from_client("short").is_none());
        assert!(OpaqueToken::from_client(&"a".repeat(42).replace('a', "é")).is_none());
    }
}
