//! The JSON account API under `/api/v1`, described by `/api/v1/openapi.json` (OpenAPI 3.1).
//! Errors are RFC 9457 problem details. Callers are authenticated by the browser session
//! cookie (state-changing calls then carry the CSRF token in `X-CSRF-Token`) or by a bearer
//! access token of the OIDC provider with the scope `account:read` (reads) or
//! `account:write` (changes), so that other services can act for the user.

mod activity;
mod avatar;
mod client_activity;
mod clients;
mod domains;
mod email_change;
mod export;
mod me;
mod phones;
mod problem;
mod recovery;
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

pub use problem::ApiError;

use crate::AppState;
use crate::audit::ClientInfo;
use crate::http::{Problem, SignedIn, client_info, csrf};

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
        export::export,
        phones::list,
        phones::add,
        phones::remove,
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
        clients::list,
        clients::create,
        clients::delete,
        client_activity::list,
        client_activity::csv,
        clients::consents,
        clients::revoke_consent,
        sso::show,
        sso::update,
        sso::remove,
        domains::list,
        domains::add,
        domains::verify,
        domains::remove,
        email_change::request,
        recovery::forgot,
        recovery::reset,
        avatar::upload,
        avatar::remove
    ),
    components(schemas(
        Problem,
        me::Me,
        me::Membership,
        me::ProfilePatch,
        me::PasswordChange,
        me::PasswordChanged,
        me::AccountDeletion,
        export::DataExport,
        export::SecurityExport,
        phones::PhoneView,
        phones::PhoneList,
        phones::PhoneAdd,
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
        clients::ClientView,
        clients::ClientList,
        clients::ClientCreate,
        client_activity::ClientActivity,
        client_activity::ClientSummaryView,
        client_activity::HourView,
        client_activity::AddressView,
        clients::ConsentList,
        crate::oidc::Consent,
        sso::SsoPut,
        sso::SsoView,
        domains::DomainView,
        domains::DomainList,
        domains::DomainAdd,
        email_change::EmailChangeRequest,
        email_change::EmailPending,
        recovery::ForgotPassword,
        recovery::ResetRequested,
        recovery::ResetPassword,
        avatar::AvatarSet
    )),
    tags(
        (name = "me", description = "The signed-in user's profile, password and account"),
        (name = "organizations", description = "What organization administrators do for their members"),
        (name = "sessions", description = "Account access: the devices signed in to the account"),
        (name = "activity", description = "Account activity: what happened to the account"),
        (name = "clients", description = "Relying applications (instance administrators)"),
        (name = "password", description = "The forgotten password: a mailed single-use link (no session)")
    )
)]
struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/csrf", get(csrf_token))
        .route("/me", get(me::show).patch(me::update).delete(me::delete))
        .route("/me/password", post(me::change_password))
        .route("/me/phones", get(phones::list).post(phones::add))
        .route("/me/export", get(export::export))
        .route("/me/phones/{id}", delete(phones::remove))
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
        .route("/me/consents", get(clients::consents))
        .route("/me/consents/{client_id}", delete(clients::revoke_consent))
        .route("/clients", get(clients::list).post(clients::create))
        .route("/clients/{id}", delete(clients::delete))
        .route(
            "/orgs/{org}/sso",
            get(sso::show).put(sso::update).delete(sso::remove),
        )
        .route("/orgs/{org}/domains", get(domains::list).post(domains::add))
        .route("/orgs/{org}/domains/{domain}", delete(domains::remove))
        .route("/orgs/{org}/domains/{domain}/verify", post(domains::verify))
        .merge(client_activity::routes())
        .route("/me/email", post(email_change::request))
        .route("/password/forgot", post(recovery::forgot))
        .route("/password/reset", post(recovery::reset))
        .merge(avatar::routes())
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

/// The signed-in caller of an API route (401 otherwise), and where the call came from. A
/// bearer token needs `account:read` (reads) or `account:write`: the user's own account.
pub struct Caller {
    pub me: SignedIn,
    pub client: ClientInfo,
    /// Set when the call came with a bearer access token (no cookie, so no CSRF check).
    pub token: Option<crate::oidc::AccessClaims>,
}

/// The caller of an administration route: the browser session (whose changes need the CSRF
/// token), or a bearer token with the `admin` scope (clients, organizations' SSO and
/// domains, unlocking and ending members' sessions; only clients registered for it may ask
/// for it, and the user is asked each time) — never `account:write`, which script
/// in any first-party app could obtain silently for a signed-in administrator.
pub struct AdminCaller(pub Caller);

impl std::ops::Deref for AdminCaller {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

/// What a bearer token must carry for the route it calls.
#[derive(Clone, Copy)]
enum Needs {
    Account,
    Admin,
}

impl Caller {
    /// A caller by bearer token: a live token of a user's session with the scope the
    /// method needs.
    async fn from_bearer(
        parts: &Parts,
        state: &AppState,
        token: &str,
        needs: Needs,
    ) -> Result<Self, ApiError> {
        let now = state.clock.now();
        let (claims, user) = match state.provider.verify_access_token(token, now).await {
            Ok(found) => found,
            Err(crate::oidc::BearerError::Store(e)) => return Err(e.into()),
            Err(_) => return Err(ApiError::Unauthorized),
        };
        let reading = matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        match needs {
            Needs::Account
                if !(claims.has_scope("account:write")
                    || (reading && claims.has_scope("account:read"))) =>
            {
                return Err(ApiError::Forbidden);
            }
            Needs::Admin if !claims.has_scope(crate::oidc::ADMIN_SCOPE) => {
                return Err(ApiError::InsufficientScope(crate::oidc::ADMIN_SCOPE));
            }
            _ => {}
        }
        let user_id = uuid::Uuid::parse_str(&claims.sub).map_err(|_| ApiError::Unauthorized)?;
        let session_id = claims
            .sid
            .as_deref()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .ok_or(ApiError::Unauthorized)?;
        let user = user.ok_or(ApiError::Unauthorized)?;
        let session = state
            .sessions
            .by_id(user_id, session_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Caller {
            me: SignedIn {
                session,
                user,
                cookie: String::new(),
            },
            client: client_info(parts, state),
            token: Some(claims),
        })
    }

    async fn from_parts(parts: &Parts, state: &AppState, needs: Needs) -> Result<Self, ApiError> {
        if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
            return match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    Self::from_bearer(parts, state, token.trim(), needs).await
                }
                _ => Err(ApiError::Unauthorized),
            };
        }
        let me = SignedIn::from_parts(parts, state)
            .await
            .map_err(|e| match e {
                crate::error::WebError::Unavailable(detail) => ApiError::StoreUnavailable(detail),
                e => ApiError::Internal(e.to_string()),
            })?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Caller {
            me,
            client: client_info(parts, state),
            token: None,
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Caller::from_parts(parts, state, Needs::Account).await
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Caller::from_parts(parts, state, Needs::Admin)
            .await
            .map(AdminCaller)
    }
}

impl Caller {
    /// Checks the `X-CSRF-Token` header of a state-changing call.
    pub fn require_csrf(&self, state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.token.is_some() {
            // A bearer token is no ambient credential: a cross-site request cannot send it.
            return Ok(());
        }
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
