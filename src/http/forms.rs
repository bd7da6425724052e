//! The form extractor of browser routes: strict about encoding, clear about what is wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::WebError;

/// An `application/x-www-form-urlencoded` body. Unlike a lossy decoder, bytes that are not
/// UTF-8 (raw or percent-encoded) are refused rather than turned into U+FFFD, and a missing
/// or mistyped field is a 422 page, not a plain-text rejection.
pub struct HtmlForm<T>(pub T);

impl<S, T> FromRequest<S> for HtmlForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(WebError::UnsupportedMediaType);
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                WebError::TooLarge
            } else {
                WebError::BadForm
            }
        })?;
        check_utf8(&body)?;
        serde_urlencoded::from_bytes(&body)
            .map(HtmlForm)
            .map_err(|_| WebError::BadForm)
    }
}

/// The body of a form whose only field is its CSRF token (buttons that act).
#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

fn check_utf8(body: &[u8]) -> Result<(), WebError> {
    std::str::from_utf8(body).map_err(|_| WebError::BadEncoding)?;
    for pair in body.split(|b| *b == b'&') {
        let plus_as_space: Vec<u8> = pair
            .iter()
            .map(|b| if *b == b'+' { b' ' } else { *b })
            .collect();
        percent_encoding::percent_decode(&plus_as_space)
            .decode_utf8()
            .map_err(|_| WebError::BadEncoding)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_raw_and_percent_encoded_invalid_utf8() {
        assert!(check_utf8(b"email=a%40b.c&password=caf%C3%A9").is_ok());
        assert!(matches!(
            check_utf8(b"email=\xff"),
            Err(WebError::BadEncoding)
        ));
        assert!(matches!(
            check_utf8(b"email=%FF%FE"),
            Err(WebError::BadEncoding)
        ));
    }
}
