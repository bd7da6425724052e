//! The profile a user manages: first and last name, language and time zone (the login
//! e-mail has its own confirmed change, `email_change`; the picture its own pipeline).

use time::OffsetDateTime;

use super::{AccountError, Accounts, ProfileRecord, User};
use crate::audit::{Action, ActivityEvent, ClientInfo};

/// Longest first or last name accepted, in characters.
pub const MAX_NAME_PART_CHARS: usize = 100;

/// A person's name as the profile holds it: given (first) and family (last) name, either
/// may be empty. The display name is the two joined by a space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonName {
    pub given: String,
    pub family: String,
}

impl PersonName {
    /// Both parts trimmed and checked against the length limit.
    pub fn new(given: &str, family: &str) -> Result<Self, AccountError> {
        let name = Self {
            given: given.trim().to_string(),
            family: family.trim().to_string(),
        };
        if name.given.chars().count() > MAX_NAME_PART_CHARS
            || name.family.chars().count() > MAX_NAME_PART_CHARS
        {
            return Err(AccountError::NameTooLong);
        }
        Ok(name)
    }

    /// A name given in one field (the first-start form, the CLI, an upstream `name` claim):
    /// the first word is the given name, the rest the family name ("Ada King Lovelace" →
    /// "Ada", "King Lovelace"), as the migration split the names that existed before.
    pub fn split(full: &str) -> Result<Self, AccountError> {
        let full = full.trim();
        match full.split_once(char::is_whitespace) {
            Some((given, family)) => Self::new(given, family),
            None => Self::new(full, ""),
        }
    }

    /// "Given Family", or whichever part there is.
    pub fn display(&self) -> String {
        match (self.given.is_empty(), self.family.is_empty()) {
            (false, false) => format!("{} {}", self.given, self.family),
            (false, true) => self.given.clone(),
            _ => self.family.clone(),
        }
    }

    pub fn of(user: &User) -> Self {
        Self {
            given: user.given_name.clone(),
            family: user.family_name.clone(),
        }
    }
}

/// A change to the profile; `None` leaves a field as it is. `locale: Some(None)` (and
/// `time_zone`) clears it. The login e-mail has its own confirmed change (`email_change`).
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub locale: Option<Option<String>>,
    pub time_zone: Option<Option<String>>,
}

/// Whether `zone` is an IANA time zone this server knows (`Europe/Zurich`, `UTC`).
pub fn known_time_zone(zone: &str) -> bool {
    zone.len() <= 64 && jiff::tz::db().get(zone).is_ok()
}

impl Accounts {
    /// Changes names, language and time zone; records which fields changed.
    pub async fn update_profile(
        &self,
        user: &User,
        change: ProfileChange,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<User, AccountError> {
        if let Some(Some(locale)) = &change.locale
            && !crate::i18n::LOCALES.contains(&locale.as_str())
        {
            return Err(AccountError::UnsupportedLocale);
        }
        if let Some(Some(zone)) = &change.time_zone
            && !known_time_zone(zone)
        {
            return Err(AccountError::UnknownTimeZone);
        }
        let current = PersonName::of(user);
        let name = PersonName::new(
            change.given_name.as_deref().unwrap_or(&current.given),
            change.family_name.as_deref().unwrap_or(&current.family),
        )?;
        let record = ProfileRecord {
            locale: change.locale.unwrap_or_else(|| user.locale.clone()),
            time_zone: change.time_zone.unwrap_or_else(|| user.time_zone.clone()),
            name: name.display(),
            given_name: name.given,
            family_name: name.family,
        };
        let mut changed = Vec::new();
        if record.given_name != user.given_name {
            changed.push("given_name");
        }
        if record.family_name != user.family_name {
            changed.push("family_name");
        }
        if record.locale != user.locale {
            changed.push("locale");
        }
        if record.time_zone != user.time_zone {
            changed.push("time_zone");
        }
        if changed.is_empty() {
            return Ok(user.clone());
        }
        let event = ActivityEvent::new(
            Some(user.id),
            Action::ProfileChanged,
            client,
            serde_json::json!({ "fields": changed }),
            now,
        );
        Ok(self.store.update_profile(user.id, &record, &event).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_field_names_split_at_the_first_space() {
        let ada = PersonName::split("  Ada King  Lovelace ").unwrap();
        assert_eq!(
            (ada.given.as_str(), ada.family.as_str()),
            ("Ada", "King  Lovelace")
        );
        assert_eq!(ada.display(), "Ada King  Lovelace");
        let cher = PersonName::split("Cher").unwrap();
        assert_eq!((cher.given.as_str(), cher.family.as_str()), ("Cher", ""));
        assert_eq!(cher.display(), "Cher");
        assert_eq!(
            PersonName::new("", "Lovelace").unwrap().display(),
            "Lovelace"
        );
        assert!(PersonName::new(&"a".repeat(101), "").is_err());
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert!(known_time_zone("Europe/Zurich"));
        assert!(known_time_zone("UTC"));
        assert!(!known_time_zone("Mars/Olympus_Mons"));
        assert!(!known_time_zone("../../etc/passwd"));
    }
}
