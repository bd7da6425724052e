//! `/api/v1/me/avatar`: the caller's avatar, sent as the raw image.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, Caller, Problem};
use crate::AppState;
use crate::avatars::{AvatarError, ImageProblem, MAX_UPLOAD_BYTES, MIN_SIDE};

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/me/avatar",
        put(upload)
            .delete(remove)
            // This route alone takes bodies past the global limit (`http.body_limit_bytes`).
            .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
    )
}

#[derive(Serialize, ToSchema)]
pub struct AvatarSet {
    /// The new picture (256 px), also the OIDC `picture` claim: an immutable URL that
    /// changes with each upload.
    pub picture: String,
    /// Present when the image is smaller than 210 pixels per side: it was kept, but will
    /// look blurred.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The text of the warning of a small image.
pub fn small_warning() -> String {
    format!(
        "The image is smaller than {MIN_SIDE} × {MIN_SIDE} pixels; it was kept but may look \
         blurred. Upload a larger one for a sharp picture."
    )
}

/// Sets the avatar: the body is the image itself (PNG, JPEG or WebP, told by its bytes
/// whatever the `Content-Type`; at most 5 MiB and 8192 pixels per side). It is re-encoded
/// to square JPEGs of 64, 128, 256 and 512 pixels (centre-cropped), which drops EXIF, GPS and
/// every other metadata.
#[utoipa::path(put, path = "/api/v1/me/avatar", tag = "me",
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The image: PNG, JPEG or WebP, at most 5 MiB"),
    responses(
        (status = 200, body = AvatarSet),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 5 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not a PNG, JPEG or WebP image", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty, undecodable, or too many pixels", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many images being processed; see Retry-After", body = Problem, content_type = "application/problem+json"),
))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Result<Json<AvatarSet>, Response> {
    // The body is read only once the caller and the CSRF token are checked.
    caller
        .require_csrf(&state, request.headers())
        .map_err(IntoResponse::into_response)?;
    let body = Bytes::from_request(request, &state)
        .await
        .map_err(|rejection| {
            ApiError::Rejected(rejection.status(), rejection.body_text()).into_response()
        })?;
    let uploaded = state
        .avatars
        .upload(&caller.me.user, body, &caller.client, state.clock.now())
        .await
        .map_err(problem)?;
    Ok(Json(AvatarSet {
        picture: uploaded.url,
        warning: uploaded.warning_small.then(small_warning),
    }))
}

/// Removes the avatar: the account shows its initials again. 204 also when there was none.
#[utoipa::path(delete, path = "/api/v1/me/avatar", tag = "me", responses(
    (status = 204, description = "Removed (or there was none)"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, ApiError> {
    caller.require_csrf(&state, &headers)?;
    state
        .avatars
        .remove(&caller.me.user, &caller.client, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to each reason an upload fails.
fn problem(err: AvatarError) -> Response {
    let (status, detail) = match err {
        AvatarError::Image(ImageProblem::UnsupportedFormat) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The body is not a PNG, JPEG or WebP image.".to_string(),
        ),
        AvatarError::Image(ImageProblem::Empty) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "The body is empty: send the image itself.".to_string(),
        ),
        AvatarError::Image(ImageProblem::TooManyPixels) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "The image is too large: at most {} pixels per side and {} megapixels.",
                crate::avatars::pipeline::MAX_SIDE,
                crate::avatars::pipeline::MAX_PIXELS / 1_000_000
            ),
        ),
        AvatarError::Image(ImageProblem::Undecodable) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "The image cannot be decoded: it is truncated or damaged.".to_string(),
        ),
        AvatarError::FileTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "The image is larger than 5 MiB.".to_string(),
        ),
        AvatarError::Busy => {
            let mut response = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many images are being processed right now; retry shortly.",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            return response;
        }
        AvatarError::Store(e) => return ApiError::from(e).into_response(),
        AvatarError::Failed(detail) => return ApiError::Internal(detail).into_response(),
    };
    Problem::new(status, detail).into_response()
}
