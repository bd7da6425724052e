//! The change of the login address: asked for with the current password, made only once a
//! link mailed to the new address is opened (until then the old address signs in), and
//! undoable for a week from a link mailed to the old address, which also ends every session
//! (whoever changed it may hold one). Links are single-use and stored as digests.

use time::OffsetDateTime;

use super::recovery::link_state;
use super::{Accounts, EmailProblem, LinkProblem, PasswordCheck, ReauthError, normalize_email};
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::store::StoreError;
use crate::store::recovery::{EmailChange, EmailLink};
use crate::tokens::OpaqueToken;

/// How long the new address has to confirm.
pub const EMAIL_CHANGE_TTL: time::Duration = time::Duration::hours(24);
/// How long the old address can undo the change.
pub const EMAIL_UNDO_TTL: time::Duration = time::Duration::days(7);

#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    #[error("e-mail address {0}")]
    Invalid(EmailProblem),
    #[error("this is the account's address already")]
    SameAddress,
    /// Another account has the new address (when asked, or by the time of confirmation).
    #[error("another account uses this e-mail address")]
    Taken,
    /// Another account took the old address after the change: it cannot be restored.
    #[error("another account uses the old e-mail address now")]
    OldAddressTaken,
    /// The current password did not confirm the request (wrong, locked, too many checks).
    #[error(transparent)]
    Reauth(#[from] ReauthError),
    #[error("this link cannot be used: {0:?}")]
    LinkUnusable(LinkProblem),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A change waiting for its confirmation.
#[derive(Debug, Clone)]
pub struct PendingEmail {
    pub new_email: String,
    pub expires_at: OffsetDateTime,
}

impl Accounts {
    /// Asks for `new_email` as the login address: the address's form, then the current
    /// password (counted like a sign-in, limited), then whether another account has it; the
    /// link goes to the new address (in the owner's language), older pending links void.
    pub async fn request_email_change(
        &self,
        user: &super::User,
        new_email: &str,
        current_password: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<PendingEmail, EmailChangeError> {
        let new_email = normalize_email(new_email).map_err(EmailChangeError::Invalid)?;
        if new_email.to_lowercase() == user.email.to_lowercase() {
            return Err(EmailChangeError::SameAddress);
        }
        self.reauthenticate(
            user,
            current_password,
            PasswordCheck::EmailChange,
            client,
            now,
        )
        .await?;
        if self
            .store
            .user_by_email(&new_email)
            .await?
            .is_some_and(|other| other.id != user.id)
        {
            return Err(EmailChangeError::Taken);
        }
        let token = OpaqueToken::generate();
        let link = format!(
            "{}/account/email/confirm?token={}",
            self.mail.issuer,
            token.as_str()
        );
        let change = EmailChange {
            digest: token.digest(),
            kind: EmailLink::Confirm,
            user_id: user.id,
            old_email: user.email.clone(),
            new_email: new_email.clone(),
            created_at: now,
            expires_at: now + EMAIL_CHANGE_TTL,
            used_at: None,
        };
        let event = ActivityEvent::new(
            Some(user.id),
            Action::EmailChangeRequested,
            client,
            serde_json::json!({ "confirmation": "mailed_to_new_address" }),
            now,
        );
        let mail = crate::mail::email_change_confirm(
            &self.mail.i18n,
            user,
            &new_email,
            client,
            &link,
            EMAIL_CHANGE_TTL,
            now,
        );
        self.store
            .request_email_change(&change, &event, &mail)
            .await?;
        Ok(PendingEmail {
            new_email,
            expires_at: change.expires_at,
        })
    }

    /// Whether an e-mail change link of `kind` can still be used (for its page; looking
    /// does not use it).
    pub async fn check_email_link(
        &self,
        token: &str,
        kind: EmailLink,
        now: OffsetDateTime,
    ) -> Result<EmailChange, EmailChangeError> {
        let unknown = EmailChangeError::LinkUnusable(LinkProblem::Unknown);
        let Some(token) = OpaqueToken::from_client(token) else {
            return Err(unknown);
        };
        let change = self
            .store
            .email_change(&token.digest())
            .await?
            .filter(|c| c.kind == kind)
            .ok_or(unknown)?;
        link_state(change.used_at, change.expires_at, now)
            .map_err(EmailChangeError::LinkUnusable)?;
        Ok(change)
    }

    /// The confirmation link's POST: swaps the address (checked again: another account may
    /// have taken it meanwhile), marks it verified, and mails the old address the undo link.
    pub async fn confirm_email_change(
        &self,
        token: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<PendingEmail, EmailChangeError> {
        let change = self
            .check_email_link(token, EmailLink::Confirm, now)
            .await?;
        let user = self
            .store
            .user_by_id(change.user_id)
            .await?
            .ok_or(EmailChangeError::LinkUnusable(LinkProblem::Unknown))?;
        if user.email != change.old_email {
            // The address changed another way since: this link belongs to the past.
            return Err(EmailChangeError::LinkUnusable(LinkProblem::Expired));
        }
        if self
            .store
            .user_by_email(&change.new_email)
            .await?
            .is_some_and(|other| other.id != user.id)
        {
            return Err(EmailChangeError::Taken);
        }
        let undo_token = OpaqueToken::generate();
        let undo_link = format!(
            "{}/account/email/undo?token={}",
            self.mail.issuer,
            undo_token.as_str()
        );
        let undo = EmailChange {
            digest: undo_token.digest(),
            kind: EmailLink::Undo,
            user_id: user.id,
            old_email: change.old_email.clone(),
            new_email: change.new_email.clone(),
            created_at: now,
            expires_at: now + EMAIL_UNDO_TTL,
            used_at: None,
        };
        let event = ActivityEvent::new(
            Some(user.id),
            Action::EmailChanged,
            client,
            serde_json::json!({ "verified": true }),
            now,
        );
        let notice = crate::mail::email_changed(
            &self.mail.i18n,
            &user,
            &change.new_email,
            client,
            &undo_link,
            EMAIL_UNDO_TTL,
            now,
        );
        let digest = change.digest;
        match self
            .store
            .confirm_email_change(&digest, &undo, &event, &notice)
            .await
        {
            Ok(()) => Ok(PendingEmail {
                new_email: change.new_email,
                expires_at: undo.expires_at,
            }),
            Err(StoreError::Conflict) => Err(EmailChangeError::Taken),
            Err(StoreError::TokenUnusable) => {
                Err(EmailChangeError::LinkUnusable(LinkProblem::Used))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// The undo link's POST: restores the old address and ends every session of the account,
    /// with its grants (relying apps are told); every other pending link voids. Returns how
    /// many sessions ended.
    pub async fn undo_email_change(
        &self,
        token: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<u64, EmailChangeError> {
        let change = self.check_email_link(token, EmailLink::Undo, now).await?;
        let event = ActivityEvent::new(
            Some(change.user_id),
            Action::EmailChangeUndone,
            client,
            serde_json::json!({ "every_session_ended": true }),
            now,
        );
        match self.store.undo_email_change(&change.digest, &event).await {
            Ok(ended) => Ok(ended),
            Err(StoreError::Conflict) => Err(EmailChangeError::OldAddressTaken),
            Err(StoreError::TokenUnusable) => {
                Err(EmailChangeError::LinkUnusable(LinkProblem::Used))
            }
            Err(other) => Err(other.into()),
        }
    }
}
