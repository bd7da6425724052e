//! The mails of account recovery and of the login address's change, in the owner's language:
//! the forgotten-password link (or, for an SSO-only account, where to sign in instead), the
//! notice that the password was reset, the confirmation link sent to a new address, and the
//! notice with the undo link sent to the old one.

use std::sync::Arc;

use time::OffsetDateTime;

use super::NewMail;
use super::templates::compose_to;
use crate::audit::ClientInfo;
use crate::i18n::I18n;
use crate::store::account::User;

/// The link that sets a new password; it works once, for `ttl`.
pub fn password_reset_link(
    i18n: &Arc<I18n>,
    user: &User,
    client: &ClientInfo,
    link: &str,
    ttl: time::Duration,
    now: OffsetDateTime,
) -> NewMail {
    let extra = [
        ("link", link.to_string()),
        ("minutes", ttl.whole_minutes().to_string()),
    ];
    compose_to(
        i18n,
        user,
        &user.email,
        "mail-password-reset",
        client,
        &extra,
        now,
    )
}

/// To an account without a password, linked to `organization`'s SSO: no link, but where its
/// owner signs in.
pub fn password_reset_sso(
    i18n: &Arc<I18n>,
    user: &User,
    client: &ClientInfo,
    organization: &str,
    issuer: &str,
    now: OffsetDateTime,
) -> NewMail {
    let extra = [
        ("organization", organization.to_string()),
        ("link", format!("{issuer}/login/sso")),
    ];
    compose_to(
        i18n,
        user,
        &user.email,
        "mail-password-reset-sso",
        client,
        &extra,
        now,
    )
}

/// "Your password was reset": every device signed out, the account unlocked.
pub fn password_reset_done(
    i18n: &Arc<I18n>,
    user: &User,
    client: &ClientInfo,
    issuer: &str,
    now: OffsetDateTime,
) -> NewMail {
    let extra = [("link", format!("{issuer}/account/activity"))];
    compose_to(
        i18n,
        user,
        &user.email,
        "mail-password-reset-done",
        client,
        &extra,
        now,
    )
}

/// To the new address: the link that makes it the login address; it works once, for `ttl`.
pub fn email_change_confirm(
    i18n: &Arc<I18n>,
    user: &User,
    new_email: &str,
    client: &ClientInfo,
    link: &str,
    ttl: time::Duration,
    now: OffsetDateTime,
) -> NewMail {
    let extra = [
        ("link", link.to_string()),
        ("hours", ttl.whole_hours().to_string()),
    ];
    compose_to(
        i18n,
        user,
        new_email,
        "mail-email-change-confirm",
        client,
        &extra,
        now,
    )
}

/// To the old address (`user` as it was): the change is made; the undo link restores it.
pub fn email_changed(
    i18n: &Arc<I18n>,
    user: &User,
    new_email: &str,
    client: &ClientInfo,
    undo_link: &str,
    ttl: time::Duration,
    now: OffsetDateTime,
) -> NewMail {
    let extra = [
        ("link", undo_link.to_string()),
        ("new_email", new_email.to_string()),
        ("days", ttl.whole_days().to_string()),
    ];
    compose_to(
        i18n,
        user,
        &user.email,
        "mail-email-changed",
        client,
        &extra,
        now,
    )
}
