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
            // No event holds a NUL, and PostgreSQL refuses to compare text with one.
            Some(v) if v.contains('\0') => Err(BadParameter {
                name,
                message: "is not text",
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

/// RFC 3339, or a calendar date; a date as an upper bound means the end of that day. Years
/// 1 to 9999 (PostgreSQL holds nothing before 4713 BC; no event is that old).
fn parse_time(
    value: Option<&str>,
    end_of_day: bool,
) -> Result<Option<OffsetDateTime>, &'static str> {
    const BAD: &str = "must be an RFC 3339 time or a date like 2026-11-25";
    let Some(value) = non_empty(value) else {
        return Ok(None);
    };
    // In UTC, as the stores compare it (an offset can carry a time past the calendar's end).
    let in_range = |at: OffsetDateTime| match at.checked_to_offset(time::UtcOffset::UTC) {
        Some(utc) if (1..=9999).contains(&utc.year()) => Ok(at),
        _ => Err(BAD),
    };
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        return in_range(at).map(Some);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(value, format).map_err(|_| BAD)?;
    let date = if end_of_day {
        // Up to the end of 9999-12-31 is no bound at all.
        match date.next_day() {
            Some(next) => next,
            None => return Ok(None),
        }
    } else {
        date
    };
    in_range(date.midnight().assume_utc()).map(Some)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn time_text() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,30}",
            "[+-]?[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
            prop::sample::select(vec![
                "9999-12-31",
                "0000-01-01",
                "-9999-01-01",
                "+9999-12-31",
                "0000-01-01T00:00:00+23:59",
                "9999-12-31T23:59:59-23:59",
                "9999-12-31T23:59:60Z",
            ])
            .prop_map(str::to_string),
        ]
    }

    fn maybe(s: impl Strategy<Value = String>) -> impl Strategy<Value = Option<String>> {
        prop::option::of(s)
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(256))]

        /// Any query string's filters parse to bounds within the range every store holds, or
        /// to the one parameter that is wrong (a 400 that names it).
        #[test]
        fn fuzz_activity_query_parses_or_names_the_parameter(
            from in maybe(time_text()),
            to in maybe(time_text()),
            product in maybe(".{0,120}"),
            action in maybe(".{0,120}"),
            cursor in maybe(".{0,60}"),
            limit in maybe(prop_oneof!["-?[0-9]{1,22}", ".{0,5}"]),
        ) {
            let query = ActivityQuery { from, to, product, action, cursor, limit };
            match query.parse() {
                Ok((filter, _, limit)) => {
                    prop_assert!((1..=MAX_PAGE).contains(&limit));
                    for at in [filter.from, filter.to].into_iter().flatten() {
                        let utc = at.checked_to_offset(time::UtcOffset::UTC);
                        prop_assert!(utc.is_some_and(|utc| (1..=9999).contains(&utc.year())));
                    }
                    for text in [filter.product, filter.action].into_iter().flatten() {
                        prop_assert!(!text.is_empty() && text.len() <= 100 && !text.contains('\0'));
                    }
                }
                Err(bad) => prop_assert!(
                    ["from", "to", "product", "action", "cursor", "limit"].contains(&bad.name)
                ),
            }
        }

        /// A date bound covers its whole day: `from` its start, `to` up to the next day.
        #[test]
        fn fuzz_activity_query_dates_round_trip(day in 1i32..=3_652_059) {
            let date = time::Date::from_julian_day(1_721_425 + day).unwrap();
            let text = format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day());
            let from = parse_time(Some(&text), false).unwrap().unwrap();
            prop_assert_eq!(from, date.midnight().assume_utc());
            let to = parse_time(Some(&text), true).unwrap();
            prop_assert_eq!(to, date.next_day().map(|d| d.midnight().assume_utc()));
        }
    }

    /// Found by `fuzz_activity_query_parses_or_names_the_parameter`: the end of the last day
    /// the calendar holds overflowed and panicked (a 500).
    #[test]
    fn the_last_day_is_no_upper_bound() {
        assert_eq!(parse_time(Some("9999-12-31"), true), Ok(None));
        assert!(parse_time(Some("9999-12-31"), false).unwrap().is_some());
    }

    /// Found by the same property: a time whose offset carries it past 9999 (or before the
    /// year 1) in UTC, which the stores (and `sqlx`'s PostgreSQL encoding, which panicked)
    /// cannot hold.
    #[test]
    fn times_past_the_calendar_in_utc_are_refused() {
        for value in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+23:59"] {
            assert!(parse_time(Some(value), false).is_err(), "{value}");
        }
    }
}
