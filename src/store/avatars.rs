//! Avatars: the encoded images of each user's avatar, one row per user with a column per
//! served size, found by their content key; the user row holds only the key (its
//! `avatar_key`), so that no query of users reads image bytes. Written once for both
//! backends like `sql.rs`.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::account::User;
use super::activity::ActivityEvent;
use super::sql::USER_COLUMNS;
use super::{PostgresStore, SqliteStore, StoreError};

/// An avatar about to be written: its content key and the JPEG of each served size.
#[derive(Debug, Clone)]
pub struct NewAvatar {
    pub user_id: Uuid,
    pub key: String,
    pub image_64: Vec<u8>,
    pub image_128: Vec<u8>,
    pub image_256: Vec<u8>,
    pub image_512: Vec<u8>,
    pub created_at: OffsetDateTime,
}

/// The column holding a served size; `None` for any other size. The only source of a
/// column name in the statements below.
fn image_column(size: u32) -> Option<&'static str> {
    match size {
        64 => Some("image_64"),
        128 => Some("image_128"),
        256 => Some("image_256"),
        512 => Some("image_512"),
        _ => None,
    }
}

#[async_trait]
pub trait AvatarStore: Send + Sync {
    /// Replaces the user's avatar (images and key), sets the user's `avatar_key` and
    /// `updated_at`, and records the event, in one transaction; the user as now stored.
    async fn save_avatar(
        &self,
        avatar: &NewAvatar,
        event: &ActivityEvent,
    ) -> Result<User, StoreError>;
    /// Removes the user's avatar (the account shows its initials again), with the event when
    /// one is given; `None` when there was no avatar (nothing is written). Deleting the user
    /// deletes the avatar too (`ON DELETE CASCADE`).
    async fn delete_avatar(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        event: Option<&ActivityEvent>,
    ) -> Result<Option<User>, StoreError>;
    /// The stored image of one size of the avatar with this key.
    async fn avatar_image(&self, key: &str, size: u32) -> Result<Option<Vec<u8>>, StoreError>;
}

macro_rules! avatar_store {
    ($store:ident) => {
        #[async_trait]
        impl AvatarStore for $store {
            async fn save_avatar(
                &self,
                avatar: &NewAvatar,
                event: &ActivityEvent,
            ) -> Result<User, StoreError> {
                let mut tx = self.writer.begin().await?;
                sqlx::query(
                    "INSERT INTO avatars \
                     (user_id, key, image_64, image_128, image_256, image_512, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (user_id) DO UPDATE SET key = excluded.key, \
                     image_64 = excluded.image_64, image_128 = excluded.image_128, \
                     image_256 = excluded.image_256, image_512 = excluded.image_512, \
                     created_at = excluded.created_at",
                )
                .bind(avatar.user_id)
                .bind(&avatar.key)
                .bind(&avatar.image_64)
                .bind(&avatar.image_128)
                .bind(&avatar.image_256)
                .bind(&avatar.image_512)
                .bind(avatar.created_at)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                let sql = format!(
                    "UPDATE users SET avatar_key = $1, updated_at = $2 WHERE id = $3 \
                     RETURNING {USER_COLUMNS}"
                );
                let user = sqlx::query_as::<_, User>(&sql)
                    .bind(&avatar.key)
                    .bind(avatar.created_at)
                    .bind(avatar.user_id)
                    .fetch_one(&mut *tx)
                    .await?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                // Userinfo and the account API show the picture: what they remember of
                // the user is void.
                self.revocations.note();
                Ok(user)
            }

            async fn delete_avatar(
                &self,
                user_id: Uuid,
                now: OffsetDateTime,
                event: Option<&ActivityEvent>,
            ) -> Result<Option<User>, StoreError> {
                let mut tx = self.writer.begin().await?;
                let deleted = sqlx::query("DELETE FROM avatars WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Ok(None);
                }
                let sql = format!(
                    "UPDATE users SET avatar_key = NULL, updated_at = $1 WHERE id = $2 \
                     RETURNING {USER_COLUMNS}"
                );
                let user = sqlx::query_as::<_, User>(&sql)
                    .bind(now)
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?;
                if let Some(event) = event {
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                self.revocations.note();
                Ok(Some(user))
            }

            async fn avatar_image(
                &self,
                key: &str,
                size: u32,
            ) -> Result<Option<Vec<u8>>, StoreError> {
                let Some(column) = image_column(size) else {
                    return Ok(None);
                };
                let sql = format!("SELECT {column} FROM avatars WHERE key = $1");
                let row: Option<(Vec<u8>,)> = sqlx::query_as(&sql)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(bytes,)| bytes))
            }
        }
    };
}

avatar_store!(SqliteStore);
avatar_store!(PostgresStore);
