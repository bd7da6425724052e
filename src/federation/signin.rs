//! Signing in through Entra ID: home-realm discovery and the authorization request, the
//! callback with its code exchange and ID-token validation, and the account it leads to.

use openidconnect::core::{CoreAuthPrompt, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, CsrfToken, LoginHint, Nonce,
    PkceCodeChallenge, Scope, SignatureVerificationError, TokenResponse,
};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    BeginError, Callback, FLOW_TTL, FederatedIdentity, Federation, Finished, LEEWAY, LINK_TTL,
    PendingLink, Reauthentication, Refusal, SsoFlow, browser_digest, entra,
};
use crate::accounts::{MAX_NAME_PART_CHARS, NewUser, PersonName, User, normalize_email};
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::orgs::{Membership, SsoConnection, domain_of};
use crate::store::StoreError;
use crate::tokens::OpaqueToken;

impl Federation {
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
        reauth: Reauthentication,
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
        if reauth.prompt_login {
            request = request.add_prompt(CoreAuthPrompt::Login);
        }
        if let Some(max_age) = reauth.max_age {
            request = request.set_max_age(std::time::Duration::from_secs(max_age.max(0) as u64));
        }
        let (url, _, _) = request.url();
        self.store
            .insert_sso_flow(&SsoFlow {
                state: state.digest(),
                org_id: connection.org_id,
                browser: browser_digest(browser),
                nonce,
                next: next.map(str::to_string),
                reauth,
                created_at: now,
                expires_at: now + FLOW_TTL,
            })
            .await?;
        Ok(url.to_string())
    }

    /// Whether the password sign-in of `user`, whose password was right, is refused because
    /// an organization signs them in with SSO only: an organization with `enforce_sso` that
    /// verified the address's domain and of which the user is a member. Everyone else at that
    /// domain keeps their password. Asked only after the password check, so that the answer
    /// costs the same and tells nothing to whoever does not know the password. A refusal is
    /// recorded like a failed sign-in.
    pub async fn password_refused(
        &self,
        user: &User,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Some(connection) = self.connections.for_email(&user.email).await? else {
            return Ok(false);
        };
        if !connection.enforce_sso
            || self
                .store
                .membership_role(connection.org_id, user.id)
                .await?
                .is_none()
        {
            return Ok(false);
        }
        let event = ActivityEvent::new(
            Some(user.id),
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
        let auth_time = claims.auth_time().map(|t| t.timestamp());
        if !flow.reauth.satisfied_by(auth_time, flow.created_at, now) {
            return Err(Refusal::Token("auth_time"));
        }

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
                user: Box::new(user),
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
        // Entra's given and family name when it sends them, else its one `name` split.
        let part = |claim: Option<&str>| -> String {
            claim
                .map(|n| n.trim().chars().take(MAX_NAME_PART_CHARS).collect())
                .unwrap_or_default()
        };
        let given = part(
            claims
                .given_name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str()),
        );
        let family = part(
            claims
                .family_name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str()),
        );
        let name = if given.is_empty() && family.is_empty() {
            let full = part(claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()));
            PersonName::split(&full).unwrap_or_default()
        } else {
            PersonName::new(&given, &family).unwrap_or_default()
        };
        let user = NewUser {
            id: Uuid::now_v7(),
            email: address,
            name: name.display(),
            given_name: name.given,
            family_name: name.family,
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
            user: Box::new(user),
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
}
