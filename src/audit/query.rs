//! Reading the activity log: filters, keyset pagination (stable while events are added),
//! CSV export, and retention.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{ActivityCursor, ActivityEvent, ActivityFilter, EventKind};
use crate::store::{Store, StoreError};

/// Largest page; also the default of the API.
pub const MAX_PAGE: i64 = 200;

pub struct ActivityPage {
    pub events: Vec<ActivityEvent>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next: Option<ActivityCursor>,
}

/// Events removed per retention batch: small, so that no batch holds up a login's write.
const PRUNE_BATCH: i64 = 1000;

/// How long each kind of event is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub account: time::Duration,
    pub machine: time::Duration,
}

#[derive(Clone)]
pub struct ActivityLog {
    store: Arc<dyn Store>,
    retention: Retention,
}

impl ActivityLog {
    pub fn new(store: Arc<dyn Store>, retention: Retention) -> Self {
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

    /// Deletes events older than their kind's retention, batch by batch (each batch its
    /// own short statement, so no lock is held for long); returns how many.
    pub async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut total = 0;
        for (kind, kept) in [
            (EventKind::Account, self.retention.account),
            (EventKind::Machine, self.retention.machine),
        ] {
            loop {
                let deleted = self
                    .store
                    .prune_events(kind, now - kept, PRUNE_BATCH)
                    .await?;
                total += deleted;
                if deleted < PRUNE_BATCH as u64 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        Ok(total)
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
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "\"plain\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    }
}
