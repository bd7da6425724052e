//! The JWTs the provider issues and accepts: access tokens (RFC 9068), ID tokens, logout
//! tokens; and the checks every presented JWT goes through.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use crate::tokens::{SigningAlg, SigningKeys};

/// Claims of an access token (RFC 9068 §2.2), plus `gid`: the grant it was issued under, so
/// that introspection and the API can see a revoked family or an ended session at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
}

impl AccessClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}

/// Why a presented JWT was refused (only ever logged or mapped to `invalid_token`).
#[derive(Debug, thiserror::Error)]
pub enum JwtRefused {
    #[error("malformed token")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("wrong token type")]
    WrongType,
    #[error("expired")]
    Expired,
    #[error("invalid: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Verifies a JWT we signed: a known `kid`, the algorithm of that key (never the header's
/// choice, so `alg: none` or an HMAC confusion cannot pass), the `typ`, `iss` and, when
/// `now` is given, `exp` against the server's clock (`None` accepts an expired token, as
/// an `id_token_hint` may be).
pub fn verify_own<T: serde::de::DeserializeOwned>(
    keys: &SigningKeys,
    issuer: &str,
    token: &str,
    typ: Option<&str>,
    audience: Option<&str>,
    now: Option<time::OffsetDateTime>,
) -> Result<T, JwtRefused> {
    if token.len() > 8192 {
        return Err(JwtRefused::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRefused::Malformed)?;
    let kid = header.kid.as_deref().ok_or(JwtRefused::UnknownKey)?;
    let key = keys.by_kid(kid).ok_or(JwtRefused::UnknownKey)?;
    if let Some(typ) = typ {
        let given = header.typ.as_deref().unwrap_or("");
        // RFC 8725 §3.11: compare media types case-insensitively, with or without
        // the "application/" prefix.
        let given = given.strip_prefix("application/").unwrap_or(given);
        if !given.eq_ignore_ascii_case(typ) {
            return Err(JwtRefused::WrongType);
        }
    }
    let mut validation = Validation::new(key.alg.jwt_algorithm());
    validation.set_issuer(&[issuer]);
    validation.leeway = 0;
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    // Expiry is checked below against the server's clock, not the system's.
    validation.validate_exp = false;
    validation.required_spec_claims.remove("exp");
    let claims =
        jsonwebtoken::decode::<serde_json::Value>(token, &key.decoding, &validation)?.claims;
    if let Some(now) = now {
        let exp = claims.get("exp").and_then(serde_json::Value::as_i64);
        if exp.is_none_or(|exp| exp <= now.unix_timestamp()) {
            return Err(JwtRefused::Expired);
        }
    }
    serde_json::from_value(claims).map_err(|_| JwtRefused::Malformed)
}

/// `at_hash` / `c_hash` (OIDC Core 3.1.3.6): the left half of the hash that goes with the
/// signing algorithm (SHA-512 for Ed25519), base64url.
pub fn half_hash(alg: SigningAlg, value: &str) -> String {
    match alg {
        SigningAlg::EdDsa => {
            let digest = Sha512::digest(value.as_bytes());
            URL_SAFE_NO_PAD.encode(&digest[..32])
        }
        SigningAlg::Rs256 | SigningAlg::Es256 => {
            let digest = Sha256::digest(value.as_bytes());
            URL_SAFE_NO_PAD.encode(&digest[..16])
        }
    }
}

/// The PKCE check (RFC 7636 §4.6): S256 only.
pub fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    use subtle::ConstantTimeEq;
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
pub fn valid_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(challenge, verifier));
        assert!(!pkce_matches(
            challenge,
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX"
        ));
        assert!(valid_pkce_value(verifier));
        assert!(!valid_pkce_value("short"));
    }
}
