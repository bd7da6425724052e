//! `/api/v1/me/activity`: the caller's activity log, filtered and paged; and its CSV export.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiError, Caller, Problem};
use crate::AppState;
use crate::audit::{ActivityEvent, EXPORT_CAP, EventOwner};
use crate::http::{ActivityQuery, BadParameter};
use crate::sessions::DeviceLabel;

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub action: String,
    pub product: String,
    pub ip: String,
    pub device: DeviceLabel,
    /// Small, action-specific facts (never secrets).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<&ActivityEvent> for EventView {
    fn from(e: &ActivityEvent) -> Self {
        Self {
            id: e.id,
            time: e.created_at,
            action: e.action.clone(),
            product: e.product.clone(),
            ip: e.ip.clone(),
            device: DeviceLabel::from_user_agent(&e.user_agent),
            details: serde_json::from_str(&e.details).unwrap_or_default(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ActivityList {
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl From<BadParameter> for ApiError {
    fn from(bad: BadParameter) -> Self {
        ApiError::BadRequest(format!("parameter `{}` {}", bad.name, bad.message))
    }
}

/// The caller's activity, newest first; filters combine. Pages are stable while new events
/// arrive: follow `next_cursor` and every event comes exactly once.
#[utoipa::path(get, path = "/api/v1/me/activity", tag = "activity", params(ActivityQuery),
    responses(
        (status = 200, body = ActivityList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ActivityQuery>,
) -> Result<Json<ActivityList>, ApiError> {
    let (filter, cursor, limit) = query.parse()?;
    let page = state
        .activity
        .page(EventOwner::User(caller.me.user.id), &filter, cursor, limit)
        .await?;
    Ok(Json(ActivityList {
        events: page.events.iter().map(EventView::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// The filtered activity as CSV (all pages, up to 100 000 events), for a spreadsheet.
#[utoipa::path(get, path = "/api/v1/me/activity.csv", tag = "activity", params(ActivityQuery),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn csv(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ActivityQuery>,
) -> Result<Response, ApiError> {
    let (filter, _, _) = query.parse()?;
    let events = state
        .activity
        .all(EventOwner::User(caller.me.user.id), &filter, EXPORT_CAP)
        .await?;
    Ok(csv_attachment(
        crate::audit::csv(&events),
        "gotthard-activity.csv",
    ))
}

/// A CSV body as a download named `filename`.
pub(super) fn csv_attachment(body: String, filename: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}
