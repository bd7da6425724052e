//! RFC 9457 problem details: every API error, mapped once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter or body field that cannot be understood; the message names it.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A well-formed request that breaks a rule (422); the message says which.
    #[error("unprocessable: {0}")]
    Invalid(String),
    /// The state of the account forbids it (409), e.g. the last legal representative.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Re-authentication failed: the current password is wrong.
    #[error("wrong current password")]
    WrongPassword,
    /// Password hashing is saturated: try again shortly.
    #[error("busy")]
    Busy,
    /// Too many password re-checks for this account or address; retry after this many
    /// seconds.
    #[error("rate limited")]
    RateLimited(u64),
    /// The framework's rejection of a body (syntax, content type, size), with its status.
    #[error("rejected: {1}")]
    Rejected(StatusCode, String),
    #[error("not signed in")]
    Unauthorized,
    /// Signed in, but this role may not do it.
    #[error("forbidden")]
    Forbidden,
    /// A bearer token without the scope this call needs (RFC 6750 `insufficient_scope`).
    #[error("insufficient scope: {0}")]
    InsufficientScope(&'static str),
    /// A service this call needs did not answer (DNS, an upstream server): retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The database is down, restarting or out of connections: nothing was written; retry.
    #[error("database unavailable: {0}")]
    StoreUnavailable(String),
    #[error("missing or invalid CSRF token")]
    Csrf,
    /// Also for resources of other users: ids cannot be probed.
    #[error("not found")]
    NotFound,
    #[error("internal: {0}")]
    Internal(String),
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        if err.is_unavailable() {
            ApiError::StoreUnavailable(err.to_string())
        } else {
            ApiError::Internal(err.to_string())
        }
    }
}

impl From<crate::accounts::HashError> for ApiError {
    fn from(err: crate::accounts::HashError) -> Self {
        match err {
            crate::accounts::HashError::Busy => ApiError::Busy,
            crate::accounts::HashError::Failed(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<crate::accounts::LoginError> for ApiError {
    fn from(err: crate::accounts::LoginError) -> Self {
        use crate::accounts::LoginError;
        match err {
            LoginError::WrongCredentials => ApiError::WrongPassword,
            LoginError::Hash(e) => e.into(),
            LoginError::Store(e) => e.into(),
        }
    }
}

impl From<crate::accounts::AccountError> for ApiError {
    fn from(err: crate::accounts::AccountError) -> Self {
        use crate::accounts::AccountError;
        match err {
            AccountError::InvalidEmail(problem) => {
                ApiError::Invalid(format!("`email`: the address is {problem}"))
            }
            AccountError::NameTooLong => ApiError::Invalid(format!(
                "`given_name` and `family_name` may have at most {} characters each",
                crate::accounts::MAX_NAME_PART_CHARS
            )),
            AccountError::UnknownTimeZone => ApiError::Invalid(
                "`time_zone` must be an IANA time zone name such as `Europe/Zurich`, or null"
                    .into(),
            ),
            AccountError::WeakPassword(problem) => ApiError::Invalid(match problem {
                crate::accounts::PasswordProblem::TooShort { min } => {
                    format!("`new_password` must have at least {min} characters")
                }
                other => format!("`new_password` is {other}"),
            }),
            AccountError::EmailTaken => {
                ApiError::Conflict("Another account uses this e-mail address.".into())
            }
            AccountError::LastLegalRepresentative(orgs) => ApiError::Conflict(format!(
                "{} need you as their only legal representative or only member; appoint \
                 another legal representative there first.",
                orgs.join(", ")
            )),
            AccountError::UnsupportedLocale => {
                ApiError::Invalid("`locale` must be en, es, fr or null".into())
            }
            AccountError::Reauth(crate::accounts::ReauthError::TooMany(wait)) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                ApiError::RateLimited(secs.max(1))
            }
            AccountError::Reauth(crate::accounts::ReauthError::Login(e)) => e.into(),
            AccountError::Hash(e) => e.into(),
            AccountError::Store(e) => e.into(),
        }
    }
}

impl From<crate::orgs::DomainError> for ApiError {
    fn from(err: crate::orgs::DomainError) -> Self {
        use crate::orgs::DomainError;
        match err {
            DomainError::Taken(_) => ApiError::Conflict(err.to_string()),
            DomainError::NotListed(_) => ApiError::NotFound,
            DomainError::DnsUnavailable => ApiError::Unavailable(err.to_string()),
            DomainError::Store(e) => e.into(),
            other => ApiError::Invalid(other.to_string()),
        }
    }
}

impl From<crate::orgs::OrgAccess> for ApiError {
    fn from(err: crate::orgs::OrgAccess) -> Self {
        match err {
            crate::orgs::OrgAccess::NotFound => ApiError::NotFound,
            crate::orgs::OrgAccess::Forbidden => ApiError::Forbidden,
            crate::orgs::OrgAccess::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = match &self {
            ApiError::BadRequest(detail) => (StatusCode::BAD_REQUEST, detail.as_str()),
            ApiError::Invalid(detail) => (StatusCode::UNPROCESSABLE_ENTITY, detail.as_str()),
            ApiError::Conflict(detail) => (StatusCode::CONFLICT, detail.as_str()),
            ApiError::WrongPassword => (StatusCode::FORBIDDEN, "The current password is wrong."),
            ApiError::Busy => {
                let mut response = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many password checks right now; retry shortly.",
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
                return response;
            }
            ApiError::Unavailable(detail) => {
                let mut response =
                    Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail.as_str()).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
                return response;
            }
            ApiError::StoreUnavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable; answering 503");
                let mut response = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The account database cannot be reached right now; nothing was changed. \
                     Retry shortly.",
                )
                .into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::store::RETRY_AFTER_SECS),
                );
                return response;
            }
            ApiError::InsufficientScope(scope) => {
                let mut response = Problem::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "This call needs a token with the `{scope}` scope, or the signed-in \
                         browser session with its CSRF token."
                    ),
                )
                .into_response();
                let challenge = format!(r#"Bearer error="insufficient_scope", scope="{scope}""#);
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                return response;
            }
            ApiError::RateLimited(secs) => {
                let mut response = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many password checks for this account or address; retry later.",
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
                return response;
            }
            ApiError::Rejected(status, detail) => (*status, detail.as_str()),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "Sign in first: this call needs a session.",
            ),
            ApiError::Csrf => (
                StatusCode::FORBIDDEN,
                "Missing or invalid X-CSRF-Token header (get one from /api/v1/csrf).",
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "No such resource."),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Only administrators and legal representatives of the organization may do this.",
            ),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "An internal error occurred; the request id is in the x-request-id header.",
                )
            }
        };
        Problem::new(status, detail).into_response()
    }
}
