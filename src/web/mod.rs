//! Browser pages: sign-in, SSO, setup, unlock, the account and organization pages, and the
//! stylesheet. Handlers parse and render with the kit (`http`: templates, forms, CSRF); the
//! services of `accounts`, `sessions` and `orgs` decide.

mod account;
pub mod avatar;
mod clients;
pub mod console;
mod email_change;
mod login;
mod members;
mod password;
mod profile;
mod recovery;
mod security;
mod setup;
mod sso;
mod sso_admin;
mod unlock;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use crate::i18n::Translator;

use crate::AppState;
use crate::error::WebError;

const STYLESHEET: &str = include_str!("static/gotthard.css");
const SCRIPT: &str = include_str!("static/console.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(login::root))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", axum::routing::post(login::logout))
        .route("/setup", get(setup::form).post(setup::submit))
        .route("/account", get(profile::page))
        .route("/account/profile", get(profile::page).post(profile::save))
        .route("/account/phones", axum::routing::post(profile::add_phone))
        .route("/account/delete", axum::routing::post(profile::delete))
        .route(
            "/account/phones/{id}/delete",
            axum::routing::post(profile::remove_phone),
        )
        .route("/account/orgs", get(account::organizations))
        .route("/account/apps", get(account::apps))
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
        .route("/static/console.js", get(script))
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
        .merge(clients::routes())
        .merge(recovery::routes())
        .merge(password::routes())
        .merge(email_change::routes())
        .merge(avatar::routes())
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

/// The account pages' one script: it only improves (the browser's time zone, confirmations).
async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// Fallback for unknown paths.
pub async fn not_found() -> WebError {
    WebError::NotFound
}
