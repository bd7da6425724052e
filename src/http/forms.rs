//! The form extractor of browser routes: strict about encoding, clear about what is wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::WebError;

/// An `application/x-www-form-urlencoded` body. Unlike a lossy decoder, bytes that are not
/// UTF-8 (raw or percent-encoded) or NUL are refused rather than turned into U+FFFD or passed
/// on to a store that cannot hold them, and a missing or mistyped field is a 422 page, not a
/// plain-text rejection.
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
        parse_form(&body).map(HtmlForm)
    }
}

/// A form body: `BadEncoding` (400) for bytes that are not UTF-8 or NUL, raw or
/// percent-encoded; `BadForm` (422) for a missing or mistyped field.
fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, WebError> {
    check_utf8(body)?;
    serde_urlencoded::from_bytes(body).map_err(|_| WebError::BadForm)
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
        let text = percent_encoding::percent_decode(&plus_as_space)
            .decode_utf8()
            .map_err(|_| WebError::BadEncoding)?;
        // Nobody types a NUL, and PostgreSQL cannot store one: not text either.
        if text.contains('\0') {
            return Err(WebError::BadEncoding);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The shape of the sign-in form (strings, one optional with a default) and a number, as
    /// the security settings carry.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Form {
        email: String,
        password: String,
        #[serde(default)]
        csrf: String,
        threshold: Option<i32>,
    }

    /// Bodies as browsers and attackers send them: raw bytes, percent escapes of any byte,
    /// the field names with values of any kind.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let name = prop_oneof![
            prop::sample::select(vec!["email", "password", "csrf", "threshold", "next"])
                .prop_map(str::to_string),
            ".{0,8}",
        ];
        let value = prop_oneof![
            ".{0,40}",
            "(%[0-9A-Fa-f]{2}|%00|[a-z+=&;]){0,40}",
            "-?[0-9]{1,30}",
            prop::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ];
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec((name, value), 0..8).prop_map(|pairs| {
                pairs
                    .into_iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
                    .into_bytes()
            }),
            (prop::collection::vec(any::<u8>(), 0..100), 0usize..100).prop_map(|(raw, at)| {
                let mut body = b"email=a%40b.c&password=x&csrf=".to_vec();
                let at = at.min(body.len());
                body.splice(at..at, raw);
                body
            }),
        ]
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(256))]

        #[test]
        fn fuzz_form_any_body_is_a_form_or_its_4xx(body in body()) {
            // Percent escapes never straddle a `&`, so the body decodes as a whole exactly when
            // each of its pairs does.
            let utf8 = std::str::from_utf8(&body).is_ok()
                && percent_encoding::percent_decode(&body)
                    .decode_utf8()
                    .is_ok_and(|text| !text.contains('\0'));
            match parse_form::<Form>(&body) {
                Ok(form) => {
                    prop_assert!(utf8);
                    // Nothing was replaced by U+FFFD on the way.
                    let decoded = percent_encoding::percent_decode(&body).decode_utf8_lossy();
                    for field in [&form.email, &form.password, &form.csrf] {
                        prop_assert!(!field.contains(char::REPLACEMENT_CHARACTER) || decoded.contains(char::REPLACEMENT_CHARACTER));
                    }
                }
                Err(WebError::BadEncoding) => prop_assert!(!utf8),
                Err(WebError::BadForm) => prop_assert!(utf8),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        #[test]
        fn fuzz_form_round_trip(
            email in "[^\0]{0,60}",
            password in "[^\0]{0,60}",
            csrf in "[A-Za-z0-9_-]{0,43}",
            threshold in prop::option::of(any::<i32>()),
        ) {
            let form = Form { email, password, csrf, threshold };
            let body = serde_urlencoded::to_string(&form).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: Form = parse_form(body.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("{e:?} for {body}")))?;
            prop_assert_eq!(back, form);
        }
    }

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
        // PostgreSQL refuses text holding a NUL (the HTTP properties found one reaching a
        // query through an OAuth parameter): a form's field is refused at the door too.
        assert!(matches!(
            check_utf8(b"name=a%00b"),
            Err(WebError::BadEncoding)
        ));
    }
}
