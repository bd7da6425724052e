//! The JSON account API under `/api/v1`, described by `/api/v1/openapi.json` (OpenAPI 3.1).
//! Errors are RFC 9457 problem details. Callers are authenticated by the browser session
//! cookie for now (bearer access tokens join with the OIDC provider); state-changing calls
//! carry the CSRF token in `X-CSRF-Token`.

pub mod activity;
mod me;
mod problem;
mod security;
mod sessions;
mod sso;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum_extra::extract::CookieJar;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

pub use problem::{ApiError, Problem};

use crate::AppState;
use crate::audit::ClientInfo;
use crate::web::{SignedIn, client_info, csrf};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gotthard account API",
        version = "1",
        description = "The signed-in user's account: sessions (devices) now; activity, profile and security settings next."
    ),
    paths(
        csrf_token,
        me::show,
        me::update,
        me::change_password,
        me::delete,
        security::show,
        security::update,
        security::members,
        security::unlock,
        sessions::list,
        sessions::end,
        sessions::end_others,
        sessions::list_of_member,
        sessions::end_of_member,
        activity::list,
        activity::csv,
        sso::show,
        sso::update,
        sso::remove
    ),
    components(schemas(
        Problem,
        me::Me,
        me::Membership,
        me::ProfilePatch,
        me::PasswordChange,
        me::PasswordChanged,
        me::AccountDeletion,
        security::Security,
        security::MemberView,
        security::MemberList,
        CsrfToken,
        sessions::SessionList,
        sessions::SessionView,
        sessions::EndedCount,
        crate::sessions::DeviceLabel,
        activity::ActivityList,
        activity::EventView,
        sso::SsoPut,
        sso::SsoView
    )),
    tags(
        (name = "me", description = "The signed-in user's profile, password and account"),
        (name = "organizations", description = "What organization administrators do for their members"),
        (name = "sessions", description = "Account access: the devices signed in to the account"),
        (name = "activity", description = "Account activity: what happened to the account")
    )
)]
struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/csrf", get(csrf_token))
        .route("/me", get(me::show).patch(me::update).delete(me::delete))
        .route("/me/password", post(me::change_password))
        .route("/me/security", get(security::show).put(security::update))
        .route("/orgs/{org}/members", get(security::members))
        .route("/orgs/{org}/members/{user}/unlock", post(security::unlock))
        .route("/me/sessions", get(sessions::list))
        .route("/me/sessions/revoke-others", post(sessions::end_others))
        .route("/me/sessions/{id}", delete(sessions::end))
        .route(
            "/orgs/{org}/members/{user}/sessions",
            get(sessions::list_of_member),
        )
        .route(
            "/orgs/{org}/members/{user}/sessions/{id}",
            delete(sessions::end_of_member),
        )
        .route("/me/activity", get(activity::list))
        .route("/me/activity.csv", get(activity::csv))
        .route(
            "/orgs/{org}/sso",
            get(sso::show).put(sso::update).delete(sso::remove),
        )
}

async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        Err(err) => ApiError::Internal(err.to_string()).into_response(),
    }
}

/// The signed-in caller of an API route (401 otherwise), and where the call came from.
pub struct Caller {
    pub me: SignedIn,
    pub client: ClientInfo,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let me = SignedIn::from_parts(parts, state)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Caller {
            me,
            client: client_info(parts, state),
        })
    }
}

impl Caller {
    /// Checks the `X-CSRF-Token` header of a state-changing call.
    pub fn require_csrf(&self, state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
        let submitted = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let jar = CookieJar::from_headers(headers);
        csrf::verify(
            &state.keyring,
            &jar,
            state.config.is_https(),
            &self.me.cookie,
            submitted,
        )
        .map_err(|_| ApiError::Csrf)
    }
}

#[derive(Serialize, ToSchema)]
pub struct CsrfToken {
    /// Send it back in the `X-CSRF-Token` header of POST, PUT, PATCH and DELETE calls.
    pub csrf_token: String,
}

/// The CSRF token of this session (and the cookie it is bound to, when the browser has none).
#[utoipa::path(get, path = "/api/v1/csrf", responses(
    (status = 200, body = CsrfToken),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn csrf_token(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> Response {
    let jar = CookieJar::from_headers(&headers);
    let (jar, csrf_token) = csrf::issue(
        &state.keyring,
        jar,
        state.config.is_https(),
        &caller.me.cookie,
    );
    (jar, Json(CsrfToken { csrf_token })).into_response()
}
