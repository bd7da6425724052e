//! Sign in with SSO, the relying-party side towards Microsoft Entra ID: home-realm discovery
//! by e-mail domain, the authorization code flow (state, nonce, PKCE) through the
//! `openidconnect` crate, the full ID-token validation, and the account an Entra identity
//! signs in to — linked by the stable (`tid`, `oid`) pair, never by a mutable e-mail claim.

mod entra;
mod secret;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::CoreResponseType;
use openidconnect::{
    AuthType, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, LoginHint, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    Scope, SignatureVerificationError, TokenResponse,
};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

pub use entra::{Discovery, EntraClaims, LEEWAY};
pub use secret::{SecretUnreadable, UpstreamSecrets};

use crate::accounts::{
    Accounts, LoginError, MAX_NAME_CHARS, NewUser, PasswordCheck, User, normalize_email,
};
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::orgs::{Membership, SsoConnection, SsoConnections, domain_of};
use crate::store::{Store, StoreError};
use crate::tokens::{OpaqueToken, TokenDigest};

/// A sign-in sent to Entra ID must come back within this time (issue 7).
pub const FLOW_TTL: time::Duration = time::Duration::minutes(10);
/// The password that proves ownership of an existing account must follow within this time.
pub const LINK_TTL: time::Duration = time::Duration::minutes(10);
/// Where Entra ID sends the browser back: `{issuer}` + this path.
pub const CALLBACK_PATH: &str = "/login/sso/callback";

/// The state of a sign-in on its way through Entra ID (stored; single-use).
#[derive(Debug, Clone)]
pub struct SsoFlow {
    pub state: TokenDigest,
    pub org_id: Uuid,
    /// Digest of the CSRF cookie of the browser that began it: the answer must come back to
    /// the same browser (no login CSRF with someone else's callback URL).
    pub browser: TokenDigest,
    pub nonce: String,
    /// The authorization request (of a relying app) to resume once signed in.
    pub next: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// An Entra identity linked to an account.
#[derive(Debug, Clone)]
pub struct FederatedIdentity {
    pub tenant_id: String,
    pub object_id: String,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub created_at: OffsetDateTime,
}

/// An identity waiting for the owner of an existing account to confirm with its password.
#[derive(Debug, Clone)]
pub struct PendingLink {
    pub token: TokenDigest,
    pub browser: TokenDigest,
    pub tenant_id: String,
    pub object_id: String,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub next: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
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
        user: User,
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

/// Why a pending link cannot be completed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the link is unusable")]
    Unusable,
    #[error("wrong password")]
    WrongPassword,
    #[error("not a member of the organization")]
    NotMember,
    #[error(transparent)]
    Login(LoginError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an operator's link is refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorLinkError {
    #[error("the organization has no SSO connection")]
    NoConnection,
    #[error("the object id must be the user's GUID in the tenant (`oid`)")]
    InvalidObjectId,
    #[error("the account is not a member of the organization (add it first)")]
    NotMember,
    #[error("this Entra identity is linked to an account already")]
    AlreadyLinked,
    #[error(transparent)]
    Store(#[from] StoreError),
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
    ) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            connections,
            accounts,
            secrets,
            discovery: Discovery::new()?,
            redirect_uri: format!("{issuer}{CALLBACK_PATH}"),
        })
    }

    /// The redirect URI to register in the Entra application.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Home-realm discovery and the authorization request: finds the organization by the
    /// address's domain, stores the flow, and returns the URL of the tenant's authorize
    /// endpoint (with `state`, `nonce`, PKCE S256, `login_hint` and `domain_hint`).
    /// `browser` is the browser's CSRF cookie; `next`, an authorization request to resume
    /// (checked by the caller).
    pub async fn begin(
        &self,
        email: &str,
        browser: &str,
        next: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<String, BeginError> {
        let email = normalize_email(email).map_err(|_| BeginError::InvalidEmail)?;
        let connection = self
            .connections
            .for_email(&email)
            .await?
            .ok_or(BeginError::UnknownDomain)?;
        let metadata = self
            .discovery
            .metadata(&connection.issuer(), false, now)
            .await
            .map_err(BeginError::Upstream)?;
        let client = self.client(&connection, metadata, None)?;
        let state = OpaqueToken::generate();
        let nonce = OpaqueToken::generate().as_str().to_string();
        let verifier = self.pkce_verifier(&state);
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let state_value = state.as_str().to_string();
        let nonce_value = nonce.clone();
        let mut request = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                move || CsrfToken::new(state_value),
                move || Nonce::new(nonce_value),
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .set_login_hint(LoginHint::new(email.clone()));
        if let Some(domain) = domain_of(&email) {
            request = request.add_extra_param("domain_hint", domain);
        }
        let (url, _, _) = request.url();
        self.store
            .insert_sso_flow(&SsoFlow {
                state: state.digest(),
                org_id: connection.org_id,
                browser: browser_digest(browser),
                nonce,
                next: next.map(str::to_string),
                created_at: now,
                expires_at: now + FLOW_TTL,
            })
            .await?;
        Ok(url.to_string())
    }

    /// Whether the password sign-in of `email` is refused because its organization signs in
    /// with SSO only (`enforce_sso`). A refusal is recorded like a failed sign-in.
    pub async fn password_refused(
        &self,
        email: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Ok(email) = normalize_email(email) else {
            return Ok(false);
        };
        let Some(connection) = self.connections.for_email(&email).await? else {
            return Ok(false);
        };
        if !connection.enforce_sso {
            return Ok(false);
        }
        let user = self.store.user_by_email(&email).await?;
        let event = ActivityEvent::new(
            user.map(|u| u.id),
            Action::LoginFailed,
            client,
            serde_json::json!({
                "method": "password", "reason": "sso_required", "org_id": connection.org_id
            }),
            now,
        );
        self.store.record_event(&event).await?;
        Ok(true)
    }

    /// The callback: uses the flow state once, exchanges the code, validates the ID token and
    /// finds (or provisions) the account. Every refusal is recorded as an activity event.
    pub async fn finish(
        &self,
        callback: &Callback,
        browser: Option<&str>,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Finished, Refusal> {
        let mut known_org = None;
        let mut known_user = None;
        let outcome = self
            .try_finish(
                callback,
                browser,
                client,
                now,
                &mut known_org,
                &mut known_user,
            )
            .await;
        if let Err(refusal) = &outcome {
            let mut details = serde_json::json!({ "method": "sso", "reason": refusal.reason() });
            if let Some(org) = known_org {
                details["org_id"] = serde_json::json!(org);
            }
            if let Refusal::Upstream { error, .. } = refusal {
                details["error"] = error.chars().take(64).collect::<String>().into();
            }
            let event = ActivityEvent::new(known_user, Action::LoginFailed, client, details, now);
            self.store.record_event(&event).await?;
        }
        outcome
    }

    async fn try_finish(
        &self,
        callback: &Callback,
        browser: Option<&str>,
        client: &ClientInfo,
        now: OffsetDateTime,
        known_org: &mut Option<Uuid>,
        known_user: &mut Option<Uuid>,
    ) -> Result<Finished, Refusal> {
        let state = callback
            .state
            .as_deref()
            .and_then(OpaqueToken::from_client)
            .ok_or(Refusal::StateUnusable)?;
        let flow = self
            .store
            .take_sso_flow(&state.digest())
            .await?
            .ok_or(Refusal::StateUnusable)?;
        *known_org = Some(flow.org_id);
        let same_browser =
            browser.is_some_and(|b| bool::from(browser_digest(b).0.ct_eq(&flow.browser.0)));
        if flow.expires_at <= now || !same_browser {
            return Err(Refusal::StateUnusable);
        }
        if let Some(error) = &callback.error {
            return Err(Refusal::Upstream {
                error: error.clone(),
                description: callback.error_description.clone().unwrap_or_default(),
            });
        }
        let code = callback.code.clone().ok_or(Refusal::Token("no_code"))?;
        let connection = self
            .connections
            .get(flow.org_id)
            .await?
            .ok_or(Refusal::NoConnection)?;
        let claims = self
            .redeem(&connection, &state, code, &flow.nonce, now)
            .await?;

        // The identity is (tid, oid); the address is only a profile field.
        let tenant = claims.additional_claims().tid.clone().unwrap_or_default();
        if !tenant.eq_ignore_ascii_case(&connection.tenant_id) {
            return Err(Refusal::Token("tenant"));
        }
        let object_id = claims
            .additional_claims()
            .oid
            .clone()
            .filter(|o| !o.is_empty() && o.len() <= 64)
            .ok_or(Refusal::Token("no_oid"))?;
        let tenant_id = connection.tenant_id.clone();
        if let Some(identity) = self
            .store
            .federated_identity(&tenant_id, &object_id)
            .await?
        {
            *known_user = Some(identity.user_id);
            let user = self
                .store
                .user_by_id(identity.user_id)
                .await?
                .ok_or(Refusal::NoAccount)?;
            if self
                .store
                .membership_role(connection.org_id, user.id)
                .await?
                .is_none()
            {
                return Err(Refusal::NotMember);
            }
            return Ok(Finished::SignedIn {
                user,
                org_id: connection.org_id,
                next: flow.next,
            });
        }

        // A new identity. Its address names the account only if it is in the organization's
        // own domains (a tenant administrator can put any address in the claim).
        let address = claims
            .email()
            .map(|e| e.as_str().to_string())
            .or_else(|| claims.preferred_username().map(|u| u.as_str().to_string()))
            .and_then(|a| normalize_email(&a).ok())
            .filter(|a| connection.covers(a))
            .ok_or(Refusal::AddressOutsideDomains)?;
        if let Some(existing) = self.store.user_by_email(&address).await? {
            *known_user = Some(existing.id);
            let token = OpaqueToken::generate();
            self.store
                .insert_pending_link(&PendingLink {
                    token: token.digest(),
                    browser: browser_digest(browser.unwrap_or_default()),
                    tenant_id,
                    object_id,
                    user_id: existing.id,
                    org_id: connection.org_id,
                    next: flow.next.clone(),
                    created_at: now,
                    expires_at: now + LINK_TTL,
                })
                .await?;
            let org_name = self
                .store
                .org_by_id(connection.org_id)
                .await?
                .map(|o| o.name)
                .unwrap_or_default();
            return Ok(Finished::LinkNeeded {
                token,
                email: existing.email,
                org_name,
                next: flow.next,
            });
        }
        if !connection.provision {
            return Err(Refusal::NoAccount);
        }
        let name: String = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().trim().chars().take(MAX_NAME_CHARS).collect())
            .unwrap_or_default();
        let user = NewUser {
            id: Uuid::now_v7(),
            email: address,
            name,
            // SSO only, until the owner sets a password.
            password_hash: None,
            is_admin: false,
            lockout_threshold: self.accounts.lockout_policy().default_threshold,
            created_at: now,
        };
        let identity = FederatedIdentity {
            tenant_id,
            object_id,
            user_id: user.id,
            org_id: connection.org_id,
            created_at: now,
        };
        let membership = Membership {
            org_id: connection.org_id,
            user_id: user.id,
            role: connection.default_role,
            created_at: now,
        };
        let event = ActivityEvent::new(
            Some(user.id),
            Action::AccountCreated,
            client,
            serde_json::json!({ "method": "sso", "org_id": connection.org_id }),
            now,
        );
        let user = match self
            .store
            .provision_sso_user(&user, &identity, &membership, &event)
            .await
        {
            Ok(user) => user,
            // A parallel callback of the same person provisioned the account first.
            Err(StoreError::Conflict) => {
                let found = self
                    .store
                    .federated_identity(&identity.tenant_id, &identity.object_id)
                    .await?
                    .ok_or(Refusal::NoAccount)?;
                self.store
                    .user_by_id(found.user_id)
                    .await?
                    .ok_or(Refusal::NoAccount)?
            }
            Err(other) => return Err(other.into()),
        };
        Ok(Finished::SignedIn {
            user,
            org_id: connection.org_id,
            next: flow.next,
        })
    }

    /// Exchanges the code (with the PKCE verifier) and validates the ID token: signature
    /// against the tenant's keys (fetched again once when the key is unknown), issuer,
    /// audience, `exp`/`nbf`/`iat` with leeway, nonce.
    async fn redeem(
        &self,
        connection: &SsoConnection,
        state: &OpaqueToken,
        code: String,
        nonce: &str,
        now: OffsetDateTime,
    ) -> Result<entra::EntraIdTokenClaims, Refusal> {
        let issuer = connection.issuer();
        let metadata = self
            .discovery
            .metadata(&issuer, false, now)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "SSO discovery failed");
                Refusal::Token("discovery")
            })?;
        let secret = self.connections.client_secret(connection).map_err(|_| {
            tracing::error!(org = %connection.org_id, "SSO client secret cannot be decrypted");
            Refusal::Token("client_secret")
        })?;
        let client = self
            .client(connection, metadata.clone(), Some(secret))
            .map_err(|_| Refusal::Token("exchange"))?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|_| Refusal::Token("exchange"))?
            .set_pkce_verifier(self.pkce_verifier(state))
            .request_async(self.discovery.http())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "SSO code exchange failed");
                Refusal::Token("exchange")
            })?;
        let id_token = response.id_token().ok_or(Refusal::Token("no_id_token"))?;
        let nonce = Nonce::new(nonce.to_string());
        let verified = id_token
            .claims(
                &entra::verifier(&metadata, &connection.client_id, now),
                &nonce,
            )
            .cloned();
        let claims = match verified {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Entra rotates its keys: fetch the keys again, once, before refusing.
                let fresh = self
                    .discovery
                    .metadata(&issuer, true, now)
                    .await
                    .map_err(|_| Refusal::Token("discovery"))?;
                id_token
                    .claims(&entra::verifier(&fresh, &connection.client_id, now), &nonce)
                    .cloned()
            }
            other => other,
        }
        .map_err(|e| {
            tracing::info!(error = %e, "SSO ID token refused");
            Refusal::Token(match e {
                ClaimsVerificationError::InvalidIssuer(_) => "issuer",
                ClaimsVerificationError::InvalidAudience(_) => "audience",
                ClaimsVerificationError::Expired(_) => "expired",
                ClaimsVerificationError::InvalidNonce(_) => "nonce",
                ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                ) => "unknown_key",
                ClaimsVerificationError::SignatureVerification(_) => "signature",
                _ => "invalid",
            })
        })?;
        if claims
            .additional_claims()
            .nbf
            .is_some_and(|nbf| nbf > (now + LEEWAY).unix_timestamp())
        {
            return Err(Refusal::Token("not_yet_valid"));
        }
        Ok(claims)
    }

    /// Completes a pending link: the owner of the existing account typed its password (counted
    /// like a login; a locked account is refused like a wrong password). The identity is then
    /// linked, and the caller starts the SSO session.
    pub async fn link(
        &self,
        token: &str,
        browser: Option<&str>,
        password: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(User, Uuid, Option<String>), LinkError> {
        let link = self.pending(token, browser, now).await?;
        let user = self
            .store
            .user_by_id(link.user_id)
            .await?
            .ok_or(LinkError::Unusable)?;
        let user = match self
            .accounts
            .confirm_password(&user, password, PasswordCheck::Login, client, now)
            .await
        {
            Ok(user) => user,
            Err(LoginError::WrongCredentials) => return Err(LinkError::WrongPassword),
            Err(other) => return Err(LinkError::Login(other)),
        };
        let connection = self
            .connections
            .get(link.org_id)
            .await?
            .ok_or(LinkError::Unusable)?;
        let member = self
            .store
            .membership_role(link.org_id, user.id)
            .await?
            .is_some();
        // Provisioning organizations take in their tenant's users; others only their members.
        let membership = match (member, connection.provision) {
            (true, _) => None,
            (false, true) => Some(Membership {
                org_id: link.org_id,
                user_id: user.id,
                role: connection.default_role,
                created_at: now,
            }),
            (false, false) => {
                let event = ActivityEvent::new(
                    Some(user.id),
                    Action::LoginFailed,
                    client,
                    serde_json::json!({
                        "method": "sso", "reason": "sso_not_member", "org_id": link.org_id
                    }),
                    now,
                );
                self.store.record_event(&event).await?;
                return Err(LinkError::NotMember);
            }
        };
        let identity = FederatedIdentity {
            tenant_id: link.tenant_id.clone(),
            object_id: link.object_id.clone(),
            user_id: user.id,
            org_id: link.org_id,
            created_at: now,
        };
        let event = ActivityEvent::new(
            Some(user.id),
            Action::SsoLinked,
            client,
            serde_json::json!({ "org_id": link.org_id, "tenant_id": link.tenant_id }),
            now,
        );
        if !self
            .store
            .complete_link(&link.token, &identity, membership.as_ref(), &event)
            .await
            .map_err(|e| match e {
                // Linked meanwhile (another tab): the link is used up.
                StoreError::Conflict => LinkError::Unusable,
                other => other.into(),
            })?
        {
            return Err(LinkError::Unusable);
        }
        Ok((user, link.org_id, link.next))
    }

    /// An operator links an account to an Entra identity of the organization's tenant by its
    /// object id (`oid`), e.g. for an account whose owner cannot type a password. The account
    /// must be a member of the organization.
    pub async fn link_by_operator(
        &self,
        org_id: Uuid,
        user: &User,
        object_id: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(), OperatorLinkError> {
        let connection = self
            .connections
            .get(org_id)
            .await?
            .ok_or(OperatorLinkError::NoConnection)?;
        let object_id = Uuid::parse_str(object_id.trim())
            .map_err(|_| OperatorLinkError::InvalidObjectId)?
            .hyphenated()
            .to_string();
        if self.store.membership_role(org_id, user.id).await?.is_none() {
            return Err(OperatorLinkError::NotMember);
        }
        let identity = FederatedIdentity {
            tenant_id: connection.tenant_id.clone(),
            object_id,
            user_id: user.id,
            org_id,
            created_at: now,
        };
        let event = ActivityEvent::new(
            Some(user.id),
            Action::SsoLinked,
            client,
            serde_json::json!({
                "org_id": org_id, "tenant_id": connection.tenant_id, "by": "operator"
            }),
            now,
        );
        self.store
            .insert_federated_identity(&identity, &event)
            .await
            .map_err(|e| match e {
                StoreError::Conflict => OperatorLinkError::AlreadyLinked,
                other => other.into(),
            })
    }

    /// The pending link of a token, if it is usable from this browser.
    pub async fn pending(
        &self,
        token: &str,
        browser: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<PendingLink, LinkError> {
        let token = OpaqueToken::from_client(token).ok_or(LinkError::Unusable)?;
        let link = self
            .store
            .pending_link(&token.digest())
            .await?
            .ok_or(LinkError::Unusable)?;
        let same_browser =
            browser.is_some_and(|b| bool::from(browser_digest(b).0.ct_eq(&link.browser.0)));
        if link.expires_at <= now || !same_browser {
            return Err(LinkError::Unusable);
        }
        Ok(link)
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
