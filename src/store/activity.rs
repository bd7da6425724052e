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

/// The position after the last event of a page: its time and id. Events added later sort
/// before it (newer), so paging on never repeats or skips one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityCursor {
    pub at: OffsetDateTime,
    pub id: Uuid,
}

/// 9999-12-31T23:59:59Z, the last second a cursor may name.
const MAX_CURSOR_SECS: i64 = 253_402_300_799;

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

    /// `None` for anything that is not a cursor we made. Events are recorded at the server's
    /// time, so a cursor's time lies between the Unix epoch and the year 9999: any other
    /// would be refused by PostgreSQL (before 4713 BC) or mean nothing.
    pub fn decode(value: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (at, id) = text.split_once('.')?;
        let at: i64 = at.parse().ok()?;
        if !(0..=MAX_CURSOR_SECS).contains(&at) {
            return None;
        }
        Some(Self {
            at: OffsetDateTime::from_unix_timestamp(at).ok()?,
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
    /// Deletes up to `limit` events older than `before`; returns how many.
    async fn prune_events(&self, before: OffsetDateTime, limit: i64) -> Result<u64, StoreError>;
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
        }
    };
}

activity_store!(SqliteStore, sqlx::Sqlite);
activity_store!(PostgresStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What a `cursor=` parameter may hold: anything, base64url of anything, and base64url
    /// of `<seconds>.<uuid>` with seconds and ids of every shape.
    fn cursor_text() -> impl Strategy<Value = String> {
        let seconds = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            "-?[0-9]{1,25}",
            Just("253402300800".to_string()),
            Just("-1".to_string()),
            ".{0,6}",
        ];
        let id = prop_oneof![
            any::<u128>().prop_map(|n| Uuid::from_u128(n).simple().to_string()),
            any::<u128>().prop_map(|n| Uuid::from_u128(n).hyphenated().to_string()),
            "[0-9a-fA-F-]{0,40}",
            ".{0,8}",
        ];
        prop_oneof![
            ".{0,80}",
            "[A-Za-z0-9_=-]{0,80}",
            prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
            (seconds, id).prop_map(|(s, i)| URL_SAFE_NO_PAD.encode(format!("{s}.{i}"))),
        ]
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(256))]

        /// Any text is a cursor we could have made (its time within the range every store
        /// holds, and it encodes back to a cursor that decodes the same) or `None`.
        #[test]
        fn fuzz_cursor_decodes_to_ours_or_nothing(text in cursor_text()) {
            if let Some(cursor) = ActivityCursor::decode(&text) {
                prop_assert!((0..=MAX_CURSOR_SECS).contains(&cursor.at.unix_timestamp()));
                prop_assert_eq!(ActivityCursor::decode(&cursor.encode()), Some(cursor));
            }
        }

        #[test]
        fn fuzz_cursor_round_trip(seconds in 0..=MAX_CURSOR_SECS, id in any::<u128>()) {
            let cursor = ActivityCursor {
                at: OffsetDateTime::from_unix_timestamp(seconds).unwrap(),
                id: Uuid::from_u128(id),
            };
            prop_assert_eq!(ActivityCursor::decode(&cursor.encode()), Some(cursor));
        }
    }

    /// Found by `fuzz_cursor_decodes_to_ours_or_nothing`: a time PostgreSQL cannot hold
    /// (before 4713 BC) reached the query, which failed there: a 500 for a bad parameter.
    #[test]
    fn cursors_outside_the_stores_range_are_refused() {
        let id = Uuid::now_v7().simple();
        for seconds in ["-377705116800", "-1", "253402300800"] {
            let text = URL_SAFE_NO_PAD.encode(format!("{seconds}.{id}"));
            assert_eq!(ActivityCursor::decode(&text), None, "{seconds}");
        }
    }

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
