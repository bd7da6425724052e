//! The forgotten password (OWASP Forgot Password Cheat Sheet): the request answers the same
//! for every address; an account with a password gets a single-use link (only its SHA-256
//! digest is stored) that expires after `accounts.password_reset_ttl_minutes`, an SSO-only
//! account a mail naming its organization's sign-in, an unknown address nothing. Mails per
//! account are limited in SQL; requests per network by the HTTP rate limit. Setting the new
//! password ends every session, revokes every grant and unlocks the account, at once.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Accounts, HashError, PasswordProblem, User, normalize_email};
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::mail::NewMail;
use crate::store::StoreError;
use crate::store::recovery::{MailLimit, PasswordReset, ResetMail};
use crate::tokens::OpaqueToken;

/// Forgotten-password mails to one account: none within this period of the last…
const RESET_MAIL_PERIOD: time::Duration = time::Duration::minutes(2);
/// …and at most this many an hour.
const RESET_MAILS_PER_HOUR: i64 = 5;

/// Why a mailed link cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    /// Not one of ours (mistyped, cut, or pruned long after it expired).
    Unknown,
    /// Used already: links work once.
    Used,
    /// Past its lifetime, or replaced by a newer link.
    Expired,
}

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("this link cannot be used: {0:?}")]
    LinkUnusable(LinkProblem),
    #[error("password {0}")]
    WeakPassword(#[from] PasswordProblem),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The state of a stored link at `now`.
pub(super) fn link_state(
    used_at: Option<OffsetDateTime>,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), LinkProblem> {
    if used_at.is_some() {
        Err(LinkProblem::Used)
    } else if expires_at <= now {
        Err(LinkProblem::Expired)
    } else {
        Ok(())
    }
}

impl Accounts {
    /// `POST /password/forgot`: mails what the address's account needs, if it has one and
    /// was not mailed too recently. Every path runs the same lookups and opens the same
    /// transaction (whose first statement matches no account for an unknown address), and
    /// no path runs argon2, so that the answer's time tells as little as its words.
    pub async fn request_password_reset(
        &self,
        email: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let user = match normalize_email(email) {
            Ok(email) => self.store.user_by_email(&email).await?,
            Err(_) => None,
        };
        let user_id = user.as_ref().map_or(Uuid::nil(), |u| u.id);
        let organization = self.store.sso_org_name(user_id).await?;
        let token = OpaqueToken::generate();
        let (kind, mail) = match (&user, &organization) {
            (Some(u), _) if u.password_hash.is_some() => {
                let link = format!(
                    "{}/password/reset?token={}",
                    self.mail.issuer,
                    token.as_str()
                );
                let ttl = self.mail.password_reset_ttl;
                let mail =
                    crate::mail::password_reset_link(&self.mail.i18n, u, client, &link, ttl, now);
                (ResetMail::Link, Some(mail))
            }
            // No password to reset: its organization signs it in. (One that has neither is
            // left alone: nothing in a mail could help its owner.)
            (Some(u), Some(org)) => {
                let i18n = &self.mail.i18n;
                let issuer = &self.mail.issuer;
                let mail = crate::mail::password_reset_sso(i18n, u, client, org, issuer, now);
                (ResetMail::SsoNotice, Some(mail))
            }
            _ => (ResetMail::Link, None),
        };
        let sends = mail.is_some();
        let mail = mail.unwrap_or_else(|| nothing_to_send(now));
        let reset = PasswordReset {
            digest: token.digest(),
            // Nil unless a mail goes out: the store's first statement then matches no row.
            user_id: if sends { user_id } else { Uuid::nil() },
            kind,
            created_at: now,
            // A notice carries no link: its row never works.
            expires_at: match kind {
                ResetMail::Link => now + self.mail.password_reset_ttl,
                ResetMail::SsoNotice => now,
            },
            used_at: None,
        };
        let event = ActivityEvent::new(
            user.as_ref().map(|u| u.id),
            Action::PasswordResetRequested,
            client,
            serde_json::json!({ "sent": kind.as_str() }),
            now,
        );
        let limit = MailLimit {
            not_since: now - RESET_MAIL_PERIOD,
            window_start: now - time::Duration::hours(1),
            max_in_window: RESET_MAILS_PER_HOUR,
        };
        self.store
            .issue_password_mail(&reset, &limit, &mail, &event)
            .await?;
        Ok(())
    }

    /// Whether a forgotten-password link can still be used (for its page; looking does not
    /// use it). The account it belongs to.
    pub async fn check_password_reset(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<User, ResetError> {
        let unusable = ResetError::LinkUnusable;
        let token = OpaqueToken::from_client(token).ok_or(unusable(LinkProblem::Unknown))?;
        let reset = self
            .store
            .password_reset(&token.digest())
            .await?
            .filter(|r| r.kind == ResetMail::Link)
            .ok_or(unusable(LinkProblem::Unknown))?;
        link_state(reset.used_at, reset.expires_at, now).map_err(unusable)?;
        self.store
            .user_by_id(reset.user_id)
            .await?
            .ok_or(unusable(LinkProblem::Unknown))
    }

    /// Sets a new password through the link, which works once: the rules of every new
    /// password, then in one transaction the hash, the end of every session (relying apps are
    /// told) and of every grant, the unlock, the events and the owner's notice. Returns how
    /// many sessions ended.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<u64, ResetError> {
        let user = self.check_password_reset(token, now).await?;
        self.policy.check(new_password, &user.email)?;
        let hash = self.hasher.hash(new_password).await?;
        let was_locked = user.locked_at.is_some();
        let mut events = vec![ActivityEvent::new(
            Some(user.id),
            Action::PasswordReset,
            client,
            serde_json::json!({ "every_session_ended": true, "unlocked": was_locked }),
            now,
        )];
        if was_locked {
            events.push(ActivityEvent::new(
                Some(user.id),
                Action::AccountUnlocked,
                client,
                serde_json::json!({ "by": "self", "via": "password_reset" }),
                now,
            ));
        }
        let mail = crate::mail::password_reset_done(
            &self.mail.i18n,
            &user,
            client,
            &self.mail.issuer,
            now,
        );
        let token = OpaqueToken::from_client(token)
            .ok_or(ResetError::LinkUnusable(LinkProblem::Unknown))?;
        self.store
            .reset_password(&token.digest(), user.id, &hash, &events, &mail)
            .await?
            // Another request used it a moment ago.
            .ok_or(ResetError::LinkUnusable(LinkProblem::Used))
    }
}

impl Accounts {
    /// Deletes forgotten-password and e-mail change links expired for a day (long past the
    /// hour the per-account limit looks at), in small batches; returns how many.
    pub async fn prune_links(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        const BATCH: i64 = 500;
        let before = now - time::Duration::days(1);
        let mut total = 0;
        loop {
            let deleted = self.store.prune_links(before, BATCH).await?;
            total += deleted;
            if deleted < BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}

/// The mail of an address that gets none: the same statements run, and none writes it.
fn nothing_to_send(now: OffsetDateTime) -> NewMail {
    NewMail {
        id: Uuid::now_v7(),
        recipient: String::new(),
        subject: String::new(),
        body_text: String::new(),
        body_html: None,
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_used_expired_or_usable() {
        let now = time::macros::datetime!(2026-12-08 12:00 UTC);
        let later = now + time::Duration::minutes(30);
        assert_eq!(link_state(None, later, now), Ok(()));
        assert_eq!(link_state(None, now, now), Err(LinkProblem::Expired));
        assert_eq!(link_state(Some(now), later, now), Err(LinkProblem::Used));
        // Used and expired: "used" says more.
        assert_eq!(link_state(Some(now), now, later), Err(LinkProblem::Used));
    }
}
