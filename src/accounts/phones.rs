//! Phone numbers of the profile: parsed and stored in E.164 (`phonenumber`, Google's
//! libphonenumber metadata), each with a label. Verification needs an SMS provider this
//! product does not have yet, so numbers stay unverified and no claim releases them.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Accounts, User};
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::store::StoreError;

pub use crate::store::phones::PhoneNumber;

/// Numbers one account may hold.
pub const MAX_PHONES: i64 = 10;
/// Longest label, in characters.
pub const MAX_PHONE_LABEL_CHARS: usize = 40;
/// What the API says about verification while there is no SMS provider.
pub const VERIFICATION_UNAVAILABLE: &str = "Phone numbers cannot be verified yet: this server has no SMS provider. \
     They stay unverified, and the `phone_number` claim is not released.";

#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    /// Not a phone number (in international format, `+` and the country code).
    #[error("not a phone number in international format (+ and the country code)")]
    Malformed,
    #[error("the label is empty or longer than {MAX_PHONE_LABEL_CHARS} characters")]
    BadLabel,
    #[error("this number is already on the profile")]
    Duplicate,
    #[error("at most {MAX_PHONES} phone numbers")]
    TooMany,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for PhoneError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => PhoneError::Duplicate,
            other => PhoneError::Store(other),
        }
    }
}

/// The number in E.164 when `input` is a valid one written internationally (`+41 44 668 18
/// 00`, `0041 44 668 18 00`); spaces, dots, dashes and brackets are allowed.
pub fn parse_phone(input: &str) -> Result<String, PhoneError> {
    let input = input.trim();
    if input.is_empty() || input.len() > 40 {
        return Err(PhoneError::Malformed);
    }
    let international = match input.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => input.to_string(),
    };
    if !international.starts_with('+') {
        return Err(PhoneError::Malformed);
    }
    let parsed = phonenumber::parse(None, &international).map_err(|_| PhoneError::Malformed)?;
    if !phonenumber::is_valid(&parsed) {
        return Err(PhoneError::Malformed);
    }
    Ok(parsed.format().mode(phonenumber::Mode::E164).to_string())
}

/// `+41 44 668 18 00` for `+41446681800`: how the pages show a stored number.
pub fn display_phone(e164: &str) -> String {
    phonenumber::parse(None, e164)
        .map(|n| {
            n.format()
                .mode(phonenumber::Mode::International)
                .to_string()
        })
        .unwrap_or_else(|_| e164.to_string())
}

impl Accounts {
    pub async fn phones(&self, user: &User) -> Result<Vec<PhoneNumber>, StoreError> {
        self.store.phones(user.id).await
    }

    /// Adds a number with its label (recorded as a profile change).
    pub async fn add_phone(
        &self,
        user: &User,
        label: &str,
        number: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<PhoneNumber, PhoneError> {
        let label = label.trim();
        if label.is_empty() || label.chars().count() > MAX_PHONE_LABEL_CHARS {
            return Err(PhoneError::BadLabel);
        }
        let phone = PhoneNumber {
            id: Uuid::now_v7(),
            user_id: user.id,
            label: label.to_string(),
            number: parse_phone(number)?,
            verified_at: None,
            created_at: now,
        };
        let event = ActivityEvent::new(
            Some(user.id),
            Action::ProfileChanged,
            client,
            serde_json::json!({ "fields": ["phone_numbers"], "added": phone.id }),
            now,
        );
        if !self.store.add_phone(&phone, MAX_PHONES, &event).await? {
            return Err(PhoneError::TooMany);
        }
        Ok(phone)
    }

    /// Removes one of the user's numbers; `false` when it is not theirs.
    pub async fn remove_phone(
        &self,
        user: &User,
        id: Uuid,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let event = ActivityEvent::new(
            Some(user.id),
            Action::ProfileChanged,
            client,
            serde_json::json!({ "fields": ["phone_numbers"], "removed": id }),
            now,
        );
        self.store.remove_phone(user.id, id, &event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stored_in_e164_and_shown_internationally() {
        assert_eq!(parse_phone("+41 44 668 18 00").unwrap(), "+41446681800");
        assert_eq!(parse_phone("0041 (44) 668-18-00").unwrap(), "+41446681800");
        assert_eq!(parse_phone(" +34 912 34 56 78 ").unwrap(), "+34912345678");
        assert_eq!(display_phone("+41446681800"), "+41 44 668 18 00");
        for bad in [
            "",
            "044 668 18 00",
            "+41 12",
            "+999 1234567",
            "call me",
            "+41 44 668 18 00 ext 1234567890123456789012",
        ] {
            assert!(parse_phone(bad).is_err(), "{bad}");
        }
    }
}
