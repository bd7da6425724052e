//! Clients: registration and their authentication at the token, introspection and
//! revocation endpoints.

use serde_json::json;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    CLIENT_ASSERTION_TYPE, ClientCredentials, OAuthError, Provider, app_event, backchannel,
};
use crate::audit::{Action, ClientInfo};
use crate::oidc::model::{Client, ClientAuthMethod};
use crate::store::StoreError;
use crate::tokens::{OpaqueToken, SigningAlg, TokenDigest};

/// What registering a client needs.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub name: String,
    pub auth_method: ClientAuthMethod,
    pub jwks: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub first_party: bool,
    pub require_pkce: bool,
    pub id_token_alg: SigningAlg,
    /// May ask for the `admin` scope (always with the user's consent).
    pub admin_scope: bool,
    /// Clients whose access tokens this one may introspect (it serves their APIs).
    pub introspect_for: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientSpecError {
    #[error("{0}")]
    Invalid(String),
    #[error("store: {0}")]
    Store(StoreError),
}

impl ClientSpec {
    fn check(&self) -> Result<(), ClientSpecError> {
        let invalid = |m: String| Err(ClientSpecError::Invalid(m));
        if self.redirect_uris.is_empty() {
            return invalid("`redirect_uris` needs at least one URI".into());
        }
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return invalid("the name must be 1 to 200 characters".into());
        }
        let uris = self
            .redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris);
        for uri in uris {
            match url::Url::parse(uri) {
                // RFC 6749 §3.1.2: absolute, no fragment. Plain http only for loopback.
                Ok(u)
                    if u.fragment().is_none()
                        && (u.scheme() == "https" || is_loopback_http(&u)) => {}
                Ok(u)
                    if u.fragment().is_none()
                        && !matches!(u.scheme(), "http" | "https" | "javascript" | "data") => {}
                _ => return invalid(format!("not an acceptable URI: {uri}")),
            }
        }
        if let Some(uri) = &self.backchannel_logout_uri
            && !backchannel::acceptable_uri(uri)
        {
            return invalid(format!(
                "backchannel_logout_uri must be an https URL (http only to a loopback host), \
                 without fragment: {uri}"
            ));
        }
        if self.introspect_for.len() > 50
            || self
                .introspect_for
                .iter()
                .any(|id| id.is_empty() || id.len() > 128)
        {
            return invalid("introspect_for: at most 50 client ids".into());
        }
        if !self.introspect_for.is_empty() && self.auth_method == ClientAuthMethod::None {
            // The introspection endpoint is for confidential clients only.
            return invalid("introspect_for needs a confidential client".into());
        }
        if self.auth_method == ClientAuthMethod::PrivateKeyJwt {
            let ok = self
                .jwks
                .as_deref()
                .and_then(|j| serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(j).ok())
                .is_some_and(|set| !set.keys.is_empty());
            if !ok {
                return invalid("private_key_jwt needs a JWK Set with at least one key".into());
            }
        }
        Ok(())
    }
}

fn is_loopback_http(url: &url::Url) -> bool {
    url.scheme() == "http" && matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
}

/// The `sub` of a client assertion, read before verification only to find the client.
fn assertion_subject(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Sub {
        sub: String,
    }
    jsonwebtoken::dangerous::insecure_decode::<Sub>(token)
        .ok()
        .map(|d| d.claims.sub)
}

impl Provider {
    /// Registers a client; the secret (confidential clients) is returned once and stored
    /// only as its SHA-256 (it is 256 random bits: a slow hash would add nothing).
    pub async fn create_client(
        &self,
        spec: ClientSpec,
        now: OffsetDateTime,
    ) -> Result<(Client, Option<String>), ClientSpecError> {
        spec.check()?;
        for id in &spec.introspect_for {
            if self
                .store
                .client(id)
                .await
                .map_err(ClientSpecError::Store)?
                .is_none()
            {
                return Err(ClientSpecError::Invalid(format!(
                    "introspect_for: no client {id}"
                )));
            }
        }
        let secret = match spec.auth_method {
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
                Some(OpaqueToken::generate())
            }
            _ => None,
        };
        let client = Client {
            id: Uuid::now_v7().simple().to_string(),
            name: spec.name,
            secret_hash: secret.as_ref().map(OpaqueToken::digest),
            auth_method: spec.auth_method,
            jwks: spec.jwks,
            redirect_uris: spec.redirect_uris,
            post_logout_redirect_uris: spec.post_logout_redirect_uris,
            backchannel_logout_uri: spec.backchannel_logout_uri,
            first_party: spec.first_party,
            require_pkce: spec.require_pkce || spec.auth_method == ClientAuthMethod::None,
            id_token_alg: spec.id_token_alg,
            admin_scope: spec.admin_scope,
            created_at: now,
            introspect_for: spec.introspect_for,
        };
        self.store
            .insert_client(&client)
            .await
            .map_err(ClientSpecError::Store)?;
        Ok((client, secret.map(|s| s.as_str().to_string())))
    }

    /// Every registered client (instance administrators, the CLI).
    pub async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.store.list_clients().await
    }

    /// Deletes a client; `false` when there is none with this id. Its tokens stop working at
    /// once: the deletion counts as a revocation, which voids what token checks remember.
    pub async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        self.store.delete_client(id).await
    }

    pub async fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        // RFC 6749 Appendix A.1: a client id is visible ASCII (ours are hex). Anything else,
        // a NUL above all (which PostgreSQL refuses to compare), is no client.
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Ok(None);
        }
        let epoch = self.checks.epoch();
        if let Some(client) = self.checks.client(id, epoch) {
            return Ok(Some(client));
        }
        let client = self.store.client(id).await?;
        if let Some(client) = &client {
            self.checks.keep_client(id, epoch, client.clone());
        }
        Ok(client)
    }

    /// Authenticates the client by its registered method (OIDC Core 9). Every failure is
    /// the same `invalid_client`. A failure of a registered client is recorded under its id
    /// (`client.auth_failed`, with where the request came from); one of an unknown id is
    /// not, or anyone could fill the log with made-up ids.
    pub async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
        requester: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Client, OAuthError> {
        let (method, id) = match (&creds.basic, &creds.client_secret, &creds.assertion) {
            (Some((id, _)), None, None) => (ClientAuthMethod::ClientSecretBasic, id.clone()),
            (None, Some(_), None) => (
                ClientAuthMethod::ClientSecretPost,
                creds.client_id.clone().unwrap_or_default(),
            ),
            (None, None, Some(assertion)) => (
                ClientAuthMethod::PrivateKeyJwt,
                assertion_subject(assertion).unwrap_or_default(),
            ),
            (None, None, None) => (
                ClientAuthMethod::None,
                creds.client_id.clone().unwrap_or_default(),
            ),
            _ => {
                return Err(OAuthError::invalid_request(
                    "more than one client authentication method",
                ));
            }
        };
        if let (Some(given), Some((basic_id, _))) = (&creds.client_id, &creds.basic)
            && given != basic_id
        {
            return Err(OAuthError::invalid_request(
                "client_id differs from the credentials",
            ));
        }
        let client = self
            .client(&id)
            .await?
            .ok_or_else(OAuthError::invalid_client)?;
        match self.check_credentials(&client, method, creds, now).await? {
            Ok(()) => Ok(client),
            Err(reason) => {
                let event = app_event(
                    None,
                    Action::ClientAuthFailed,
                    &client,
                    json!({
                        "client_id": client.id,
                        "reason": reason.as_str(),
                        "method": method.as_str(),
                    }),
                    requester,
                    now,
                );
                // Its own group commit: failures queue apart from the tokens issued.
                self.refusals.record((None, event)).await?;
                Err(OAuthError::invalid_client())
            }
        }
    }

    /// Checks the credentials of a known client: `Ok(Err(reason))` when they fail.
    async fn check_credentials(
        &self,
        client: &Client,
        method: ClientAuthMethod,
        creds: &ClientCredentials,
        now: OffsetDateTime,
    ) -> Result<Result<(), AuthFailure>, StoreError> {
        if client.auth_method != method {
            return Ok(Err(AuthFailure::WrongMethod));
        }
        let secret = match method {
            ClientAuthMethod::ClientSecretBasic => creds.basic.as_ref().map(|(_, s)| s.as_str()),
            ClientAuthMethod::ClientSecretPost => creds.client_secret.as_deref(),
            ClientAuthMethod::PrivateKeyJwt => {
                return self.check_client_assertion(client, creds, now).await;
            }
            ClientAuthMethod::None => return Ok(Ok(())),
        };
        let given = TokenDigest::of(secret.unwrap_or_default());
        Ok(match client.secret_hash {
            Some(stored) if bool::from(stored.0.ct_eq(&given.0)) => Ok(()),
            _ => Err(AuthFailure::WrongSecret),
        })
    }

    async fn check_client_assertion(
        &self,
        client: &Client,
        creds: &ClientCredentials,
        now: OffsetDateTime,
    ) -> Result<Result<(), AuthFailure>, StoreError> {
        if creds.assertion_type.as_deref() != Some(CLIENT_ASSERTION_TYPE) {
            return Ok(Err(AuthFailure::BadAssertion));
        }
        let token = creds.assertion.as_deref().unwrap_or_default();
        let checked = match verify_client_assertion(client, token, &self.issuer, now) {
            Ok(checked) => checked,
            Err(reason) => return Ok(Err(reason)),
        };
        // Single use: a replayed assertion is refused.
        let jti = format!("assertion:{}:{}", client.id, checked.jti);
        if !self.store.remember_jti(&jti, checked.expires).await? {
            return Ok(Err(AuthFailure::ReplayedAssertion));
        }
        Ok(Ok(()))
    }
}

/// Why a registered client's authentication failed, as recorded (never told the caller).
#[derive(Debug, Clone, Copy)]
enum AuthFailure {
    WrongMethod,
    WrongSecret,
    BadAssertion,
    ExpiredAssertion,
    ReplayedAssertion,
}

impl AuthFailure {
    fn as_str(self) -> &'static str {
        match self {
            AuthFailure::WrongMethod => "wrong_method",
            AuthFailure::WrongSecret => "wrong_secret",
            AuthFailure::BadAssertion => "bad_assertion",
            AuthFailure::ExpiredAssertion => "expired_assertion",
            AuthFailure::ReplayedAssertion => "replayed_assertion",
        }
    }
}

/// The longest `jti` of a client assertion: it is remembered (under a primary key, which
/// PostgreSQL bounds to about 2.7 kB) until the assertion expires.
const MAX_ASSERTION_JTI: usize = 256;

/// A client assertion that passed every check but the single use of its `jti`.
#[derive(Debug)]
struct CheckedAssertion {
    jti: String,
    expires: OffsetDateTime,
}

/// The checks of a `private_key_jwt` assertion (RFC 7523 §3) against the client's registered
/// keys, all but its single use: why it fails is recorded, the caller hears `invalid_client`.
fn verify_client_assertion(
    client: &Client,
    token: &str,
    issuer: &str,
    now: OffsetDateTime,
) -> Result<CheckedAssertion, AuthFailure> {
    #[derive(serde::Deserialize)]
    struct Assertion {
        iss: String,
        sub: String,
        exp: i64,
        jti: String,
    }
    let bad = AuthFailure::BadAssertion;
    let jwks: jsonwebtoken::jwk::JwkSet = client
        .jwks
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or(bad)?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| bad)?;
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
    .ok_or(bad)?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|_| bad)?;
    // The algorithm comes from the registered key, never from the header alone.
    let alg = match (&jwk.algorithm, header.alg) {
        (jsonwebtoken::jwk::AlgorithmParameters::RSA(_), a)
            if matches!(
                a,
                jsonwebtoken::Algorithm::RS256 | jsonwebtoken::Algorithm::PS256
            ) =>
        {
            a
        }
        (
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_),
            jsonwebtoken::Algorithm::ES256,
        ) => jsonwebtoken::Algorithm::ES256,
        (
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_),
            jsonwebtoken::Algorithm::EdDSA,
        ) => jsonwebtoken::Algorithm::EdDSA,
        _ => return Err(bad),
    };
    let mut validation = jsonwebtoken::Validation::new(alg);
    // RFC 7523 §3: the audience is the token endpoint (the issuer is also accepted).
    validation.set_audience(&[format!("{issuer}/oauth2/token"), issuer.to_string()]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let claims = match jsonwebtoken::decode::<Assertion>(token, &key, &validation) {
        Ok(decoded) => decoded.claims,
        Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
            return Err(AuthFailure::ExpiredAssertion);
        }
        Err(_) => return Err(bad),
    };
    if claims.iss != client.id
        || claims.sub != client.id
        || claims.jti.is_empty()
        || claims.jti.len() > MAX_ASSERTION_JTI
    {
        return Err(bad);
    }
    let expires = OffsetDateTime::from_unix_timestamp(claims.exp).map_err(|_| bad)?;
    if expires > now + time::Duration::hours(1) {
        return Err(bad);
    }
    Ok(CheckedAssertion {
        jti: claims.jti,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::fuzz::{self, edge_number, json_text, jwt_shaped, object_with, text};
    use crate::oidc::claims::tests::{ISSUER, KEYS, kids};

    const CLIENT_ID: &str = "0199a1b2c3d4e5f6a7b8c9d0e1f2a3b4";

    /// A `private_key_jwt` client whose registered JWK Set is `jwks` (by default the public
    /// keys of the test's signing keys, one per algorithm).
    fn client(jwks: Option<String>) -> Client {
        Client {
            id: CLIENT_ID.into(),
            name: "Machine".into(),
            secret_hash: None,
            auth_method: ClientAuthMethod::PrivateKeyJwt,
            jwks: Some(
                jwks.unwrap_or_else(|| String::from_utf8(KEYS.jwks_json().to_vec()).unwrap()),
            ),
            redirect_uris: vec!["https://app.example.com/cb".into()],
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
            first_party: false,
            require_pkce: false,
            id_token_alg: SigningAlg::Rs256,
            admin_scope: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            introspect_for: vec![],
        }
    }

    /// The server's clock: `jsonwebtoken` checks `exp` against it.
    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn signed(alg: SigningAlg, claims: &Value) -> String {
        KEYS.active(alg).unwrap().sign_jwt("JWT", claims).unwrap()
    }

    /// Refused as a bad or expired assertion (the caller hears `invalid_client`).
    fn is_refused(result: &Result<CheckedAssertion, AuthFailure>) -> bool {
        matches!(
            result,
            Err(AuthFailure::BadAssertion | AuthFailure::ExpiredAssertion)
        )
    }

    /// Assertion claims: the right values often, others of any type and size.
    fn assertion_claims() -> impl Strategy<Value = Value> {
        let at = now().unix_timestamp();
        let plausible = prop_oneof![
            Just(json!(CLIENT_ID)),
            Just(json!(format!("{ISSUER}/oauth2/token"))),
            Just(json!(ISSUER)),
            (-7_200i64..7_200).prop_map(move |d| json!(at + d)),
            "[A-Za-z0-9]{0,300}".prop_map(Value::from),
            text().prop_map(Value::from),
            edge_number(),
        ];
        object_with(
            &["iss", "sub", "aud", "exp", "jti", "iat", "nbf"],
            plausible,
        )
    }

    /// A JWK Set as a hostile registration could hold it: keys of every `kty` with
    /// parameters of any size (empty, huge or zero modulus, wrong curve), or any JSON.
    fn jwks_text() -> impl Strategy<Value = String> {
        let b64 = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..600).prop_map(|b| fuzz::b64(&b)),
            Just(String::new()),
            Just("AA".to_string()),
            Just("AQAB".to_string()),
            ".{0,10}",
        ];
        let key = (
            prop::sample::select(vec!["RSA", "EC", "OKP", "oct", "", "rsa"]),
            prop::sample::select(vec![
                "P-256",
                "P-384",
                "P-521",
                "Ed25519",
                "X25519",
                "secp256k1",
            ]),
            prop::option::of(prop::sample::select(kids())),
            prop::option::of(prop::sample::select(vec![
                "RS256", "ES256", "EdDSA", "HS256", "none",
            ])),
            (b64.clone(), b64.clone(), b64),
        )
            .prop_map(|(kty, crv, kid, alg, (a, b, c))| {
                json!({
                    "kty": kty, "crv": crv, "kid": kid, "alg": alg, "use": "sig",
                    "n": a, "e": b, "x": a, "y": c, "k": b,
                })
            });
        prop_oneof![
            3 => prop::collection::vec(key, 0..3).prop_map(|keys| json!({ "keys": keys }).to_string()),
            1 => json_text(),
        ]
    }

    proptest! {
        #![proptest_config(fuzz::config(256))]

        /// Strings of every shape and JWS with random headers and claims, unsigned by the
        /// client's key: `invalid_client`, never a panic.
        #[test]
        fn fuzz_client_assertion_forged_is_refused(token in jwt_shaped(kids(), ISSUER)) {
            let result = verify_client_assertion(&client(None), &token, ISSUER, now());
            prop_assert!(is_refused(&result));
        }
    }

    proptest! {
        #![proptest_config(fuzz::config(64))]

        /// Claims of any shape under the client's own signature: accepted only when `iss` and
        /// `sub` are the client, `aud` the token endpoint, `exp` within the hour, `jti` short.
        #[test]
        fn fuzz_client_assertion_signed_claims_of_any_shape(
            alg in prop::sample::select(SigningAlg::ALL.to_vec()),
            claims in assertion_claims(),
        ) {
            let at = now();
            let result = verify_client_assertion(&client(None), &signed(alg, &claims), ISSUER, at);
            match &result {
                Ok(checked) => {
                    prop_assert_eq!(&claims["iss"], &json!(CLIENT_ID));
                    prop_assert_eq!(&claims["sub"], &json!(CLIENT_ID));
                    prop_assert!(!checked.jti.is_empty() && checked.jti.len() <= MAX_ASSERTION_JTI);
                    prop_assert!(checked.expires <= at + time::Duration::hours(1));
                    prop_assert!(checked.expires > at - time::Duration::minutes(2));
                }
                Err(_) => prop_assert!(is_refused(&result)),
            }
        }

        /// A registered JWK Set of any shape (a key with a zero or huge modulus, a wrong
        /// curve, not JSON) refuses the assertion; it does not panic.
        #[test]
        fn fuzz_client_assertion_registered_jwks_of_any_shape(
            jwks in jwks_text(),
            alg in prop::sample::select(SigningAlg::ALL.to_vec()),
        ) {
            let at = now();
            let token = signed(alg, &json!({
                "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": format!("{ISSUER}/oauth2/token"),
                "exp": at.unix_timestamp() + 60, "jti": "j",
            }));
            let result = verify_client_assertion(&client(Some(jwks)), &token, ISSUER, at);
            prop_assert!(is_refused(&result));
        }

        /// A good assertion passes with its `jti`; changed anywhere, it does not.
        #[test]
        fn fuzz_client_assertion_round_trip(
            alg in prop::sample::select(SigningAlg::ALL.to_vec()),
            jti in "[A-Za-z0-9_-]{1,256}",
            lifetime in 1i64..3_600,
            to_issuer in any::<bool>(),
            at in 0usize..2_000,
            replacement in "[A-Za-z0-9_.-]",
        ) {
            let now = now();
            let aud = if to_issuer { ISSUER.to_string() } else { format!("{ISSUER}/oauth2/token") };
            let token = signed(alg, &json!({
                "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": aud,
                "exp": now.unix_timestamp() + lifetime, "jti": jti,
            }));
            let checked = verify_client_assertion(&client(None), &token, ISSUER, now)
                .map_err(|e| TestCaseError::fail(e.as_str()))?;
            prop_assert_eq!(checked.jti, jti);
            let at = at % token.len();
            let mut changed = token.clone();
            changed.replace_range(at..at + 1, &replacement);
            if changed != token {
                let result = verify_client_assertion(&client(None), &changed, ISSUER, now);
                prop_assert!(is_refused(&result), "{changed}");
            }
        }
    }

    /// A `jti` longer than PostgreSQL's primary key holds (about 2.7 kB) failed the store's
    /// insert: a 503 `temporarily_unavailable` for a fault of the request.
    #[test]
    fn a_long_jti_is_refused_before_the_store() {
        let at = now();
        let token = signed(
            SigningAlg::Es256,
            &json!({
                "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER,
                "exp": at.unix_timestamp() + 60, "jti": "j".repeat(MAX_ASSERTION_JTI + 1),
            }),
        );
        let result = verify_client_assertion(&client(None), &token, ISSUER, at);
        assert!(is_refused(&result));
    }
}
