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
        if id.is_empty() || id.len() > 128 {
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
        #[derive(serde::Deserialize)]
        struct Assertion {
            iss: String,
            sub: String,
            exp: i64,
            jti: String,
        }
        let bad = Err(AuthFailure::BadAssertion);
        if creds.assertion_type.as_deref() != Some(CLIENT_ASSERTION_TYPE) {
            return Ok(bad);
        }
        let token = creds.assertion.as_deref().unwrap_or_default();
        let Some(jwks) = client
            .jwks
            .as_deref()
            .and_then(|j| serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(j).ok())
        else {
            return Ok(bad);
        };
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Ok(bad);
        };
        let jwk = match &header.kid {
            Some(kid) => jwks.find(kid),
            None if jwks.keys.len() == 1 => jwks.keys.first(),
            None => None,
        };
        let Some(jwk) = jwk else {
            return Ok(bad);
        };
        let Ok(key) = jsonwebtoken::DecodingKey::from_jwk(jwk) else {
            return Ok(bad);
        };
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
            _ => return Ok(bad),
        };
        let mut validation = jsonwebtoken::Validation::new(alg);
        // RFC 7523 §3: the audience is the token endpoint (the issuer is also accepted).
        validation.set_audience(&[format!("{}/oauth2/token", self.issuer), self.issuer.clone()]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        let claims = match jsonwebtoken::decode::<Assertion>(token, &key, &validation) {
            Ok(decoded) => decoded.claims,
            Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                return Ok(Err(AuthFailure::ExpiredAssertion));
            }
            Err(_) => return Ok(bad),
        };
        if claims.iss != client.id || claims.sub != client.id || claims.jti.is_empty() {
            return Ok(bad);
        }
        let Ok(expires) = OffsetDateTime::from_unix_timestamp(claims.exp) else {
            return Ok(bad);
        };
        if expires > now + time::Duration::hours(1) {
            return Ok(bad);
        }
        // Single use: a replayed assertion is refused.
        let jti = format!("assertion:{}:{}", client.id, claims.jti);
        if !self.store.remember_jti(&jti, expires).await? {
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
