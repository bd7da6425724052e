//! The texts of Gotthard's mails, in the recipient's language.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::NewMail;
use crate::accounts::User;
use crate::audit::ClientInfo;
use crate::sessions::DeviceLabel;
use crate::web::I18n;

/// "Your password was changed", with when, from where, and the link to the sessions page.
pub fn password_changed(
    i18n: &std::sync::Arc<I18n>,
    user: &User,
    client: &ClientInfo,
    issuer: &str,
    now: OffsetDateTime,
) -> NewMail {
    let tr = i18n.negotiate(user.locale.as_deref());
    let device = DeviceLabel::from_user_agent(&client.user_agent);
    let args = [
        ("time", now.format(&Rfc3339).unwrap_or_default()),
        ("ip", client.ip.clone()),
        ("device", device.summary()),
        ("link", format!("{issuer}/account/sessions")),
    ];
    let text = tr.t_with("mail-password-changed-body", &args);
    let html = format!(
        "<!doctype html><html lang=\"{}\"><body><p>{}</p></body></html>",
        tr.lang(),
        escape(&text).replace('\n', "<br>")
    );
    NewMail {
        id: Uuid::now_v7(),
        recipient: user.email.clone(),
        subject: tr.t("mail-password-changed-subject"),
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
