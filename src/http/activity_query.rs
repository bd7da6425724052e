//! The filters of the activity log as a query string carries them, for the API and the
//! activity page alike.

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::IntoParams;

use crate::audit::{ActivityCursor, ActivityFilter, MAX_PAGE};

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
