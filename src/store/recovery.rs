//! Mailed links that act on an account: the forgotten-password links (and the notices to
//! SSO-only accounts that take their place), the confirmation of a new login address and the
//! link that undoes the change; written once for both backends like `sql.rs`. Only digests of
//! the links' tokens are stored; using a link is one guarded UPDATE, so it works once.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::activity::ActivityEvent;
use super::outbox::NewMail;
use super::sql::email_key;
use super::{PostgresStore, SqliteStore, StoreError};
use crate::tokens::TokenDigest;

// The records: what the store reads and writes for these links, re-exported by `accounts`.

/// What a forgotten-password mail carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetMail {
    /// A link that sets a new password, once.
    Link,
    /// An SSO-only account is told to use its organization's sign-in: no link (the row only
    /// counts towards the per-account limit and never works).
    SsoNotice,
}

impl ResetMail {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetMail::Link => "link",
            ResetMail::SsoNotice => "sso",
        }
    }
}

/// A forgotten-password mail (only the digest of its link).
#[derive(Debug, Clone)]
pub struct PasswordReset {
    pub digest: TokenDigest,
    pub user_id: Uuid,
    pub kind: ResetMail,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// How many forgotten-password mails one account may get: none since `not_since`, fewer than
/// `max_in_window` since `window_start`.
#[derive(Debug, Clone, Copy)]
pub struct MailLimit {
    pub not_since: OffsetDateTime,
    pub window_start: OffsetDateTime,
    pub max_in_window: i64,
}

/// Which step of an e-mail change a link takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailLink {
    /// Mailed to the new address: makes the change.
    Confirm,
    /// Mailed to the old address once the change is made: restores it.
    Undo,
}

impl EmailLink {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailLink::Confirm => "confirm",
            EmailLink::Undo => "undo",
        }
    }
}

/// A stored e-mail change link (only its digest).
#[derive(Debug, Clone)]
pub struct EmailChange {
    pub digest: TokenDigest,
    pub kind: EmailLink,
    pub user_id: Uuid,
    pub old_email: String,
    pub new_email: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// Forgotten passwords and changes of the login address.
#[async_trait]
pub trait RecoveryStore: Send + Sync {
    /// The name of the organization whose SSO the account is linked to, if any.
    async fn sso_org_name(&self, user_id: Uuid) -> Result<Option<String>, StoreError>;
    /// Queues a forgotten-password mail with its row (a new link voids the account's older
    /// unused ones) and the event, in one transaction; `false` (nothing written) when the account does
    /// not exist or `limit` refuses another mail. An unknown account runs the same first
    /// statement, which matches no row.
    async fn issue_password_mail(
        &self,
        reset: &PasswordReset,
        limit: &MailLimit,
        mail: &NewMail,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
    async fn password_reset(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<PasswordReset>, StoreError>;
    /// Uses the link of `user_id` (once, before it expires) and, in the same transaction:
    /// sets the hash, clears the lock and the count (unlock links void), marks the address
    /// verified, voids the other links, ends every session of the account (relying apps are
    /// told) and revokes every grant, with the events and the notice. `None` when the link
    /// is not usable; else how many sessions ended.
    async fn reset_password(
        &self,
        digest: &TokenDigest,
        user_id: Uuid,
        hash: &str,
        events: &[ActivityEvent],
        mail: &NewMail,
    ) -> Result<Option<u64>, StoreError>;

    /// Stores a confirmation link (older pending ones of the account void) with the event
    /// and the mail to the new address.
    async fn request_email_change(
        &self,
        change: &EmailChange,
        event: &ActivityEvent,
        mail: &NewMail,
    ) -> Result<(), StoreError>;
    async fn email_change(&self, digest: &TokenDigest) -> Result<Option<EmailChange>, StoreError>;
    /// Uses the confirmation link `digest` (once, unexpired, while the account still has its
    /// old address) and swaps the address, marked verified, in one transaction with the undo
    /// link, the event and the notice to the old address; forgotten-password links (mailed
    /// to the old address) void. [`StoreError::TokenUnusable`] when the link cannot be used,
    /// [`StoreError::Conflict`] when another account has the new address now.
    async fn confirm_email_change(
        &self,
        digest: &TokenDigest,
        undo: &EmailChange,
        event: &ActivityEvent,
        mail: &NewMail,
    ) -> Result<(), StoreError>;
    /// Uses the undo link `digest` (once, unexpired) and restores its old address, verified,
    /// in one transaction: every other pending link of the account voids, every session ends
    /// (relying apps are told) and every grant is revoked. Returns how many sessions ended;
    /// [`StoreError::TokenUnusable`], or [`StoreError::Conflict`] when another account has
    /// the old address now.
    async fn undo_email_change(
        &self,
        digest: &TokenDigest,
        event: &ActivityEvent,
    ) -> Result<u64, StoreError>;
    /// Deletes up to `limit` links of both kinds that expired before `before`.
    async fn prune_links(&self, before: OffsetDateTime, limit: i64) -> Result<u64, StoreError>;
}

type ResetRow = (
    Uuid,
    String,
    OffsetDateTime,
    OffsetDateTime,
    Option<OffsetDateTime>,
);

type ChangeRow = (
    String,
    Uuid,
    String,
    String,
    OffsetDateTime,
    OffsetDateTime,
    Option<OffsetDateTime>,
);

macro_rules! recovery_store {
    ($store:ident, $db:ty) => {
        impl $store {
            /// Ends every session of the account and revokes every grant of it (those of its
            /// sessions queue their back-channel logouts), inside the caller's transaction.
            async fn end_every_session(
                tx: &mut sqlx::Transaction<'_, $db>,
                user_id: Uuid,
                reason: &str,
                now: OffsetDateTime,
            ) -> Result<u64, sqlx::Error> {
                let ended: Vec<Uuid> = sqlx::query_scalar(
                    "UPDATE sessions SET ended_at = $1, ended_reason = $2 \
                     WHERE user_id = $3 AND ended_at IS NULL RETURNING id",
                )
                .bind(now)
                .bind(reason)
                .bind(user_id)
                .fetch_all(&mut **tx)
                .await?;
                Self::end_session_grants(tx, &ended, now).await?;
                sqlx::query(
                    "UPDATE oauth_grants SET revoked_at = $1, revoked_reason = $2 \
                     WHERE user_id = $3 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(reason)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
                Ok(ended.len() as u64)
            }

            /// Voids the account's unused forgotten-password links (they expire now).
            async fn void_password_links(
                tx: &mut sqlx::Transaction<'_, $db>,
                user_id: Uuid,
                now: OffsetDateTime,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "UPDATE password_resets SET expires_at = $1 \
                     WHERE user_id = $2 AND used_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn insert_email_change(
                tx: &mut sqlx::Transaction<'_, $db>,
                change: &EmailChange,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO email_changes (token_hash, kind, user_id, old_email, \
                     new_email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(change.digest.as_bytes())
                .bind(change.kind.as_str())
                .bind(change.user_id)
                .bind(&change.old_email)
                .bind(&change.new_email)
                .bind(change.created_at)
                .bind(change.expires_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl RecoveryStore for $store {
            async fn sso_org_name(&self, user_id: Uuid) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT o.name FROM federated_identities f \
                     JOIN organizations o ON o.id = f.org_id \
                     WHERE f.user_id = $1 ORDER BY f.created_at LIMIT 1",
                )
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn issue_password_mail(
                &self,
                reset: &PasswordReset,
                limit: &MailLimit,
                mail: &NewMail,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                // Takes the account's row lock (PostgreSQL), so that two requests for one
                // account count each other; for an unknown address it matches nothing.
                let found: Option<Uuid> = sqlx::query_scalar(
                    "UPDATE users SET updated_at = updated_at WHERE id = $1 RETURNING id",
                )
                .bind(reset.user_id)
                .fetch_optional(&mut *tx)
                .await?;
                if found.is_none() {
                    return Ok(false);
                }
                let (recent, in_window): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(CASE WHEN created_at >= $2 THEN 1 END), COUNT(*) \
                     FROM password_resets WHERE user_id = $1 AND created_at >= $3",
                )
                .bind(reset.user_id)
                .bind(limit.not_since)
                .bind(limit.window_start)
                .fetch_one(&mut *tx)
                .await?;
                if recent > 0 || in_window >= limit.max_in_window {
                    return Ok(false);
                }
                if reset.kind == ResetMail::Link {
                    Self::void_password_links(&mut tx, reset.user_id, reset.created_at).await?;
                }
                sqlx::query(
                    "INSERT INTO password_resets (token_hash, user_id, kind, created_at, \
                     expires_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(reset.digest.as_bytes())
                .bind(reset.user_id)
                .bind(reset.kind.as_str())
                .bind(reset.created_at)
                .bind(reset.expires_at)
                .execute(&mut *tx)
                .await?;
                Self::insert_event(&mut tx, event).await?;
                Self::insert_mail(&mut tx, mail).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn password_reset(
                &self,
                digest: &TokenDigest,
            ) -> Result<Option<PasswordReset>, StoreError> {
                let row: Option<ResetRow> = sqlx::query_as(
                    "SELECT user_id, kind, created_at, expires_at, used_at \
                     FROM password_resets WHERE token_hash = $1",
                )
                .bind(digest.as_bytes())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(user_id, kind, created_at, expires_at, used_at)| PasswordReset {
                    digest: *digest,
                    user_id,
                    kind: if kind == "link" {
                        ResetMail::Link
                    } else {
                        ResetMail::SsoNotice
                    },
                    created_at,
                    expires_at,
                    used_at,
                }))
            }

            async fn reset_password(
                &self,
                digest: &TokenDigest,
                user_id: Uuid,
                hash: &str,
                events: &[ActivityEvent],
                mail: &NewMail,
            ) -> Result<Option<u64>, StoreError> {
                let now = mail.created_at;
                let mut tx = self.writer.begin().await?;
                // Single use: the guarded UPDATE is the decision.
                let used = sqlx::query(
                    "UPDATE password_resets SET used_at = $1 WHERE token_hash = $2 \
                     AND user_id = $3 AND kind = 'link' AND used_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(digest.as_bytes())
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if used != 1 {
                    return Ok(None);
                }
                sqlx::query(
                    "UPDATE users SET password_hash = $1, failed_attempts = 0, locked_at = NULL, \
                     email_verified = $2, updated_at = $3 WHERE id = $4",
                )
                .bind(hash)
                .bind(true)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM unlock_tokens WHERE user_id = $1 AND used_at IS NULL")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                Self::void_password_links(&mut tx, user_id, now).await?;
                let ended = Self::end_every_session(&mut tx, user_id, "password_reset", now).await?;
                for event in events {
                    Self::insert_event(&mut tx, event).await?;
                }
                Self::insert_mail(&mut tx, mail).await?;
                tx.commit().await?;
                self.revocations.note();
                Ok(Some(ended))
            }

            async fn request_email_change(
                &self,
                change: &EmailChange,
                event: &ActivityEvent,
                mail: &NewMail,
            ) -> Result<(), StoreError> {
                let mut tx = self.writer.begin().await?;
                sqlx::query(
                    "UPDATE email_changes SET expires_at = $1 WHERE user_id = $2 \
                     AND kind = 'confirm' AND used_at IS NULL AND expires_at > $1",
                )
                .bind(change.created_at)
                .bind(change.user_id)
                .execute(&mut *tx)
                .await?;
                Self::insert_email_change(&mut tx, change).await?;
                Self::insert_event(&mut tx, event).await?;
                Self::insert_mail(&mut tx, mail).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn email_change(
                &self,
                digest: &TokenDigest,
            ) -> Result<Option<EmailChange>, StoreError> {
                let row: Option<ChangeRow> = sqlx::query_as(
                    "SELECT kind, user_id, old_email, new_email, created_at, expires_at, \
                     used_at FROM email_changes WHERE token_hash = $1",
                )
                .bind(digest.as_bytes())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(
                    |(kind, user_id, old_email, new_email, created_at, expires_at, used_at)| {
                        EmailChange {
                            digest: *digest,
                            kind: if kind == "undo" {
                                EmailLink::Undo
                            } else {
                                EmailLink::Confirm
                            },
                            user_id,
                            old_email,
                            new_email,
                            created_at,
                            expires_at,
                            used_at,
                        }
                    },
                ))
            }

            async fn confirm_email_change(
                &self,
                digest: &TokenDigest,
                undo: &EmailChange,
                event: &ActivityEvent,
                mail: &NewMail,
            ) -> Result<(), StoreError> {
                let now = undo.created_at;
                let mut tx = self.writer.begin().await?;
                let used = sqlx::query(
                    "UPDATE email_changes SET used_at = $1 WHERE token_hash = $2 \
                     AND kind = 'confirm' AND user_id = $3 AND old_email = $4 \
                     AND new_email = $5 AND used_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(digest.as_bytes())
                .bind(undo.user_id)
                .bind(&undo.old_email)
                .bind(&undo.new_email)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if used != 1 {
                    return Err(StoreError::TokenUnusable);
                }
                // The unique index on `email_key` decides, atomically, who has the address.
                let swapped = sqlx::query(
                    "UPDATE users SET email = $1, email_key = $2, email_verified = $3, \
                     updated_at = $4 WHERE id = $5 AND email = $6",
                )
                .bind(&undo.new_email)
                .bind(email_key(&undo.new_email))
                .bind(true)
                .bind(now)
                .bind(undo.user_id)
                .bind(&undo.old_email)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?
                .rows_affected();
                if swapped != 1 {
                    // The address changed since the request.
                    return Err(StoreError::TokenUnusable);
                }
                Self::void_password_links(&mut tx, undo.user_id, now).await?;
                Self::insert_email_change(&mut tx, undo).await?;
                Self::insert_event(&mut tx, event).await?;
                Self::insert_mail(&mut tx, mail).await?;
                tx.commit().await?;
                self.revocations.note();
                Ok(())
            }

            async fn undo_email_change(
                &self,
                digest: &TokenDigest,
                event: &ActivityEvent,
            ) -> Result<u64, StoreError> {
                let now = event.created_at;
                let mut tx = self.writer.begin().await?;
                let used: Option<(Uuid, String)> = sqlx::query_as(
                    "UPDATE email_changes SET used_at = $1 WHERE token_hash = $2 \
                     AND kind = 'undo' AND used_at IS NULL AND expires_at > $1 \
                     RETURNING user_id, old_email",
                )
                .bind(now)
                .bind(digest.as_bytes())
                .fetch_optional(&mut *tx)
                .await?;
                let Some((user_id, old_email)) = used else {
                    return Err(StoreError::TokenUnusable);
                };
                sqlx::query(
                    "UPDATE users SET email = $1, email_key = $2, email_verified = $3, \
                     updated_at = $4 WHERE id = $5",
                )
                .bind(&old_email)
                .bind(email_key(&old_email))
                .bind(true)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                // Whoever made the change may have made more: none of their links survive.
                sqlx::query(
                    "UPDATE email_changes SET expires_at = $1 \
                     WHERE user_id = $2 AND used_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                Self::void_password_links(&mut tx, user_id, now).await?;
                let ended =
                    Self::end_every_session(&mut tx, user_id, "email_change_undone", now).await?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                self.revocations.note();
                Ok(ended)
            }

            async fn prune_links(
                &self,
                before: OffsetDateTime,
                limit: i64,
            ) -> Result<u64, StoreError> {
                let resets = sqlx::query(
                    "DELETE FROM password_resets WHERE token_hash IN (SELECT token_hash \
                     FROM password_resets WHERE expires_at < $1 LIMIT $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.writer)
                .await?
                .rows_affected();
                let changes = sqlx::query(
                    "DELETE FROM email_changes WHERE token_hash IN (SELECT token_hash \
                     FROM email_changes WHERE expires_at < $1 LIMIT $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.writer)
                .await?
                .rows_affected();
                Ok(resets + changes)
            }
        }
    };
}

recovery_store!(SqliteStore, sqlx::Sqlite);
recovery_store!(PostgresStore, sqlx::Postgres);
