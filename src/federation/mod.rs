//! Sign in with SSO, the relying-party side towards Microsoft Entra ID: home-realm discovery
//! by e-mail domain, the authorization code flow (state, nonce, PKCE) through the
//! `openidconnect` crate, the full ID-token validation, and the account an Entra identity
//! signs in to — linked by the stable (`tid`, `oid`) pair, never by a mutable e-mail claim.

mod entra;
mod link;
mod signin;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::{AuthType, ClientId, ClientSecret, PkceCodeVerifier, RedirectUrl};
use time::OffsetDateTime;
use uuid::Uuid;

pub use crate::tokens::{SecretUnreadable, UpstreamSecrets};
pub use entra::{Discovery, EntraClaims, LEEWAY};
pub use link::{LinkError, OperatorLinkError};

// The SSO records live with the store that reads and writes them.
pub use crate::store::sso::{FederatedIdentity, PendingLink, Reauthentication, SsoFlow};

use crate::accounts::{Accounts, User};
use crate::orgs::{SsoConnection, SsoConnections};
use crate::store::{Store, StoreError};
use crate::tokens::{OpaqueToken, TokenDigest};

/// A sign-in sent to Entra ID must come back within this time (issue 7).
pub const FLOW_TTL: time::Duration = time::Duration::minutes(10);
/// The password that proves ownership of an existing account must follow within this time.
pub const LINK_TTL: time::Duration = time::Duration::minutes(10);
/// Where Entra ID sends the browser back: `{issuer}` + this path.
pub const CALLBACK_PATH: &str = "/login/sso/callback";

// The record lives with the store (it is part of a flow's state); the check is federation's.
impl Reauthentication {
    /// Whether Entra's `auth_time` (Unix seconds, `None` when absent) satisfies the demand
    /// of a sign-in that began at `began`, checked at `now`.
    pub fn satisfied_by(
        self,
        auth_time: Option<i64>,
        began: OffsetDateTime,
        now: OffsetDateTime,
    ) -> bool {
        let mut earliest = None;
        if self.prompt_login {
            earliest = Some(began - LEEWAY);
        }
        if let Some(max_age) = self.max_age {
            let bound = now - time::Duration::seconds(max_age) - LEEWAY;
            earliest = Some(earliest.map_or(bound, |e: OffsetDateTime| e.max(bound)));
        }
        match (earliest, auth_time) {
            (None, _) => true,
            (Some(_), None) => self.max_age.is_none(),
            (Some(earliest), Some(t)) => t >= earliest.unix_timestamp(),
        }
    }
}

/// Why a sign-in cannot begin.
#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    #[error("not an e-mail address")]
    InvalidEmail,
    /// No organization signs in with SSO for this domain.
    #[error("no SSO for this domain")]
    UnknownDomain,
    /// The tenant's discovery document could not be had.
    #[error("upstream: {0}")]
    Upstream(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the answer of Entra ID was, as the callback received it.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Where a callback leads.
#[derive(Debug)]
pub enum Finished {
    /// Start a session for this user, signed in through this organization, then go on to
    /// `next` (a relying app's authorization request) if the sign-in began with one.
    SignedIn {
        user: Box<User>,
        org_id: Uuid,
        next: Option<String>,
    },
    /// The address belongs to an existing account: its owner types the password once.
    LinkNeeded {
        token: OpaqueToken,
        email: String,
        org_name: String,
        next: Option<String>,
    },
}

/// Why an SSO sign-in is refused. Each is recorded as a `login.failed` event with its reason.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Unknown, used, expired, or begun in another browser.
    #[error("the sign-in state is unusable")]
    StateUnusable,
    /// Entra ID answered with an error (`AADSTS…`).
    #[error("Entra ID error {error}")]
    Upstream { error: String, description: String },
    /// The code exchange failed or the ID token did not pass validation; the reason says why.
    #[error("token refused: {0}")]
    Token(&'static str),
    /// The organization's connection was removed meanwhile.
    #[error("no SSO connection")]
    NoConnection,
    /// The token's address is not in the organization's domains (no account is made from it).
    #[error("address outside the organization's domains")]
    AddressOutsideDomains,
    /// An unknown identity, and the organization does not provision accounts.
    #[error("no account for this identity")]
    NoAccount,
    /// The account is not (or no longer) a member of the organization.
    #[error("not a member of the organization")]
    NotMember,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Refusal {
    fn reason(&self) -> String {
        match self {
            Refusal::StateUnusable => "sso_state_unusable".into(),
            Refusal::Upstream { .. } => "sso_upstream_error".into(),
            Refusal::Token(why) => format!("sso_token_{why}"),
            Refusal::NoConnection => "sso_no_connection".into(),
            Refusal::AddressOutsideDomains => "sso_address_outside_domains".into(),
            Refusal::NoAccount => "sso_no_account".into(),
            Refusal::NotMember => "sso_not_member".into(),
            Refusal::Store(_) => "sso_internal".into(),
        }
    }
}

/// The relying party towards every organization's Entra ID tenant.
#[derive(Clone)]
pub struct Federation {
    store: Arc<dyn Store>,
    connections: SsoConnections,
    accounts: Accounts,
    secrets: Arc<UpstreamSecrets>,
    discovery: Discovery,
    redirect_uri: String,
}

impl Federation {
    pub fn new(
        store: Arc<dyn Store>,
        connections: SsoConnections,
        accounts: Accounts,
        secrets: Arc<UpstreamSecrets>,
        issuer: &str,
        discovery: Discovery,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            connections,
            accounts,
            secrets,
            discovery,
            redirect_uri: format!("{issuer}{CALLBACK_PATH}"),
        })
    }

    /// The redirect URI to register in the Entra application.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Deletes expired flows and pending links.
    pub async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.store.prune_sso_state(now).await
    }

    fn client(
        &self,
        connection: &SsoConnection,
        metadata: openidconnect::core::CoreProviderMetadata,
        secret: Option<String>,
    ) -> Result<entra::EntraClient, BeginError> {
        let redirect = RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|e| BeginError::Upstream(format!("redirect URI: {e}")))?;
        Ok(entra::EntraClient::from_provider_metadata(
            metadata,
            ClientId::new(connection.client_id.clone()),
            secret.map(ClientSecret::new),
        )
        // Entra's documented form: the secret in the request body.
        .set_auth_type(AuthType::RequestBody)
        .set_redirect_uri(redirect))
    }

    /// The PKCE verifier of a flow, derived from its state under `keys/sso.key` so that it is
    /// never stored (RFC 7636 §4.1: 43 characters of base64url).
    fn pkce_verifier(&self, state: &OpaqueToken) -> PkceCodeVerifier {
        let derived = self
            .secrets
            .derive(&[b"pkce-v1", state.as_str().as_bytes()]);
        PkceCodeVerifier::new(URL_SAFE_NO_PAD.encode(derived))
    }
}

fn browser_digest(cookie: &str) -> TokenDigest {
    OpaqueToken::from_client(cookie)
        .map(|t| t.digest())
        .unwrap_or(TokenDigest([0; 32]))
}
