//! The SQL of both backends. The statements are written once, in the dialect SQLite and
//! PostgreSQL share (`$n` parameters, `RETURNING`, `ON CONFLICT`), and the macro below
//! instantiates them for each pool type; what differs (column types) lives in the migrations.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

use super::account::{NewUser, User};
use super::activity::ActivityEvent;
use super::outbox::NewMail;
use super::{Backend, Store, StoreError};

pub(super) const USER_COLUMNS: &str = "id, email, name, password_hash, is_admin, locale, failed_attempts, \
     locked_at, lockout_threshold, notify_on_success, notify_on_failure, created_at, updated_at, \
     given_name, family_name, time_zone, email_verified, avatar_key";

/// [`USER_COLUMNS`] of a table alias (`u.id, u.email, …`), for joins.
pub(super) fn user_columns_of(alias: &str) -> String {
    USER_COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) const INSERT_EVENT: &str = "INSERT INTO activity_events \
     (id, user_id, actor_id, action, product, client_id, ip, user_agent, details, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

pub(super) const INSERT_USER: &str = "INSERT INTO users (id, email, email_key, name, password_hash, \
     is_admin, lockout_threshold, created_at, updated_at, given_name, family_name) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10)";

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
            pub(super) async fn insert_mail(
                tx: &mut sqlx::Transaction<'_, $db>,
                mail: &NewMail,
            ) -> Result<(), sqlx::Error> {
                bind_mail(sqlx::query(INSERT_MAIL), mail)
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
        }
    };
}

/// The form of an address that lookups and the unique index use: two spellings that differ
/// only in case are one account (as users expect), while `email` keeps the spelling given.
pub(super) fn email_key(email: &str) -> String {
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
pub(super) fn bind_user<'q, DB>(
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
        .bind(user.given_name.as_str())
        .bind(user.family_name.as_str())
}

/// Binds an activity event to [`INSERT_EVENT`], for either backend.
pub(super) fn bind_event<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    event: &'q ActivityEvent,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<Uuid>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    time::OffsetDateTime: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(event.id)
        .bind(event.user_id)
        .bind(event.actor_id)
        .bind(event.action.as_str())
        .bind(event.product.as_str())
        .bind(event.client_id.as_deref())
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
