//! The back-channel logout outbox: logout tokens queued when sessions end (see
//! `oidc.rs`, `end_session_grants`), claimed by the sender, retried, dead-lettered. Written
//! once for both backends.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{PostgresStore, SqliteStore, StoreError};
use crate::tokens::SigningAlg;

// The records: what the store reads for the back-channel logout outbox, re-exported by `oidc`.

/// A back-channel logout due to be sent.
#[derive(Debug, Clone)]
pub struct QueuedLogout {
    pub id: Uuid,
    pub client_id: String,
    pub uri: String,
    pub id_token_alg: SigningAlg,
    pub subject: String,
    pub session_id: String,
    pub attempts: i32,
}

/// The back-channel logout queue, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogoutCounts {
    /// Waiting to be sent (or being sent).
    pub queued: i64,
    /// Dead-lettered after the last attempt; kept for
    /// [`DEAD_LOGOUT_RETENTION`](super::oidc::DEAD_LOGOUT_RETENTION).
    pub dead: i64,
}

#[async_trait]
pub trait LogoutStore: Send + Sync {
    /// Claims up to `limit` due logouts, at most `per_client` of any one client (so that
    /// one client's backlog does not fill a claim), leased until `lease_until`; each claim
    /// counts as an attempt.
    async fn claim_due_logouts(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
        per_client: i64,
    ) -> Result<Vec<QueuedLogout>, StoreError>;
    /// Gives a claimed logout back, due now, its claim not counted as an attempt.
    async fn release_logout(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError>;
    async fn mark_logout_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError>;
    async fn mark_logout_failed(
        &self,
        id: Uuid,
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// No more attempts: the logout is dead-lettered with its last error.
    async fn mark_logout_dead(
        &self,
        id: Uuid,
        error: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Logouts still to be sent, and dead-lettered ones.
    async fn count_logouts(&self) -> Result<LogoutCounts, StoreError>;
}

#[derive(sqlx::FromRow)]
struct LogoutRow {
    id: Uuid,
    client_id: String,
    uri: Option<String>,
    id_token_alg: String,
    subject: String,
    session_id: String,
    attempts: i32,
}

macro_rules! logout_store {
    ($store:ident) => {
        #[async_trait]
        impl LogoutStore for $store {
            async fn claim_due_logouts(
                &self,
                now: OffsetDateTime,
                lease_until: OffsetDateTime,
                limit: i64,
                per_client: i64,
            ) -> Result<Vec<QueuedLogout>, StoreError> {
                // Claiming moves `next_attempt_at` to the end of a lease, so another instance
                // polling meanwhile does not send the same logout; the outer conditions are
                // checked again on rows another instance claimed first (PostgreSQL).
                let rows = sqlx::query_as::<_, LogoutRow>(
                    "UPDATE backchannel_outbox SET next_attempt_at = $1, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM \
                                    (SELECT id, next_attempt_at, ROW_NUMBER() OVER \
                                       (PARTITION BY client_id ORDER BY next_attempt_at, id) AS nth \
                                     FROM backchannel_outbox \
                                     WHERE sent_at IS NULL AND dead_at IS NULL \
                                       AND next_attempt_at <= $2) due \
                                  WHERE nth <= $4 ORDER BY next_attempt_at LIMIT $3) \
                       AND sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $2 \
                     RETURNING id, client_id, \
                       (SELECT backchannel_logout_uri FROM oauth_clients c \
                        WHERE c.id = backchannel_outbox.client_id) AS uri, \
                       (SELECT id_token_alg FROM oauth_clients c \
                        WHERE c.id = backchannel_outbox.client_id) AS id_token_alg, \
                       subject, session_id, attempts",
                )
                .bind(lease_until)
                .bind(now)
                .bind(limit)
                .bind(per_client)
                .fetch_all(&self.writer)
                .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|r| {
                        Some(QueuedLogout {
                            id: r.id,
                            client_id: r.client_id,
                            uri: r.uri?,
                            id_token_alg: SigningAlg::parse(&r.id_token_alg)
                                .unwrap_or(SigningAlg::Rs256),
                            subject: r.subject,
                            session_id: r.session_id,
                            attempts: r.attempts,
                        })
                    })
                    .collect())
            }

            async fn release_logout(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE backchannel_outbox SET next_attempt_at = $1, attempts = attempts - 1 \
                     WHERE id = $2 AND sent_at IS NULL AND dead_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn mark_logout_sent(
                &self,
                id: Uuid,
                now: OffsetDateTime,
            ) -> Result<(), StoreError> {
                sqlx::query("UPDATE backchannel_outbox SET sent_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn mark_logout_failed(
                &self,
                id: Uuid,
                error: &str,
                next_attempt_at: OffsetDateTime,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE backchannel_outbox SET last_error = $1, next_attempt_at = $2 \
                     WHERE id = $3",
                )
                .bind(error)
                .bind(next_attempt_at)
                .bind(id)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn mark_logout_dead(
                &self,
                id: Uuid,
                error: &str,
                now: OffsetDateTime,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE backchannel_outbox SET last_error = $1, dead_at = $2 WHERE id = $3",
                )
                .bind(error)
                .bind(now)
                .bind(id)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn count_logouts(&self) -> Result<LogoutCounts, StoreError> {
                let (queued, dead): (i64, i64) = sqlx::query_as(
                    "SELECT \
                       COUNT(CASE WHEN dead_at IS NULL THEN 1 END), \
                       COUNT(dead_at) \
                     FROM backchannel_outbox WHERE sent_at IS NULL",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(LogoutCounts { queued, dead })
            }
        }
    };
}

logout_store!(SqliteStore);
logout_store!(PostgresStore);
