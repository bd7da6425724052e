//! The openidconnect plumbing towards one Entra ID tenant: the claims Entra adds (`tid`,
//! `oid`, `nbf`), discovery of `{authority}/{tenant}/v2.0/.well-known/openid-configuration`
//! (cached; fetched again when a token names a key the cached JWKS lacks), and the full
//! validation of an ID token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, Client, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IdTokenClaims, IdTokenFields, IdTokenVerifier, IssuerUrl, StandardErrorResponse,
    StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::outbound::{AllowedHosts, Outbound};

/// What Entra ID puts in its tokens beyond the standard claims.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EntraClaims {
    /// The tenant that issued the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// The user's immutable object id in that tenant: with `tid`, the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

impl AdditionalClaims for EntraClaims {}

pub type EntraIdTokenFields = IdTokenFields<
    EntraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
pub type EntraTokenResponse = StandardTokenResponse<EntraIdTokenFields, CoreTokenType>;
pub type EntraIdTokenClaims = IdTokenClaims<EntraClaims, CoreGenderClaim>;

/// A client built from a tenant's discovery document.
pub type EntraClient = Client<
    EntraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    EntraTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: time::Duration = time::Duration::minutes(2);
/// How long a discovery document (with its keys) is used before it is fetched again.
const DISCOVERY_TTL: time::Duration = time::Duration::hours(1);
/// Timeout of each request to Entra ID.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Discovery documents per issuer, shared by the requests of this instance.
#[derive(Clone)]
pub struct Discovery {
    http: Outbound,
    cache: Arc<Mutex<HashMap<String, (CoreProviderMetadata, OffsetDateTime)>>>,
}

impl Discovery {
    /// Requests go to public addresses only (or `allowed` hosts), answers are read up to
    /// `body_limit` bytes, redirects are not followed.
    pub fn new(allowed: AllowedHosts, body_limit: usize) -> anyhow::Result<Self> {
        Ok(Self {
            http: Outbound::new(allowed, body_limit, UPSTREAM_TIMEOUT)?,
            cache: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub fn http(&self) -> &Outbound {
        &self.http
    }

    /// The provider metadata of `issuer` (`{authority}/{tenant}/v2.0`): the cached copy while
    /// it is fresh, unless `refresh`. The crate checks that the document names exactly this
    /// issuer, so tokens of another tenant cannot pass the issuer check.
    pub async fn metadata(
        &self,
        issuer: &str,
        refresh: bool,
        now: OffsetDateTime,
    ) -> Result<CoreProviderMetadata, String> {
        if !refresh && let Some(cached) = self.cached(issuer, now) {
            return Ok(cached);
        }
        let url = IssuerUrl::new(issuer.to_string()).map_err(|e| e.to_string())?;
        let metadata = CoreProviderMetadata::discover_async(url, &self.http)
            .await
            .map_err(|e| format!("discovery of {issuer} failed: {e}"))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(issuer.to_string(), (metadata.clone(), now));
        }
        Ok(metadata)
    }

    fn cached(&self, issuer: &str, now: OffsetDateTime) -> Option<CoreProviderMetadata> {
        let cache = self.cache.lock().ok()?;
        let (metadata, fetched) = cache.get(issuer)?;
        (now - *fetched < DISCOVERY_TTL).then(|| metadata.clone())
    }
}

/// The verifier of one ID token: RS256 only (never the client secret as an HMAC key), this
/// issuer, this client id as audience, `exp` and `iat` against `now` with [`LEEWAY`].
pub fn verifier(
    metadata: &CoreProviderMetadata,
    client_id: &str,
    now: OffsetDateTime,
) -> IdTokenVerifier<'static, CoreJsonWebKey> {
    let exp_now = to_chrono(now - LEEWAY);
    let latest_iat = to_chrono(now + LEEWAY);
    IdTokenVerifier::new_public_client(
        openidconnect::ClientId::new(client_id.to_string()),
        metadata.issuer().clone(),
        metadata.jwks().clone(),
    )
    .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256])
    // Entra sends one audience; any other one is not trusted (OIDC Core §3.1.3.7 step 3).
    .set_other_audience_verifier_fn(|_| false)
    .set_time_fn(move || exp_now)
    .set_issue_time_verifier_fn(move |iat| {
        if iat <= latest_iat {
            Ok(())
        } else {
            Err("issued in the future".to_string())
        }
    })
}

fn to_chrono(t: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use openidconnect::core::CoreJsonWebKeySet;
    use openidconnect::{IdToken, Nonce};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::fuzz::{self, b64, edge_number, json_text, jwt_shaped, object_with, text};
    use crate::oidc::claims::tests::{KEYS, kids};
    use crate::tokens::SigningAlg;

    type EntraIdToken = IdToken<
        EntraClaims,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >;

    const TENANT_ISSUER: &str =
        "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0";
    const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
    const NONCE: &str = "n-0S6_WzA2Mj";

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    /// The test's RS256 key as Entra publishes its keys.
    fn published_keys() -> String {
        let set: Value = serde_json::from_slice(&KEYS.jwks_json()).unwrap();
        let rsa: Vec<Value> = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["kty"] == "RSA")
            .cloned()
            .collect();
        json!({ "keys": rsa }).to_string()
    }

    fn metadata(jwks: CoreJsonWebKeySet) -> CoreProviderMetadata {
        let document = json!({
            "issuer": TENANT_ISSUER,
            "authorization_endpoint": "https://login.microsoftonline.com/t/oauth2/v2.0/authorize",
            "token_endpoint": "https://login.microsoftonline.com/t/oauth2/v2.0/token",
            "jwks_uri": "https://login.microsoftonline.com/t/discovery/v2.0/keys",
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let metadata: CoreProviderMetadata = serde_json::from_value(document).unwrap();
        metadata.set_jwks(jwks)
    }

    fn entra_keys() -> CoreProviderMetadata {
        metadata(serde_json::from_str(&published_keys()).unwrap())
    }

    /// Parses and validates an ID token as the callback does; `Ok` only for a valid one.
    fn validate(
        metadata: &CoreProviderMetadata,
        token: &str,
    ) -> Result<EntraIdTokenClaims, String> {
        let token: EntraIdToken = token
            .parse()
            .map_err(|e: serde_json::Error| e.to_string())?;
        token
            .claims(
                &verifier(metadata, CLIENT_ID, now()),
                &Nonce::new(NONCE.into()),
            )
            .cloned()
            .map_err(|e| e.to_string())
    }

    /// Whether two tokens differ only in the bits base64url leaves unused in the signature's
    /// last character. The openidconnect crate decodes those leniently on purpose, so such a
    /// respelling is the same signed token (found by `fuzz_entra_round_trip`); harmless here,
    /// since nothing is keyed on an ID token's spelling.
    fn same_signature_bytes(a: &str, b: &str) -> bool {
        use base64::Engine;
        use base64::engine::{GeneralPurpose, general_purpose::NO_PAD};
        let lenient = GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            NO_PAD.with_decode_allow_trailing_bits(true),
        );
        match (a.rsplit_once('.'), b.rsplit_once('.')) {
            (Some((a_input, a_sig)), Some((b_input, b_sig))) => {
                a_input == b_input
                    && lenient
                        .decode(a_sig)
                        .ok()
                        .is_some_and(|s| lenient.decode(b_sig).ok() == Some(s))
            }
            _ => false,
        }
    }

    fn signed(claims: &Value) -> String {
        KEYS.active(SigningAlg::Rs256)
            .unwrap()
            .sign_jwt("JWT", claims)
            .unwrap()
    }

    /// Claims as a tenant (or whoever answers for it) could put them: the right values
    /// often, others of any type.
    fn id_token_claims() -> impl Strategy<Value = Value> {
        let at = now().unix_timestamp();
        let plausible = prop_oneof![
            Just(json!(TENANT_ISSUER)),
            Just(json!(CLIENT_ID)),
            Just(json!([CLIENT_ID])),
            Just(json!([CLIENT_ID, "another-app"])),
            Just(json!(NONCE)),
            (-600i64..600).prop_map(move |d| json!(at + d)),
            text().prop_map(Value::from),
            edge_number(),
        ];
        object_with(
            &[
                "iss",
                "aud",
                "sub",
                "exp",
                "iat",
                "nbf",
                "nonce",
                "tid",
                "oid",
                "email",
                "name",
                "auth_time",
                "preferred_username",
                "azp",
            ],
            plausible,
        )
    }

    /// JWK Sets of any shape: RSA keys with moduli and exponents of any size (empty, zero,
    /// one byte, thousands), EC and OKP keys, our `kid`, or any JSON.
    fn jwks_text() -> impl Strategy<Value = String> {
        let number = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..1100).prop_map(|b| b64(&b)),
            Just(String::new()),
            Just("AA".to_string()),
            Just("AQAB".to_string()),
            Just(b64(&[0xff; 8])),
            ".{0,8}",
        ];
        let key = (
            prop::sample::select(vec!["RSA", "EC", "OKP", "oct", ""]),
            prop::option::of(prop::sample::select(kids())),
            prop::option::of(prop::sample::select(vec![
                "RS256", "RS512", "PS256", "ES256", "none",
            ])),
            prop::sample::select(vec!["P-256", "P-384", "Ed25519", "X448"]),
            (number.clone(), number),
        )
            .prop_map(|(kty, kid, alg, crv, (n, e))| {
                json!({
                    "kty": kty, "kid": kid, "alg": alg, "use": "sig", "crv": crv,
                    "n": n, "e": e, "x": n, "y": e, "k": e,
                })
            });
        prop_oneof![
            3 => prop::collection::vec(key, 0..3).prop_map(|keys| json!({ "keys": keys }).to_string()),
            1 => json_text(),
        ]
    }

    proptest! {
        #![proptest_config(fuzz::config(256))]

        /// Token endpoint answers of any shape: a response or an error, never a panic; an ID
        /// token in one that parses is still refused without the tenant's signature.
        #[test]
        fn fuzz_entra_token_response_of_any_shape(
            body in prop_oneof![
                json_text(),
                (jwt_shaped(kids(), TENANT_ISSUER), text()).prop_map(|(id_token, access)| json!({
                    "access_token": access, "token_type": "Bearer", "expires_in": 3599,
                    "id_token": id_token,
                }).to_string()),
            ]
        ) {
            if let Ok(response) = serde_json::from_str::<EntraTokenResponse>(&body)
                && let Some(id_token) = openidconnect::TokenResponse::id_token(&response)
            {
                let verified = id_token
                    .claims(&verifier(&entra_keys(), CLIENT_ID, now()), &Nonce::new(NONCE.into()));
                prop_assert!(verified.is_err());
            }
        }

        /// ID tokens of every shape, with random headers and claims but not the tenant's
        /// signature: refused.
        #[test]
        fn fuzz_entra_id_token_forged_is_refused(token in jwt_shaped(kids(), TENANT_ISSUER)) {
            prop_assert!(validate(&entra_keys(), &token).is_err());
        }

        /// Discovery documents of any shape parse or fail; they do not panic.
        #[test]
        fn fuzz_entra_discovery_document_of_any_shape(
            document in prop_oneof![
                json_text(),
                object_with(
                    &[
                        "issuer", "authorization_endpoint", "token_endpoint", "jwks_uri",
                        "response_types_supported", "subject_types_supported",
                        "id_token_signing_alg_values_supported", "userinfo_endpoint",
                    ],
                    prop_oneof![
                        Just(json!(TENANT_ISSUER)),
                        Just(json!("https://login.microsoftonline.com/t/x")),
                        Just(json!(["code"])),
                        Just(json!(["RS256", "none", "HS256"])),
                        text().prop_map(Value::from),
                    ],
                )
                .prop_map(|v| v.to_string()),
            ]
        ) {
            if let Ok(metadata) = serde_json::from_str::<CoreProviderMetadata>(&document) {
                prop_assert!(!metadata.issuer().as_str().is_empty());
            }
        }
    }

    proptest! {
        #![proptest_config(fuzz::config(64))]

        /// Claims of any shape under the tenant's signature: valid only with this issuer,
        /// this application as audience, the nonce, and times within the leeway.
        #[test]
        fn fuzz_entra_id_token_signed_claims_of_any_shape(claims in id_token_claims()) {
            if let Ok(found) = validate(&entra_keys(), &signed(&claims)) {
                prop_assert_eq!(found.issuer().as_str(), TENANT_ISSUER);
                prop_assert_eq!(&claims["nonce"], &json!(NONCE));
                prop_assert!(found.audiences().iter().any(|a| a.as_str() == CLIENT_ID));
                prop_assert!(found.expiration().timestamp() > (now() - LEEWAY).unix_timestamp());
            }
        }

        /// JWK Sets of any shape: a token signed by a key they do not hold is refused, and
        /// none of them panics (a zero or oversized modulus, a wrong curve, not JSON).
        #[test]
        fn fuzz_entra_jwks_of_any_shape(jwks in jwks_text()) {
            let Ok(keys) = serde_json::from_str::<CoreJsonWebKeySet>(&jwks) else {
                return Ok(());
            };
            let at = now().unix_timestamp();
            let token = signed(&json!({
                "iss": TENANT_ISSUER, "aud": CLIENT_ID, "sub": "s", "exp": at + 60,
                "iat": at, "nonce": NONCE, "tid": "t", "oid": "o",
            }));
            let result = validate(&metadata(keys), &token);
            // Random moduli never match the key that signed.
            prop_assert!(result.is_err());
        }

        /// A valid ID token passes with its identity; changed anywhere, it does not.
        #[test]
        fn fuzz_entra_round_trip(
            tid in "[0-9a-f-]{36}",
            oid in "[0-9a-f-]{1,64}",
            lifetime in 1i64..7_200,
            at in 0usize..4_000,
            replacement in "[A-Za-z0-9_.-]",
        ) {
            let now = now().unix_timestamp();
            let token = signed(&json!({
                "iss": TENANT_ISSUER, "aud": CLIENT_ID, "sub": "s", "exp": now + lifetime,
                "iat": now, "nonce": NONCE, "tid": tid, "oid": oid,
            }));
            let found = validate(&entra_keys(), &token).map_err(TestCaseError::fail)?;
            prop_assert_eq!(found.additional_claims().tid.as_deref(), Some(tid.as_str()));
            prop_assert_eq!(found.additional_claims().oid.as_deref(), Some(oid.as_str()));
            let at = at % token.len();
            let mut changed = token.clone();
            changed.replace_range(at..at + 1, &replacement);
            if changed != token && !same_signature_bytes(&changed, &token) {
                prop_assert!(validate(&entra_keys(), &changed).is_err(), "{changed}");
            }
        }
    }
}
