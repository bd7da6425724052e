//! The provider's rules: clients and their authentication, authorization requests, the
//! grants of the token endpoint, token checks, introspection, revocation.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

mod backchannel;
mod clients;
mod error;
mod introspection;

pub use backchannel::LogoutSender;
pub use clients::{ClientSpec, ClientSpecError};
pub use error::OAuthError;

use super::checks::{CacheScope, TokenChecks};
use super::claims::{self, AccessClaims, JwtRefused};
use super::model::*;
use crate::accounts::User;
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::config::OidcConfig;
use crate::sessions::{Session, SessionPolicy};
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

/// A validated authorization request (client and redirect URI verified).
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: BTreeSet<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    /// [`LOGIN_AFTER`]: a `prompt=login` already answered with the login form, resumed; the
    /// session must have begun at or after this time (Unix seconds).
    pub login_after: Option<i64>,
}

/// The parameter that replaces `prompt=login` in a resumed authorization request, so that
/// the sign-in it asked for is required of the session (and of Entra ID through SSO)
/// without asking again after it.
pub const LOGIN_AFTER: &str = "gotthard_login_after";

impl AuthorizeRequest {
    pub fn scope_string(&self) -> String {
        self.scope.join(" ")
    }

    /// Whether the relying app asked for a fresh sign-in (`prompt=login`, now or before the
    /// login form it led to).
    pub fn wants_fresh_login(&self) -> bool {
        self.prompt.contains("login") || self.login_after.is_some()
    }
}

/// Why an authorization request fails.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Client or redirect URI not verified: shown on our own page, never redirected.
    Page(&'static str),
    /// Reported to the client at its verified redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// What to do with a valid authorization request for the browser at hand.
#[derive(Debug)]
pub enum AuthorizeStep {
    /// Show the login form, then come back with this query (without `prompt=login`).
    Login { resume_query: String },
    /// Ask the user to allow the client.
    Consent,
    /// Issue a code.
    Issue,
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

    // ----- authorization endpoint ----------------------------------------------------

    /// Validates an authorization request given as its parameters (query or form). The
    /// client and redirect URI are checked first; only then do errors go back to it.
    pub async fn authorization_request(
        &self,
        params: &[(String, String)],
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        let mut map: HashMap<&str, &str> = HashMap::new();
        let mut duplicated = None;
        for (name, value) in params {
            if value.len() > 2048 {
                return Err(AuthorizeError::Page("oidc-error-invalid-request"));
            }
            if map.insert(name.as_str(), value.as_str()).is_some() {
                duplicated = Some(name.clone());
            }
        }
        let client_id = map.get("client_id").copied().unwrap_or_default();
        let client = match self.client(client_id).await {
            Ok(Some(client)) => client,
            Ok(None) => return Err(AuthorizeError::Page("oidc-error-unknown-client")),
            Err(_) => return Err(AuthorizeError::Page("oidc-error-unavailable")),
        };
        let redirect_uri = map.get("redirect_uri").copied().unwrap_or_default();
        if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
            return Err(AuthorizeError::Page("oidc-error-redirect-uri"));
        }
        if duplicated.as_deref() == Some("client_id")
            || duplicated.as_deref() == Some("redirect_uri")
        {
            return Err(AuthorizeError::Page("oidc-error-invalid-request"));
        }
        let state = map.get("state").map(|s| s.to_string());
        let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.to_string(),
            state: state.clone(),
            error,
            description: description.to_string(),
        };
        if let Some(name) = duplicated {
            return Err(fail(
                "invalid_request",
                &format!("parameter {name} repeated"),
            ));
        }
        if map.contains_key("request") {
            return Err(fail(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        if map.contains_key("request_uri") {
            return Err(fail(
                "request_uri_not_supported",
                "request_uri is not supported",
            ));
        }
        match map.get("response_type").copied() {
            Some("code") => {}
            None => return Err(fail("invalid_request", "response_type is required")),
            Some(_) => {
                return Err(fail(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ));
            }
        }
        if let Some(mode) = map.get("response_mode")
            && *mode != "query"
        {
            return Err(fail(
                "invalid_request",
                "only response_mode=query is supported",
            ));
        }
        let scope: Vec<String> = {
            let mut seen = BTreeSet::new();
            map.get("scope")
                .unwrap_or(&"")
                .split(' ')
                .filter(|s| SCOPES.contains(s) && seen.insert(*s))
                .map(str::to_string)
                .collect()
        };
        if scope.is_empty() {
            return Err(fail("invalid_scope", "no supported scope requested"));
        }
        if scope.iter().any(|s| s == ADMIN_SCOPE) && !client.admin_scope {
            return Err(fail(
                "invalid_scope",
                "this client is not registered for the admin scope",
            ));
        }
        let code_challenge = map.get("code_challenge").map(|s| s.to_string());
        match (map.get("code_challenge_method").copied(), &code_challenge) {
            (Some("S256"), Some(c)) if claims::valid_pkce_value(c) => {}
            (Some("S256"), _) => return Err(fail("invalid_request", "invalid code_challenge")),
            (Some(_), _) => {
                return Err(fail(
                    "invalid_request",
                    "only code_challenge_method=S256 is supported",
                ));
            }
            // RFC 7636 defaults a missing method to `plain`, which is refused.
            (None, Some(_)) => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method=S256 is required",
                ));
            }
            (None, None) if client.require_pkce => {
                return Err(fail(
                    "invalid_request",
                    "PKCE (S256) is required for this client",
                ));
            }
            (None, None) => {}
        }
        let prompt: BTreeSet<String> = map
            .get("prompt")
            .unwrap_or(&"")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if prompt
            .iter()
            .any(|p| !matches!(p.as_str(), "none" | "login" | "consent"))
        {
            return Err(fail("invalid_request", "unsupported prompt value"));
        }
        if prompt.contains("none") && prompt.len() > 1 {
            return Err(fail("invalid_request", "prompt=none cannot be combined"));
        }
        let max_age =
            match map.get("max_age") {
                None => None,
                Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    fail("invalid_request", "max_age must be a number of seconds")
                })?),
            };
        Ok(AuthorizeRequest {
            client,
            redirect_uri: redirect_uri.to_string(),
            scope,
            state,
            nonce: map.get("nonce").map(|s| s.to_string()),
            code_challenge,
            prompt,
            max_age,
            login_hint: map.get("login_hint").map(|s| s.to_string()),
            ui_locales: map.get("ui_locales").map(|s| s.to_string()),
            login_after: map.get(LOGIN_AFTER).and_then(|t| t.parse().ok()),
        })
    }

    /// Decides what the browser needs before a code can be issued.
    pub async fn next_step(
        &self,
        request: &AuthorizeRequest,
        params: &[(String, String)],
        signed_in: Option<(&Session, &User)>,
        now: OffsetDateTime,
    ) -> Result<AuthorizeStep, AuthorizeError> {
        let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            state: request.state.clone(),
            error,
            description: description.to_string(),
        };
        let none = request.prompt.contains("none");
        let stale = |session: &Session| {
            request
                .max_age
                .is_some_and(|max| now - session.created_at > time::Duration::seconds(max))
                || request
                    .login_after
                    .is_some_and(|t| session.created_at.unix_timestamp() < t)
        };
        let resume_query = || {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if request.prompt.contains("login") {
                query.append_pair(LOGIN_AFTER, &now.unix_timestamp().to_string());
            }
            for (name, value) in params {
                if name == LOGIN_AFTER && request.prompt.contains("login") {
                    continue;
                }
                if name == "prompt" {
                    let rest: Vec<&str> = value
                        .split(' ')
                        .filter(|p| *p != "login" && !p.is_empty())
                        .collect();
                    if !rest.is_empty() {
                        query.append_pair(name, &rest.join(" "));
                    }
                } else {
                    query.append_pair(name, value);
                }
            }
            query.finish()
        };
        let Some((session, user)) = signed_in else {
            if none {
                return Err(fail("login_required", "the user is not signed in"));
            }
            return Ok(AuthorizeStep::Login {
                resume_query: resume_query(),
            });
        };
        if request.prompt.contains("login") || stale(session) {
            if none {
                return Err(fail("login_required", "a fresh sign-in is required"));
            }
            return Ok(AuthorizeStep::Login {
                resume_query: resume_query(),
            });
        }
        // Administration is never granted silently: asked every time, even of first-party
        // clients and when allowed before.
        let admin = request.scope.iter().any(|s| s == ADMIN_SCOPE);
        if admin && none {
            return Err(fail(
                "consent_required",
                "the admin scope needs the user's consent each time",
            ));
        }
        if request.prompt.contains("consent") || admin {
            return Ok(AuthorizeStep::Consent);
        }
        if !request.client.first_party {
            let granted = self.store.consent(user.id, &request.client.id).await;
            let granted = granted.map_err(|_| fail("temporarily_unavailable", "try again"))?;
            let covered = granted.is_some_and(|g| {
                let g: BTreeSet<&str> = g.split(' ').collect();
                request.scope.iter().all(|s| g.contains(s.as_str()))
            });
            if !covered {
                if none {
                    return Err(fail(
                        "consent_required",
                        "the user has not allowed this client",
                    ));
                }
                return Ok(AuthorizeStep::Consent);
            }
        }
        Ok(AuthorizeStep::Issue)
    }

    /// Remembers the user's consent to the requested scopes.
    pub async fn grant_consent(
        &self,
        request: &AuthorizeRequest,
        user: &User,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let event = app_event(
            Some(user.id),
            Action::ConsentGranted,
            &request.client,
            json!({ "client_id": request.client.id, "scope": request.scope_string() }),
            client_info,
            now,
        );
        self.store
            .put_consent(user.id, &request.client.id, &request.scope_string(), &event)
            .await
    }

    pub async fn consents(&self, user: &User) -> Result<Vec<Consent>, StoreError> {
        self.store.consents_of_user(user.id).await
    }

    /// Forgets a consent and stops the tokens given under it.
    pub async fn revoke_consent(
        &self,
        user: &User,
        client_id: &str,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Some(client) = self.client(client_id).await? else {
            return Ok(false);
        };
        let event = app_event(
            Some(user.id),
            Action::ConsentRevoked,
            &client,
            json!({ "client_id": client.id }),
            client_info,
            now,
        );
        self.store.revoke_consent(user.id, &client.id, &event).await
    }

    /// Issues a code; returns the URL to send the browser to.
    pub async fn issue_code(
        &self,
        request: &AuthorizeRequest,
        session: &Session,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        let code = OpaqueToken::generate();
        self.store
            .insert_code(&AuthorizationCode {
                digest: code.digest(),
                client_id: request.client.id.clone(),
                user_id: session.user_id,
                session_id: session.id,
                redirect_uri: request.redirect_uri.clone(),
                scope: request.scope_string(),
                nonce: request.nonce.clone(),
                code_challenge: request.code_challenge.clone(),
                auth_time: session.created_at,
                created_at: now,
                expires_at: now + time::Duration::seconds(self.config.code_ttl_secs),
            })
            .await?;
        let mut pairs = vec![("code", code.as_str().to_string())];
        if let Some(state) = &request.state {
            pairs.push(("state", state.clone()));
        }
        // RFC 9207: the issuer identifies the response's origin (mix-up defence).
        pairs.push(("iss", self.issuer.clone()));
        Ok(append_query(&request.redirect_uri, &pairs))
    }

    /// The URL that reports an authorization error to a verified redirect URI.
    pub fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &str,
        description: &str,
    ) -> String {
        let mut pairs = vec![
            ("error", error.to_string()),
            ("error_description", description.to_string()),
        ];
        if let Some(state) = state {
            pairs.push(("state", state.to_string()));
        }
        pairs.push(("iss", self.issuer.clone()));
        append_query(redirect_uri, &pairs)
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
