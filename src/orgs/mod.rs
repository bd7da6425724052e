//! Organizations, their members' roles, and their SSO connections.

mod dns;
mod domains;
mod sso;

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::normalize_email;
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::store::{Store, StoreError};

pub use dns::{CHALLENGE_LABEL, DnsChallenges, TxtAnswer};
pub use domains::{
    CHALLENGE_PREFIX, DomainChallenge, DomainEditor, DomainError, DomainProof, MAX_DOMAINS,
    OrgDomain, OrgDomains, RecheckPolicy, is_public_mail,
};
pub use sso::{
    ENTRA_CLOUDS, MAX_SECRET_LEN, PUBLIC_CLOUD, SsoConnection, SsoConnections, SsoEditor,
    SsoSettings, SsoSettingsError, domain_of,
};

// The organization records live with the store that reads and writes them.
pub use crate::store::organization::{Member, Membership, OrgRole, Organization};

pub const MAX_ORG_NAME_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("organization name must be 1 to {MAX_ORG_NAME_CHARS} characters")]
    InvalidName,
    #[error("an organization with this name already exists")]
    NameTaken,
    #[error("no organization named `{0}`")]
    UnknownOrg(String),
    #[error("no user with e-mail `{0}`")]
    UnknownUser(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for OrgError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => OrgError::NameTaken,
            other => OrgError::Store(other),
        }
    }
}

/// Why an organization action is refused.
#[derive(Debug, thiserror::Error)]
pub enum OrgAccess {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Orgs {
    store: Arc<dyn Store>,
}

impl Orgs {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn create(&self, name: &str, now: OffsetDateTime) -> Result<Organization, OrgError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_ORG_NAME_CHARS {
            return Err(OrgError::InvalidName);
        }
        let org = Organization {
            id: Uuid::now_v7(),
            name: name.to_string(),
            created_at: now,
        };
        self.store.insert_org(&org).await?;
        Ok(org)
    }

    /// Adds the user to the organization with `role`, or changes their role.
    pub async fn add_member(
        &self,
        org_name: &str,
        email: &str,
        role: OrgRole,
        now: OffsetDateTime,
    ) -> Result<Membership, OrgError> {
        let org = self
            .store
            .org_by_name(org_name.trim())
            .await?
            .ok_or_else(|| OrgError::UnknownOrg(org_name.trim().to_string()))?;
        let email = normalize_email(email).map_err(|_| OrgError::UnknownUser(email.to_string()))?;
        let user = self
            .store
            .user_by_email(&email)
            .await?
            .ok_or(OrgError::UnknownUser(email))?;
        let membership = Membership {
            org_id: org.id,
            user_id: user.id,
            role,
            created_at: now,
        };
        self.store.put_membership(&membership).await?;
        Ok(membership)
    }

    /// The rule for acting on a member as an organization administrator (unlocking, ending
    /// sessions): the caller must be an admin or legal representative of `org_id` (a plain
    /// member gets `Forbidden`, an outsider `NotFound`, so organizations cannot be probed),
    /// `member` must belong to it, hold a role no higher than the caller's (an administrator
    /// does not act on a legal representative), and not administer this Gotthard instance
    /// unless the caller does too (`Forbidden` otherwise).
    pub async fn require_admin_over(
        &self,
        org_id: Uuid,
        caller: Uuid,
        member: Uuid,
    ) -> Result<(), OrgAccess> {
        let Some(caller_role) = self.store.membership_role(org_id, caller).await? else {
            return Err(OrgAccess::NotFound);
        };
        if caller_role == OrgRole::Member {
            return Err(OrgAccess::Forbidden);
        }
        let Some(member_role) = self.store.membership_role(org_id, member).await? else {
            return Err(OrgAccess::NotFound);
        };
        if member_role.rank() > caller_role.rank() {
            return Err(OrgAccess::Forbidden);
        }
        if member != caller {
            let instance_admin = |id| async move {
                Ok::<_, StoreError>(self.store.user_by_id(id).await?.is_some_and(|u| u.is_admin))
            };
            if instance_admin(member).await? && !instance_admin(caller).await? {
                return Err(OrgAccess::Forbidden);
            }
        }
        Ok(())
    }

    /// The caller is an admin or legal representative of `org_id` (403 for a plain member,
    /// 404 for an outsider).
    pub async fn require_admin(&self, org_id: Uuid, caller: Uuid) -> Result<(), OrgAccess> {
        match self.store.membership_role(org_id, caller).await? {
            None => Err(OrgAccess::NotFound),
            Some(OrgRole::Member) => Err(OrgAccess::Forbidden),
            Some(OrgRole::Admin | OrgRole::LegalRepresentative) => Ok(()),
        }
    }

    /// The members of an organization, for its administrators.
    pub async fn members_by_id(&self, org_id: Uuid) -> Result<Vec<Member>, StoreError> {
        self.store.members_of_org(org_id).await
    }

    /// Removes a member from the organization: their SSO sign-in there stops, and so do the
    /// sessions it had started. `false` when they were not a member.
    pub async fn remove_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let event = ActivityEvent::new(
            Some(user_id),
            Action::SessionEnded,
            client,
            serde_json::json!({ "by": "membership_removed", "org_id": org_id }),
            now,
        );
        Ok(self
            .store
            .delete_membership(org_id, user_id, &event)
            .await?
            .is_some())
    }

    pub async fn by_id(&self, org_id: Uuid) -> Result<Option<Organization>, StoreError> {
        self.store.org_by_id(org_id).await
    }

    pub async fn by_name(&self, name: &str) -> Result<Option<Organization>, StoreError> {
        self.store.org_by_name(name.trim()).await
    }

    pub async fn list(&self) -> Result<Vec<Organization>, StoreError> {
        self.store.list_orgs().await
    }

    pub async fn of_user(&self, user_id: Uuid) -> Result<Vec<(Organization, OrgRole)>, StoreError> {
        self.store.orgs_of_user(user_id).await
    }
}
