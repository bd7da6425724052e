//! `/api/v1/me/security` and the organization administrators' unlock.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::me::ApiJson;
use super::{AdminCaller, ApiError, Caller, Problem};
use crate::AppState;
use crate::accounts::{SecurityError, SecuritySettings};

/// The same field names as the security settings page's form.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// Failed attempts in a row after which the password is refused until unlocked.
    pub lockout_threshold: i32,
    /// Mail me at every successful sign-in.
    pub notify_on_success: bool,
    /// Mail me when a sign-in to my account fails.
    pub notify_on_failure: bool,
}

impl From<SecuritySettings> for Security {
    fn from(s: SecuritySettings) -> Self {
        Self {
            lockout_threshold: s.lockout_threshold,
            notify_on_success: s.notify_on_success,
            notify_on_failure: s.notify_on_failure,
        }
    }
}

/// The caller's security settings.
#[utoipa::path(get, path = "/api/v1/me/security", tag = "me", responses(
    (status = 200, body = Security),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn show(caller: Caller) -> Json<Security> {
    Json(SecuritySettings::of(&caller.me.user).into())
}

/// Replaces the caller's security settings; the threshold must be within the server's bounds.
#[utoipa::path(put, path = "/api/v1/me/security", tag = "me", request_body = Security, responses(
    (status = 200, body = Security),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Security>,
) -> Result<Json<Security>, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let settings = SecuritySettings {
        lockout_threshold: body.lockout_threshold,
        notify_on_success: body.notify_on_success,
        notify_on_failure: body.notify_on_failure,
    };
    let user = state
        .accounts
        .update_security(&caller.me.user, settings, &caller.client, state.clock.now())
        .await
        .map_err(|e| match e {
            SecurityError::OutOfRange(range) => ApiError::Invalid(format!("`{range}`")),
            SecurityError::Store(e) => e.into(),
        })?;
    Ok(Json(SecuritySettings::of(&user).into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// `true`: only the members whose account is locked.
    pub locked: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub locked: bool,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<MemberView>,
}

/// The organization's members (for its admins and legal representatives).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/members", tag = "organizations",
    params(("org" = Uuid, Path), MembersQuery),
    responses(
        (status = 200, body = MemberList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn members(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(org): Path<String>,
    Query(query): Query<MembersQuery>,
) -> Result<Json<MemberList>, ApiError> {
    let org: Uuid = org.parse().map_err(|_| ApiError::NotFound)?;
    state.orgs.require_admin(org, caller.me.user.id).await?;
    let members = state
        .orgs
        .members_by_id(org)
        .await?
        .into_iter()
        .filter(|m| query.locked.is_none_or(|locked| m.locked == locked))
        .map(|m| MemberView {
            id: m.user_id,
            email: m.email,
            name: m.name,
            role: m.role.as_str().to_string(),
            locked: m.locked,
        })
        .collect();
    Ok(Json(MemberList { members }))
}

/// Unlocks a member's account (for the organization's admins and legal representatives);
/// older unlock links of that account stop working.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/members/{user}/unlock", tag = "organizations",
    params(("org" = Uuid, Path), ("user" = Uuid, Path)),
    responses(
        (status = 204, description = "Unlocked (or was not locked)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unlock(
    State(state): State<AppState>,
    caller: AdminCaller,
    headers: HeaderMap,
    Path((org, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let org: Uuid = org.parse().map_err(|_| ApiError::NotFound)?;
    let user: Uuid = user.parse().map_err(|_| ApiError::NotFound)?;
    let admin = caller.me.user.id;
    state.orgs.require_admin_over(org, admin, user).await?;
    state
        .accounts
        .unlock_by_admin(user, Some((admin, org)), &caller.client, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
