//! The signed-in browser: the session cookie, and the extractor that finds its session.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

use super::{client_info, csrf};
use crate::AppState;
use crate::accounts::User;
use crate::error::WebError;
use crate::sessions::Session;

pub const SESSION_COOKIE: &str = "gotthard_session";

/// The signed-in browser: its session, its user, and the session cookie value (the binding of
/// its CSRF tokens). Pages that need it redirect to `/login` otherwise.
pub struct SignedIn {
    pub session: Session,
    pub user: User,
    pub cookie: String,
}

impl SignedIn {
    /// The session of the request's cookie, if any; shared by pages and the API.
    pub async fn from_parts(parts: &Parts, state: &AppState) -> Result<Option<Self>, WebError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let name = csrf::cookie_name(SESSION_COOKIE, state.config.is_https());
        let Some(cookie) = jar.get(&name).map(|c| c.value().to_string()) else {
            return Ok(None);
        };
        let client = client_info(parts, state);
        let found = state
            .sessions
            .current(&cookie, &client, state.clock.now())
            .await?;
        Ok(found.map(|(session, user)| Self {
            session,
            user,
            cookie,
        }))
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        Self::from_parts(parts, state)
            .await?
            .ok_or(WebError::NotSignedIn)
    }
}
