//! The texts of Gotthard's mails, in the recipient's language (their chosen locale, else
//! English). Each mail is a subject and a body from the locale files, as text and HTML.

use std::sync::Arc;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::NewMail;
use crate::audit::{ClientInfo, DeviceLabel};
use crate::i18n::I18n;
use crate::store::account::User;

/// "Your password was changed", with when, from where, and the link to the sessions page.
pub fn password_changed(
    i18n: &Arc<I18n>,
    user: &User,
    client: &ClientInfo,
    issuer: &str,
    now: OffsetDateTime,
) -> NewMail {
    let link = format!("{issuer}/account/sessions");
    compose(i18n, user, "mail-password-changed", client, &link, now)
}

/// "Your account was deleted", to the address it had; the link is the sign-in page (a new
/// account may be made with the address).
pub fn account_deleted(
    i18n: &Arc<I18n>,
    user: &User,
    client: &ClientInfo,
    issuer: &str,
    now: OffsetDateTime,
) -> NewMail {
    let link = format!("{issuer}/login");
    compose(i18n, user, "mail-account-deleted", client, &link, now)
}

/// "Your account was locked", with the unlock link.
pub fn account_locked(
    i18n: &Arc<I18n>,
    user: &User,
    client: &ClientInfo,
    unlock_link: &str,
    now: OffsetDateTime,
) -> NewMail {
    compose(i18n, user, "mail-account-locked", client, unlock_link, now)
}

/// "An administrator unlocked your account", with where to see what happened.
pub fn account_unlocked(
    i18n: &Arc<I18n>,
    user: &User,
    client: &ClientInfo,
    activity_link: &str,
    now: OffsetDateTime,
) -> NewMail {
    compose(
        i18n,
        user,
        "mail-account-unlocked",
        client,
        activity_link,
        now,
    )
}

/// The unlock link the owner asked for at `/unlock`.
pub fn unlock_link(
    i18n: &Arc<I18n>,
    user: &User,
    client: &ClientInfo,
    unlock_link: &str,
    now: OffsetDateTime,
) -> NewMail {
    compose(i18n, user, "mail-unlock-link", client, unlock_link, now)
}

/// "Someone signed in to your account" (the owner asked for it).
pub fn login_succeeded(
    i18n: &Arc<I18n>,
    user: &User,
    client: &ClientInfo,
    issuer: &str,
    now: OffsetDateTime,
) -> NewMail {
    let link = format!("{issuer}/account/sessions");
    compose(i18n, user, "mail-login-succeeded", client, &link, now)
}

/// "A sign-in to your account failed" (the owner asked for it; coalesced).
pub fn login_failed(
    i18n: &Arc<I18n>,
    user: &User,
    client: &ClientInfo,
    issuer: &str,
    now: OffsetDateTime,
) -> NewMail {
    let link = format!("{issuer}/account/activity");
    compose(i18n, user, "mail-login-failed", client, &link, now)
}

/// `<key>-subject` and `<key>-body` with the time, address, device and link filled in.
fn compose(
    i18n: &Arc<I18n>,
    user: &User,
    key: &str,
    client: &ClientInfo,
    link: &str,
    now: OffsetDateTime,
) -> NewMail {
    let link = [("link", link.to_string())];
    compose_to(i18n, user, &user.email, key, client, &link, now)
}

/// [`compose`] to `recipient` (an address of the account not yet its own), with the
/// arguments `extra` besides the time, address and device.
pub(super) fn compose_to(
    i18n: &Arc<I18n>,
    user: &User,
    recipient: &str,
    key: &str,
    client: &ClientInfo,
    extra: &[(&str, String)],
    now: OffsetDateTime,
) -> NewMail {
    let tr = i18n.negotiate(user.locale.as_deref());
    let device = DeviceLabel::from_user_agent(&client.user_agent);
    let mut args = vec![
        ("time", now.format(&Rfc3339).unwrap_or_default()),
        ("ip", client.ip.clone()),
        ("device", device.summary()),
    ];
    args.extend_from_slice(extra);
    let text = tr.t_with(&format!("{key}-body"), &args);
    let html = format!(
        "<!doctype html><html lang=\"{}\"><body><p>{}</p></body></html>",
        tr.lang(),
        escape(&text).replace('\n', "<br>")
    );
    NewMail {
        id: Uuid::now_v7(),
        recipient: recipient.to_string(),
        subject: tr.t(&format!("{key}-subject")),
        body_text: text,
        body_html: Some(html),
        created_at: now,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
