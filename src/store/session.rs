//! Browser sessions: started, looked up, touched, ended, pruned; written once for both
//! backends like `sql.rs`.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::account::User;
use super::activity::ActivityEvent;
use super::outbox::NewMail;
use super::{PostgresStore, SqliteStore, StoreError};
use crate::tokens::TokenDigest;

// The records: what the store reads and writes for a session, re-exported by `sessions`.

/// How the user signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    Password,
    Sso,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Password => "password",
            SignInMethod::Sso => "sso",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub method: String,
    pub sso_org_id: Option<Uuid>,
    pub ip: String,
    pub user_agent: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_digest: TokenDigest,
    pub method: SignInMethod,
    pub sso_org_id: Option<Uuid>,
    pub ip: String,
    pub user_agent: String,
    pub created_at: OffsetDateTime,
}

/// A session and its user. The session's columns are aliased so that the user's keep the
/// names `User`'s `FromRow` expects.
const SESSION_WITH_USER: &str = "SELECT u.id, u.email, u.name, u.password_hash, u.is_admin, \
     u.locale, u.failed_attempts, u.locked_at, u.lockout_threshold, u.notify_on_success, \
     u.notify_on_failure, u.created_at, u.updated_at, u.avatar_key, s.id AS s_id, \
     s.method AS s_method, \
     s.sso_org_id AS s_sso_org_id, s.ip AS s_ip, s.user_agent AS s_user_agent, \
     s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at \
     FROM sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.token_hash = $1 AND s.ended_at IS NULL";

/// Sessions: created together with their activity event, in one transaction.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn start_session(
        &self,
        session: &NewSession,
        event: &ActivityEvent,
        alert: Option<(&NewMail, &ActivityEvent)>,
    ) -> Result<(), StoreError>;
    /// The active (not ended) session whose cookie has this digest, with its user.
    async fn session_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(Session, User)>, StoreError>;
    /// Ends one session of `user_id`; `false` when there is no such active session of theirs
    /// (another user's id touches nothing). The event is written with it.
    async fn end_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: &str,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
    /// Ends every active session of `user_id` but `keep`; returns how many. One event for all.
    async fn end_other_sessions(
        &self,
        user_id: Uuid,
        keep: Uuid,
        reason: &str,
        event: &ActivityEvent,
    ) -> Result<u64, StoreError>;
    /// Writes "last seen" (and the address) unless it was written after `stale_before`.
    async fn touch_session(
        &self,
        session_id: Uuid,
        ip: &str,
        now: OffsetDateTime,
        stale_before: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// The active sessions of a user, newest first.
    async fn sessions_of_user(&self, user_id: Uuid) -> Result<Vec<Session>, StoreError>;
    /// Deletes up to `limit` sessions that ended, or were idle since before `idle_before`, or
    /// started before `started_before`; returns how many.
    async fn prune_sessions(
        &self,
        idle_before: OffsetDateTime,
        started_before: OffsetDateTime,
        limit: i64,
    ) -> Result<u64, StoreError>;
}

macro_rules! session_store {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl SessionStore for $store {
            async fn start_session(
                &self,
                s: &NewSession,
                event: &ActivityEvent,
                alert: Option<(&NewMail, &ActivityEvent)>,
            ) -> Result<(), StoreError> {
                let mut tx = self.writer.begin().await?;
                sqlx::query(
                    "INSERT INTO sessions (id, user_id, token_hash, method, sso_org_id, ip, \
                     user_agent, created_at, last_seen_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                )
                .bind(s.id)
                .bind(s.user_id)
                .bind(s.token_digest.as_bytes())
                .bind(s.method.as_str())
                .bind(s.sso_org_id)
                .bind(&s.ip)
                .bind(&s.user_agent)
                .bind(s.created_at)
                .execute(&mut *tx)
                .await?;
                Self::insert_event(&mut tx, event).await?;
                if let Some((mail, sent)) = alert {
                    Self::insert_mail(&mut tx, mail).await?;
                    Self::insert_event(&mut tx, sent).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn session_by_digest(
                &self,
                digest: &TokenDigest,
            ) -> Result<Option<(Session, User)>, StoreError> {
                use sqlx::{FromRow, Row};
                // One round trip per signed-in request: the session and its user, joined.
                let Some(row) = sqlx::query(SESSION_WITH_USER)
                    .bind(digest.as_bytes())
                    .fetch_optional(&self.pool)
                    .await?
                else {
                    return Ok(None);
                };
                let user = User::from_row(&row)?;
                let session = Session {
                    id: row.try_get("s_id")?,
                    user_id: user.id,
                    method: row.try_get("s_method")?,
                    sso_org_id: row.try_get("s_sso_org_id")?,
                    ip: row.try_get("s_ip")?,
                    user_agent: row.try_get("s_user_agent")?,
                    created_at: row.try_get("s_created_at")?,
                    last_seen_at: row.try_get("s_last_seen_at")?,
                };
                Ok(Some((session, user)))
            }

            async fn end_session(
                &self,
                user_id: Uuid,
                session_id: Uuid,
                reason: &str,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let ended = sqlx::query(
                    "UPDATE sessions SET ended_at = $1, ended_reason = $2 \
                     WHERE id = $3 AND user_id = $4 AND ended_at IS NULL",
                )
                .bind(event.created_at)
                .bind(reason)
                .bind(session_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if ended {
                    Self::end_session_grants(&mut tx, &[session_id], event.created_at).await?;
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                self.revocations.note();
                Ok(ended)
            }

            async fn end_other_sessions(
                &self,
                user_id: Uuid,
                keep: Uuid,
                reason: &str,
                event: &ActivityEvent,
            ) -> Result<u64, StoreError> {
                let mut tx = self.writer.begin().await?;
                let ended: Vec<Uuid> = sqlx::query_scalar(
                    "UPDATE sessions SET ended_at = $1, ended_reason = $2 \
                     WHERE user_id = $3 AND id <> $4 AND ended_at IS NULL RETURNING id",
                )
                .bind(event.created_at)
                .bind(reason)
                .bind(user_id)
                .bind(keep)
                .fetch_all(&mut *tx)
                .await?;
                Self::end_session_grants(&mut tx, &ended, event.created_at).await?;
                let ended = ended.len() as u64;
                if ended > 0 {
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                self.revocations.note();
                Ok(ended)
            }

            async fn touch_session(
                &self,
                session_id: Uuid,
                ip: &str,
                now: time::OffsetDateTime,
                stale_before: time::OffsetDateTime,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE sessions SET last_seen_at = $1, ip = $2 \
                     WHERE id = $3 AND last_seen_at <= $4 AND ended_at IS NULL",
                )
                .bind(now)
                .bind(ip)
                .bind(session_id)
                .bind(stale_before)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn sessions_of_user(&self, user_id: Uuid) -> Result<Vec<Session>, StoreError> {
                Ok(sqlx::query_as::<_, Session>(
                    "SELECT id, user_id, method, sso_org_id, ip, user_agent, created_at, \
                     last_seen_at FROM sessions WHERE user_id = $1 AND ended_at IS NULL \
                     ORDER BY created_at DESC, id DESC",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn prune_sessions(
                &self,
                idle_before: time::OffsetDateTime,
                started_before: time::OffsetDateTime,
                limit: i64,
            ) -> Result<u64, StoreError> {
                // A bounded batch, so that pruning never holds the table for long.
                Ok(sqlx::query(
                    "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
                     WHERE ended_at IS NOT NULL OR last_seen_at < $1 OR created_at < $2 \
                     LIMIT $3)",
                )
                .bind(idle_before)
                .bind(started_before)
                .bind(limit)
                .execute(&self.writer)
                .await?
                .rows_affected())
            }
        }
    };
}

session_store!(SqliteStore, sqlx::Sqlite);
session_store!(PostgresStore, sqlx::Postgres);
