//! `/api/v1/clients/{id}/activity` (and `.csv`): the operator's view of one client — the
//! events filed under its id (tokens issued to it, its failed authentications, revocations,
//! consents) and, on the first page, a summary: tokens per hour, last use, source addresses.
//! Instance administrators only.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::activity::{EventView, csv_attachment};
use super::clients::require_instance_admin;
use super::{AdminCaller, ApiError, Problem};
use crate::AppState;
use crate::audit::{ClientSummary, EXPORT_CAP, EventOwner};
use crate::http::ActivityQuery;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/clients/{id}/activity", get(list))
        .route("/clients/{id}/activity.csv", get(csv))
}

#[derive(Serialize, ToSchema)]
pub struct ClientActivity {
    pub client_id: String,
    /// The registered name; absent once the client was deleted (its history stays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// On the first page only (a request without `cursor`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<ClientSummaryView>,
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Tokens and failed authentications over `[from, to)`: the filter's window, or the 24 hours
/// before `to` (default: now) when `from` is not given.
#[derive(Serialize, ToSchema)]
pub struct ClientSummaryView {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// Tokens issued in the window, every grant.
    pub tokens_issued: i64,
    /// Requests that named the client and failed its authentication.
    pub auth_failures: i64,
    /// The last token issued to the client, at any time the log still holds.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used: Option<OffsetDateTime>,
    /// Hours with activity, oldest first (hours without are left out).
    pub per_hour: Vec<HourView>,
    /// Source addresses, most tokens first (at most 100).
    pub addresses: Vec<AddressView>,
}

#[derive(Serialize, ToSchema)]
pub struct HourView {
    /// The start of the hour (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub hour: OffsetDateTime,
    pub tokens_issued: i64,
    pub auth_failures: i64,
}

#[derive(Serialize, ToSchema)]
pub struct AddressView {
    pub ip: String,
    pub tokens_issued: i64,
    pub auth_failures: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

impl From<ClientSummary> for ClientSummaryView {
    fn from(s: ClientSummary) -> Self {
        Self {
            from: s.from,
            to: s.to,
            tokens_issued: s.tokens,
            auth_failures: s.failures,
            last_used: s.last_issued,
            per_hour: s
                .hours
                .into_iter()
                .map(|h| HourView {
                    hour: h.hour,
                    tokens_issued: h.tokens,
                    auth_failures: h.failures,
                })
                .collect(),
            addresses: s
                .addresses
                .into_iter()
                .map(|a| AddressView {
                    ip: a.ip,
                    tokens_issued: a.tokens,
                    auth_failures: a.failures,
                    last_seen: a.last_seen,
                })
                .collect(),
        }
    }
}

/// 403 for anyone but an instance administrator, then 404 for a client neither registered
/// nor named by the log.
async fn require_client(state: &AppState, caller: &AdminCaller, id: &str) -> Result<(), ApiError> {
    require_instance_admin(caller)?;
    if state.activity.client_on_record(id).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// A client's activity, newest first, with the filters and cursor of `/api/v1/me/activity`
/// (`product` narrows nothing useful here: every event carries the client's name).
#[utoipa::path(get, path = "/api/v1/clients/{id}/activity", tag = "clients",
    params(("id" = String, Path, description = "The client id"), ActivityQuery),
    responses(
        (status = 200, body = ClientActivity),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    Query(query): Query<ActivityQuery>,
) -> Result<Json<ClientActivity>, ApiError> {
    require_client(&state, &caller, &id).await?;
    let (filter, cursor, limit) = query.parse()?;
    let summary = match cursor {
        None => Some(
            state
                .activity
                .client_summary(&id, &filter, state.clock.now())
                .await?
                .into(),
        ),
        Some(_) => None,
    };
    let page = state
        .activity
        .page(EventOwner::Client(&id), &filter, cursor, limit)
        .await?;
    let name = state.provider.client(&id).await?.map(|c| c.name);
    Ok(Json(ClientActivity {
        client_id: id,
        name,
        summary,
        events: page.events.iter().map(EventView::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// A client's filtered activity as CSV (all pages, up to 100 000 events), in the columns of
/// the user's export.
#[utoipa::path(get, path = "/api/v1/clients/{id}/activity.csv", tag = "clients",
    params(("id" = String, Path, description = "The client id"), ActivityQuery),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn csv(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    Query(query): Query<ActivityQuery>,
) -> Result<axum::response::Response, ApiError> {
    require_client(&state, &caller, &id).await?;
    let (filter, _, _) = query.parse()?;
    let events = state
        .activity
        .all(EventOwner::Client(&id), &filter, EXPORT_CAP)
        .await?;
    Ok(csv_attachment(
        crate::audit::csv(&events),
        "gotthard-client-activity.csv",
    ))
}
