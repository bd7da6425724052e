//! `POST /api/v1/me/email`: asks for a new login address, confirmed by the current password.
//! The address changes only once the link mailed to it is opened.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::me::ApiJson;
use super::{ApiError, Caller, Problem};
use crate::AppState;
use crate::accounts::{EmailChangeError, ReauthError};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChangeRequest {
    pub new_email: String,
    pub current_password: String,
}

#[derive(Serialize, ToSchema)]
pub struct EmailPending {
    /// The address the confirmation link was mailed to; until it is opened, the current
    /// address keeps signing in.
    pub pending: String,
    /// When the link stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Asks for a new login address: the current password confirms it (a wrong one counts
/// towards the lockout), and a single-use link valid 24 hours goes to the new address. Once
/// it is opened, the old address gets a notice with a link that undoes the change.
#[utoipa::path(post, path = "/api/v1/me/email", tag = "me", request_body = EmailChangeRequest, responses(
    (status = 202, body = EmailPending),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
))]
pub async fn request(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<EmailChangeRequest>,
) -> Result<Response, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let pending = state
        .accounts
        .request_email_change(
            &caller.me.user,
            &body.new_email,
            &body.current_password,
            &caller.client,
            state.clock.now(),
        )
        .await?;
    let answer = EmailPending {
        pending: pending.new_email,
        expires_at: pending.expires_at,
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

impl From<EmailChangeError> for ApiError {
    fn from(err: EmailChangeError) -> Self {
        match err {
            EmailChangeError::Invalid(problem) => {
                ApiError::Invalid(format!("`new_email`: the address is {problem}"))
            }
            EmailChangeError::SameAddress => {
                ApiError::Invalid("`new_email` is the account's address already".into())
            }
            EmailChangeError::Taken => {
                ApiError::Conflict("Another account uses this e-mail address.".into())
            }
            EmailChangeError::OldAddressTaken => ApiError::Conflict(
                "Another account uses the old e-mail address now; it cannot be restored.".into(),
            ),
            EmailChangeError::Reauth(ReauthError::TooMany(wait)) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                ApiError::RateLimited(secs.max(1))
            }
            EmailChangeError::Reauth(ReauthError::Login(e)) => e.into(),
            EmailChangeError::LinkUnusable(_) => ApiError::Rejected(
                StatusCode::GONE,
                "This link was already used, has expired or is not valid.".into(),
            ),
            EmailChangeError::Store(e) => e.into(),
        }
    }
}
