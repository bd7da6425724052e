//! The upstream client secrets of SSO connections, encrypted at rest with AES-256-GCM under
//! `keys/sso.key` (created on first start). The organization's id is the associated data, so a
//! ciphertext copied to another organization's row does not decrypt.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::load_or_create_secret;

#[derive(Debug, thiserror::Error)]
#[error("the client secret cannot be decrypted with keys/sso.key")]
pub struct SecretUnreadable;

/// The key of `keys/sso.key`: encrypts client secrets, and derives per-flow PKCE verifiers.
pub struct UpstreamSecrets {
    key: [u8; 32],
}

impl UpstreamSecrets {
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            key: load_or_create_secret(&dir.join("sso.key"))?,
        })
    }

    fn aead(&self) -> Result<LessSafeKey, SecretUnreadable> {
        UnboundKey::new(&AES_256_GCM, &self.key)
            .map(LessSafeKey::new)
            .map_err(|_| SecretUnreadable)
    }

    /// `nonce ‖ ciphertext ‖ tag`, with a fresh random 96-bit nonce.
    pub fn encrypt(&self, org_id: Uuid, secret: &str) -> Result<Vec<u8>, SecretUnreadable> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretUnreadable)?;
        let mut sealed = secret.as_bytes().to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(org_id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SecretUnreadable)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn decrypt(&self, org_id: Uuid, sealed: &[u8]) -> Result<String, SecretUnreadable> {
        if sealed.len() < NONCE_LEN {
            return Err(SecretUnreadable);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretUnreadable)?;
        let mut buffer = rest.to_vec();
        let plain = self
            .aead()?
            .open_in_place(nonce, Aad::from(org_id.as_bytes()), &mut buffer)
            .map_err(|_| SecretUnreadable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretUnreadable)
    }

    /// A value derived from `parts` under this key (the PKCE verifier of a flow is derived
    /// from its state, so that it is never stored).
    pub fn derive(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            // HMAC accepts keys of any length; this arm cannot be reached.
            Err(_) => return [0; 32],
        };
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_only_for_their_organization() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = UpstreamSecrets::load_or_create(dir.path()).unwrap();
        let org = Uuid::now_v7();
        let sealed = secrets.encrypt(org, "s3cret~value").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(secrets.decrypt(org, &sealed).unwrap(), "s3cret~value");
        assert!(secrets.decrypt(Uuid::now_v7(), &sealed).is_err());
        let again = UpstreamSecrets::load_or_create(dir.path()).unwrap();
        assert_eq!(again.decrypt(org, &sealed).unwrap(), "s3cret~value");
    }
}
