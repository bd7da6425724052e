//! The activity log: events recorded, queried with filters and a cursor, pruned; written
//! once for both backends like `sql.rs`.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use super::outbox::NewMail;
use super::sql::{INSERT_EVENT, bind_event};
use super::{PostgresStore, SqliteStore, StoreError};

// The records: what the store reads and writes for the activity log, re-exported by `audit`.

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityEvent {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub product: String,
    pub ip: String,
    pub user_agent: String,
    /// A small JSON object.
    pub details: String,
    pub created_at: OffsetDateTime,
}

/// What to narrow the log to; every filter is optional and they combine.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    /// Inclusive.
    pub from: Option<OffsetDateTime>,
    /// Exclusive.
    pub to: Option<OffsetDateTime>,
    pub product: Option<String>,
    pub action: Option<String>,
}

/// Events are kept for a time that depends on whose they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// What happened to an account, and everything else that is not [`EventKind::Machine`]
    /// (an operator's change, a sign-in attempt on an unknown address).
    Account,
    /// What a machine client did on its own: tokens issued without a user
    /// (`client_credentials`), failed client authentication. Many more than the rest.
    Machine,
}

impl EventKind {
    /// Deletes a batch of this kind, oldest first; each kind has its own partial index on
    /// `created_at`, so neither walks over the other's rows.
    fn prune_sql(self) -> &'static str {
        match self {
            // The conditions are those of the indexes (migration `…_activity_retention_by_kind`),
            // word for word, so that both planners use them.
            EventKind::Account => {
                "DELETE FROM activity_events WHERE id IN (SELECT id FROM activity_events \
                 WHERE (user_id IS NOT NULL OR action NOT IN ('token.issued', 'client.auth_failed')) \
                 AND created_at < $1 LIMIT $2)"
            }
            EventKind::Machine => {
                "DELETE FROM activity_events WHERE id IN (SELECT id FROM activity_events \
                 WHERE (user_id IS NULL AND action IN ('token.issued', 'client.auth_failed')) \
                 AND created_at < $1 LIMIT $2)"
            }
        }
    }
}

/// The position after the last event of a page: its time and id. Events added later sort
/// before it (newer), so paging on never repeats or skips one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityCursor {
    pub at: OffsetDateTime,
    pub id: Uuid,
}

impl ActivityCursor {
    pub fn after(event: &ActivityEvent) -> Self {
        Self {
            at: event.created_at,
            id: event.id,
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.at.unix_timestamp(), self.id.simple()))
    }

    /// `None` for anything that is not a cursor we made.
    pub fn decode(value: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (at, id) = text.split_once('.')?;
        Some(Self {
            at: OffsetDateTime::from_unix_timestamp(at.parse().ok()?).ok()?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// Activity events (those written with another change go in its transaction instead).
#[async_trait]
pub trait ActivityStore: Send + Sync {
    async fn record_event(&self, event: &ActivityEvent) -> Result<(), StoreError>;
    /// Records a failed attempt and, when the owner asked for failure alerts, queues one
    /// with its `alert.sent` event — unless one was queued since the given time (coalescing).
    /// Returns whether an alert was queued.
    async fn record_failure(
        &self,
        event: &ActivityEvent,
        alert: Option<(&NewMail, &ActivityEvent, OffsetDateTime)>,
    ) -> Result<bool, StoreError>;
    async fn recent_events(
        &self,
        user_id: Uuid,
        limit: i64,
    ) -> Result<Vec<ActivityEvent>, StoreError>;
    /// A user's events matching `filter`, newest first, strictly after `after`.
    async fn query_events(
        &self,
        user_id: Uuid,
        filter: &ActivityFilter,
        after: Option<&ActivityCursor>,
        limit: i64,
    ) -> Result<Vec<ActivityEvent>, StoreError>;
    /// Deletes up to `limit` events of `kind` older than `before`; how many.
    async fn prune_events(
        &self,
        kind: EventKind,
        before: OffsetDateTime,
        limit: i64,
    ) -> Result<u64, StoreError>;
}

macro_rules! activity_store {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl ActivityStore for $store {
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
                kind: EventKind,
                before: time::OffsetDateTime,
                limit: i64,
            ) -> Result<u64, StoreError> {
                Ok(sqlx::query(kind.prune_sql())
                    .bind(before)
                    .bind(limit)
                    .execute(&self.writer)
                    .await?
                    .rows_affected())
            }
        }
    };
}

activity_store!(SqliteStore, sqlx::Sqlite);
activity_store!(PostgresStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = ActivityCursor {
            at: OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(ActivityCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(ActivityCursor::decode("garbage"), None);
        assert_eq!(ActivityCursor::decode(""), None);
    }
}
