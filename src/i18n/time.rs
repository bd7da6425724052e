//! Times as a reader reads them: in their language (CLDR patterns through ICU4X), in their
//! time zone (jiff's IANA database, bundled), recent ones relative ("5 minutes ago", with
//! CLDR plural rules through Fluent), always with the zone named.

use std::collections::HashMap;

use icu_calendar::Date;
use icu_calendar::Gregorian;
use icu_datetime::FixedCalendarDateTimeFormatter;
use icu_datetime::fieldsets::YMDT;
use icu_datetime::input::{DateTime, Time};
use icu_locale_core::Locale;
use serde::Serialize;
use time::OffsetDateTime;

use super::Translator;

/// Date and time formatters, one per language, made once.
pub(super) struct Formatters(HashMap<String, FixedCalendarDateTimeFormatter<Gregorian, YMDT>>);

impl Formatters {
    pub(super) fn load(langs: &[&str]) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        for lang in langs {
            let locale: Locale = lang.parse()?;
            let formatter =
                FixedCalendarDateTimeFormatter::try_new((&locale).into(), YMDT::medium())
                    .map_err(|e| anyhow::anyhow!("date formats of {lang}: {e:?}"))?;
            map.insert((*lang).to_string(), formatter);
        }
        Ok(Self(map))
    }
}

/// The zone a reader sees times in, and where that choice came from.
#[derive(Clone, Debug)]
pub struct ReaderZone {
    zone: jiff::tz::TimeZone,
    /// The IANA name (`Europe/Zurich`), or `UTC`.
    pub name: String,
}

impl ReaderZone {
    /// The first of the candidates that is a known IANA zone, else UTC.
    pub fn first_known<'a>(candidates: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        candidates
            .into_iter()
            .flatten()
            .filter(|name| name.len() <= 64)
            .find_map(|name| {
                jiff::tz::db().get(name).ok().map(|zone| Self {
                    zone,
                    name: name.to_string(),
                })
            })
            .unwrap_or_else(Self::utc)
    }

    pub fn utc() -> Self {
        Self {
            zone: jiff::tz::TimeZone::UTC,
            name: "UTC".into(),
        }
    }
}

/// One time on a page: the machine-readable instant, the exact local time with its zone,
/// and, when recent, the relative words.
#[derive(Debug, Clone, Serialize)]
pub struct TimeView {
    /// RFC 3339 in UTC (the `datetime` attribute of `<time>`).
    pub iso: String,
    /// "7 Dec 2026, 14:03:05 CET".
    pub exact: String,
    /// "5 minutes ago"; `None` beyond a week (then the exact time is shown).
    pub relative: Option<String>,
}

/// How long "recent" lasts: beyond it, times are shown exactly.
const RECENT: time::Duration = time::Duration::days(7);

impl Translator {
    /// One time as `zone`'s reader reads it, relative to `now` when recent.
    pub fn time(&self, at: OffsetDateTime, zone: &ReaderZone, now: OffsetDateTime) -> TimeView {
        TimeView {
            iso: at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            exact: self.exact_time(at, zone),
            relative: self.relative_time(at, now),
        }
    }

    /// "7 Dec 2026, 14:03:05 CET" in the reader's language and zone.
    pub fn exact_time(&self, at: OffsetDateTime, zone: &ReaderZone) -> String {
        let Ok(stamp) = jiff::Timestamp::from_second(at.unix_timestamp()) else {
            return at.to_string();
        };
        let local = stamp.to_zoned(zone.zone.clone());
        let abbreviation = local.strftime("%Z").to_string();
        let formatter = self.i18n.formatters.0.get(&self.lang());
        let date = Date::try_new_gregorian(
            i32::from(local.year()),
            local.month().unsigned_abs(),
            local.day().unsigned_abs(),
        );
        let clock = Time::try_new(
            local.hour().unsigned_abs(),
            local.minute().unsigned_abs(),
            local.second().unsigned_abs(),
            0,
        );
        match (formatter, date, clock) {
            (Some(formatter), Ok(date), Ok(time)) => {
                let text = formatter.format(&DateTime { date, time }).to_string();
                format!("{text} {abbreviation}")
            }
            _ => local.strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        }
    }

    /// "just now", "5 minutes ago", "3 hours ago", "2 days ago"; `None` for the future and
    /// beyond a week.
    pub fn relative_time(&self, at: OffsetDateTime, now: OffsetDateTime) -> Option<String> {
        let ago = now - at;
        if ago < time::Duration::ZERO || ago >= RECENT {
            return None;
        }
        Some(if ago < time::Duration::minutes(1) {
            self.t("time-just-now")
        } else if ago < time::Duration::hours(1) {
            self.t_count("time-minutes-ago", ago.whole_minutes())
        } else if ago < time::Duration::days(1) {
            self.t_count("time-hours-ago", ago.whole_hours())
        } else {
            self.t_count("time-days-ago", ago.whole_days())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use time::macros::datetime;

    use super::*;
    use crate::i18n::I18n;

    #[test]
    fn times_read_in_the_readers_language_and_zone() {
        let i18n = Arc::new(I18n::load().unwrap());
        let at = datetime!(2026-12-07 13:03:05 UTC);
        let zurich = ReaderZone::first_known([Some("Nowhere/City"), Some("Europe/Zurich")]);
        assert_eq!(zurich.name, "Europe/Zurich");
        let en = i18n.negotiate(Some("en")).exact_time(at, &zurich);
        let es = i18n.negotiate(Some("es")).exact_time(at, &zurich);
        let fr = i18n.negotiate(Some("fr")).exact_time(at, &zurich);
        assert!(
            en.contains("Dec") && en.contains("2:03:05") && en.ends_with("CET"),
            "{en}"
        );
        assert!(es.contains("dic") && es.contains("14:03:05"), "{es}");
        assert!(fr.contains("déc") && fr.contains("14:03:05"), "{fr}");
        let utc = ReaderZone::first_known([None, Some("../etc/passwd")]);
        assert_eq!(utc.name, "UTC");
        let en_utc = i18n.negotiate(Some("en")).exact_time(at, &utc);
        assert!(
            en_utc.contains("1:03:05") && en_utc.ends_with("UTC"),
            "{en_utc}"
        );
    }

    #[test]
    fn recent_times_are_relative_with_plural_rules() {
        let i18n = Arc::new(I18n::load().unwrap());
        let now = datetime!(2026-12-07 13:00:00 UTC);
        let en = i18n.negotiate(Some("en"));
        let fr = i18n.negotiate(Some("fr"));
        let es = i18n.negotiate(Some("es"));
        let ago = |m: i64| now - time::Duration::minutes(m);
        assert_eq!(en.relative_time(now, now).unwrap(), "just now");
        assert_eq!(en.relative_time(ago(1), now).unwrap(), "1 minute ago");
        assert_eq!(en.relative_time(ago(5), now).unwrap(), "5 minutes ago");
        assert_eq!(es.relative_time(ago(5), now).unwrap(), "hace 5 minutos");
        assert_eq!(fr.relative_time(ago(120), now).unwrap(), "il y a 2 heures");
        assert_eq!(
            fr.relative_time(ago(60 * 24), now).unwrap(),
            "il y a 1 jour"
        );
        assert!(en.relative_time(ago(60 * 24 * 8), now).is_none());
        assert!(
            en.relative_time(now + time::Duration::minutes(1), now)
                .is_none()
        );
    }
}
