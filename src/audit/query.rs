//! Reading the activity log: filters, keyset pagination (stable while events are added),
//! CSV export, and retention.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use super::ActivityEvent;
use crate::store::{Store, StoreError};

/// Largest page; also the default of the API.
pub const MAX_PAGE: i64 = 200;

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

pub struct ActivityPage {
    pub events: Vec<ActivityEvent>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next: Option<ActivityCursor>,
}

/// Events removed per retention batch: small, so that no batch holds up a login's write.
const PRUNE_BATCH: i64 = 1000;

#[derive(Clone)]
pub struct ActivityLog {
    store: Arc<dyn Store>,
    retention: time::Duration,
}

impl ActivityLog {
    pub fn new(store: Arc<dyn Store>, retention: time::Duration) -> Self {
        Self { store, retention }
    }

    /// A user's latest `limit` events, newest first (the account page's short list).
    pub async fn recent(
        &self,
        user_id: Uuid,
        limit: i64,
    ) -> Result<Vec<ActivityEvent>, StoreError> {
        self.store.recent_events(user_id, limit).await
    }

    /// One page of a user's events, newest first.
    pub async fn page(
        &self,
        user_id: Uuid,
        filter: &ActivityFilter,
        after: Option<ActivityCursor>,
        limit: i64,
    ) -> Result<ActivityPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        // One more than asked tells whether there is a next page.
        let mut events = self
            .store
            .query_events(user_id, filter, after.as_ref(), limit + 1)
            .await?;
        let next = if events.len() as i64 > limit {
            events.truncate(limit as usize);
            events.last().map(ActivityCursor::after)
        } else {
            None
        };
        Ok(ActivityPage { events, next })
    }

    /// Every event matching `filter`, up to `cap`, for export.
    pub async fn all(
        &self,
        user_id: Uuid,
        filter: &ActivityFilter,
        cap: usize,
    ) -> Result<Vec<ActivityEvent>, StoreError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.page(user_id, filter, after, MAX_PAGE).await?;
            all.extend(page.events);
            match page.next {
                Some(next) if all.len() < cap => after = Some(next),
                _ => {
                    all.truncate(cap);
                    return Ok(all);
                }
            }
        }
    }

    /// Deletes events older than the retention, batch by batch; returns how many.
    pub async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let before = now - self.retention;
        let mut total = 0;
        loop {
            let deleted = self.store.prune_events(before, PRUNE_BATCH).await?;
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}

/// One CSV cell, quoted; a cell that a spreadsheet would run as a formula gets a leading `'`
/// (OWASP, CSV injection): User-Agents and details come from outside.
pub fn csv_cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

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

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "\"plain\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    }
}
