//! The SQL of both backends. The statements are written once, in the dialect SQLite and
//! PostgreSQL share (`$n` parameters, `RETURNING`, `ON CONFLICT`), and the macro below
//! instantiates them for each pool type; what differs (column types) lives in the migrations.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

use super::{Backend, SsoStore, Store, StoreError};
use crate::accounts::{NewUser, SecuritySettings, SetupToken, UnlockToken, User};
use crate::audit::{ActivityCursor, ActivityEvent, ActivityFilter};
use crate::federation::{FederatedIdentity, PendingLink, Reauthentication, SsoFlow};
use crate::mail::{NewMail, OutboxMail};
use crate::orgs::{Member, Membership, OrgRole, Organization, SsoConnection};
use crate::sessions::{NewSession, Session};
use crate::tokens::TokenDigest;

pub(super) const USER_COLUMNS: &str = "id, email, name, password_hash, is_admin, locale, failed_attempts, \
     locked_at, lockout_threshold, notify_on_success, notify_on_failure, created_at, updated_at";

/// A session and its user. The session's columns are aliased so that the user's keep the
/// names `User`'s `FromRow` expects.
const SESSION_WITH_USER: &str = "SELECT u.id, u.email, u.name, u.password_hash, u.is_admin, \
     u.locale, u.failed_attempts, u.locked_at, u.lockout_threshold, u.notify_on_success, \
     u.notify_on_failure, u.created_at, u.updated_at, s.id AS s_id, s.method AS s_method, \
     s.sso_org_id AS s_sso_org_id, s.ip AS s_ip, s.user_agent AS s_user_agent, \
     s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at \
     FROM sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.token_hash = $1 AND s.ended_at IS NULL";

const INSERT_EVENT: &str = "INSERT INTO activity_events \
     (id, user_id, actor_id, action, product, ip, user_agent, details, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

const INSERT_USER: &str = "INSERT INTO users (id, email, email_key, name, password_hash, \
     is_admin, lockout_threshold, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";

macro_rules! sql_store {
    ($store:ident, $pool:ty, $db:ty, $backend:expr, $migrator:expr) => {
        pub struct $store {
            /// Reads.
            pub(super) pool: $pool,
            /// Writes: the same pool on PostgreSQL; on SQLite, which takes one writer at a
            /// time, a pool of one connection, so that writers queue in order in the
            /// process instead of sleeping and retrying in SQLite's busy handler.
            pub(super) writer: $pool,
            pub(super) revocations: Arc<super::Revocations>,
        }

        impl $store {
            pub fn new(pool: $pool, writer: $pool) -> Self {
                Self {
                    pool,
                    writer,
                    revocations: Arc::default(),
                }
            }

            /// Writes an activity event inside the caller's transaction.
            pub(super) async fn insert_event(
                tx: &mut sqlx::Transaction<'_, $db>,
                event: &ActivityEvent,
            ) -> Result<(), sqlx::Error> {
                bind_event(sqlx::query(INSERT_EVENT), event)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Queues a mail inside the caller's transaction (the outbox's guarantee).
            async fn insert_mail(
                tx: &mut sqlx::Transaction<'_, $db>,
                mail: &NewMail,
            ) -> Result<(), sqlx::Error> {
                bind_mail(sqlx::query(INSERT_MAIL), mail)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

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
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            fn revocations(&self) -> &Arc<super::Revocations> {
                &self.revocations
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                $migrator.run(&self.writer).await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

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
                let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY email_key");
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
                     notify_on_failure = $3, updated_at = $4 WHERE id = $5 \
                     RETURNING {USER_COLUMNS}"
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
                email: &str,
                name: &str,
                locale: Option<&str>,
                event: &ActivityEvent,
            ) -> Result<User, StoreError> {
                let mut tx = self.writer.begin().await?;
                let sql = format!(
                    "UPDATE users SET email = $1, email_key = $2, name = $3, locale = $4, \
                     updated_at = $5 WHERE id = $6 RETURNING {USER_COLUMNS}"
                );
                let user = sqlx::query_as::<_, User>(&sql)
                    .bind(email)
                    .bind(email_key(email))
                    .bind(name)
                    .bind(locale)
                    .bind(event.created_at)
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                self.revocations.note();
                Ok(user)
            }

            async fn orgs_represented_only_by(
                &self,
                user_id: Uuid,
            ) -> Result<Vec<String>, StoreError> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT o.name FROM memberships m JOIN organizations o ON o.id = m.org_id \
                     WHERE m.user_id = $1 AND m.role = 'legal-representative' \
                     AND (SELECT COUNT(*) FROM memberships r WHERE r.org_id = m.org_id \
                          AND r.role = 'legal-representative') = 1 ORDER BY o.name",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(name,)| name).collect())
            }

            async fn delete_user(
                &self,
                user_id: Uuid,
                now: time::OffsetDateTime,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                // Relying apps hear of the end of every session the account had.
                let live: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM sessions WHERE user_id = $1 AND ended_at IS NULL",
                )
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
                Self::end_session_grants(&mut tx, &live, now).await?;
                let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                tx.commit().await?;
                self.revocations.note();
                Ok(deleted)
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

            async fn insert_org(&self, org: &Organization) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(org.id)
                    .bind(&org.name)
                    .bind(org.created_at)
                    .execute(&self.writer)
                    .await
                    .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn org_by_name(&self, name: &str) -> Result<Option<Organization>, StoreError> {
                Ok(sqlx::query_as::<_, Organization>(
                    "SELECT id, name, created_at FROM organizations WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
                Ok(sqlx::query_as::<_, Organization>(
                    "SELECT id, name, created_at FROM organizations ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn put_membership(&self, m: &Membership) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO memberships (org_id, user_id, role, created_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(m.org_id)
                .bind(m.user_id)
                .bind(m.role.as_str())
                .bind(m.created_at)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn members_of_org(&self, org_id: Uuid) -> Result<Vec<Member>, StoreError> {
                let rows: Vec<(Uuid, String, String, String, bool)> = sqlx::query_as(
                    "SELECT u.id, u.email, u.name, m.role, u.locked_at IS NOT NULL \
                     FROM memberships m JOIN users u ON u.id = m.user_id \
                     WHERE m.org_id = $1 ORDER BY u.email_key",
                )
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(user_id, email, name, role, locked)| {
                        Some(Member {
                            user_id,
                            email,
                            name,
                            role: role.parse().ok()?,
                            locked,
                        })
                    })
                    .collect())
            }

            async fn membership_role(
                &self,
                org_id: Uuid,
                user_id: Uuid,
            ) -> Result<Option<OrgRole>, StoreError> {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
                )
                .bind(org_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(|(role,)| role.parse().ok()))
            }

            async fn orgs_of_user(
                &self,
                user_id: Uuid,
            ) -> Result<Vec<(Organization, OrgRole)>, StoreError> {
                let rows: Vec<(Uuid, String, time::OffsetDateTime, String)> = sqlx::query_as(
                    "SELECT o.id, o.name, o.created_at, m.role FROM memberships m \
                     JOIN organizations o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY o.name",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(id, name, created_at, role)| {
                        Some((Organization { id, name, created_at }, role.parse().ok()?))
                    })
                    .collect())
            }

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

            async fn record_failure(
                &self,
                event: &ActivityEvent,
                alert: Option<(&NewMail, &ActivityEvent, time::OffsetDateTime)>,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                Self::insert_event(&mut tx, event).await?;
                let mut queued = false;
                if let Some((mail, sent, since)) = alert {
                    // The guard is the WHERE: one alert per account per period, also when
                    // failures arrive in parallel on several instances.
                    queued = sqlx::query(
                        "UPDATE users SET last_failure_alert_at = $1 WHERE id = $2 \
                         AND (last_failure_alert_at IS NULL OR last_failure_alert_at <= $3)",
                    )
                    .bind(event.created_at)
                    .bind(event.user_id)
                    .bind(since)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if queued {
                        Self::insert_mail(&mut tx, mail).await?;
                        Self::insert_event(&mut tx, sent).await?;
                    }
                }
                tx.commit().await?;
                Ok(queued)
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

            async fn record_event(&self, event: &ActivityEvent) -> Result<(), StoreError> {
                bind_event(sqlx::query(INSERT_EVENT), event)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn recent_events(
                &self,
                user_id: Uuid,
                limit: i64,
            ) -> Result<Vec<ActivityEvent>, StoreError> {
                Ok(sqlx::query_as::<_, ActivityEvent>(
                    "SELECT id, user_id, actor_id, action, product, ip, user_agent, details, \
                     created_at FROM activity_events WHERE user_id = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $2",
                )
                .bind(user_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn query_events(
                &self,
                user_id: Uuid,
                filter: &ActivityFilter,
                after: Option<&ActivityCursor>,
                limit: i64,
            ) -> Result<Vec<ActivityEvent>, StoreError> {
                // Only the filters in use go into the SQL, so each query shape can walk the
                // (user_id, created_at, id) indexes from the newest end.
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, user_id, actor_id, action, product, ip, user_agent, details, \
                     created_at FROM activity_events WHERE user_id = ",
                );
                q.push_bind(user_id);
                if let Some(from) = filter.from {
                    q.push(" AND created_at >= ").push_bind(from);
                }
                if let Some(to) = filter.to {
                    q.push(" AND created_at < ").push_bind(to);
                }
                if let Some(product) = &filter.product {
                    q.push(" AND product = ").push_bind(product.clone());
                }
                if let Some(action) = &filter.action {
                    q.push(" AND action = ").push_bind(action.clone());
                }
                if let Some(cursor) = after {
                    q.push(" AND (created_at, id) < (")
                        .push_bind(cursor.at)
                        .push(", ")
                        .push_bind(cursor.id)
                        .push(")");
                }
                q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                    .push_bind(limit);
                Ok(q.build_query_as::<ActivityEvent>()
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn prune_events(
                &self,
                before: time::OffsetDateTime,
                limit: i64,
            ) -> Result<u64, StoreError> {
                Ok(sqlx::query(
                    "DELETE FROM activity_events WHERE id IN (SELECT id FROM activity_events \
                     WHERE created_at < $1 LIMIT $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.writer)
                .await?
                .rows_affected())
            }

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

/// The form of an address that lookups and the unique index use: two spellings that differ
/// only in case are one account (as users expect), while `email` keeps the spelling given.
fn email_key(email: &str) -> String {
    email.to_lowercase()
}

const INSERT_MAIL: &str = "INSERT INTO mail_outbox (id, recipient, subject, body_text, \
     body_html, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $6)";

/// Binds a queued mail to [`INSERT_MAIL`], for either backend.
fn bind_mail<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    mail: &'q NewMail,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    time::OffsetDateTime: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(mail.id)
        .bind(mail.recipient.as_str())
        .bind(mail.subject.as_str())
        .bind(mail.body_text.as_str())
        .bind(mail.body_html.as_deref())
        .bind(mail.created_at)
}

/// Binds a new user to [`INSERT_USER`], for either backend.
fn bind_user<'q, DB>(
    query: sqlx::query::QueryAs<'q, DB, User, <DB as sqlx::Database>::Arguments<'q>>,
    user: &'q NewUser,
) -> sqlx::query::QueryAs<'q, DB, User, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    time::OffsetDateTime: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(user.id)
        .bind(user.email.as_str())
        .bind(email_key(&user.email))
        .bind(user.name.as_str())
        .bind(user.password_hash.as_deref())
        .bind(user.is_admin)
        .bind(user.lockout_threshold)
        .bind(user.created_at)
}

/// Binds an activity event to [`INSERT_EVENT`], for either backend.
fn bind_event<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    event: &'q ActivityEvent,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<Uuid>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    time::OffsetDateTime: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(event.id)
        .bind(event.user_id)
        .bind(event.actor_id)
        .bind(event.action.as_str())
        .bind(event.product.as_str())
        .bind(event.ip.as_str())
        .bind(event.user_agent.as_str())
        .bind(event.details.as_str())
        .bind(event.created_at)
}

sql_store!(
    SqliteStore,
    SqlitePool,
    sqlx::Sqlite,
    Backend::Sqlite,
    sqlx::migrate!("migrations/sqlite")
);
sql_store!(
    PostgresStore,
    PgPool,
    sqlx::Postgres,
    Backend::Postgres,
    sqlx::migrate!("migrations/postgres")
);

/// A 32-byte digest read back from a BLOB/BYTEA column.
fn digest_of(bytes: Vec<u8>) -> Option<TokenDigest> {
    bytes.try_into().ok().map(TokenDigest)
}

const SSO_COLUMNS: &str = "org_id, tenant_id, client_id, client_secret_enc, authority, provision, \
     default_role, enforce_sso, created_at, updated_at";

type SsoRow = (
    Uuid,
    String,
    String,
    Vec<u8>,
    String,
    bool,
    String,
    bool,
    time::OffsetDateTime,
    time::OffsetDateTime,
);

fn sso_connection_of(row: SsoRow, domains: Vec<(String, bool)>) -> Option<SsoConnection> {
    let (
        org_id,
        tenant_id,
        client_id,
        secret,
        authority,
        provision,
        role,
        enforce,
        created,
        updated,
    ) = row;
    Some(SsoConnection {
        org_id,
        tenant_id,
        client_id,
        client_secret_enc: secret,
        authority,
        provision,
        default_role: role.parse().ok()?,
        enforce_sso: enforce,
        verified_domains: domains
            .iter()
            .filter(|(_, verified)| *verified)
            .map(|(d, _)| d.clone())
            .collect(),
        domains: domains.into_iter().map(|(d, _)| d).collect(),
        created_at: created,
        updated_at: updated,
    })
}

type FlowRow = (
    Vec<u8>,
    Uuid,
    Vec<u8>,
    String,
    Option<String>,
    time::OffsetDateTime,
    time::OffsetDateTime,
    bool,
    Option<i64>,
);

type LinkRow = (
    Vec<u8>,
    Vec<u8>,
    String,
    String,
    Uuid,
    Uuid,
    Option<String>,
    time::OffsetDateTime,
    time::OffsetDateTime,
);

/// The SSO part of the store (issue 7), in the same shared dialect as `sql_store!`.
macro_rules! sso_sql_store {
    ($store:ident, $db:ty) => {
        impl $store {
            /// The organization's domains, each with whether it is verified.
            async fn sso_domains(&self, org_id: Uuid) -> Result<Vec<(String, bool)>, sqlx::Error> {
                sqlx::query_as(
                    "SELECT domain, verified_at IS NOT NULL FROM org_domains WHERE org_id = $1 \
                     ORDER BY domain",
                )
                .bind(org_id)
                .fetch_all(&self.pool)
                .await
            }

            async fn insert_identity(
                tx: &mut sqlx::Transaction<'_, $db>,
                identity: &FederatedIdentity,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO federated_identities (tenant_id, object_id, user_id, org_id, \
                     created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&identity.tenant_id)
                .bind(&identity.object_id)
                .bind(identity.user_id)
                .bind(identity.org_id)
                .bind(identity.created_at)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn insert_membership(
                tx: &mut sqlx::Transaction<'_, $db>,
                m: &Membership,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO memberships (org_id, user_id, role, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, user_id) DO NOTHING",
                )
                .bind(m.org_id)
                .bind(m.user_id)
                .bind(m.role.as_str())
                .bind(m.created_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl SsoStore for $store {
            async fn org_by_id(&self, id: Uuid) -> Result<Option<Organization>, StoreError> {
                Ok(sqlx::query_as::<_, Organization>(
                    "SELECT id, name, created_at FROM organizations WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn delete_membership(
                &self,
                org_id: Uuid,
                user_id: Uuid,
                event: &ActivityEvent,
            ) -> Result<Option<u64>, StoreError> {
                let mut tx = self.writer.begin().await?;
                let removed =
                    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
                        .bind(org_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                if !removed {
                    return Ok(None);
                }
                // The organization vouched for these sessions; it no longer does.
                let ended: Vec<Uuid> = sqlx::query_scalar(
                    "UPDATE sessions SET ended_at = $1, ended_reason = 'membership_removed' \
                     WHERE user_id = $2 AND sso_org_id = $3 AND ended_at IS NULL RETURNING id",
                )
                .bind(event.created_at)
                .bind(user_id)
                .bind(org_id)
                .fetch_all(&mut *tx)
                .await?;
                // Relying apps hear of it like of any other ended session.
                Self::end_session_grants(&mut tx, &ended, event.created_at).await?;
                if !ended.is_empty() {
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                self.revocations.note();
                Ok(Some(ended.len() as u64))
            }

            async fn put_sso_connection(&self, c: &SsoConnection) -> Result<(), StoreError> {
                let mut tx = self.writer.begin().await?;
                sqlx::query(
                    "INSERT INTO sso_connections (org_id, tenant_id, client_id, \
                     client_secret_enc, authority, provision, default_role, enforce_sso, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (org_id) DO UPDATE SET tenant_id = excluded.tenant_id, \
                     client_id = excluded.client_id, \
                     client_secret_enc = excluded.client_secret_enc, \
                     authority = excluded.authority, provision = excluded.provision, \
                     default_role = excluded.default_role, enforce_sso = excluded.enforce_sso, \
                     updated_at = excluded.updated_at",
                )
                .bind(c.org_id)
                .bind(&c.tenant_id)
                .bind(&c.client_id)
                .bind(&c.client_secret_enc)
                .bind(&c.authority)
                .bind(c.provision)
                .bind(c.default_role.as_str())
                .bind(c.enforce_sso)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&mut *tx)
                .await?;
                Self::replace_org_domains(&mut tx, c.org_id, &c.domains, c.updated_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn sso_connection(
                &self,
                org_id: Uuid,
            ) -> Result<Option<SsoConnection>, StoreError> {
                let sql = format!("SELECT {SSO_COLUMNS} FROM sso_connections WHERE org_id = $1");
                let row: Option<SsoRow> = sqlx::query_as(&sql)
                    .bind(org_id)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(row) => Ok(sso_connection_of(row, self.sso_domains(org_id).await?)),
                    None => Ok(None),
                }
            }

            async fn sso_connection_for_domain(
                &self,
                domain: &str,
            ) -> Result<Option<SsoConnection>, StoreError> {
                let owner: Option<(Uuid,)> =
                    sqlx::query_as(
                        "SELECT org_id FROM org_domains WHERE domain = $1 \
                         AND verified_at IS NOT NULL",
                    )
                        .bind(domain)
                        .fetch_optional(&self.pool)
                        .await?;
                match owner {
                    Some((org_id,)) => self.sso_connection(org_id).await,
                    None => Ok(None),
                }
            }

            async fn delete_sso_connection(&self, org_id: Uuid) -> Result<bool, StoreError> {
                Ok(sqlx::query("DELETE FROM sso_connections WHERE org_id = $1")
                    .bind(org_id)
                    .execute(&self.writer)
                    .await?
                    .rows_affected()
                    == 1)
            }

            async fn insert_sso_flow(&self, flow: &SsoFlow) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sso_flows (state_hash, org_id, browser_hash, nonce, next, \
                     created_at, expires_at, reauth_prompt, reauth_max_age) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(flow.state.as_bytes())
                .bind(flow.org_id)
                .bind(flow.browser.as_bytes())
                .bind(&flow.nonce)
                .bind(flow.next.as_deref())
                .bind(flow.created_at)
                .bind(flow.expires_at)
                .bind(flow.reauth.prompt_login)
                .bind(flow.reauth.max_age)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn take_sso_flow(
                &self,
                state: &TokenDigest,
            ) -> Result<Option<SsoFlow>, StoreError> {
                // One statement decides: of two callbacks with the same state, one gets the row.
                let row: Option<FlowRow> = sqlx::query_as(
                    "DELETE FROM sso_flows WHERE state_hash = $1 RETURNING state_hash, org_id, \
                     browser_hash, nonce, next, created_at, expires_at, reauth_prompt, \
                     reauth_max_age",
                )
                .bind(state.as_bytes())
                .fetch_optional(&self.writer)
                .await?;
                Ok(row.and_then(|(s, org_id, b, nonce, next, created_at, expires_at, prompt, max_age)| {
                    Some(SsoFlow {
                        state: digest_of(s)?,
                        org_id,
                        browser: digest_of(b)?,
                        nonce,
                        next,
                        reauth: Reauthentication {
                            prompt_login: prompt,
                            max_age,
                        },
                        created_at,
                        expires_at,
                    })
                }))
            }

            async fn federated_identity(
                &self,
                tenant_id: &str,
                object_id: &str,
            ) -> Result<Option<FederatedIdentity>, StoreError> {
                let row: Option<(String, String, Uuid, Uuid, time::OffsetDateTime)> =
                    sqlx::query_as(
                        "SELECT tenant_id, object_id, user_id, org_id, created_at \
                         FROM federated_identities WHERE tenant_id = $1 AND object_id = $2",
                    )
                    .bind(tenant_id)
                    .bind(object_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(
                    |(tenant_id, object_id, user_id, org_id, created_at)| FederatedIdentity {
                        tenant_id,
                        object_id,
                        user_id,
                        org_id,
                        created_at,
                    },
                ))
            }

            async fn provision_sso_user(
                &self,
                user: &NewUser,
                identity: &FederatedIdentity,
                membership: &Membership,
                event: &ActivityEvent,
            ) -> Result<User, StoreError> {
                let mut tx = self.writer.begin().await?;
                let sql = format!("{INSERT_USER} RETURNING {USER_COLUMNS}");
                let created = bind_user(sqlx::query_as::<_, User>(&sql), user)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                Self::insert_identity(&mut tx, identity).await?;
                Self::insert_membership(&mut tx, membership).await?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn insert_pending_link(&self, link: &PendingLink) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sso_pending_links (token_hash, browser_hash, tenant_id, \
                     object_id, user_id, org_id, next, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(link.token.as_bytes())
                .bind(link.browser.as_bytes())
                .bind(&link.tenant_id)
                .bind(&link.object_id)
                .bind(link.user_id)
                .bind(link.org_id)
                .bind(link.next.as_deref())
                .bind(link.created_at)
                .bind(link.expires_at)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn pending_link(
                &self,
                token: &TokenDigest,
            ) -> Result<Option<PendingLink>, StoreError> {
                let row: Option<LinkRow> = sqlx::query_as(
                    "SELECT token_hash, browser_hash, tenant_id, object_id, user_id, org_id, \
                     next, created_at, expires_at FROM sso_pending_links WHERE token_hash = $1",
                )
                .bind(token.as_bytes())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(
                    |(t, b, tenant_id, object_id, user_id, org_id, next, created_at, expires_at)| {
                        Some(PendingLink {
                            token: digest_of(t)?,
                            browser: digest_of(b)?,
                            tenant_id,
                            object_id,
                            user_id,
                            org_id,
                            next,
                            created_at,
                            expires_at,
                        })
                    },
                ))
            }

            async fn complete_link(
                &self,
                token: &TokenDigest,
                identity: &FederatedIdentity,
                membership: Option<&Membership>,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let used = sqlx::query("DELETE FROM sso_pending_links WHERE token_hash = $1")
                    .bind(token.as_bytes())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !used {
                    return Ok(false);
                }
                Self::insert_identity(&mut tx, identity).await?;
                if let Some(m) = membership {
                    Self::insert_membership(&mut tx, m).await?;
                }
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn insert_federated_identity(
                &self,
                identity: &FederatedIdentity,
                event: &ActivityEvent,
            ) -> Result<(), StoreError> {
                let mut tx = self.writer.begin().await?;
                Self::insert_identity(&mut tx, identity).await?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn prune_sso_state(
                &self,
                before: time::OffsetDateTime,
            ) -> Result<u64, StoreError> {
                let flows = sqlx::query("DELETE FROM sso_flows WHERE expires_at < $1")
                    .bind(before)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                let links = sqlx::query("DELETE FROM sso_pending_links WHERE expires_at < $1")
                    .bind(before)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                Ok(flows + links)
            }
        }
    };
}

sso_sql_store!(SqliteStore, sqlx::Sqlite);
sso_sql_store!(PostgresStore, sqlx::Postgres);
