//! `/api/v1/me/phones`: the phone numbers of the caller's profile.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::me::ApiJson;
use super::{ApiError, Caller, Problem};
use crate::AppState;
use crate::accounts::{PhoneError, PhoneNumber, VERIFICATION_UNAVAILABLE, display_phone};

#[derive(Serialize, ToSchema)]
pub struct PhoneView {
    pub id: Uuid,
    pub label: String,
    /// E.164, e.g. `+41446681800`.
    pub number: String,
    /// International format for people, e.g. `+41 44 668 18 00`.
    pub display: String,
    /// Always `false` for now: there is no SMS provider to verify with.
    pub verified: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<PhoneNumber> for PhoneView {
    fn from(p: PhoneNumber) -> Self {
        Self {
            id: p.id,
            display: display_phone(&p.number),
            label: p.label,
            number: p.number,
            verified: p.verified_at.is_some(),
            created_at: p.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PhoneList {
    pub phones: Vec<PhoneView>,
    /// Why numbers stay unverified (and out of the `phone_number` claim).
    pub verification: &'static str,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneAdd {
    /// "Mobile", "Office", … (1–40 characters).
    pub label: String,
    /// In international format: `+` (or `00`) and the country code.
    pub number: String,
}

/// The caller's phone numbers.
#[utoipa::path(get, path = "/api/v1/me/phones", tag = "me", responses(
    (status = 200, body = PhoneList),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PhoneList>, ApiError> {
    let phones = state.accounts.phones(&caller.me.user).await?;
    Ok(Json(PhoneList {
        phones: phones.into_iter().map(PhoneView::from).collect(),
        verification: VERIFICATION_UNAVAILABLE,
    }))
}

/// Adds a phone number (stored in E.164, unverified).
#[utoipa::path(post, path = "/api/v1/me/phones", tag = "me", request_body = PhoneAdd, responses(
    (status = 201, body = PhoneView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PhoneAdd>,
) -> Result<Response, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let phone = state
        .accounts
        .add_phone(
            &caller.me.user,
            &body.label,
            &body.number,
            &caller.client,
            state.clock.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(PhoneView::from(phone))).into_response())
}

/// Removes one of the caller's phone numbers.
#[utoipa::path(delete, path = "/api/v1/me/phones/{id}", tag = "me", responses(
    (status = 204, description = "Removed"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    let removed = state
        .accounts
        .remove_phone(&caller.me.user, id, &caller.client, state.clock.now())
        .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

impl From<PhoneError> for ApiError {
    fn from(err: PhoneError) -> Self {
        match err {
            PhoneError::Malformed => ApiError::Invalid(
                "`number` must be a phone number in international format: + (or 00) and the country code"
                    .into(),
            ),
            PhoneError::BadLabel => ApiError::Invalid(format!("`label`: {err}")),
            PhoneError::TooMany => ApiError::Conflict(format!("{err}; remove one first")),
            PhoneError::Duplicate => ApiError::Conflict("This number is already on the profile.".into()),
            PhoneError::Store(e) => e.into(),
        }
    }
}
