//! The provider's rules: clients and their authentication, authorization requests, the
//! grants of the token endpoint, token checks, introspection, revocation.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

mod authorize;
mod backchannel;
mod clients;
mod error;
mod introspection;

pub use authorize::{AuthorizeError, AuthorizeRequest, AuthorizeStep, LOGIN_AFTER};
pub use backchannel::LogoutSender;
pub use clients::{ClientSpec, ClientSpecError};
pub use error::OAuthError;

use super::checks::{CacheScope, TokenChecks};
use super::claims::{self, AccessClaims, JwtRefused};
use super::model::*;
use crate::accounts::User;
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::config::OidcConfig;
use crate::sessions::SessionPolicy;
use crate::store::{Store, StoreError};
use crate::tokens::{OpaqueToken, SigningAlg, SigningKeys, TokenDigest};

/// Scopes this provider knows; others in a request are ignored (OIDC Core 3.1.2.1).
pub const SCOPES: [&str; 7] = [
    "openid",
    "profile",
    "email",
    "offline_access",
    "account:read",
    "account:write",
    ADMIN_SCOPE,
];

/// Administration through the account API (instance and organization administration).
/// Only clients registered for it may ask for it; the user is asked every time.
pub const ADMIN_SCOPE: &str = "admin";

pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How a client authenticated at the token, introspection or revocation endpoint.
#[derive(Debug, Default)]
pub struct ClientCredentials {
    /// From `Authorization: Basic` (already URL-decoded).
    pub basic: Option<(String, String)>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub assertion_type: Option<String>,
    pub assertion: Option<String>,
}

/// What the token endpoint answers (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// The provider service.
#[derive(Clone)]
pub struct Provider {
    checks: Arc<TokenChecks>,
    issues: super::issue_log::IssueLog,
    store: Arc<dyn Store>,
    keys: Arc<SigningKeys>,
    issuer: String,
    config: OidcConfig,
    sessions: SessionPolicy,
    discovery: bytes::Bytes,
    authorization_server: bytes::Bytes,
}

impl Provider {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<SigningKeys>,
        issuer: &str,
        config: OidcConfig,
        sessions: SessionPolicy,
        cache_scope: CacheScope,
    ) -> Self {
        let issuer = issuer.trim_end_matches('/').to_string();
        let mut metadata = discovery_document(&issuer);
        let discovery = serde_json::to_vec(&metadata).unwrap_or_default().into();
        if let Some(map) = metadata.as_object_mut() {
            map.remove("userinfo_endpoint");
            map.remove("end_session_endpoint");
        }
        let authorization_server = serde_json::to_vec(&metadata).unwrap_or_default().into();
        Self {
            issues: super::issue_log::IssueLog::start(store.clone()),
            checks: Arc::new(TokenChecks::new(store.revocations().clone(), cache_scope)),
            store,
            keys,
            issuer,
            config,
            sessions,
            discovery,
            authorization_server,
        }
    }

    /// Starts listening to other instances' revocations (servers; with Redis only).
    pub fn start_revocation_feed(&self) {
        self.checks.start_feed();
    }

    /// Whether bearer checks may be remembered now (always on one instance; with Redis,
    /// while the revocation feed is whole).
    pub fn remembers_token_checks(&self) -> bool {
        self.checks.epoch().is_some()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    /// `/.well-known/openid-configuration`, serialized once.
    pub fn discovery_json(&self) -> bytes::Bytes {
        self.discovery.clone()
    }

    /// `/.well-known/oauth-authorization-server` (RFC 8414), serialized once.
    pub fn authorization_server_json(&self) -> bytes::Bytes {
        self.authorization_server.clone()
    }

    // ----- token endpoint ------------------------------------------------------------

    pub async fn token(
        &self,
        params: &HashMap<String, String>,
        creds: &ClientCredentials,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        let grant_type = params
            .get("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        let client = self.authenticate_client(creds, now).await?;
        match grant_type.as_str() {
            "authorization_code" => self.exchange_code(&client, params, client_info, now).await,
            "refresh_token" => self.refresh(&client, params, client_info, now).await,
            "client_credentials" => {
                self.client_credentials(&client, params, client_info, now)
                    .await
            }
            _ => Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                "supported: authorization_code, refresh_token, client_credentials",
            )),
        }
    }

    async fn exchange_code(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        let code = params
            .get("code")
            .and_then(|c| OpaqueToken::from_client(c))
            .ok_or_else(|| OAuthError::invalid_grant("unknown, expired or used code"))?;
        let grant_id = Uuid::now_v7();
        let code = match self
            .store
            .redeem_code(&code.digest(), grant_id, now)
            .await?
        {
            CodeRedemption::Redeemed(code) => code,
            CodeRedemption::Replayed(code) => {
                // The grant the first use started is revoked by now; say so in the log.
                let event = app_event(
                    Some(code.user_id),
                    Action::TokenReuseDetected,
                    client,
                    json!({ "client_id": code.client_id, "kind": "authorization_code" }),
                    client_info,
                    now,
                );
                self.store.record_event(&event).await?;
                return Err(OAuthError::invalid_grant("unknown, expired or used code"));
            }
            CodeRedemption::Unusable => {
                return Err(OAuthError::invalid_grant("unknown, expired or used code"));
            }
        };
        // The code is spent now: any failure below burns it (and its fresh grant).
        let refusal = if code.client_id != client.id {
            Some("the code was issued to another client")
        } else if params.get("redirect_uri") != Some(&code.redirect_uri) {
            Some("redirect_uri differs from the authorization request")
        } else {
            match (&code.code_challenge, params.get("code_verifier")) {
                (Some(challenge), Some(verifier))
                    if claims::valid_pkce_value(verifier)
                        && claims::pkce_matches(challenge, verifier) =>
                {
                    None
                }
                (Some(_), _) => Some("PKCE verification failed"),
                (None, Some(_)) => Some("code_verifier sent without a code_challenge"),
                (None, None) => None,
            }
        };
        if let Some(why) = refusal {
            self.store
                .revoke_grant(grant_id, "code_refused", now)
                .await?;
            return Err(OAuthError::invalid_grant(why));
        }
        let Some(grant) = self.store.grant(grant_id).await? else {
            return Err(OAuthError::server());
        };
        let user = self
            .store
            .user_by_id(code.user_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("the account no longer exists"))?;
        // Only the session decides here: a replay racing this request may already have
        // revoked the grant, and then these tokens are born revoked rather than refused
        // (so exactly one of two parallel redemptions succeeds).
        if !self.session_alive(&grant, now) {
            return Err(OAuthError::invalid_grant("the session has ended"));
        }
        self.issue(
            client,
            &grant,
            &user,
            code.nonce.as_deref(),
            "authorization_code",
            client_info,
            now,
        )
        .await
    }

    async fn refresh(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        let token = params
            .get("refresh_token")
            .and_then(|c| OpaqueToken::from_client(c))
            .ok_or_else(|| OAuthError::invalid_grant("unknown or expired refresh token"))?;
        let digest = token.digest();
        let grace = time::Duration::seconds(self.config.refresh_grace_secs);
        let grant = match self
            .store
            .use_refresh_token(&digest, &client.id, now, grace)
            .await?
        {
            RefreshUse::Rotated(grant) if grant.client_id == client.id => grant,
            RefreshUse::Reused(grant) => {
                let event = app_event(
                    grant.user_id,
                    Action::TokenReuseDetected,
                    client,
                    json!({ "client_id": grant.client_id, "kind": "refresh_token" }),
                    client_info,
                    now,
                );
                self.store.record_event(&event).await?;
                return Err(OAuthError::invalid_grant(
                    "unknown or expired refresh token",
                ));
            }
            _ => {
                return Err(OAuthError::invalid_grant(
                    "unknown or expired refresh token",
                ));
            }
        };
        if !self.grant_alive(&grant, now) {
            return Err(OAuthError::invalid_grant("the session or grant has ended"));
        }
        let user = match grant.user_id {
            Some(id) => self.store.user_by_id(id).await?,
            None => None,
        }
        .ok_or_else(|| OAuthError::invalid_grant("the account no longer exists"))?;
        // Narrowing the scope on refresh is allowed (RFC 6749 §6), widening is not.
        let mut grant = grant;
        if let Some(requested) = params.get("scope") {
            let held: BTreeSet<&str> = grant.scope.split(' ').collect();
            let asked: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
            if asked.iter().any(|s| !held.contains(s)) {
                return Err(OAuthError::new(
                    400,
                    "invalid_scope",
                    "scope wider than granted",
                ));
            }
            grant.scope = asked.join(" ");
        }
        self.issue(
            client,
            &grant,
            &user,
            None,
            "refresh_token",
            client_info,
            now,
        )
        .await
    }

    async fn client_credentials(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        if client.is_public() {
            return Err(OAuthError::new(
                400,
                "unauthorized_client",
                "public clients cannot use client_credentials",
            ));
        }
        let requested = params.get("scope").map(String::as_str).unwrap_or("");
        let scope: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
        // No user behind these tokens: the OIDC and account scopes mean nothing here.
        if let Some(bad) = scope.iter().find(|s| SCOPES.contains(s)) {
            return Err(OAuthError::new(
                400,
                "invalid_scope",
                format!("{bad} needs a user"),
            ));
        }
        let scope = scope.join(" ");
        let jti = Uuid::now_v7().simple().to_string();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: client.id.clone(),
            aud: self.issuer.clone(),
            exp: now.unix_timestamp() + self.config.access_token_ttl_secs,
            iat: now.unix_timestamp(),
            jti,
            client_id: client.id.clone(),
            scope: scope.clone(),
            sid: None,
            auth_time: None,
            gid: None,
        };
        let access_token = self.sign_access(&claims)?;
        let event = app_event(
            None,
            Action::TokenIssued,
            client,
            json!({ "client_id": client.id, "grant_type": "client_credentials" }),
            client_info,
            now,
        );
        self.issues.record((None, event)).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.config.access_token_ttl_secs,
            scope,
            refresh_token: None,
            id_token: None,
        })
    }

    fn sign_access(&self, claims: &AccessClaims) -> Result<String, OAuthError> {
        let key = self
            .keys
            .active(SigningAlg::Es256)
            .ok_or_else(OAuthError::server)?;
        key.sign_jwt("at+jwt", claims)
            .map_err(|_| OAuthError::server())
    }

    /// Access token, refresh token and (for `openid`) ID token under a grant.
    #[allow(clippy::too_many_arguments)]
    async fn issue(
        &self,
        client: &Client,
        grant: &GrantState,
        user: &User,
        nonce: Option<&str>,
        grant_type: &str,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        let sid = grant.session_id.map(|s| s.to_string());
        let auth_time = grant.auth_time.map(OffsetDateTime::unix_timestamp);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: user.id.to_string(),
            aud: self.issuer.clone(),
            exp: now.unix_timestamp() + self.config.access_token_ttl_secs,
            iat: now.unix_timestamp(),
            jti: Uuid::now_v7().simple().to_string(),
            client_id: client.id.clone(),
            scope: grant.scope.clone(),
            sid: sid.clone(),
            auth_time,
            gid: Some(grant.id.simple().to_string()),
        };
        let access_token = self.sign_access(&claims)?;
        let refresh = OpaqueToken::generate();
        let expires_at = now + time::Duration::days(self.config.refresh_token_ttl_days);
        let id_token = if grant.scope.split(' ').any(|s| s == "openid") {
            let alg = client.id_token_alg;
            let key = self.keys.active(alg).ok_or_else(OAuthError::server)?;
            let mut id = serde_json::Map::new();
            id.insert("iss".into(), json!(self.issuer));
            id.insert("sub".into(), json!(user.id.to_string()));
            id.insert("aud".into(), json!(client.id));
            id.insert("azp".into(), json!(client.id));
            id.insert("iat".into(), json!(now.unix_timestamp()));
            id.insert(
                "exp".into(),
                json!(now.unix_timestamp() + self.config.id_token_ttl_secs),
            );
            if let Some(auth_time) = auth_time {
                id.insert("auth_time".into(), json!(auth_time));
            }
            if let Some(nonce) = nonce {
                id.insert("nonce".into(), json!(nonce));
            }
            if let Some(sid) = &sid {
                id.insert("sid".into(), json!(sid));
            }
            let fed = grant
                .session
                .is_some_and(|s| s.method == SessionMethod::Sso);
            id.insert("amr".into(), json!([if fed { "fed" } else { "pwd" }]));
            id.insert(
                "acr".into(),
                json!(if fed {
                    "urn:gotthard:acr:sso"
                } else {
                    "urn:gotthard:acr:password"
                }),
            );
            id.insert(
                "at_hash".into(),
                json!(claims::half_hash(alg, &access_token)),
            );
            for (name, value) in profile_claims(user, &grant.scope) {
                id.insert(name.into(), value);
            }
            Some(key.sign_jwt("JWT", &id).map_err(|_| OAuthError::server())?)
        } else {
            None
        };
        let event = app_event(
            Some(user.id),
            Action::TokenIssued,
            client,
            json!({ "client_id": client.id, "grant_type": grant_type }),
            client_info,
            now,
        );
        let refresh_record = NewRefreshToken {
            digest: refresh.digest(),
            grant_id: grant.id,
            created_at: now,
            expires_at,
        };
        self.issues.record((Some(refresh_record), event)).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.config.access_token_ttl_secs,
            scope: grant.scope.clone(),
            refresh_token: Some(refresh.as_str().to_string()),
            id_token,
        })
    }

    /// A grant whose tokens still work: not revoked, and its session (if any) neither
    /// ended nor expired.
    fn grant_alive(&self, grant: &GrantState, now: OffsetDateTime) -> bool {
        !grant.revoked && self.session_alive(grant, now)
    }

    fn session_alive(&self, grant: &GrantState, now: OffsetDateTime) -> bool {
        match (grant.session_id, grant.session) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some(s)) => {
                now - s.last_seen_at < self.sessions.idle_timeout
                    && now - s.created_at < self.sessions.absolute_lifetime
            }
        }
    }

    // ----- token checks: userinfo, introspection, the account API ----------------------

    /// Verifies an access token we issued and that it is still live (not revoked, its
    /// grant not revoked, its session not ended); with it comes its user (none for client
    /// credentials), read in the same query.
    pub async fn verify_access_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<(AccessClaims, Option<User>), BearerError> {
        let digest = TokenDigest::of(token);
        let claims = match self.checks.verified(&digest) {
            Some(claims) => claims,
            None => {
                let claims: AccessClaims = claims::verify_own(
                    &self.keys,
                    &self.issuer,
                    token,
                    Some("at+jwt"),
                    Some(&self.issuer),
                    Some(now),
                )
                .map_err(BearerError::Invalid)?;
                self.checks.keep_verified(digest, claims.clone());
                claims
            }
        };
        if claims.exp <= now.unix_timestamp() {
            return Err(BearerError::Invalid(JwtRefused::Expired));
        }
        let grant_id = match &claims.gid {
            Some(gid) => Some(
                Uuid::parse_str(gid).map_err(|_| BearerError::Invalid(JwtRefused::Malformed))?,
            ),
            None => None,
        };
        let epoch = self.checks.epoch();
        let state = match self.checks.liveness(&claims.jti, epoch) {
            Some(state) => state,
            None => {
                let state = self
                    .store
                    .access_token_state(&claims.jti, grant_id)
                    .await
                    .map_err(BearerError::Store)?;
                self.checks.keep_liveness(&claims.jti, epoch, state.clone());
                state
            }
        };
        if state.jti_revoked {
            return Err(BearerError::Revoked);
        }
        if grant_id.is_some() {
            match state.grant {
                Some(grant) if self.grant_alive(&grant, now) => {}
                _ => return Err(BearerError::Revoked),
            }
        }
        Ok((claims, state.user))
    }

    /// The userinfo response (OIDC Core 5.3) for a verified token and its user.
    pub fn userinfo(
        &self,
        claims: &AccessClaims,
        user: Option<&User>,
    ) -> Result<Value, BearerError> {
        if !claims.has_scope("openid") {
            return Err(BearerError::InsufficientScope);
        }
        let user = user.ok_or(BearerError::Revoked)?;
        let mut body = serde_json::Map::new();
        body.insert("sub".into(), json!(claims.sub));
        for (name, value) in profile_claims(user, &claims.scope) {
            body.insert(name.into(), value);
        }
        Ok(Value::Object(body))
    }

    /// RFC 7009: a refresh token revokes its whole grant, an access token itself. Tokens of
    /// other clients and unknown tokens are ignored (the answer is 200 either way).
    pub async fn revoke(
        &self,
        client: &Client,
        token: &str,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if let Some(opaque) = OpaqueToken::from_client(token) {
            if let Some(grant) = self
                .store
                .refresh_token_grant(&opaque.digest(), now)
                .await?
                && grant.client_id == client.id
                && self
                    .store
                    .revoke_grant(grant.id, "revoked_by_client", now)
                    .await?
            {
                let event = app_event(
                    grant.user_id,
                    Action::TokenRevoked,
                    client,
                    json!({ "client_id": client.id }),
                    client_info,
                    now,
                );
                self.store.record_event(&event).await?;
            }
            return Ok(());
        }
        let parsed: Result<AccessClaims, _> = claims::verify_own(
            &self.keys,
            &self.issuer,
            token,
            Some("at+jwt"),
            None,
            Some(now),
        );
        if let Ok(claims) = parsed
            && claims.client_id == client.id
        {
            let expires = OffsetDateTime::from_unix_timestamp(claims.exp).unwrap_or(now);
            self.store.remember_jti(&claims.jti, expires).await?;
        }
        Ok(())
    }

    // ----- logout ---------------------------------------------------------------------

    /// Validates an RP-initiated logout request (OIDC RP-Initiated Logout 1.0 §2). The
    /// `id_token_hint` may be expired but must be ours; a `post_logout_redirect_uri` must be
    /// registered for the client it names.
    pub async fn logout_request(
        &self,
        params: &HashMap<String, String>,
    ) -> Result<LogoutRequest, &'static str> {
        #[derive(serde::Deserialize)]
        struct Hint {
            aud: Audience,
            sub: String,
            sid: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Audience {
            One(String),
            Many(Vec<String>),
        }
        let hint = match params.get("id_token_hint") {
            Some(token) => Some(
                claims::verify_own::<Hint>(&self.keys, &self.issuer, token, None, None, None)
                    .map_err(|_| "oidc-error-id-token-hint")?,
            ),
            None => None,
        };
        let hint_client = hint.as_ref().and_then(|h| match &h.aud {
            Audience::One(a) => Some(a.clone()),
            Audience::Many(v) => v.first().cloned(),
        });
        let client_id = match (params.get("client_id"), hint_client) {
            (Some(given), Some(from_hint)) if *given != from_hint => {
                return Err("oidc-error-invalid-request");
            }
            (Some(given), _) => Some(given.clone()),
            (None, from_hint) => from_hint,
        };
        let client = match client_id {
            Some(id) => Some(
                self.client(&id)
                    .await
                    .map_err(|_| "oidc-error-unavailable")?
                    .ok_or("oidc-error-unknown-client")?,
            ),
            None => None,
        };
        let redirect = match params.get("post_logout_redirect_uri") {
            None => None,
            Some(uri) => {
                let registered = client
                    .as_ref()
                    .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
                if !registered {
                    return Err("oidc-error-redirect-uri");
                }
                let mut pairs = Vec::new();
                if let Some(state) = params.get("state") {
                    pairs.push(("state", state.clone()));
                }
                Some(append_query(uri, &pairs))
            }
        };
        Ok(LogoutRequest {
            client_name: client.map(|c| c.name),
            hint_subject: hint.as_ref().map(|h| h.sub.clone()),
            hint_session: hint.and_then(|h| h.sid),
            redirect,
        })
    }
}

/// A checked RP-initiated logout request.
#[derive(Debug)]
pub struct LogoutRequest {
    pub client_name: Option<String>,
    pub hint_subject: Option<String>,
    pub hint_session: Option<String>,
    /// Where to send the browser afterwards (`state` appended).
    pub redirect: Option<String>,
}

/// Why a bearer token was refused.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("invalid token: {0}")]
    Invalid(JwtRefused),
    #[error("token revoked")]
    Revoked,
    #[error("insufficient scope")]
    InsufficientScope,
    #[error("store: {0}")]
    Store(StoreError),
}

/// The claims of `profile` and `email` that the scope allows.
fn profile_claims(user: &User, scope: &str) -> Vec<(&'static str, Value)> {
    let mut claims = Vec::new();
    let scopes: BTreeSet<&str> = scope.split(' ').collect();
    if scopes.contains("profile") {
        claims.push(("name", json!(user.name)));
        claims.push(("updated_at", json!(user.updated_at.unix_timestamp())));
        if let Some(locale) = &user.locale {
            claims.push(("locale", json!(locale)));
        }
    }
    if scopes.contains("email") {
        claims.push(("email", json!(user.email)));
        // Gotthard does not verify addresses by mail; it does not claim to.
        claims.push(("email_verified", json!(false)));
    }
    claims
}

/// An activity event under a relying application's name (the activity log's "product").
fn app_event(
    user: Option<Uuid>,
    action: Action,
    client: &Client,
    details: Value,
    client_info: &ClientInfo,
    now: OffsetDateTime,
) -> ActivityEvent {
    ActivityEvent::new(user, action, client_info, details, now).for_product(&client.name)
}

/// Adds query parameters to a registered URI (which may already have a query).
fn append_query(uri: &str, pairs: &[(&str, String)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in pairs {
                    query.append_pair(name, value);
                }
            }
            url.to_string()
        }
        Err(_) => uri.to_string(),
    }
}

fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "end_session_endpoint": format!("{issuer}/oauth2/logout"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
        "introspection_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce",
            "at_hash", "sid", "amr", "acr", "name", "updated_at", "locale", "email",
            "email_verified"],
        "acr_values_supported": ["urn:gotthard:acr:password", "urn:gotthard:acr:sso"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
        "ui_locales_supported": ["en", "es", "fr"],
    })
}
