//! What the provider stores: clients, codes, grants (token families), refresh tokens,
//! consents and queued back-channel logouts.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::tokens::{SigningAlg, TokenDigest};

/// How a client proves who it is at the token endpoint (OIDC Core 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    None,
}

impl ClientAuthMethod {
    pub const ALL: [ClientAuthMethod; 4] = [
        ClientAuthMethod::ClientSecretBasic,
        ClientAuthMethod::ClientSecretPost,
        ClientAuthMethod::PrivateKeyJwt,
        ClientAuthMethod::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
            ClientAuthMethod::None => "none",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == value)
    }
}

/// A relying application.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<TokenDigest>,
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
    pub created_at: OffsetDateTime,
    /// Clients whose access tokens this one may introspect (it is their resource server);
    /// its own it always may.
    pub introspect_for: Vec<String>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.auth_method == ClientAuthMethod::None
    }
}

/// An authorization code as stored (its digest is the key).
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    pub digest: TokenDigest,
    pub client_id: String,
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// What presenting a code found.
#[derive(Debug)]
pub enum CodeRedemption {
    /// First use: the grant `grant_id` now exists for it.
    Redeemed(AuthorizationCode),
    /// Used before: the grant its first use started has been revoked.
    Replayed(AuthorizationCode),
    /// Unknown or expired.
    Unusable,
}

/// A grant with what decides whether its tokens still work.
#[derive(Debug, Clone)]
pub struct GrantState {
    pub id: Uuid,
    pub client_id: String,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub scope: String,
    pub auth_time: Option<OffsetDateTime>,
    pub revoked: bool,
    /// The session as it is now: `None` when it was ended (or pruned).
    pub session: Option<SessionTimes>,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionTimes {
    pub method: SessionMethod,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMethod {
    Password,
    Sso,
}

/// A refresh token to store.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub digest: TokenDigest,
    pub grant_id: Uuid,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// What presenting a refresh token found.
#[derive(Debug)]
pub enum RefreshUse {
    /// Rotated now (or within the grace period of a parallel rotation).
    Rotated(GrantState),
    /// Used before, outside the grace period: the family is now revoked.
    Reused(GrantState),
    Unusable,
}

/// A liveness check of an access token: its `jti` and its grant.
#[derive(Debug, Clone)]
pub struct AccessTokenState {
    pub jti_revoked: bool,
    pub grant: Option<GrantState>,
    /// The grant's user, fetched in the same query (userinfo and the API need it).
    pub user: Option<crate::accounts::User>,
}

/// A remembered consent, with the client's name for the account pages.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Consent {
    pub client_id: String,
    pub client_name: String,
    pub scope: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// A back-channel logout due to be sent.
#[derive(Debug, Clone)]
pub struct QueuedLogout {
    pub id: Uuid,
    pub client_id: String,
    pub uri: String,
    pub id_token_alg: SigningAlg,
    pub subject: String,
    pub session_id: String,
    pub attempts: i32,
}

/// The back-channel logout queue, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogoutCounts {
    /// Waiting to be sent (or being sent).
    pub queued: i64,
    /// Dead-lettered after the last attempt; kept for [`DEAD_LOGOUT_RETENTION`].
    pub dead: i64,
}

/// How long a dead-lettered logout stays visible before it is deleted.
pub const DEAD_LOGOUT_RETENTION: time::Duration = time::Duration::days(30);

/// What issuing one token writes: its refresh token (if any) and its activity event.
pub type IssueRecord = (Option<NewRefreshToken>, crate::audit::ActivityEvent);
