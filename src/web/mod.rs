//! Browser pages: templates, forms, CSRF, security headers, i18n. Handlers parse and render;
//! the services of `accounts`, `sessions` and `orgs` decide.

mod account;
mod login;
mod members;
mod security;
mod setup;
mod sso;
mod sso_admin;
mod unlock;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use minijinja::{Environment, Value, context};

pub use crate::i18n::{I18n, Translator};

use crate::AppState;
use crate::accounts::User;
use crate::audit::ClientInfo;
use crate::error::{ErrorPage, WebError};
use crate::http::{client_info, csrf};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("consent.html", include_str!("templates/consent.html")),
    (
        "logout_confirm.html",
        include_str!("templates/logout_confirm.html"),
    ),
    ("setup.html", include_str!("templates/setup.html")),
    ("account.html", include_str!("templates/account.html")),
    ("sessions.html", include_str!("templates/sessions.html")),
    ("activity.html", include_str!("templates/activity.html")),
    ("unlock.html", include_str!("templates/unlock.html")),
    (
        "unlock_confirm.html",
        include_str!("templates/unlock_confirm.html"),
    ),
    ("security.html", include_str!("templates/security.html")),
    ("members.html", include_str!("templates/members.html")),
    ("message.html", include_str!("templates/message.html")),
    ("sso.html", include_str!("templates/sso.html")),
    (
        "sso_redirect.html",
        include_str!("templates/sso_redirect.html"),
    ),
    ("sso_error.html", include_str!("templates/sso_error.html")),
    ("sso_link.html", include_str!("templates/sso_link.html")),
    ("sso_admin.html", include_str!("templates/sso_admin.html")),
];
const STYLESHEET: &str = include_str!("static/gotthard.css");

/// Templates and texts, loaded once at start.
pub struct Pages {
    env: Environment<'static>,
    pub i18n: Arc<I18n>,
}

impl Pages {
    pub fn load() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        // `.html` templates are auto-escaped: user input and upstream text never become markup.
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(Self {
            env,
            i18n: Arc::new(I18n::load()?),
        })
    }

    pub fn render(&self, name: &str, tr: &Translator, ctx: Value) -> Result<String, WebError> {
        let template = self.env.get_template(name)?;
        let texts = tr.clone();
        let t = Value::from_function(move |key: String| texts.t(&key));
        Ok(template.render(context! { lang => tr.lang(), t => t, ..ctx })?)
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(login::root))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", axum::routing::post(login::logout))
        .route("/setup", get(setup::form).post(setup::submit))
        .route("/account", get(account::page))
        .route("/account/sessions", get(account::sessions))
        .route("/account/activity", get(account::activity))
        .route(
            "/account/apps/{client}/revoke",
            axum::routing::post(account::revoke_app),
        )
        .route(
            "/account/security",
            get(security::page).post(security::save),
        )
        .route("/account/orgs/{org}/members", get(members::page))
        .route(
            "/account/orgs/{org}/members/{user}/unlock",
            axum::routing::post(members::unlock),
        )
        .route("/unlock", get(unlock::form).post(unlock::request))
        .route(
            "/unlock/confirm",
            get(unlock::confirm_page).post(unlock::confirm),
        )
        .route(
            "/account/sessions/end-others",
            axum::routing::post(account::end_other_sessions),
        )
        .route(
            "/account/sessions/{id}/end",
            axum::routing::post(account::end_session),
        )
        .route("/static/gotthard.css", get(stylesheet))
        .route("/login/sso", get(sso::form).post(sso::begin))
        .route("/login/sso/callback", get(sso::callback))
        .route("/login/sso/link", axum::routing::post(sso::link))
        .route(
            "/account/orgs/{org}/sso",
            get(sso_admin::page).post(sso_admin::save),
        )
        .route(
            "/account/orgs/{org}/sso/remove",
            axum::routing::post(sso_admin::remove),
        )
        .route(
            "/account/orgs/{org}/domains/verify",
            axum::routing::post(sso_admin::verify_domain),
        )
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// What every page handler needs about the request: its language, where it came from, and
/// its cookies.
pub struct PageContext {
    pub tr: Translator,
    pub client: ClientInfo,
    pub jar: CookieJar,
}

impl FromRequestParts<AppState> for PageContext {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        Ok(Self {
            tr: translator_for(state, &parts.headers),
            client: client_info(parts, state),
            jar: CookieJar::from_headers(&parts.headers),
        })
    }
}

impl PageContext {
    /// The signed-in user's chosen language wins over the browser's.
    pub fn for_user(mut self, state: &AppState, user: &User) -> Self {
        if let Some(locale) = &user.locale {
            self.tr = state.pages.i18n.negotiate(Some(locale));
        }
        self
    }

    /// The CSRF token for this page's forms (and the CSRF cookie, when the browser has none).
    /// `binding` is the session cookie once signed in, empty before.
    pub fn csrf_token(&self, state: &AppState, binding: &str) -> (CookieJar, String) {
        csrf::issue(
            &state.keyring,
            self.jar.clone(),
            state.config.is_https(),
            binding,
        )
    }

    /// Checks the CSRF token a form sent back.
    pub fn check_csrf(
        &self,
        state: &AppState,
        binding: &str,
        submitted: &str,
    ) -> Result<(), WebError> {
        csrf::verify(
            &state.keyring,
            &self.jar,
            state.config.is_https(),
            binding,
            submitted,
        )
    }
}

fn translator_for(state: &AppState, headers: &HeaderMap) -> Translator {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    state.pages.i18n.negotiate(accept)
}

/// Renders the localized page of an error response: for our own [`WebError`]s (marked with
/// [`ErrorPage`]) and for the plain-text rejections of the framework (404, 405, 408, 413).
pub async fn error_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Probes, scrapers and OAuth clients get the plain (or JSON) answers of their endpoints.
    let path = request.uri().path();
    let machine = matches!(
        path,
        "/healthz"
            | "/readyz"
            | "/metrics"
            | "/oauth2/token"
            | "/oauth2/userinfo"
            | "/oauth2/introspect"
            | "/oauth2/revoke"
            | "/oauth2/jwks"
    ) || path.starts_with("/.well-known/");
    if machine {
        return next.run(request).await;
    }
    // The API answers problem details, also for the framework's own rejections.
    if request.uri().path().starts_with("/api/") {
        let response = next.run(request).await;
        let status = response.status();
        let plain = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("text/plain"));
        if (status.is_client_error() || status.is_server_error()) && plain {
            let detail = status.canonical_reason().unwrap_or("Error");
            return crate::api::Problem::new(status, detail).into_response();
        }
        return response;
    }
    // Kept aside cheaply; the translator is only built for an error.
    let headers = HeaderMap::from_iter(
        [
            header::ACCEPT_LANGUAGE,
            HeaderName::from_static("x-request-id"),
        ]
        .into_iter()
        .filter_map(|name| Some((name.clone(), request.headers().get(&name)?.clone()))),
    );
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let tr = translator_for(&state, &headers);
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let marked = response.extensions().get::<ErrorPage>().map(|p| p.0);
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    let key = match (marked, plain) {
        (Some(key), _) => key,
        (None, true) => key_for_status(status),
        (None, false) => return response,
    };
    let message = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        tr.t("error-internal")
    } else {
        tr.t(key)
    };
    let ctx = context! {
        title => tr.t("error-title"),
        message => message,
        request_id => status.is_server_error().then_some(request_id).flatten(),
    };
    let (mut parts, _) = response.into_parts();
    let body = state
        .pages
        .render("message.html", &tr, ctx)
        .unwrap_or_else(|_| tr.t(key));
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    (parts, Html(body)).into_response()
}

fn key_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "error-not-found",
        StatusCode::METHOD_NOT_ALLOWED => "error-method",
        StatusCode::REQUEST_TIMEOUT => "error-timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "error-too-large",
        StatusCode::SERVICE_UNAVAILABLE => "error-unavailable",
        s if s.is_server_error() => "error-internal",
        _ => "error-bad-request",
    }
}

/// Fallback for unknown paths.
pub async fn not_found() -> WebError {
    WebError::NotFound
}
