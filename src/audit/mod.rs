//! Activity events: what happened to an account, when, from where. Never secrets.
//! Recorded by the services that act; read back page by page, newest first. Where a request
//! came from is a `ClientInfo`, shown as the `DeviceLabel` its User-Agent names.

mod device;
mod query;

use time::OffsetDateTime;
use uuid::Uuid;

pub use device::DeviceLabel;
pub use query::{
    ActivityLog, ActivityPage, ClientSummary, EXPORT_CAP, MAX_PAGE, Retention, SUMMARY_WINDOW, csv,
    csv_cell,
};

pub use crate::store::activity::{
    ActivityCursor, ActivityEvent, ActivityFilter, AddressCount, EventKind, EventOwner, HourCount,
};

/// Where a request came from, as recorded in events and sessions.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

/// Longest User-Agent kept; the rest is cut (it is shown, never parsed for decisions).
const MAX_USER_AGENT_CHARS: usize = 512;

impl ClientInfo {
    pub fn new(ip: impl Into<String>, user_agent: &str) -> Self {
        Self {
            ip: ip.into(),
            user_agent: user_agent.chars().take(MAX_USER_AGENT_CHARS).collect(),
        }
    }
}

/// The kinds of event; their string form is stored and filtered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    AccountCreated,
    LoginSucceeded,
    LoginFailed,
    Logout,
    SessionEnded,
    ReauthenticationFailed,
    PasswordChanged,
    ProfileChanged,
    AccountLocked,
    AccountUnlocked,
    SecuritySettingsChanged,
    AlertSent,
    TokenIssued,
    TokenRevoked,
    TokenReuseDetected,
    ConsentGranted,
    ConsentRevoked,
    /// An Entra ID identity was linked to the account (SSO).
    SsoLinked,
    /// An organization's SSO connection was set or removed (recorded for the admin who did it).
    SsoChanged,
    /// An organization's e-mail domain was added, verified, withdrawn or removed.
    DomainChanged,
    /// A request named a registered OAuth client but failed its authentication (wrong
    /// secret, bad, expired or replayed client assertion, another method than registered).
    ClientAuthFailed,
    /// A forgotten-password mail was sent (the link, or the SSO-only notice).
    PasswordResetRequested,
    /// A new password was set through a forgotten-password link.
    PasswordReset,
    /// A new login address was asked for; its confirmation link was mailed to it.
    EmailChangeRequested,
    /// The login address changed (its confirmation link was opened).
    EmailChanged,
    /// A change of the login address was undone from the old address.
    EmailChangeUndone,
    /// The owner deleted the account (the event stays, without personal data).
    AccountDeleted,
}

impl Action {
    /// Every action, for filter lists.
    pub const ALL: [Action; 27] = [
        Action::AccountCreated,
        Action::LoginSucceeded,
        Action::LoginFailed,
        Action::Logout,
        Action::SessionEnded,
        Action::ReauthenticationFailed,
        Action::PasswordChanged,
        Action::ProfileChanged,
        Action::AccountLocked,
        Action::AccountUnlocked,
        Action::SecuritySettingsChanged,
        Action::AlertSent,
        Action::TokenIssued,
        Action::TokenRevoked,
        Action::TokenReuseDetected,
        Action::ConsentGranted,
        Action::ConsentRevoked,
        Action::SsoLinked,
        Action::SsoChanged,
        Action::DomainChanged,
        Action::ClientAuthFailed,
        Action::PasswordResetRequested,
        Action::PasswordReset,
        Action::EmailChangeRequested,
        Action::EmailChanged,
        Action::EmailChangeUndone,
        Action::AccountDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::AccountCreated => "account.created",
            Action::LoginSucceeded => "login.succeeded",
            Action::LoginFailed => "login.failed",
            Action::Logout => "logout",
            Action::SessionEnded => "session.ended",
            Action::ReauthenticationFailed => "reauthentication.failed",
            Action::PasswordChanged => "password.changed",
            Action::ProfileChanged => "profile.changed",
            Action::AccountLocked => "account.locked",
            Action::AccountUnlocked => "account.unlocked",
            Action::SecuritySettingsChanged => "security.changed",
            Action::AlertSent => "alert.sent",
            Action::TokenIssued => "token.issued",
            Action::TokenRevoked => "token.revoked",
            Action::TokenReuseDetected => "token.reuse_detected",
            Action::ConsentGranted => "consent.granted",
            Action::ConsentRevoked => "consent.revoked",
            Action::SsoLinked => "sso.linked",
            Action::SsoChanged => "sso.changed",
            Action::DomainChanged => "domain.changed",
            Action::ClientAuthFailed => "client.auth_failed",
            Action::AccountDeleted => "account.deleted",
            Action::PasswordResetRequested => "password.reset_requested",
            Action::PasswordReset => "password.reset",
            Action::EmailChangeRequested => "email.change_requested",
            Action::EmailChanged => "email.changed",
            Action::EmailChangeUndone => "email.change_undone",
        }
    }
}

/// Gotthard itself, as opposed to a relying application.
pub const PRODUCT_ACCOUNT: &str = "account";

// The record lives with the store that writes it; it is built here, where actions are named.
impl ActivityEvent {
    /// The record that an alert mail was queued for the user.
    pub fn alert_sent(user_id: Uuid, kind: &str, client: &ClientInfo, now: OffsetDateTime) -> Self {
        Self::new(
            Some(user_id),
            Action::AlertSent,
            client,
            serde_json::json!({ "kind": kind }),
            now,
        )
    }

    /// The same event under a relying application's name (the activity filter's product).
    pub fn for_product(mut self, product: &str) -> Self {
        self.product = product.to_string();
        self
    }

    /// The same event filed under an OAuth client (its id, and its name as the product).
    pub fn for_client(mut self, client_id: &str, name: &str) -> Self {
        self.client_id = Some(client_id.to_string());
        self.for_product(name)
    }

    pub fn new(
        user_id: Option<Uuid>,
        action: Action,
        client: &ClientInfo,
        details: serde_json::Value,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            user_id,
            actor_id: None,
            action: action.as_str().to_string(),
            product: PRODUCT_ACCOUNT.to_string(),
            client_id: None,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            details: details.to_string(),
            created_at: now,
        }
    }
}
