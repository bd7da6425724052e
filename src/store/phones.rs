//! Phone numbers of a profile, each with its owner's label; written once for both backends.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::activity::ActivityEvent;
use super::{PostgresStore, SqliteStore, StoreError};

// The record: what the store reads and writes for a phone number, re-exported by `accounts`.

/// A phone number in E.164 (`+41446681800`) with its label; `verified_at` stays `None` until
/// an SMS provider can prove the owner receives it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PhoneNumber {
    pub id: Uuid,
    pub user_id: Uuid,
    pub label: String,
    pub number: String,
    pub verified_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

#[async_trait]
pub trait PhoneStore: Send + Sync {
    async fn phones(&self, user_id: Uuid) -> Result<Vec<PhoneNumber>, StoreError>;
    /// Adds the number with the event, unless the user has `max` already (`Ok(false)`);
    /// [`StoreError::Conflict`] when the user has this number.
    async fn add_phone(
        &self,
        phone: &PhoneNumber,
        max: i64,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
    /// Removes one number of the user with the event; `false` when there is none.
    async fn remove_phone(
        &self,
        user_id: Uuid,
        id: Uuid,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
}

macro_rules! phone_store {
    ($store:ident) => {
        #[async_trait]
        impl PhoneStore for $store {
            async fn phones(&self, user_id: Uuid) -> Result<Vec<PhoneNumber>, StoreError> {
                Ok(sqlx::query_as::<_, PhoneNumber>(
                    "SELECT id, user_id, label, number, verified_at, created_at \
                     FROM phone_numbers WHERE user_id = $1 ORDER BY created_at, id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn add_phone(
                &self,
                phone: &PhoneNumber,
                max: i64,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                // The count and the insert in one statement: two requests at once cannot
                // both pass the limit.
                let added = sqlx::query(
                    "INSERT INTO phone_numbers (id, user_id, label, number, created_at) \
                     SELECT $1, $2, $3, $4, $5 \
                     WHERE (SELECT COUNT(*) FROM phone_numbers WHERE user_id = $2) < $6",
                )
                .bind(phone.id)
                .bind(phone.user_id)
                .bind(phone.label.as_str())
                .bind(phone.number.as_str())
                .bind(phone.created_at)
                .bind(max)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?
                .rows_affected()
                    == 1;
                if added {
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                Ok(added)
            }

            async fn remove_phone(
                &self,
                user_id: Uuid,
                id: Uuid,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let removed =
                    sqlx::query("DELETE FROM phone_numbers WHERE id = $1 AND user_id = $2")
                        .bind(id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                if removed {
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                Ok(removed)
            }
        }
    };
}

phone_store!(SqliteStore);
phone_store!(PostgresStore);
