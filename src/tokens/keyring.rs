//! Keys kept under `keys/`, created on first start with owner-only permissions.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The server's symmetric keys. Signing keys for tokens join this with the OIDC provider.
#[derive(Clone)]
pub struct Keyring {
    csrf: [u8; 32],
}

impl Keyring {
    /// Loads `dir/csrf.key`, creating the folder and the key when absent.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create keys folder {}", dir.display()))?;
        let csrf = load_or_create_secret(&dir.join("csrf.key"))?;
        Ok(Self { csrf })
    }

    /// HMAC-SHA256 under the CSRF key (the signed double-submit token of OWASP's CSRF sheet).
    pub fn csrf_mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.csrf) {
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

pub(crate) fn load_or_create_secret(path: &PathBuf) -> anyhow::Result<[u8; 32]> {
    if path.exists() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read key {}", path.display()))?;
        return bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("key {} is not 32 bytes long", path.display()));
    }
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    write_private(path, &key).with_context(|| format!("cannot write key {}", path.display()))?;
    Ok(key)
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
