//! Token signing keys: PKCS#8 PEM files under `keys/signing/`, created on first start, parsed
//! once into ready-to-sign key pairs (parsing per token would cost more than the ES256 or
//! EdDSA signature itself), and published as a JWK Set serialized once.
//!
//! A file is named `<alg>-<unix seconds>.pem`. The newest key of each algorithm signs; older
//! ones stay published (and accepted) until `retain` after their successor appeared, which
//! is longer than any token they signed lives. `kid` is the RFC 7638 thumbprint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;
use time::OffsetDateTime;

use super::keyring::write_private;

/// The JWS algorithms Gotthard signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    Rs256,
    Es256,
    EdDsa,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == value)
    }

    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            SigningAlg::Rs256 => Algorithm::RS256,
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::EdDsa => Algorithm::EdDSA,
        }
    }

    fn file_prefix(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "rs256",
            SigningAlg::Es256 => "es256",
            SigningAlg::EdDsa => "eddsa",
        }
    }

    fn generate_pkcs8(self) -> anyhow::Result<Vec<u8>> {
        use aws_lc_rs::encoding::AsDer;
        let failed = |_| anyhow::anyhow!("cannot generate a {} key", self.as_str());
        Ok(match self {
            SigningAlg::Rs256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(failed)?;
                pair.as_der().map_err(failed)?.as_ref().to_vec()
            }
            SigningAlg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(failed)?
                .to_pkcs8v1()
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            SigningAlg::EdDsa => Ed25519KeyPair::generate()
                .map_err(failed)?
                .to_pkcs8v1()
                .map_err(failed)?
                .as_ref()
                .to_vec(),
        })
    }
}

enum Pair {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One parsed key: what signs, what verifies, what is published.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub created: OffsetDateTime,
    pair: Pair,
    jwk: Jwk,
    pub decoding: DecodingKey,
}

impl SigningKey {
    fn parse(alg: SigningAlg, created: OffsetDateTime, pkcs8: &[u8]) -> anyhow::Result<Self> {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (pair, params) = match alg {
            SigningAlg::Rs256 => {
                let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8)
                    .map_err(|e| anyhow::anyhow!("not an RSA PKCS#8 key: {e}"))?;
                let public = pair.public_key();
                let params = AlgorithmParameters::RSA(RSAKeyParameters {
                    key_type: RSAKeyType::RSA,
                    n: b64(public.modulus().big_endian_without_leading_zero()),
                    e: b64(public.exponent().big_endian_without_leading_zero()),
                });
                (Pair::Rsa(pair), params)
            }
            SigningAlg::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|e| anyhow::anyhow!("not a P-256 PKCS#8 key: {e}"))?;
                // Uncompressed point: 0x04 || x || y.
                let point = pair.public_key().as_ref().to_vec();
                anyhow::ensure!(point.len() == 65, "unexpected P-256 public key length");
                let params = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: b64(&point[1..33]),
                    y: b64(&point[33..]),
                });
                (Pair::Ec(pair), params)
            }
            SigningAlg::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
                    .map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 key: {e}"))?;
                let params = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: b64(pair.public_key().as_ref()),
                });
                (Pair::Ed(pair), params)
            }
        };
        let mut jwk = Jwk {
            common: CommonParameters::default(),
            algorithm: params,
        };
        let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
        jwk.common = CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(match alg {
                SigningAlg::Rs256 => KeyAlgorithm::RS256,
                SigningAlg::Es256 => KeyAlgorithm::ES256,
                SigningAlg::EdDsa => KeyAlgorithm::EdDSA,
            }),
            key_id: Some(kid.clone()),
            ..CommonParameters::default()
        };
        let decoding = DecodingKey::from_jwk(&jwk)?;
        Ok(Self {
            kid,
            alg,
            created,
            pair,
            jwk,
            decoding,
        })
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(|_| SignError)?;
                Ok(signature)
            }
            Pair::Ec(pair) => Ok(pair
                .sign(&rng, message)
                .map_err(|_| SignError)?
                .as_ref()
                .to_vec()),
            Pair::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    /// A compact JWS of `claims` with header `{alg, kid, typ}`.
    pub fn sign_jwt<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, SignError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            kid: &'a str,
            typ: &'a str,
        }
        let header = serde_json::to_vec(&Header {
            alg: self.alg.as_str(),
            kid: &self.kid,
            typ,
        })
        .map_err(|_| SignError)?;
        let payload = serde_json::to_vec(claims).map_err(|_| SignError)?;
        let mut jwt = String::with_capacity(header.len() * 2 + payload.len() * 2 + 400);
        URL_SAFE_NO_PAD.encode_string(&header, &mut jwt);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jwt);
        let signature = self.sign(jwt.as_bytes())?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut jwt);
        Ok(jwt)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("signing failed")]
pub struct SignError;

/// The loaded keys at one moment.
struct KeySet {
    active: HashMap<SigningAlg, Arc<SigningKey>>,
    by_kid: HashMap<String, Arc<SigningKey>>,
    jwks_json: bytes::Bytes,
}

/// All signing keys; reloaded from `keys/signing/` by [`SigningKeys::reload`] (the
/// maintenance task) so that a `gotthard keys rotate` reaches a running server.
pub struct SigningKeys {
    dir: PathBuf,
    retain: time::Duration,
    set: RwLock<Arc<KeySet>>,
}

impl SigningKeys {
    /// Loads `dir/signing/`, creating one key per algorithm when none exists.
    pub fn load_or_create(
        keys_dir: &Path,
        retain: time::Duration,
        now: OffsetDateTime,
    ) -> anyhow::Result<Self> {
        let dir = keys_dir.join("signing");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create keys folder {}", dir.display()))?;
        let files = list(&dir)?;
        for alg in SigningAlg::ALL {
            if !files.iter().any(|(a, _, _)| *a == alg) {
                create(&dir, alg, now)?;
            }
        }
        let set = load(&dir, retain, now)?;
        Ok(Self {
            dir,
            retain,
            set: RwLock::new(Arc::new(set)),
        })
    }

    /// Re-reads the folder (after a rotation by another process).
    pub fn reload(&self, now: OffsetDateTime) -> anyhow::Result<()> {
        let set = load(&self.dir, self.retain, now)?;
        if let Ok(mut current) = self.set.write() {
            *current = Arc::new(set);
        }
        Ok(())
    }

    fn current(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The key that signs with `alg` now.
    pub fn active(&self, alg: SigningAlg) -> Option<Arc<SigningKey>> {
        self.current().active.get(&alg).cloned()
    }

    /// A published key, to verify a token that names it.
    pub fn by_kid(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.current().by_kid.get(kid).cloned()
    }

    /// The JWK Set document, serialized once per (re)load.
    pub fn jwks_json(&self) -> bytes::Bytes {
        self.current().jwks_json.clone()
    }
}

/// Adds a new key for every algorithm (the old ones stay published for `retain`) and
/// deletes the files whose successor is older than `retain`. Returns the new kids.
pub fn rotate(
    keys_dir: &Path,
    retain: time::Duration,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<String>> {
    let dir = keys_dir.join("signing");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create keys folder {}", dir.display()))?;
    // Two rotations within one second would collide on the file name: wait for the next.
    let mut created = now;
    while list(&dir)?.iter().any(|(_, at, _)| *at >= created) {
        created += time::Duration::seconds(1);
    }
    let mut kids = Vec::new();
    for alg in SigningAlg::ALL {
        let path = create(&dir, alg, created)?;
        let pem = std::fs::read(&path)?;
        let key = SigningKey::parse(alg, created, &pem::parse(pem)?.into_contents())?;
        kids.push(key.kid);
    }
    for (alg, at, path) in list(&dir)? {
        if expired(&list(&dir)?, alg, at, retain, now) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove retired key {}", path.display()))?;
        }
    }
    Ok(kids)
}

/// Whether a key was superseded more than `retain` ago.
fn expired(
    files: &[(SigningAlg, OffsetDateTime, PathBuf)],
    alg: SigningAlg,
    at: OffsetDateTime,
    retain: time::Duration,
    now: OffsetDateTime,
) -> bool {
    files
        .iter()
        .filter(|(a, other, _)| *a == alg && *other > at)
        .map(|(_, other, _)| *other)
        .min()
        .is_some_and(|successor| successor + retain <= now)
}

fn list(dir: &Path) -> anyhow::Result<Vec<(SigningAlg, OffsetDateTime, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((prefix, rest)) = name.strip_suffix(".pem").and_then(|s| s.split_once('-')) else {
            continue;
        };
        let Some(alg) = SigningAlg::ALL
            .into_iter()
            .find(|a| a.file_prefix() == prefix)
        else {
            continue;
        };
        let Ok(at) = rest
            .parse::<i64>()
            .map_err(|_| ())
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).map_err(|_| ()))
        else {
            continue;
        };
        files.push((alg, at, path));
    }
    files.sort_by_key(|(_, at, _)| *at);
    Ok(files)
}

fn create(dir: &Path, alg: SigningAlg, now: OffsetDateTime) -> anyhow::Result<PathBuf> {
    let der = alg.generate_pkcs8()?;
    let text = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
    let path = dir.join(format!(
        "{}-{}.pem",
        alg.file_prefix(),
        now.unix_timestamp()
    ));
    write_private(&path, text.as_bytes())
        .with_context(|| format!("cannot write key {}", path.display()))?;
    Ok(path)
}

fn load(dir: &Path, retain: time::Duration, now: OffsetDateTime) -> anyhow::Result<KeySet> {
    let files = list(dir)?;
    let mut active = HashMap::new();
    let mut by_kid = HashMap::new();
    let mut published = Vec::new();
    for (alg, at, path) in &files {
        if expired(&files, *alg, *at, retain, now) {
            continue;
        }
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let der = pem::parse(text)
            .with_context(|| format!("{} is not a PEM file", path.display()))?
            .into_contents();
        let key = Arc::new(
            SigningKey::parse(*alg, *at, &der)
                .with_context(|| format!("cannot use key {}", path.display()))?,
        );
        published.push(key.jwk.clone());
        by_kid.insert(key.kid.clone(), key.clone());
        // Sorted oldest first: the last one of an algorithm wins.
        active.insert(*alg, key);
    }
    for alg in SigningAlg::ALL {
        anyhow::ensure!(
            active.contains_key(&alg),
            "no {} key under {}",
            alg.as_str(),
            dir.display()
        );
    }
    // Newest first, so that clients picking the first matching key pick the active one.
    published.reverse();
    let jwks_json = serde_json::to_vec(&JwkSet { keys: published })?.into();
    Ok(KeySet {
        active,
        by_kid,
        jwks_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_and_verify_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let retain = time::Duration::hours(2);
        let keys = SigningKeys::load_or_create(dir.path(), retain, now).unwrap();
        for alg in SigningAlg::ALL {
            let key = keys.active(alg).unwrap();
            let jwt = key
                .sign_jwt(
                    "JWT",
                    &serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}),
                )
                .unwrap();
            let mut validation = jsonwebtoken::Validation::new(alg.jwt_algorithm());
            validation.validate_aud = false;
            let data = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key.decoding, &validation)
                .unwrap();
            assert_eq!(data.claims["sub"], "x");
            assert_eq!(data.header.kid.as_deref(), Some(key.kid.as_str()));
        }
        let old = keys.active(SigningAlg::Es256).unwrap().kid.clone();
        let later = now + time::Duration::minutes(1);
        rotate(dir.path(), retain, later).unwrap();
        keys.reload(later).unwrap();
        let new = keys.active(SigningAlg::Es256).unwrap().kid.clone();
        assert_ne!(old, new);
        assert!(keys.by_kid(&old).is_some(), "old key still verifies");
        let jwks: serde_json::Value = serde_json::from_slice(&keys.jwks_json()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 6);
        // Past the retention the old key is gone from the set and from the disk.
        let much_later = later + retain;
        rotate(dir.path(), retain, much_later).unwrap();
        keys.reload(much_later).unwrap();
        assert!(keys.by_kid(&old).is_none());
        let jwks: serde_json::Value = serde_json::from_slice(&keys.jwks_json()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 6);
    }
}
