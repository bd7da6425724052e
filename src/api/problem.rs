//! RFC 9457 problem details: every API error, mapped once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter or body field that cannot be understood; the message names it.
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not signed in")]
    Unauthorized,
    #[error("missing or invalid CSRF token")]
    Csrf,
    /// Also for resources of other users: ids cannot be probed.
    #[error("not found")]
    NotFound,
    #[error("internal: {0}")]
    Internal(String),
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `about:blank`: the status code says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        ApiError::Internal(err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = match &self {
            ApiError::BadRequest(detail) => (StatusCode::BAD_REQUEST, detail.as_str()),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "Sign in first: this call needs a session.",
            ),
            ApiError::Csrf => (
                StatusCode::FORBIDDEN,
                "Missing or invalid X-CSRF-Token header (get one from /api/v1/csrf).",
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "No such resource."),
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
