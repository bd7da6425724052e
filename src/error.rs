//! Errors of the HTTP layer, each mapped once to one answer. Browser routes answer with a
//! localized HTML page (rendered by `http::error_pages`); a 500 carries the request id only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::accounts::{AccountError, HashError, LoginError, SetupError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Missing or mistyped form fields.
    #[error("malformed form")]
    BadForm,
    /// A body that is not UTF-8 (raw or percent-encoded).
    #[error("form is not valid UTF-8")]
    BadEncoding,
    #[error("form body expected")]
    UnsupportedMediaType,
    #[error("request body too large")]
    TooLarge,
    #[error("missing or invalid CSRF token")]
    Csrf,
    #[error("password hashing saturated")]
    Busy,
    /// The database is down, restarting or out of connections: nothing was written; retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Over the client's sign-in rate; the number of seconds to wait.
    #[error("rate limited")]
    RateLimited(u64),
    #[error("setup link unusable")]
    SetupLinkUnusable,
    #[error("unlock link unusable")]
    UnlockLinkUnusable,
    #[error("not signed in")]
    NotSignedIn,
    #[error("not found")]
    NotFound,
    /// Signed in, but the role does not allow it.
    #[error("forbidden")]
    Forbidden,
    /// Signed in, but not an instance administrator.
    #[error("instance administrators only")]
    AdminOnly,
    /// A request the page explains (the message key); e.g. an unknown OAuth client.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("internal: {0}")]
    Internal(String),
}

/// Marks an error response whose page `http::error_pages` renders, with the message key.
#[derive(Debug, Clone, Copy)]
pub struct ErrorPage(pub &'static str);

impl WebError {
    fn status_and_key(&self) -> (StatusCode, &'static str) {
        match self {
            WebError::BadForm => (StatusCode::UNPROCESSABLE_ENTITY, "error-bad-form"),
            WebError::BadEncoding => (StatusCode::BAD_REQUEST, "error-bad-encoding"),
            WebError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "error-bad-request")
            }
            WebError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "error-too-large"),
            WebError::Csrf => (StatusCode::FORBIDDEN, "error-csrf"),
            WebError::Busy | WebError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "error-unavailable")
            }
            WebError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "error-rate-limited"),
            WebError::SetupLinkUnusable => (StatusCode::GONE, "setup-link-unusable"),
            WebError::UnlockLinkUnusable => (StatusCode::GONE, "unlock-link-unusable"),
            WebError::NotSignedIn => (StatusCode::SEE_OTHER, ""),
            WebError::NotFound => (StatusCode::NOT_FOUND, "error-not-found"),
            WebError::Forbidden => (StatusCode::FORBIDDEN, "members-forbidden"),
            WebError::AdminOnly => (StatusCode::FORBIDDEN, "error-admin-only"),
            WebError::BadRequest(key) => (StatusCode::BAD_REQUEST, key),
            WebError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "error-internal"),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::NotSignedIn = self {
            return Redirect::to("/login").into_response();
        }
        if let WebError::Internal(detail) = &self {
            // The detail goes to the log (with the request id of the span), never to the page.
            tracing::error!(error = %detail, "internal error");
        }
        if let WebError::Unavailable(detail) = &self {
            tracing::warn!(error = %detail, "database unavailable; answering 503");
        }
        let (status, key) = self.status_and_key();
        let mut response = status.into_response();
        let retry_after = match self {
            WebError::Busy => Some(2),
            WebError::Unavailable(_) => Some(crate::store::RETRY_AFTER_SECS),
            WebError::RateLimited(secs) => Some(secs),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(ErrorPage(key));
        response
    }
}

impl From<StoreError> for WebError {
    fn from(err: StoreError) -> Self {
        (&err).into()
    }
}

impl From<&StoreError> for WebError {
    fn from(err: &StoreError) -> Self {
        if err.is_unavailable() {
            WebError::Unavailable(err.to_string())
        } else {
            WebError::Internal(err.to_string())
        }
    }
}

impl From<HashError> for WebError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => WebError::Busy,
            HashError::Failed(detail) => WebError::Internal(detail),
        }
    }
}

impl From<LoginError> for WebError {
    fn from(err: LoginError) -> Self {
        match err {
            // Handlers render the form again for wrong credentials; this is a fallback.
            LoginError::WrongCredentials => WebError::BadForm,
            LoginError::Hash(e) => e.into(),
            LoginError::Store(e) => e.into(),
        }
    }
}

impl From<AccountError> for WebError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Hash(e) => e.into(),
            AccountError::Store(e) => e.into(),
            _ => WebError::BadForm,
        }
    }
}

impl From<SetupError> for WebError {
    fn from(err: SetupError) -> Self {
        match err {
            SetupError::LinkUnusable => WebError::SetupLinkUnusable,
            SetupError::Account(e) => e.into(),
            SetupError::Store(e) => e.into(),
        }
    }
}

impl From<crate::orgs::OrgAccess> for WebError {
    fn from(err: crate::orgs::OrgAccess) -> Self {
        match err {
            crate::orgs::OrgAccess::NotFound => WebError::NotFound,
            crate::orgs::OrgAccess::Forbidden => WebError::Forbidden,
            crate::orgs::OrgAccess::Store(e) => e.into(),
        }
    }
}

impl From<minijinja::Error> for WebError {
    fn from(err: minijinja::Error) -> Self {
        WebError::Internal(format!("template: {err:#}"))
    }
}
