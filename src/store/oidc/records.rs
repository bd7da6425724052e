//! The provider's records: clients, codes, grants (token families), refresh tokens; what
//! `OidcStore` reads and writes, re-exported by `oidc`. (Consents are in `consents.rs`, queued
//! back-channel logouts in `logouts.rs`.)

use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::account::User;
use crate::store::activity::ActivityEvent;
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
    pub user: Option<User>,
}

/// What issuing one token writes: its refresh token (if any) and its activity event.
pub type IssueRecord = (Option<NewRefreshToken>, ActivityEvent);
