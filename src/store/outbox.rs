//! The mail outbox: claimed by the sender with a lease, marked sent or failed, pruned;
//! written once for both backends like `sql.rs`. Mails are queued by the changes that
//! cause them, in their transaction (`sql.rs`'s `insert_mail`).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{PostgresStore, SqliteStore, StoreError};

// The records: what the store reads and writes for the outbox, re-exported by `mail`.

/// A mail about to be queued.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A queued mail, claimed for delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxMail {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub attempts: i32,
}

/// The mail outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Reserves up to `limit` due, unsent mails until `lease_until` (so that another
    /// instance skips them) and returns them: the longest due are chosen first, the order
    /// of the list is the database's (SQLite gives them back by id).
    async fn claim_due_mail(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<OutboxMail>, StoreError>;
    async fn mark_mail_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError>;
    async fn mark_mail_failed(
        &self,
        id: Uuid,
        retry_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError>;
    /// Deletes up to `limit` mails sent before `sent_before` or still unsent, created before
    /// `given_up_before`; returns how many. Their bodies hold unlock links.
    async fn prune_mail(
        &self,
        sent_before: OffsetDateTime,
        given_up_before: OffsetDateTime,
        limit: i64,
    ) -> Result<u64, StoreError>;
}

macro_rules! outbox_store {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl OutboxStore for $store {
            async fn claim_due_mail(
                &self,
                now: time::OffsetDateTime,
                lease_until: time::OffsetDateTime,
                limit: i64,
            ) -> Result<Vec<OutboxMail>, StoreError> {
                // The outer conditions are checked again on each row as it is updated, so two
                // instances claiming at once never both get the same mail.
                Ok(sqlx::query_as::<_, OutboxMail>(
                    "UPDATE mail_outbox SET next_attempt_at = $1 \
                     WHERE id IN (SELECT id FROM mail_outbox WHERE sent_at IS NULL \
                       AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3) \
                     AND sent_at IS NULL AND next_attempt_at <= $2 \
                     RETURNING id, recipient, subject, body_text, body_html, attempts",
                )
                .bind(lease_until)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.writer)
                .await?)
            }

            async fn mark_mail_sent(
                &self,
                id: Uuid,
                now: time::OffsetDateTime,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE mail_outbox SET sent_at = $1, attempts = attempts + 1, \
                     last_error = NULL WHERE id = $2",
                )
                .bind(now)
                .bind(id)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn mark_mail_failed(
                &self,
                id: Uuid,
                retry_at: time::OffsetDateTime,
                error: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $1, \
                     last_error = $2 WHERE id = $3",
                )
                .bind(retry_at)
                .bind(error.chars().take(1000).collect::<String>())
                .bind(id)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn prune_mail(
                &self,
                sent_before: time::OffsetDateTime,
                given_up_before: time::OffsetDateTime,
                limit: i64,
            ) -> Result<u64, StoreError> {
                Ok(sqlx::query(
                    "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox \
                     WHERE sent_at < $1 OR (sent_at IS NULL AND created_at < $2) LIMIT $3)",
                )
                .bind(sent_before)
                .bind(given_up_before)
                .bind(limit)
                .execute(&self.writer)
                .await?
                .rows_affected())
            }
        }
    };
}

outbox_store!(SqliteStore, sqlx::Sqlite);
outbox_store!(PostgresStore, sqlx::Postgres);
