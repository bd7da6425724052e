//! The changes a signed-in user confirms with the current password (e-mail address,
//! password, deletion), and the re-check they share: limited per account and per network,
//! then counted and verified like a sign-in.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AccountError, Accounts, LoginError, PasswordCheck, User};
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::store::StoreError;

/// How many re-checks of signed-in users' passwords may run: each is a full argon2 hash,
/// so neither one session nor many sessions from one network may fill the hashing pool.
/// The counters belong to the HTTP side (it knows the client's network and shares them
/// through Redis); that every re-check asks first is the rule, kept here.
#[async_trait]
pub trait ReauthLimit: Send + Sync {
    /// `Err(wait)` when `account` or the network of `ip` is over its limit.
    async fn check(&self, account: Uuid, ip: IpAddr) -> Result<(), Duration>;
}

/// Why the current password did not confirm a change.
#[derive(Debug, thiserror::Error)]
pub enum ReauthError {
    /// Too many re-checks for this account or network; retry after the wait.
    #[error("too many password checks; retry in {0:?}")]
    TooMany(Duration),
    /// Wrong (or locked: the same answer), or not checked (hashing busy, store).
    #[error(transparent)]
    Login(#[from] LoginError),
}

impl Accounts {
    /// The signed-in user's own password, checked again before a sensitive change: first
    /// the limit, then the one password-check path (counted before argon2, recorded as a
    /// failed re-authentication for `purpose`; a locked account is refused without a hash).
    pub(super) async fn reauthenticate(
        &self,
        user: &User,
        password: &str,
        purpose: PasswordCheck,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(), ReauthError> {
        let ip = client.ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.reauth
            .check(user.id, ip)
            .await
            .map_err(ReauthError::TooMany)?;
        self.confirm_password(user, password, purpose, client, now)
            .await?;
        Ok(())
    }

    /// Sets a new password once the current one is confirmed: checks the rules, ends every
    /// other session of the user, records the change and queues the owner's alert, in one
    /// transaction. Returns how many other sessions ended.
    pub async fn change_password(
        &self,
        user: &User,
        keep_session: Uuid,
        current_password: &str,
        new_password: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<u64, AccountError> {
        self.reauthenticate(
            user,
            current_password,
            PasswordCheck::PasswordChange,
            client,
            now,
        )
        .await?;
        let alert =
            crate::mail::password_changed(&self.mail.i18n, user, client, &self.mail.issuer, now);
        self.policy.check(new_password, &user.email)?;
        let hash = self.hasher.hash(new_password).await?;
        let event = ActivityEvent::new(
            Some(user.id),
            Action::PasswordChanged,
            client,
            serde_json::json!({ "other_sessions_ended": true }),
            now,
        );
        Ok(self
            .store
            .change_password(user.id, &hash, keep_session, &event, &alert)
            .await?)
    }

    /// The organizations that would refuse the account's deletion now (their only legal
    /// representative or member): the page says so before the password is typed.
    pub async fn organizations_needing(&self, user: &User) -> Result<Vec<String>, StoreError> {
        self.store.orgs_represented_only_by(user.id).await
    }

    /// Deletes the account once its password is confirmed, unless an organization still
    /// needs it — its only legal representative or its only member (then the names of those
    /// organizations come back in the error; decided in the deleting transaction). The
    /// owner gets a confirmation at the old address.
    pub async fn delete(
        &self,
        user: &User,
        password: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(), AccountError> {
        self.reauthenticate(user, password, PasswordCheck::AccountDeletion, client, now)
            .await?;
        let event = ActivityEvent::new(
            Some(user.id),
            Action::AccountDeleted,
            &ClientInfo::new("", ""),
            serde_json::json!({}),
            now,
        );
        let mail =
            crate::mail::account_deleted(&self.mail.i18n, user, client, &self.mail.issuer, now);
        match self.store.delete_user(user.id, &event, &mail).await? {
            crate::store::deletion::Deletion::Deleted => Ok(()),
            crate::store::deletion::Deletion::StillNeeded(names) => {
                Err(AccountError::LastLegalRepresentative(names))
            }
        }
    }
}
