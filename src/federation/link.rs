//! Linking an Entra identity to an existing account: by the owner's password once (after a
//! sign-in whose address is that of the account), or by an operator.

use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{FederatedIdentity, Federation, PendingLink, browser_digest};
use crate::accounts::{LoginError, PasswordCheck, User};
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::orgs::Membership;
use crate::store::StoreError;
use crate::tokens::OpaqueToken;

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

impl Federation {
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
}
