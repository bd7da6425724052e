//! `/api/v1/me/export`: everything Gotthard holds about the caller, as one JSON file (GDPR
//! art. 20, data portability): profile, phone numbers, organizations, devices, the apps
//! allowed, and the activity (up to 100 000 events, newest first).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::activity::EventView;
use super::me::{Me, me_view};
use super::phones::PhoneView;
use super::sessions::SessionView;
use super::{ApiError, Caller, Problem};
use crate::AppState;
use crate::audit::{ActivityFilter, EXPORT_CAP, EventOwner};

#[derive(Serialize, ToSchema)]
pub struct DataExport {
    /// When the file was made.
    #[serde(with = "time::serde::rfc3339")]
    pub exported_at: OffsetDateTime,
    pub profile: Me,
    pub email_verified: bool,
    pub phones: Vec<PhoneView>,
    pub security: SecurityExport,
    pub sessions: Vec<SessionView>,
    pub consents: Vec<crate::oidc::Consent>,
    pub activity: Vec<EventView>,
}

#[derive(Serialize, ToSchema)]
pub struct SecurityExport {
    pub lockout_threshold: i32,
    pub notify_on_success: bool,
    pub notify_on_failure: bool,
    pub has_password: bool,
}

/// Downloads the caller's data as a JSON file.
#[utoipa::path(get, path = "/api/v1/me/export", tag = "me", responses(
    (status = 200, body = DataExport, content_type = "application/json"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn export(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let user = &caller.me.user;
    let now = state.clock.now();
    let sessions = state.sessions.list(user.id, now).await?;
    let activity = state
        .activity
        .all(
            EventOwner::User(user.id),
            &ActivityFilter::default(),
            EXPORT_CAP,
        )
        .await?;
    let data = DataExport {
        exported_at: now,
        profile: me_view(&state, user).await?,
        email_verified: user.email_verified,
        phones: state
            .accounts
            .phones(user)
            .await?
            .into_iter()
            .map(PhoneView::from)
            .collect(),
        security: SecurityExport {
            lockout_threshold: user.lockout_threshold,
            notify_on_success: user.notify_on_success,
            notify_on_failure: user.notify_on_failure,
            has_password: user.password_hash.is_some(),
        },
        sessions: sessions
            .iter()
            .map(|s| SessionView::new(s, caller.me.session.id))
            .collect(),
        consents: state.provider.consents(user).await?,
        activity: activity.iter().map(EventView::from).collect(),
    };
    let body = serde_json::to_vec_pretty(&data).map_err(|e| ApiError::Internal(e.to_string()))?;
    let date = now.date();
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"gotthard-data-{date}.json\""),
            ),
        ],
        body,
    )
        .into_response())
}
