//! Avatars in the browser: the served images (uploaded avatars and initials, public,
//! immutable, no cookies read or set) and the profile page's two forms (upload, remove),
//! which answer with a redirect to `/account/profile` carrying what the page tells.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::AppState;
use crate::avatars::{AvatarError, ImageProblem, MAX_UPLOAD_BYTES, MEDIA_TYPE, valid_key};
use crate::error::WebError;
use crate::http::{CsrfOnly, HtmlForm, PageContext, SignedIn};

/// Where both forms return.
const PROFILE: &str = "/account/profile";

/// Room for the form's other field and the multipart framing around the file.
const FORM_OVERHEAD: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/avatars/{key}/{size}", get(image))
        .route("/avatars/initials/{text}/{colour}/{size}", get(initials))
        .route(
            "/account/avatar",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + FORM_OVERHEAD)),
        )
        .route("/account/avatar/delete", post(remove))
}

/// The headers of every served picture: cached for a year by anyone (its URL changes with
/// its content), never sniffed into another type, no active content, and shown by relying
/// applications of other origins.
fn immutable(content_type: &'static str, etag: &str) -> [(header::HeaderName, HeaderValue); 6] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'"),
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        ),
        (
            header::ETAG,
            HeaderValue::from_str(&format!("\"{etag}\"")).unwrap_or(HeaderValue::from_static("")),
        ),
    ]
}

/// Whether the client already holds this representation (`If-None-Match`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let quoted = format!("\"{etag}\"");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == quoted
        })
}

/// `GET /avatars/{key}/{size}`: one size of an uploaded avatar.
async fn image(
    State(state): State<AppState>,
    Path((key, size)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let size: u32 = size.parse().map_err(|_| WebError::NotFound)?;
    if !valid_key(&key) || !crate::avatars::SIZES.contains(&size) {
        return Err(WebError::NotFound);
    }
    let etag = format!("{key}-{size}");
    if not_modified(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, immutable(MEDIA_TYPE, &etag)).into_response());
    }
    let bytes = state
        .avatars
        .image(&key, size)
        .await?
        .ok_or(WebError::NotFound)?;
    Ok((immutable(MEDIA_TYPE, &etag), bytes).into_response())
}

/// `GET /avatars/initials/{text}/{colour}/{size}`: the picture of an account without an
/// avatar, drawn from its URL alone.
async fn initials(
    State(state): State<AppState>,
    Path((text, colour, size)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let colour: usize = colour.parse().map_err(|_| WebError::NotFound)?;
    let size: u32 = size.parse().map_err(|_| WebError::NotFound)?;
    // The URL is the content; its tag need only be stable.
    let etag = format!(
        "i-{}-{colour}-{size}",
        text.chars()
            .map(|c| format!("{:x}", u32::from(c)))
            .collect::<Vec<_>>()
            .join(".")
    );
    let png = state
        .avatars
        .initials_png(&text, colour, size)
        .await
        .map_err(|_| WebError::Busy)?
        .ok_or(WebError::NotFound)?;
    if not_modified(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, immutable("image/png", &etag)).into_response());
    }
    Ok((immutable("image/png", &etag), png).into_response())
}

/// `POST /account/avatar` (`multipart/form-data`: `csrf`, `avatar`): sets the avatar and
/// returns to the profile page with `?avatar=uploaded` (or `small`), or
/// `?avatar_error=<code>`: `empty`, `unsupported`, `too_many_pixels`, `undecodable`,
/// `file_too_large`, `busy`.
async fn upload(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    mut form: Multipart,
) -> Result<Response, WebError> {
    let mut csrf = String::new();
    let mut file = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Ok(back_with_error("file_too_large"));
            }
            Err(_) => return Err(WebError::BadForm),
        };
        let read = match field.name() {
            Some("csrf") => field.text().await.map(|text| csrf = text),
            Some("avatar") => field.bytes().await.map(|bytes| file = Some(bytes)),
            _ => field.bytes().await.map(drop),
        };
        match read {
            Ok(()) => {}
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Ok(back_with_error("file_too_large"));
            }
            Err(_) => return Err(WebError::BadForm),
        }
    }
    page.check_csrf(&state, &signed_in.cookie, &csrf)?;
    let uploaded = state
        .avatars
        .upload(
            &signed_in.user,
            file.unwrap_or_default(),
            &page.client,
            state.clock.now(),
        )
        .await;
    let code = match uploaded {
        Ok(done) if done.warning_small => {
            return Ok(Redirect::to(&format!("{PROFILE}?avatar=small")).into_response());
        }
        Ok(_) => return Ok(Redirect::to(&format!("{PROFILE}?avatar=uploaded")).into_response()),
        Err(AvatarError::Image(ImageProblem::Empty)) => "empty",
        Err(AvatarError::Image(ImageProblem::UnsupportedFormat)) => "unsupported",
        Err(AvatarError::Image(ImageProblem::TooManyPixels)) => "too_many_pixels",
        Err(AvatarError::Image(ImageProblem::Undecodable)) => "undecodable",
        Err(AvatarError::FileTooLarge) => "file_too_large",
        Err(AvatarError::Busy) => "busy",
        Err(AvatarError::Store(e)) => return Err(e.into()),
        Err(AvatarError::Failed(detail)) => return Err(WebError::Internal(detail)),
    };
    Ok(back_with_error(code))
}

fn back_with_error(code: &str) -> Response {
    Redirect::to(&format!("{PROFILE}?avatar_error={code}")).into_response()
}

/// `POST /account/avatar/delete` (`csrf`): removes the avatar; back to the profile page
/// with `?avatar=removed`.
async fn remove(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    state
        .avatars
        .remove(&signed_in.user, &page.client, state.clock.now())
        .await?;
    Ok(Redirect::to(&format!("{PROFILE}?avatar=removed")).into_response())
}

/// What the profile page tells after one of the forms above: the text key for
/// `?avatar=…` or `?avatar_error=…` and whether it is an error; `None` for anything else
/// (the query never names a key itself). For the profile page's handler.
pub fn notice(avatar: Option<&str>, avatar_error: Option<&str>) -> Option<(&'static str, bool)> {
    if let Some(code) = avatar_error {
        let key = match code {
            "empty" => "avatar-error-empty",
            "unsupported" => "avatar-error-unsupported",
            "too_many_pixels" => "avatar-error-too-many-pixels",
            "undecodable" => "avatar-error-undecodable",
            "file_too_large" => "avatar-error-file-too-large",
            "busy" => "avatar-error-busy",
            _ => return None,
        };
        return Some((key, true));
    }
    let key = match avatar? {
        "uploaded" => "avatar-uploaded",
        "small" => "avatar-small",
        "removed" => "avatar-removed",
        _ => return None,
    };
    Some((key, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notice_has_words_and_unknown_codes_tell_nothing() {
        let i18n = std::sync::Arc::new(crate::i18n::I18n::load().unwrap());
        let tr = i18n.negotiate(Some("fr"));
        let codes = [
            "empty",
            "unsupported",
            "too_many_pixels",
            "undecodable",
            "file_too_large",
            "busy",
        ];
        for (avatar, error) in codes
            .iter()
            .map(|c| (None, Some(*c)))
            .chain(["uploaded", "small", "removed"].map(|c| (Some(c), None)))
        {
            let (key, is_error) = notice(avatar, error).unwrap();
            assert_eq!(is_error, error.is_some());
            assert_ne!(tr.t(key), key, "no words for {key}");
        }
        assert_eq!(notice(Some("error-csrf"), None), None);
        assert_eq!(notice(None, Some("avatar-removed")), None);
        assert_eq!(notice(None, None), None);
    }
}
