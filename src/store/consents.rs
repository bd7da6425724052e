//! Consents: which scopes a user allowed a client, remembered so that a third-party client
//! asks once; withdrawing one revokes the grants under it. Written once for both backends.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::activity::ActivityEvent;
use super::{PostgresStore, SqliteStore, StoreError};

// The record: what the store reads for a consent, re-exported by `oidc`.

/// A remembered consent, with the client's name for the account pages.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Consent {
    pub client_id: String,
    pub client_name: String,
    pub scope: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

#[async_trait]
pub trait ConsentStore: Send + Sync {
    async fn consent(&self, user_id: Uuid, client_id: &str) -> Result<Option<String>, StoreError>;
    async fn put_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        scope: &str,
        event: &ActivityEvent,
    ) -> Result<(), StoreError>;
    async fn consents_of_user(&self, user_id: Uuid) -> Result<Vec<Consent>, StoreError>;
    /// Forgets the consent and revokes the grants the user gave that client.
    async fn revoke_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
}

macro_rules! consent_store {
    ($store:ident) => {
        #[async_trait]
        impl ConsentStore for $store {
            async fn consent(
                &self,
                user_id: Uuid,
                client_id: &str,
            ) -> Result<Option<String>, StoreError> {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT scope FROM oauth_consents WHERE user_id = $1 AND client_id = $2",
                )
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(scope,)| scope))
            }

            async fn put_consent(
                &self,
                user_id: Uuid,
                client_id: &str,
                scope: &str,
                event: &ActivityEvent,
            ) -> Result<(), StoreError> {
                let mut tx = self.writer.begin().await?;
                sqlx::query(
                    "INSERT INTO oauth_consents (user_id, client_id, scope, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, client_id) \
                     DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at",
                )
                .bind(user_id)
                .bind(client_id)
                .bind(scope)
                .bind(event.created_at)
                .execute(&mut *tx)
                .await?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn consents_of_user(&self, user_id: Uuid) -> Result<Vec<Consent>, StoreError> {
                let rows: Vec<(String, String, String, OffsetDateTime)> = sqlx::query_as(
                    "SELECT c.client_id, k.name, c.scope, c.created_at FROM oauth_consents c \
                     JOIN oauth_clients k ON k.id = c.client_id WHERE c.user_id = $1 \
                     ORDER BY k.name",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(client_id, client_name, scope, created_at)| Consent {
                        client_id,
                        client_name,
                        scope,
                        created_at,
                    })
                    .collect())
            }

            async fn revoke_consent(
                &self,
                user_id: Uuid,
                client_id: &str,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let removed = sqlx::query(
                    "DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2",
                )
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if removed {
                    sqlx::query(
                        "UPDATE oauth_grants SET revoked_at = $1, \
                         revoked_reason = 'consent_revoked' \
                         WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL",
                    )
                    .bind(event.created_at)
                    .bind(user_id)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                self.revocations.note();
                Ok(removed)
            }
        }
    };
}

consent_store!(SqliteStore);
consent_store!(PostgresStore);
