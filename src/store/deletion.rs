//! Deleting an account: the tombstone that keeps its id and its activity without personal
//! data, and the rule that an organization keeps a legal representative; written once for
//! both backends like `account.rs`.

use async_trait::async_trait;
use uuid::Uuid;

use super::activity::ActivityEvent;
use super::outbox::NewMail;
use super::{PostgresStore, SqliteStore, StoreError};

/// How a deletion ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// Refused: these organizations need the user (only legal representative or member).
    StillNeeded(Vec<String>),
}

/// The organizations that still need a user (`$1`).
const STILL_NEEDED: &str = "SELECT o.name FROM memberships m JOIN organizations o ON o.id = m.org_id \
     WHERE m.user_id = $1 AND ( \
       (SELECT COUNT(*) FROM memberships r WHERE r.org_id = m.org_id) = 1 \
       OR (m.role = 'legal-representative' AND (SELECT COUNT(*) FROM memberships r \
           WHERE r.org_id = m.org_id AND r.role = 'legal-representative') = 1)) \
     ORDER BY o.name";

/// The personal records of an account, deleted with it.
const PERSONAL_TABLES: [&str; 9] = [
    "memberships",
    "phone_numbers",
    "avatars",
    "federated_identities",
    "unlock_tokens",
    "password_resets",
    "email_changes",
    "oauth_consents",
    "sso_pending_links",
];

#[async_trait]
pub trait DeletionStore: Send + Sync {
    /// Names of the organizations that still need this user: they are its only legal
    /// representative, or its only member.
    async fn orgs_represented_only_by(&self, user_id: Uuid) -> Result<Vec<String>, StoreError>;
    /// Deletes the account, unless an organization still needs it (checked again inside
    /// the transaction, with those organizations locked on PostgreSQL, so two deletions at
    /// once cannot leave one without a legal representative): every session ended (relying
    /// apps told), every grant revoked, every personal record deleted, the activity kept
    /// without addresses, devices or details, the row kept as a tombstone (`deleted_at`,
    /// the id never reused, the address free again), with the event and the mail.
    async fn delete_user(
        &self,
        user_id: Uuid,
        event: &ActivityEvent,
        mail: &NewMail,
    ) -> Result<Deletion, StoreError>;
}

macro_rules! deletion_store {
    ($store:ident) => {
        #[async_trait]
        impl DeletionStore for $store {
            async fn orgs_represented_only_by(
                &self,
                user_id: Uuid,
            ) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(STILL_NEEDED)
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn delete_user(
                &self,
                user_id: Uuid,
                event: &ActivityEvent,
                mail: &NewMail,
            ) -> Result<Deletion, StoreError> {
                let now = event.created_at;
                let mut tx = self.writer.begin().await?;
                if <Self as super::Store>::backend(self) == super::Backend::Postgres {
                    // A second deletion in the same organizations waits here, then counts
                    // what the first left. (SQLite's one writer runs them one by one.)
                    sqlx::query(
                        "SELECT id FROM organizations WHERE id IN \
                         (SELECT org_id FROM memberships WHERE user_id = $1) \
                         ORDER BY id FOR UPDATE",
                    )
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                }
                let needed: Vec<String> = sqlx::query_scalar(STILL_NEEDED)
                    .bind(user_id)
                    .fetch_all(&mut *tx)
                    .await?;
                if !needed.is_empty() {
                    return Ok(Deletion::StillNeeded(needed));
                }
                // Relying apps hear of the end of every session the account had.
                let live: Vec<Uuid> = sqlx::query_scalar(
                    "UPDATE sessions SET ended_at = $1, ended_reason = 'account_deleted' \
                     WHERE user_id = $2 AND ended_at IS NULL RETURNING id",
                )
                .bind(now)
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
                Self::end_session_grants(&mut tx, &live, now).await?;
                sqlx::query(
                    "UPDATE oauth_grants SET revoked_at = $1, revoked_reason = 'account_deleted' \
                     WHERE user_id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE sessions SET ip = '', user_agent = '' WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                for table in PERSONAL_TABLES {
                    sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(
                    "UPDATE activity_events SET ip = '', user_agent = '', details = '{}' \
                     WHERE user_id = $1",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                let deleted = sqlx::query(
                    "UPDATE users SET email = '', email_key = $2, name = '', given_name = '', \
                     family_name = '', password_hash = NULL, is_admin = FALSE, locale = NULL, \
                     time_zone = NULL, avatar_key = NULL, email_verified = FALSE, \
                     notify_on_success = FALSE, notify_on_failure = FALSE, \
                     failed_attempts = 0, locked_at = NULL, deleted_at = $3, updated_at = $3 \
                     WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(user_id)
                .bind(format!("deleted:{user_id}"))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if deleted != 1 {
                    // Deleted meanwhile by another request: nothing more to write.
                    return Ok(Deletion::Deleted);
                }
                Self::insert_event(&mut tx, event).await?;
                Self::insert_mail(&mut tx, mail).await?;
                tx.commit().await?;
                self.revocations.note();
                Ok(Deletion::Deleted)
            }
        }
    };
}

deletion_store!(SqliteStore);
deletion_store!(PostgresStore);
