//! Accounts: users, the lockout count and unlock links, security settings, password and
//! profile changes, and the first-start setup link (deletion: `deletion.rs`); written once for both
//! backends like `sql.rs`.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::activity::ActivityEvent;
use super::outbox::NewMail;
use super::sql::{INSERT_USER, USER_COLUMNS, bind_user, email_key};
use super::{PostgresStore, SqliteStore, StoreError};
use crate::tokens::TokenDigest;

// The records: what the store reads and writes for an account, re-exported by `accounts`.

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub locale: Option<String>,
    pub failed_attempts: i32,
    pub locked_at: Option<OffsetDateTime>,
    pub lockout_threshold: i32,
    pub notify_on_success: bool,
    pub notify_on_failure: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub given_name: String,
    pub family_name: String,
    /// IANA name; `None`: the browser's zone, else UTC.
    pub time_zone: Option<String>,
    /// The owner opened a link mailed to this address (the `email_verified` claim).
    pub email_verified: bool,
    /// The content key of the uploaded avatar (`store::avatars`); `None` shows the initials.
    pub avatar_key: Option<String>,
}

/// A user about to be written; built by `Accounts` after the rules have passed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub email: String,
    /// The display name, "given family".
    pub name: String,
    pub given_name: String,
    pub family_name: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub lockout_threshold: i32,
    pub created_at: OffsetDateTime,
}

/// What a profile edit writes: every field's new value (`name` is the display name of the
/// two parts).
#[derive(Debug, Clone)]
pub struct ProfileRecord {
    pub name: String,
    pub given_name: String,
    pub family_name: String,
    pub locale: Option<String>,
    pub time_zone: Option<String>,
}

/// A user's security settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecuritySettings {
    pub lockout_threshold: i32,
    pub notify_on_success: bool,
    pub notify_on_failure: bool,
}

impl SecuritySettings {
    pub fn of(user: &User) -> Self {
        Self {
            lockout_threshold: user.lockout_threshold,
            notify_on_success: user.notify_on_success,
            notify_on_failure: user.notify_on_failure,
        }
    }
}

/// A stored unlock link (only its digest).
#[derive(Debug, Clone)]
pub struct UnlockToken {
    pub digest: TokenDigest,
    pub user_id: Uuid,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// A stored setup link (only its digest).
#[derive(Debug, Clone)]
pub struct SetupToken {
    pub digest: TokenDigest,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// Users and what they change about their own account.
#[async_trait]
pub trait AccountStore: Send + Sync {
    // Users.
    async fn insert_user(&self, user: &NewUser) -> Result<User, StoreError>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    async fn count_users(&self) -> Result<i64, StoreError>;
    // Lockout.
    /// Counts one password attempt *before* the password is checked, in one atomic update:
    /// the failure count goes up unless the account is locked or already at its threshold.
    /// Returns `(count, threshold)`, or `None` when the attempt is refused.
    async fn count_attempt(&self, user_id: Uuid) -> Result<Option<(i32, i32)>, StoreError>;
    /// Gives back an attempt that was counted but not checked.
    async fn release_attempt(&self, user_id: Uuid) -> Result<(), StoreError>;
    /// A right password: the count starts again (unless a lock came first).
    async fn reset_attempts(&self, user_id: Uuid) -> Result<(), StoreError>;
    /// Locks the account if its count reached its threshold and it is not locked yet: with
    /// the event, the owner's mail and a new unlock link (older links void), in one
    /// transaction. `false` when it was already locked.
    async fn lock_account(
        &self,
        user_id: Uuid,
        link: &UnlockToken,
        event: &ActivityEvent,
        mail: &NewMail,
    ) -> Result<bool, StoreError>;
    /// Unlocks (administrator, operator): clears the lock and the count and voids unlock
    /// links, with the event and the owner's mail. `false` when there was neither a lock nor
    /// a count to clear (nothing is written).
    async fn unlock_account(
        &self,
        user_id: Uuid,
        event: &ActivityEvent,
        mail: &NewMail,
    ) -> Result<bool, StoreError>;
    /// A new unlock link for a locked account (older unused links void) with its mail; `false`
    /// when the account is not locked or a link was sent since `not_since` (rate limit).
    async fn issue_unlock_token(
        &self,
        link: &UnlockToken,
        not_since: OffsetDateTime,
        mail: &NewMail,
    ) -> Result<bool, StoreError>;
    async fn unlock_token(&self, digest: &TokenDigest) -> Result<Option<UnlockToken>, StoreError>;
    /// Uses the link (once, before it expires) and unlocks its account, with the event.
    async fn unlock_by_token(
        &self,
        digest: &TokenDigest,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
    /// Writes the security settings with the event. A count at or past a lowered threshold
    /// (of an account not locked) becomes one below it: the next wrong password locks, with
    /// the mail and unlock link of a lock, instead of every attempt being refused unlocked.
    async fn update_security(
        &self,
        user_id: Uuid,
        settings: &SecuritySettings,
        event: &ActivityEvent,
    ) -> Result<User, StoreError>;

    /// Sets the password hash, ends every other session of the user and records the event,
    /// in one transaction; returns how many sessions ended.
    async fn change_password(
        &self,
        user_id: Uuid,
        hash: &str,
        keep_session: Uuid,
        event: &ActivityEvent,
        alert: &NewMail,
    ) -> Result<u64, StoreError>;
    /// Writes the profile with the event.
    async fn update_profile(
        &self,
        user_id: Uuid,
        profile: &ProfileRecord,
        event: &ActivityEvent,
    ) -> Result<User, StoreError>;
    async fn set_password_hash(
        &self,
        user_id: Uuid,
        hash: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    // First-start setup link.
    /// Stores a new setup token and voids every unused older one.
    async fn replace_setup_token(&self, token: &SetupToken) -> Result<(), StoreError>;
    async fn setup_token(&self, digest: &TokenDigest) -> Result<Option<SetupToken>, StoreError>;
    /// Uses the token (once, before it expires, while no user exists) and creates the first
    /// administrator, atomically; [`StoreError::TokenUnusable`] otherwise.
    async fn complete_setup(
        &self,
        digest: &TokenDigest,
        user: &NewUser,
        event: &ActivityEvent,
    ) -> Result<User, StoreError>;
}

macro_rules! account_store {
    ($store:ident, $db:ty) => {
        impl $store {
            /// Writes an unlock link (its digest) inside the caller's transaction.
            async fn insert_unlock_token(
                tx: &mut sqlx::Transaction<'_, $db>,
                link: &UnlockToken,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO unlock_tokens (token_hash, user_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(link.digest.as_bytes())
                .bind(link.user_id)
                .bind(link.created_at)
                .bind(link.expires_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl AccountStore for $store {
            async fn insert_user(&self, user: &NewUser) -> Result<User, StoreError> {
                let sql = format!("{INSERT_USER} RETURNING {USER_COLUMNS}");
                bind_user(sqlx::query_as::<_, User>(&sql), user)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(StoreError::from_write)
            }

            async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_key = $1");
                Ok(sqlx::query_as::<_, User>(&sql)
                    .bind(email_key(email))
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
                Ok(sqlx::query_as::<_, User>(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_users(&self) -> Result<Vec<User>, StoreError> {
                let sql = format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE deleted_at IS NULL ORDER BY email_key"
                );
                Ok(sqlx::query_as::<_, User>(&sql).fetch_all(&self.pool).await?)
            }

            async fn count_users(&self) -> Result<i64, StoreError> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n)
            }

            async fn count_attempt(
                &self,
                user_id: Uuid,
            ) -> Result<Option<(i32, i32)>, StoreError> {
                // The decision is the WHERE of one UPDATE: no read-modify-write, so parallel
                // attempts on any number of instances can never pass the threshold.
                Ok(sqlx::query_as(
                    "UPDATE users SET failed_attempts = failed_attempts + 1 \
                     WHERE id = $1 AND locked_at IS NULL AND failed_attempts < lockout_threshold \
                     RETURNING failed_attempts, lockout_threshold",
                )
                .bind(user_id)
                .fetch_optional(&self.writer)
                .await?)
            }

            async fn release_attempt(&self, user_id: Uuid) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE users SET failed_attempts = failed_attempts - 1 \
                     WHERE id = $1 AND failed_attempts > 0 AND locked_at IS NULL",
                )
                .bind(user_id)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn reset_attempts(&self, user_id: Uuid) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE users SET failed_attempts = 0 WHERE id = $1 AND locked_at IS NULL",
                )
                .bind(user_id)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn lock_account(
                &self,
                user_id: Uuid,
                link: &UnlockToken,
                event: &ActivityEvent,
                mail: &NewMail,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let locked = sqlx::query(
                    "UPDATE users SET locked_at = $1 WHERE id = $2 AND locked_at IS NULL \
                     AND failed_attempts >= lockout_threshold",
                )
                .bind(event.created_at)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if locked {
                    sqlx::query("DELETE FROM unlock_tokens WHERE user_id = $1 AND used_at IS NULL")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    Self::insert_unlock_token(&mut tx, link).await?;
                    Self::insert_event(&mut tx, event).await?;
                    Self::insert_mail(&mut tx, mail).await?;
                }
                tx.commit().await?;
                Ok(locked)
            }

            async fn unlock_account(
                &self,
                user_id: Uuid,
                event: &ActivityEvent,
                mail: &NewMail,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let unlocked = sqlx::query(
                    "UPDATE users SET locked_at = NULL, failed_attempts = 0 \
                     WHERE id = $1 AND (locked_at IS NOT NULL OR failed_attempts > 0)",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if unlocked {
                    sqlx::query("DELETE FROM unlock_tokens WHERE user_id = $1 AND used_at IS NULL")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    Self::insert_event(&mut tx, event).await?;
                    Self::insert_mail(&mut tx, mail).await?;
                }
                tx.commit().await?;
                Ok(unlocked)
            }

            async fn issue_unlock_token(
                &self,
                link: &UnlockToken,
                not_since: time::OffsetDateTime,
                mail: &NewMail,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                // Voiding the older links is also the write that serializes two requests.
                sqlx::query("DELETE FROM unlock_tokens WHERE user_id = $1 AND used_at IS NULL \
                             AND created_at < $2")
                    .bind(link.user_id)
                    .bind(not_since)
                    .execute(&mut *tx)
                    .await?;
                let (recent,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM unlock_tokens WHERE user_id = $1 AND created_at >= $2",
                )
                .bind(link.user_id)
                .bind(not_since)
                .fetch_one(&mut *tx)
                .await?;
                let (locked,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM users WHERE id = $1 AND locked_at IS NOT NULL",
                )
                .bind(link.user_id)
                .fetch_one(&mut *tx)
                .await?;
                if recent > 0 || locked == 0 {
                    return Ok(false);
                }
                Self::insert_unlock_token(&mut tx, link).await?;
                Self::insert_mail(&mut tx, mail).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn unlock_token(
                &self,
                digest: &TokenDigest,
            ) -> Result<Option<UnlockToken>, StoreError> {
                let row: Option<(Uuid, time::OffsetDateTime, time::OffsetDateTime, Option<time::OffsetDateTime>)> =
                    sqlx::query_as(
                        "SELECT user_id, created_at, expires_at, used_at FROM unlock_tokens \
                         WHERE token_hash = $1",
                    )
                    .bind(digest.as_bytes())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(user_id, created_at, expires_at, used_at)| UnlockToken {
                    digest: *digest,
                    user_id,
                    created_at,
                    expires_at,
                    used_at,
                }))
            }

            async fn unlock_by_token(
                &self,
                digest: &TokenDigest,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let used: Option<(Uuid,)> = sqlx::query_as(
                    "UPDATE unlock_tokens SET used_at = $1 \
                     WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
                     RETURNING user_id",
                )
                .bind(event.created_at)
                .bind(digest.as_bytes())
                .fetch_optional(&mut *tx)
                .await?;
                let Some((user_id,)) = used else {
                    return Ok(false);
                };
                sqlx::query(
                    "UPDATE users SET locked_at = NULL, failed_attempts = 0 WHERE id = $1",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn update_security(
                &self,
                user_id: Uuid,
                settings: &SecuritySettings,
                event: &ActivityEvent,
            ) -> Result<User, StoreError> {
                let mut tx = self.writer.begin().await?;
                let sql = format!(
                    "UPDATE users SET lockout_threshold = $1, notify_on_success = $2, \
                     notify_on_failure = $3, updated_at = $4, \
                     failed_attempts = CASE WHEN locked_at IS NULL AND failed_attempts >= $1 \
                       THEN $1 - 1 ELSE failed_attempts END \
                     WHERE id = $5 RETURNING {USER_COLUMNS}"
                );
                let user = sqlx::query_as::<_, User>(&sql)
                    .bind(settings.lockout_threshold)
                    .bind(settings.notify_on_success)
                    .bind(settings.notify_on_failure)
                    .bind(event.created_at)
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(user)
            }

            async fn change_password(
                &self,
                user_id: Uuid,
                hash: &str,
                keep_session: Uuid,
                event: &ActivityEvent,
                alert: &NewMail,
            ) -> Result<u64, StoreError> {
                let mut tx = self.writer.begin().await?;
                sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                    .bind(hash)
                    .bind(event.created_at)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                let ended: Vec<Uuid> = sqlx::query_scalar(
                    "UPDATE sessions SET ended_at = $1, ended_reason = 'password_changed' \
                     WHERE user_id = $2 AND id <> $3 AND ended_at IS NULL RETURNING id",
                )
                .bind(event.created_at)
                .bind(user_id)
                .bind(keep_session)
                .fetch_all(&mut *tx)
                .await?;
                Self::end_session_grants(&mut tx, &ended, event.created_at).await?;
                let ended = ended.len() as u64;
                Self::insert_event(&mut tx, event).await?;
                Self::insert_mail(&mut tx, alert).await?;
                tx.commit().await?;
                self.revocations.note();
                Ok(ended)
            }

            async fn update_profile(
                &self,
                user_id: Uuid,
                profile: &ProfileRecord,
                event: &ActivityEvent,
            ) -> Result<User, StoreError> {
                let mut tx = self.writer.begin().await?;
                let sql = format!(
                    "UPDATE users SET name = $1, locale = $2, updated_at = $3, given_name = $5, \
                     family_name = $6, time_zone = $7 WHERE id = $4 RETURNING {USER_COLUMNS}"
                );
                let user = sqlx::query_as::<_, User>(&sql)
                    .bind(profile.name.as_str())
                    .bind(profile.locale.as_deref())
                    .bind(event.created_at)
                    .bind(user_id)
                    .bind(profile.given_name.as_str())
                    .bind(profile.family_name.as_str())
                    .bind(profile.time_zone.as_deref())
                    .fetch_one(&mut *tx)
                    .await?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                self.revocations.note();
                Ok(user)
            }

            async fn set_password_hash(
                &self,
                user_id: Uuid,
                hash: &str,
                now: time::OffsetDateTime,
            ) -> Result<(), StoreError> {
                sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                    .bind(hash)
                    .bind(now)
                    .bind(user_id)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn replace_setup_token(&self, token: &SetupToken) -> Result<(), StoreError> {
                let mut tx = self.writer.begin().await?;
                sqlx::query("DELETE FROM setup_tokens WHERE used_at IS NULL")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO setup_tokens (token_hash, created_at, expires_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(token.digest.as_bytes())
                .bind(token.created_at)
                .bind(token.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn setup_token(
                &self,
                digest: &TokenDigest,
            ) -> Result<Option<SetupToken>, StoreError> {
                let row: Option<(time::OffsetDateTime, time::OffsetDateTime, Option<time::OffsetDateTime>)> =
                    sqlx::query_as(
                        "SELECT created_at, expires_at, used_at FROM setup_tokens \
                         WHERE token_hash = $1",
                    )
                    .bind(digest.as_bytes())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(created_at, expires_at, used_at)| SetupToken {
                    digest: *digest,
                    created_at,
                    expires_at,
                    used_at,
                }))
            }

            async fn complete_setup(
                &self,
                digest: &TokenDigest,
                user: &NewUser,
                event: &ActivityEvent,
            ) -> Result<User, StoreError> {
                let mut tx = self.writer.begin().await?;
                // Single use: the guarded UPDATE is the decision, so two racing requests
                // cannot both pass.
                let used = sqlx::query(
                    "UPDATE setup_tokens SET used_at = $1 \
                     WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
                )
                .bind(user.created_at)
                .bind(digest.as_bytes())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
                    .fetch_one(&mut *tx)
                    .await?;
                if used != 1 || existing != 0 {
                    return Err(StoreError::TokenUnusable);
                }
                let sql = format!("{INSERT_USER} RETURNING {USER_COLUMNS}");
                let created = bind_user(sqlx::query_as::<_, User>(&sql), user)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(created)
            }
        }
    };
}

account_store!(SqliteStore, sqlx::Sqlite);
account_store!(PostgresStore, sqlx::Postgres);
