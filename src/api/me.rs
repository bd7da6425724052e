//! `/api/v1/me`: the caller's profile, password and account.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiError, Caller, Problem};
use crate::AppState;
use crate::accounts::ProfileChange;
use crate::http::{SESSION_COOKIE, csrf};

/// A JSON body whose rejections are problem details naming what is wrong. A string holding a
/// NUL (`\u0000`) is refused (422): no field admits one, and PostgreSQL cannot store it.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // As `Json` does: the media type first (415), then the body.
        if !json_content_type(req.headers()) {
            return Err(ApiError::Rejected(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected request with `Content-Type: application/json`".into(),
            ));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::Rejected(rejection.status(), rejection.body_text()))?;
        if holds_nul(&body) {
            return Err(ApiError::Invalid(
                "A string of the body holds a NUL character (\\u0000), which no field admits."
                    .into(),
            ));
        }
        Json::<T>::from_bytes(&body)
            .map(|Json(value)| ApiJson(value))
            .map_err(|rejection| ApiError::Rejected(rejection.status(), rejection.body_text()))
    }
}

/// `application/json` or `application/…+json`, with any parameters.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// Whether JSON text holds a NUL in a string: `\u0000` after an odd number of backslashes
/// (a raw NUL byte is not JSON at all, and the parser refuses it).
fn holds_nul(json: &[u8]) -> bool {
    json.windows(6).enumerate().any(|(at, window)| {
        window[1..].eq_ignore_ascii_case(b"u0000")
            && window[0] == b'\\'
            && json[..=at]
                .iter()
                .rev()
                .take_while(|b| **b == b'\\')
                .count()
                % 2
                == 1
    })
}

#[derive(Serialize, ToSchema)]
pub struct Membership {
    pub id: Uuid,
    pub name: String,
    /// `legal-representative`, `admin` or `member`.
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    /// The display name: first and last name joined.
    pub name: String,
    pub given_name: String,
    pub family_name: String,
    /// The picture (256 px): the uploaded avatar, else the initials image. Immutable URLs.
    pub picture: String,
    /// `en`, `es`, `fr`, or absent (the browser's language).
    pub locale: Option<String>,
    /// An IANA time zone (`Europe/Zurich`), or absent (the browser's, else UTC).
    pub time_zone: Option<String>,
    /// Administrator of this Gotthard instance.
    pub is_admin: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub organizations: Vec<Membership>,
}

/// The caller's profile and organizations.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", responses(
    (status = 200, body = Me),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn show(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    me_view(&state, &caller.me.user).await.map(Json)
}

pub(super) async fn me_view(
    state: &AppState,
    user: &crate::accounts::User,
) -> Result<Me, ApiError> {
    let organizations = state
        .orgs
        .of_user(user.id)
        .await?
        .into_iter()
        .map(|(org, role)| Membership {
            id: org.id,
            name: org.name,
            role: role.as_str().to_string(),
        })
        .collect();
    Ok(Me {
        id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
        given_name: user.given_name.clone(),
        family_name: user.family_name.clone(),
        picture: state.avatars.url_for(user, crate::avatars::PICTURE_SIZE),
        locale: user.locale.clone(),
        time_zone: user.time_zone.clone(),
        is_admin: user.is_admin,
        created_at: user.created_at,
        organizations,
    })
}

/// Distinguishes a field set to `null` from a field left out.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// First name (at most 100 characters).
    pub given_name: Option<String>,
    /// Last name (at most 100 characters).
    pub family_name: Option<String>,
    /// `en`, `es`, `fr`, or `null` for the browser's language.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub locale: Option<Option<String>>,
    /// An IANA time zone name, or `null` for the browser's.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub time_zone: Option<Option<String>>,
    /// Refused: the login e-mail changes through `POST /api/v1/me/email`, confirmed by a
    /// link to the new address.
    #[schema(ignore)]
    pub email: Option<serde::de::IgnoredAny>,
    /// Refused with `email`.
    #[schema(ignore)]
    pub current_password: Option<serde::de::IgnoredAny>,
}

/// Changes first and last name, language or time zone (the login e-mail: `POST
/// /api/v1/me/email`).
#[utoipa::path(patch, path = "/api/v1/me", tag = "me", request_body = ProfilePatch, responses(
    (status = 200, body = Me),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> Result<Json<Me>, ApiError> {
    caller.require_csrf(&state, &headers)?;
    if patch.email.is_some() || patch.current_password.is_some() {
        return Err(ApiError::Invalid(
            "`email` is not changed here: POST /api/v1/me/email with `new_email` and \
             `current_password` sends a confirmation link to the new address"
                .into(),
        ));
    }
    let change = ProfileChange {
        given_name: patch.given_name,
        family_name: patch.family_name,
        locale: patch.locale,
        time_zone: patch.time_zone,
    };
    let updated = state
        .accounts
        .update_profile(&caller.me.user, change, &caller.client, state.clock.now())
        .await?;
    me_view(&state, &updated).await.map(Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordChanged {
    /// Every other session of the account was signed out.
    pub other_sessions_ended: u64,
}

/// Changes the password; every other session is signed out and the owner is mailed.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "me", request_body = PasswordChange, responses(
    (status = 200, body = PasswordChanged),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Json<PasswordChanged>, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let me = &caller.me;
    let other_sessions_ended = state
        .accounts
        .change_password(
            &me.user,
            me.session.id,
            &body.current_password,
            &body.new_password,
            &caller.client,
            state.clock.now(),
        )
        .await?;
    Ok(Json(PasswordChanged {
        other_sessions_ended,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountDeletion {
    pub password: String,
}

/// Deletes the account and everything of it. Refused (409) while the caller is the only
/// legal representative of an organization.
#[utoipa::path(delete, path = "/api/v1/me", tag = "me", request_body = AccountDeletion, responses(
    (status = 204, description = "Deleted; the session cookie is cleared"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AccountDeletion>,
) -> Result<Response, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let me = &caller.me;
    state
        .accounts
        .delete(&me.user, &body.password, &caller.client, state.clock.now())
        .await?;
    tracing::info!(user_id = %me.user.id, "account deleted by its owner");
    let name = csrf::cookie_name(SESSION_COOKIE, state.config.is_https());
    let jar = CookieJar::from_headers(&headers).remove(Cookie::build(name).path("/"));
    Ok((jar, StatusCode::NO_CONTENT).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `hostile_api_json_bodies` (tests/it/hostile.rs): a name holding a NUL reached
    /// PostgreSQL, which refused it (a 500).
    #[test]
    fn a_nul_escape_is_found_and_an_escaped_backslash_is_not_one() {
        assert!(holds_nul(br#"{"name": "a\u0000b"}"#));
        assert!(holds_nul(br#"{"name": "\\\u0000"}"#));
        assert!(!holds_nul(br#"{"name": "\\u0000"}"#));
        assert!(!holds_nul(br#"{"name": "u0000"}"#));
    }
}
