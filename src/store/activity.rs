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
    /// The OAuth client the event concerns (tokens issued to it, its failed
    /// authentications, consents to it); the product is only its name, which may repeat.
    pub client_id: Option<String>,
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
    /// `created_at`, so neither walks over the other's rows. The `ORDER BY` makes it so:
    /// without it PostgreSQL may take a sequential scan for the `LIMIT` (it did beside two
    /// million account events, 780 ms for a batch of machine tokens on a busy machine).
    fn prune_sql(self) -> &'static str {
        match self {
            // The conditions are those of the indexes (migration `…_activity_retention_by_kind`),
            // word for word, so that both planners use them.
            EventKind::Account => {
                "DELETE FROM activity_events WHERE id IN (SELECT id FROM activity_events \
                 WHERE (user_id IS NOT NULL OR action NOT IN ('token.issued', 'client.auth_failed')) \
                 AND created_at < $1 ORDER BY created_at LIMIT $2)"
            }
            EventKind::Machine => {
                "DELETE FROM activity_events WHERE id IN (SELECT id FROM activity_events \
                 WHERE (user_id IS NULL AND action IN ('token.issued', 'client.auth_failed')) \
                 AND created_at < $1 ORDER BY created_at LIMIT $2)"
            }
        }
    }
}

/// Whose events a query reads.
#[derive(Debug, Clone, Copy)]
pub enum EventOwner<'a> {
    /// A user's own log.
    User(Uuid),
    /// Everything that concerns an OAuth client (the operator's view of it).
    Client(&'a str),
}

/// Machine clients' activity over a window, counted in SQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCounts {
    /// Hours with tokens issued or failed authentications, oldest first.
    pub hours: Vec<HourCount>,
    /// Where requests came from, most tokens first (at most [`MAX_ADDRESSES`]).
    pub addresses: Vec<AddressCount>,
    /// The last token issued to the client, at any time the log still holds.
    pub last_issued: Option<OffsetDateTime>,
}

/// Addresses a summary lists at most.
pub const MAX_ADDRESSES: i64 = 100;

/// One hour of a client's activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    /// The start of the hour (UTC).
    pub hour: OffsetDateTime,
    pub tokens: i64,
    pub failures: i64,
}

/// One source address of a client's requests.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AddressCount {
    pub ip: String,
    pub tokens: i64,
    pub failures: i64,
    pub last_seen: OffsetDateTime,
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
    /// The events of `owner` matching `filter`, newest first, strictly after `after`.
    async fn query_events(
        &self,
        owner: EventOwner<'_>,
        filter: &ActivityFilter,
        after: Option<&ActivityCursor>,
        limit: i64,
    ) -> Result<Vec<ActivityEvent>, StoreError>;
    /// Tokens issued to a client and its failed authentications in `[from, to)`, per hour
    /// and per source address, and its last token.
    async fn client_counts(
        &self,
        client_id: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<ClientCounts, StoreError>;
    /// Whether the client is registered, or named by an event (a deleted client's history
    /// stays readable).
    async fn client_on_record(&self, client_id: &str) -> Result<bool, StoreError>;
    /// Deletes up to `limit` events of `kind` older than `before`; how many.
    async fn prune_events(
        &self,
        kind: EventKind,
        before: OffsetDateTime,
        limit: i64,
    ) -> Result<u64, StoreError>;
}

/// The columns of [`ActivityEvent`], in its order.
pub(super) const EVENT_COLUMNS: &str =
    "id, user_id, actor_id, action, product, client_id, ip, user_agent, details, created_at";

macro_rules! activity_store {
    // `$hour`: the SQL of an event's hour as a number (seconds since 1970 / 3600).
    ($store:ident, $db:ty, $hour:literal) => {
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
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM activity_events WHERE user_id = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                );
                Ok(sqlx::query_as::<_, ActivityEvent>(&sql)
                .bind(user_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn query_events(
                &self,
                owner: EventOwner<'_>,
                filter: &ActivityFilter,
                after: Option<&ActivityCursor>,
                limit: i64,
            ) -> Result<Vec<ActivityEvent>, StoreError> {
                // Only the filters in use go into the SQL, so each query shape can walk the
                // (user_id, created_at, id) or (client_id, created_at, id) indexes from the
                // newest end.
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {EVENT_COLUMNS} FROM activity_events WHERE "
                ));
                match owner {
                    EventOwner::User(user_id) => q.push("user_id = ").push_bind(user_id),
                    EventOwner::Client(client_id) => {
                        q.push("client_id = ").push_bind(client_id.to_string())
                    }
                };
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

            async fn client_counts(
                &self,
                client_id: &str,
                from: time::OffsetDateTime,
                to: time::OffsetDateTime,
            ) -> Result<ClientCounts, StoreError> {
                // Both counts in one pass over the client's index range.
                let counted = "SUM(CASE WHEN action = 'token.issued' THEN 1 ELSE 0 END) AS tokens, \
                     SUM(CASE WHEN action = 'client.auth_failed' THEN 1 ELSE 0 END) AS failures";
                let window = "FROM activity_events WHERE client_id = $1 \
                     AND created_at >= $2 AND created_at < $3 \
                     AND action IN ('token.issued', 'client.auth_failed')";
                // Planned with the values each time (not persistent): a generic plan of
                // PostgreSQL cannot see how narrow the client is and walked the whole window
                // of every client by `activity_time` instead.
                let hours: Vec<(i64, i64, i64)> = sqlx::query_as(&format!(
                    "SELECT {hour} AS hour, {counted} {window} GROUP BY {hour} ORDER BY hour",
                    hour = $hour,
                ))
                .persistent(false)
                .bind(client_id)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                let addresses = sqlx::query_as::<_, AddressCount>(&format!(
                    "SELECT ip, {counted}, MAX(created_at) AS last_seen {window} \
                     GROUP BY ip ORDER BY tokens DESC, failures DESC, ip LIMIT $4"
                ))
                .persistent(false)
                .bind(client_id)
                .bind(from)
                .bind(to)
                .bind(MAX_ADDRESSES)
                .fetch_all(&self.pool)
                .await?;
                let last_issued: Option<(time::OffsetDateTime,)> = sqlx::query_as(
                    "SELECT created_at FROM activity_events \
                     WHERE client_id = $1 AND action = 'token.issued' \
                     ORDER BY created_at DESC, id DESC LIMIT 1",
                )
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
                let hours = hours
                    .into_iter()
                    .filter_map(|(hour, tokens, failures)| {
                        Some(HourCount {
                            hour: time::OffsetDateTime::from_unix_timestamp(hour * 3600).ok()?,
                            tokens,
                            failures,
                        })
                    })
                    .collect();
                Ok(ClientCounts {
                    hours,
                    addresses,
                    last_issued: last_issued.map(|(at,)| at),
                })
            }

            async fn client_on_record(&self, client_id: &str) -> Result<bool, StoreError> {
                let (found,): (bool,) = sqlx::query_as(
                    "SELECT EXISTS (SELECT 1 FROM oauth_clients WHERE id = $1) \
                     OR EXISTS (SELECT 1 FROM activity_events WHERE client_id = $1)",
                )
                .bind(client_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(found)
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

activity_store!(
    SqliteStore,
    sqlx::Sqlite,
    "CAST(strftime('%s', created_at) AS INTEGER) / 3600"
);
activity_store!(
    PostgresStore,
    sqlx::Postgres,
    "CAST(floor(extract(epoch FROM created_at) / 3600) AS BIGINT)"
);

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
