//! The provider service: its state, constructor and the helpers its flows share. Each flow
//! is an `impl Provider` block of its own: `clients` (registration, client authentication),
//! `authorize` (the authorization endpoint), `token` (the token endpoint's grants,
//! revocation), `verify` (access-token checks for userinfo and the account API),
//! `introspection`, `logout` (RP-initiated) and `backchannel` (back-channel logout);
//! `error` holds the OAuth error they return.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

mod authorize;
mod backchannel;
mod clients;
mod error;
mod introspection;
mod logout;
mod token;
mod verify;

pub use authorize::{AuthorizeError, AuthorizeRequest, AuthorizeStep, LOGIN_AFTER};
pub use backchannel::LogoutSender;
pub use clients::{ClientSpec, ClientSpecError};
pub use error::{OAuthError, OAuthErrorKind};
pub use logout::LogoutRequest;
pub use token::{ClientCredentials, TokenResponse};
pub use verify::BearerError;

use super::checks::{CacheScope, TokenChecks};
use super::model::{Client, GrantState};
use crate::accounts::User;
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::config::OidcConfig;
use crate::sessions::SessionPolicy;
use crate::store::{Store, StoreError};
use crate::tokens::SigningKeys;

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

/// The provider service.
#[derive(Clone)]
pub struct Provider {
    checks: Arc<TokenChecks>,
    issues: super::issue_log::IssueLog,
    /// Failed client authentications: a writer of their own, so that a flood of them never
    /// queues ahead of the tokens issued.
    refusals: super::issue_log::IssueLog,
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
            refusals: super::issue_log::IssueLog::start(store.clone()),
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

    /// Whether this process committed a revocation (a session ended, a client deleted, …)
    /// since it started: what a short-lived command announces to running instances.
    pub fn revoked_here(&self) -> bool {
        self.store.revocations().any_here()
    }

    /// Deletes expired authorization codes and tokens; returns how many.
    pub async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.store.prune_oidc(now).await
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
}

/// The claims of `profile` and `email` that the scope allows; `picture` is an absolute URL
/// under `issuer`.
fn profile_claims(user: &User, scope: &str, issuer: &str) -> Vec<(&'static str, Value)> {
    let mut claims = Vec::new();
    let scopes: BTreeSet<&str> = scope.split(' ').collect();
    if scopes.contains("profile") {
        // Empty parts are left out (OIDC Core §5.3.2: absent, not empty).
        for (claim, value) in [
            ("name", &user.name),
            ("given_name", &user.given_name),
            ("family_name", &user.family_name),
        ] {
            if !value.is_empty() {
                claims.push((claim, json!(value)));
            }
        }
        let picture = crate::avatars::picture_url(issuer, user, crate::avatars::PICTURE_SIZE);
        claims.push(("picture", json!(picture)));
        claims.push(("updated_at", json!(user.updated_at.unix_timestamp())));
        if let Some(locale) = &user.locale {
            claims.push(("locale", json!(locale)));
        }
    }
    if scopes.contains("email") {
        claims.push(("email", json!(user.email)));
        // True once the owner opened a link mailed to this address (an e-mail change's
        // confirmation, a forgotten-password link); an address never checked says false.
        claims.push(("email_verified", json!(user.email_verified)));
    }
    claims
}

/// An activity event filed under a relying application: its id, and its name as the
/// activity log's "product".
fn app_event(
    user: Option<Uuid>,
    action: Action,
    client: &Client,
    details: Value,
    client_info: &ClientInfo,
    now: OffsetDateTime,
) -> ActivityEvent {
    ActivityEvent::new(user, action, client_info, details, now).for_client(&client.id, &client.name)
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
            "at_hash", "sid", "amr", "acr", "name", "given_name", "family_name", "picture",
            "updated_at", "locale", "email",
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
