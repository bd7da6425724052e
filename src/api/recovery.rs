//! `/api/v1/password/forgot` and `/api/v1/password/reset`: the forgotten password for apps
//! that draw their own forms. Unauthenticated (the mailed token is the proof), limited per
//! network like the pages; the request answers the same for every address.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::me::ApiJson;
use super::{ApiError, Problem};
use crate::AppState;
use crate::accounts::{LinkProblem, MAX_EMAIL_LEN, PasswordProblem, ResetError};
use crate::audit::ClientInfo;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct ResetRequested {
    /// The same words for every address, with an account or not.
    pub message: String,
}

/// Mails a link to choose a new password when the address has an account with a password
/// (an account that signs in with its organization's SSO is told so instead). The answer is
/// the same in every case; mails per account and requests per network are limited.
#[utoipa::path(post, path = "/api/v1/password/forgot", tag = "password", request_body = ForgotPassword, responses(
    (status = 202, body = ResetRequested),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
))]
pub async fn forgot(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<ForgotPassword>,
) -> Result<Response, ApiError> {
    if body.email.len() > MAX_EMAIL_LEN {
        return Err(ApiError::Invalid(format!(
            "`email` is longer than {MAX_EMAIL_LEN} bytes"
        )));
    }
    state
        .accounts
        .request_password_reset(&body.email, &client, state.clock.now())
        .await?;
    let minutes = state.config.accounts.password_reset_ttl_minutes;
    let answer = ResetRequested {
        message: format!(
            "If an account exists for this address, we sent it a link to choose a new \
             password; it works once, for {minutes} minutes."
        ),
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// The `token` of the mailed link.
    pub token: String,
    pub new_password: String,
}

/// Sets a new password with the mailed link's token (it works once): every session of the
/// account ends, its refresh tokens stop working, a locked account is unlocked, and the owner
/// is mailed.
#[utoipa::path(post, path = "/api/v1/password/reset", tag = "password", request_body = ResetPassword, responses(
    (status = 204, description = "The new password is set"),
    (status = 410, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
))]
pub async fn reset(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<ResetPassword>,
) -> Result<Response, ApiError> {
    state
        .accounts
        .reset_password(&body.token, &body.new_password, &client, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

impl From<ResetError> for ApiError {
    fn from(err: ResetError) -> Self {
        match err {
            ResetError::LinkUnusable(problem) => {
                let why = match problem {
                    LinkProblem::Used => "was already used (each link works once)",
                    LinkProblem::Expired => "has expired or was replaced by a newer one",
                    LinkProblem::Unknown => "is not valid",
                };
                ApiError::Rejected(
                    StatusCode::GONE,
                    format!("This link {why}; ask for a new one at /api/v1/password/forgot."),
                )
            }
            ResetError::WeakPassword(problem) => ApiError::Invalid(match problem {
                PasswordProblem::TooShort { min } => {
                    format!("`new_password` must have at least {min} characters")
                }
                other => format!("`new_password` is {other}"),
            }),
            ResetError::Hash(e) => e.into(),
            ResetError::Store(e) => e.into(),
        }
    }
}
