//! `/api/v1/me/activity`: the caller's activity log, filtered and paged; and its CSV export.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{ApiError, Caller, Problem};
use crate::AppState;
use crate::audit::{ActivityCursor, ActivityEvent, ActivityFilter, MAX_PAGE, csv_cell};
use crate::sessions::DeviceLabel;

/// Events a CSV export holds at most.
const CSV_CAP: usize = 100_000;
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: i64 = 50;

/// The filters, as the API and the page receive them.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Events at or after this time: RFC 3339, or a date (`2026-11-25`, from its start, UTC).
    pub from: Option<String>,
    /// Events before this time: RFC 3339, or a date (up to the end of that day, UTC).
    pub to: Option<String>,
    /// The product (relying application), or `account` for Gotthard itself.
    pub product: Option<String>,
    /// The action type, e.g. `login.failed`.
    pub action: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Events per page, 1 to 200 (default 50).
    pub limit: Option<String>,
}

/// A parameter that could not be understood, named.
#[derive(Debug)]
pub struct BadParameter {
    pub name: &'static str,
    pub message: &'static str,
}

impl ActivityQuery {
    pub fn parse(&self) -> Result<(ActivityFilter, Option<ActivityCursor>, i64), BadParameter> {
        let from = parse_time(self.from.as_deref(), false).map_err(|message| BadParameter {
            name: "from",
            message,
        })?;
        let to = parse_time(self.to.as_deref(), true).map_err(|message| BadParameter {
            name: "to",
            message,
        })?;
        let cursor = match non_empty(self.cursor.as_deref()) {
            None => None,
            Some(value) => Some(ActivityCursor::decode(value).ok_or(BadParameter {
                name: "cursor",
                message: "is not a cursor from a previous page",
            })?),
        };
        let limit = match non_empty(self.limit.as_deref()) {
            None => DEFAULT_PAGE,
            Some(value) => value
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or(BadParameter {
                    name: "limit",
                    message: "must be a number from 1 to 200",
                })?,
        };
        let short = |value: Option<&str>, name| match non_empty(value) {
            Some(v) if v.len() > 100 => Err(BadParameter {
                name,
                message: "is too long",
            }),
            other => Ok(other.map(str::to_string)),
        };
        let filter = ActivityFilter {
            from,
            to,
            product: short(self.product.as_deref(), "product")?,
            action: short(self.action.as_deref(), "action")?,
        };
        Ok((filter, cursor, limit))
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// RFC 3339, or a calendar date; a date as an upper bound means the end of that day.
fn parse_time(
    value: Option<&str>,
    end_of_day: bool,
) -> Result<Option<OffsetDateTime>, &'static str> {
    let Some(value) = non_empty(value) else {
        return Ok(None);
    };
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        return Ok(Some(at));
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(value, format)
        .map_err(|_| "must be an RFC 3339 time or a date like 2026-11-25")?;
    let day = date.midnight().assume_utc();
    Ok(Some(if end_of_day {
        day + time::Duration::days(1)
    } else {
        day
    }))
}

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
        .page(caller.me.user.id, &filter, cursor, limit)
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
        .all(caller.me.user.id, &filter, CSV_CAP)
        .await?;
    let mut body = String::from("time,action,product,ip,device,details\r\n");
    for e in &events {
        let view = EventView::from(e);
        let device = format!("{} ({})", view.device.summary(), view.device.category);
        let row = [
            view.time.format(&Rfc3339).unwrap_or_default(),
            view.action,
            view.product,
            view.ip,
            device,
            view.details.to_string(),
        ];
        let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
        body.push_str(&cells.join(","));
        body.push_str("\r\n");
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"gotthard-activity.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}
