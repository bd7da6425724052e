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
pub(crate) mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::fuzz::{self, jwt_claims, jwt_header, jwt_shaped, mutated};

    pub(crate) const ISSUER: &str = "https://login.example.com";

    /// The moment the tests verify at; the keys were made then.
    pub(crate) fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    /// One key per algorithm, made once for all the properties.
    pub(crate) static KEYS: LazyLock<SigningKeys> = LazyLock::new(|| {
        let dir = tempfile::tempdir().unwrap();
        SigningKeys::load_or_create(dir.path(), time::Duration::hours(1), now()).unwrap()
    });

    pub(crate) fn kids() -> Vec<String> {
        SigningAlg::ALL
            .iter()
            .map(|alg| KEYS.active(*alg).unwrap().kid.clone())
            .collect()
    }

    fn access_claims() -> impl Strategy<Value = AccessClaims> {
        let s = || ".{0,40}";
        (
            (s(), s(), s(), s()),
            (1_800_000_001i64..i64::MAX, any::<i64>()),
            (
                prop::option::of(s()),
                prop::option::of(any::<i64>()),
                prop::option::of(s()),
            ),
        )
            .prop_map(
                |((sub, jti, client_id, scope), (exp, iat), (sid, auth_time, gid))| AccessClaims {
                    iss: ISSUER.into(),
                    sub,
                    aud: ISSUER.into(),
                    exp,
                    iat,
                    jti,
                    client_id,
                    scope,
                    sid,
                    auth_time,
                    gid,
                },
            )
    }

    fn verify(token: &str) -> Result<AccessClaims, JwtRefused> {
        verify_own(
            &KEYS,
            ISSUER,
            token,
            Some("at+jwt"),
            Some(ISSUER),
            Some(now()),
        )
    }

    fn real_token(alg: SigningAlg, claims: &Value) -> String {
        KEYS.active(alg)
            .unwrap()
            .sign_jwt("at+jwt", claims)
            .unwrap()
    }

    fn sample_token() -> String {
        real_token(
            SigningAlg::Es256,
            &json!({
                "iss": ISSUER, "sub": "u", "aud": ISSUER, "exp": 1_900_000_000i64,
                "iat": 1_800_000_000i64, "jti": "j", "client_id": "c", "scope": "openid"
            }),
        )
    }

    proptest! {
        #![proptest_config(fuzz::config(256))]

        /// Strings of every shape, and JWS with random headers (any `alg`, our `kid`s) and
        /// claims but no signature of ours: refused, never a panic.
        #[test]
        fn fuzz_jwt_forged_tokens_are_refused(token in jwt_shaped(kids(), ISSUER)) {
            prop_assert!(verify(&token).is_err());
        }

        /// A real token changed anywhere no longer verifies.
        #[test]
        fn fuzz_jwt_mutated_tokens_are_refused(
            (original, token) in Just(sample_token()).prop_flat_map(|t| (Just(t.clone()), mutated(t)))
        ) {
            if token != original {
                prop_assert!(verify(&token).is_err(), "{token}");
            }
        }
    }

    proptest! {
        #![proptest_config(fuzz::config(64))]

        /// Claims of any shape under a good signature: accepted only when they are an access
        /// token of this issuer for this audience, not expired.
        #[test]
        fn fuzz_jwt_signed_claims_of_any_shape(
            alg in prop::sample::select(SigningAlg::ALL.to_vec()),
            claims in jwt_claims(ISSUER),
        ) {
            let token = real_token(alg, &claims);
            if let Ok(found) = verify(&token) {
                prop_assert_eq!(found.iss.as_str(), ISSUER);
                prop_assert!(found.exp > now().unix_timestamp());
                prop_assert_eq!(&claims["iss"], &json!(ISSUER));
            }
        }

        /// Our own tokens verify to the claims they carry, whatever their values.
        #[test]
        fn fuzz_jwt_round_trip(
            alg in prop::sample::select(SigningAlg::ALL.to_vec()),
            claims in access_claims(),
        ) {
            let token = KEYS.active(alg).unwrap().sign_jwt("at+jwt", &claims).unwrap();
            let back = verify(&token).map_err(|e| TestCaseError::fail(format!("{e}: {token}")))?;
            prop_assert_eq!(serde_json::to_value(back).unwrap(), serde_json::to_value(&claims).unwrap());
        }

        /// A header naming one of our keys with another algorithm (`none`, HMAC with the
        /// public key, another curve) never passes.
        #[test]
        fn fuzz_jwt_header_confusion_is_refused(
            header in jwt_header(kids()),
            signature in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let payload = json!({
                "iss": ISSUER, "sub": "u", "aud": ISSUER, "exp": 1_900_000_000i64,
                "iat": 1, "jti": "j", "client_id": "c", "scope": "openid"
            });
            prop_assert!(verify(&fuzz::jws(header, payload, &signature)).is_err());
        }
    }

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
