//! E-mail addresses as account names: normalized once, compared exactly.

/// Longest address accepted (RFC 5321 §4.5.3.1.3 path limit minus the brackets).
pub const MAX_EMAIL_LEN: usize = 254;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailProblem {
    #[error("empty")]
    Empty,
    #[error("too long")]
    TooLong,
    #[error("malformed")]
    Malformed,
}

/// Trims the address and lower-cases its domain; the local part keeps the spelling the user
/// gave (it is what mail is sent to). Lookups and uniqueness ignore case on the whole address
/// (the store's `email_key`), as users expect when they type `Ada@` once and `ada@` later.
pub fn normalize_email(raw: &str) -> Result<String, EmailProblem> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(EmailProblem::Empty);
    }
    if trimmed.len() > MAX_EMAIL_LEN {
        return Err(EmailProblem::TooLong);
    }
    let (local, domain) = trimmed.rsplit_once('@').ok_or(EmailProblem::Malformed)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && local
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"<>()[]\\,;:\"".contains(c));
    let domain = domain.to_lowercase();
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !local_ok || !domain_ok {
        return Err(EmailProblem::Malformed);
    }
    Ok(format!("{local}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases_the_domain_only() {
        assert_eq!(
            normalize_email("  Ada.Lovelace@Example.COM \n").unwrap(),
            "Ada.Lovelace@example.com"
        );
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        assert_eq!(normalize_email("   "), Err(EmailProblem::Empty));
        assert_eq!(normalize_email("no-at-sign"), Err(EmailProblem::Malformed));
        assert_eq!(normalize_email("a@"), Err(EmailProblem::Malformed));
        assert_eq!(normalize_email("@b.c"), Err(EmailProblem::Malformed));
        assert_eq!(normalize_email("a b@c.d"), Err(EmailProblem::Malformed));
        assert_eq!(normalize_email("a@b..c"), Err(EmailProblem::Malformed));
        let long = format!("{}@example.com", "a".repeat(10_000));
        assert_eq!(normalize_email(&long), Err(EmailProblem::TooLong));
    }
}
