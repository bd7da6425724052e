//! Reading the activity log: filters, keyset pagination (stable while events are added),
//! CSV export, and retention.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use time::format_description::well_known::Rfc3339;

use super::{
    ActivityCursor, ActivityEvent, ActivityFilter, AddressCount, DeviceLabel, EventKind,
    EventOwner, HourCount,
};
use crate::store::{Store, StoreError};

/// Largest page; also the default of the API.
pub const MAX_PAGE: i64 = 200;

/// Events a CSV export holds at most.
pub const EXPORT_CAP: usize = 100_000;

pub struct ActivityPage {
    pub events: Vec<ActivityEvent>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next: Option<ActivityCursor>,
}

/// The window of a client's summary when the filter gives no start: the day before its end.
pub const SUMMARY_WINDOW: time::Duration = time::Duration::hours(24);

/// What an operator asks first about a client: how many tokens it got, when, from where, and
/// how often its authentication failed, over `[from, to)`.
#[derive(Debug, Clone)]
pub struct ClientSummary {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// Tokens issued in the window (every grant: client credentials, code, refresh).
    pub tokens: i64,
    /// Failed authentications in the window.
    pub failures: i64,
    /// Hours with tokens or failures, oldest first.
    pub hours: Vec<HourCount>,
    /// Source addresses, most tokens first (at most 100).
    pub addresses: Vec<AddressCount>,
    /// The last token issued to the client, whenever it was.
    pub last_issued: Option<OffsetDateTime>,
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

    /// One page of the events of a user or a client, newest first.
    pub async fn page(
        &self,
        owner: EventOwner<'_>,
        filter: &ActivityFilter,
        after: Option<ActivityCursor>,
        limit: i64,
    ) -> Result<ActivityPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        // One more than asked tells whether there is a next page.
        let mut events = self
            .store
            .query_events(owner, filter, after.as_ref(), limit + 1)
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
        owner: EventOwner<'_>,
        filter: &ActivityFilter,
        cap: usize,
    ) -> Result<Vec<ActivityEvent>, StoreError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.page(owner, filter, after, MAX_PAGE).await?;
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

    /// Whether the operator's view of a client has anything to show: the client is
    /// registered, or the log names it (a deleted client's history stays readable, which is
    /// what an incident needs). Client ids are at most 128 characters.
    pub async fn client_on_record(&self, client_id: &str) -> Result<bool, StoreError> {
        if client_id.is_empty() || client_id.len() > 128 {
            return Ok(false);
        }
        self.store.client_on_record(client_id).await
    }

    /// A client's tokens and failed authentications over the filter's window: `[from, to)`,
    /// `to` defaulting to the second after `now` (the clock counts whole seconds: what was
    /// recorded this second counts) and `from` to [`SUMMARY_WINDOW`] before `to`. The product
    /// and action filters do not narrow it (it counts tokens and failures, nothing else).
    pub async fn client_summary(
        &self,
        client_id: &str,
        filter: &ActivityFilter,
        now: OffsetDateTime,
    ) -> Result<ClientSummary, StoreError> {
        let to = filter.to.unwrap_or(now + time::Duration::seconds(1));
        let from = filter.from.unwrap_or(to - SUMMARY_WINDOW);
        let counts = self.store.client_counts(client_id, from, to).await?;
        Ok(ClientSummary {
            from,
            to,
            tokens: counts.hours.iter().map(|h| h.tokens).sum(),
            failures: counts.hours.iter().map(|h| h.failures).sum(),
            hours: counts.hours,
            addresses: counts.addresses,
            last_issued: counts.last_issued,
        })
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

/// Events as CSV (a header, then one line per event), the export of every activity view.
pub fn csv(events: &[ActivityEvent]) -> String {
    let mut body = String::from("time,action,product,ip,device,details\r\n");
    for e in events {
        let device = DeviceLabel::from_user_agent(&e.user_agent);
        let details: serde_json::Value = serde_json::from_str(&e.details).unwrap_or_default();
        let row = [
            e.created_at.format(&Rfc3339).unwrap_or_default(),
            e.action.clone(),
            e.product.clone(),
            e.ip.clone(),
            format!("{} ({})", device.summary(), device.category),
            details.to_string(),
        ];
        let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
        body.push_str(&cells.join(","));
        body.push_str("\r\n");
    }
    body
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
