//! `/api/v1/me/sessions`: the devices signed in to the caller's account.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AdminCaller, ApiError, Caller, Problem};
use crate::AppState;
use crate::sessions::{DeviceLabel, EndedBy, Session};

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub device: DeviceLabel,
    pub user_agent: String,
    /// The address of the last request seen.
    pub ip: String,
    /// `password` or `sso`.
    pub signed_in_with: String,
    /// With `sso`: the organization whose Entra ID tenant signed the session in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sso_org_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Written at most once per `sessions.touch_interval_secs`.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// The session making this request ("this device").
    pub current: bool,
}

impl SessionView {
    pub fn new(session: &Session, current: Uuid) -> Self {
        Self {
            id: session.id,
            device: DeviceLabel::from_user_agent(&session.user_agent),
            user_agent: session.user_agent.clone(),
            ip: session.ip.clone(),
            signed_in_with: session.method.clone(),
            sso_org_id: session.sso_org_id,
            created_at: session.created_at,
            last_seen_at: session.last_seen_at,
            current: session.id == current,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

#[derive(Serialize, ToSchema)]
pub struct EndedCount {
    pub ended: u64,
}

/// Lists the caller's active sessions, newest first.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "sessions", responses(
    (status = 200, body = SessionList),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SessionList>, ApiError> {
    let me = &caller.me;
    let sessions = state
        .sessions
        .list(me.user.id, state.clock.now())
        .await?
        .iter()
        .map(|s| SessionView::new(s, me.session.id))
        .collect();
    Ok(Json(SessionList { sessions }))
}

/// Ends one of the caller's sessions at once. Another user's session id answers 404.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    let me = &caller.me;
    let ended = state
        .sessions
        .end(
            me.user.id,
            id,
            EndedBy::Owner,
            &caller.client,
            state.clock.now(),
        )
        .await?;
    if ended {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound)
    }
}

/// Ends every session of the caller except the one making the request.
#[utoipa::path(post, path = "/api/v1/me/sessions/revoke-others", tag = "sessions", responses(
    (status = 200, body = EndedCount),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn end_others(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<EndedCount>, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let me = &caller.me;
    let ended = state
        .sessions
        .end_others(me.user.id, me.session.id, &caller.client, state.clock.now())
        .await?;
    Ok(Json(EndedCount { ended }))
}

/// Path segments of the organization routes; ids that do not parse are 404s.
fn ids(values: &[&str]) -> Result<Vec<Uuid>, ApiError> {
    values
        .iter()
        .map(|v| v.parse().map_err(|_| ApiError::NotFound))
        .collect()
}

/// An organization administrator lists the sessions of one of its members.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/members/{user}/sessions", tag = "sessions",
    params(("org" = Uuid, Path), ("user" = Uuid, Path)),
    responses(
        (status = 200, body = SessionList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_of_member(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path((org, user)): Path<(String, String)>,
) -> Result<Json<SessionList>, ApiError> {
    let [org, user] = ids(&[&org, &user])?[..] else {
        return Err(ApiError::NotFound);
    };
    state
        .orgs
        .require_admin_over(org, caller.me.user.id, user)
        .await?;
    let sessions = state
        .sessions
        .list_for_org(org, user, state.clock.now())
        .await?
        .iter()
        .map(|s| SessionView::new(s, caller.me.session.id))
        .collect();
    Ok(Json(SessionList { sessions }))
}

/// An organization administrator ends one session of one of its members.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/members/{user}/sessions/{id}", tag = "sessions",
    params(("org" = Uuid, Path), ("user" = Uuid, Path), ("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end_of_member(
    State(state): State<AppState>,
    caller: AdminCaller,
    headers: HeaderMap,
    Path((org, user, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let [org, user, id] = ids(&[&org, &user, &id])?[..] else {
        return Err(ApiError::NotFound);
    };
    let admin = caller.me.user.id;
    state.orgs.require_admin_over(org, admin, user).await?;
    let ended = state
        .sessions
        .end_for_org(org, user, id, admin, &caller.client, state.clock.now())
        .await?;
    if ended {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound)
    }
}
