//! CSRF protection for every state-changing form: the signed double-submit token of OWASP's
//! CSRF cheat sheet. A random cookie per browser; the form carries HMAC(server key, cookie,
//! binding), where the binding is the session cookie once signed in, so a token cannot be
//! carried from one session to another.

use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::error::WebError;
use crate::tokens::{Keyring, OpaqueToken};

pub const CSRF_COOKIE: &str = "gotthard_csrf";

/// Cookie names get the `__Host-` prefix under https (RFC 6265bis §4.1.3.2): the cookie is
/// then bound to this exact host, path `/`, and `Secure`.
pub fn cookie_name(base: &str, https: bool) -> String {
    if https {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

pub fn security_cookie(name: String, value: String, https: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(https)
        .path("/")
        .build()
}

/// Returns the jar (with a new CSRF cookie when the browser had none) and the form token.
pub fn issue(keyring: &Keyring, jar: CookieJar, https: bool, binding: &str) -> (CookieJar, String) {
    let name = cookie_name(CSRF_COOKIE, https);
    let existing = jar
        .get(&name)
        .and_then(|c| OpaqueToken::from_client(c.value()));
    let (jar, value) = match existing {
        Some(token) => (jar, token.as_str().to_string()),
        None => {
            let token = OpaqueToken::generate();
            let value = token.as_str().to_string();
            (jar.add(security_cookie(name, value.clone(), https)), value)
        }
    };
    let token = form_token(keyring, &value, binding);
    (jar, token)
}

fn form_token(keyring: &Keyring, cookie: &str, binding: &str) -> String {
    URL_SAFE_NO_PAD.encode(keyring.csrf_mac(&[b"csrf-v1", cookie.as_bytes(), binding.as_bytes()]))
}

/// Checks a submitted token against the browser's CSRF cookie, in constant time.
pub fn verify(
    keyring: &Keyring,
    jar: &CookieJar,
    https: bool,
    binding: &str,
    submitted: &str,
) -> Result<(), WebError> {
    let cookie = jar
        .get(&cookie_name(CSRF_COOKIE, https))
        .and_then(|c| OpaqueToken::from_client(c.value()))
        .ok_or(WebError::Csrf)?;
    let expected = form_token(keyring, cookie.as_str(), binding);
    if submitted.len() == expected.len()
        && bool::from(submitted.as_bytes().ct_eq(expected.as_bytes()))
    {
        Ok(())
    } else {
        Err(WebError::Csrf)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use axum::http::{HeaderMap, HeaderValue, header};
    use proptest::prelude::*;

    use super::*;

    static KEYRING: LazyLock<Keyring> = LazyLock::new(|| {
        let dir = tempfile::tempdir().unwrap();
        Keyring::load_or_create(dir.path()).unwrap()
    });

    /// A `Cookie` header as browsers and attackers send it: the CSRF cookie (either name)
    /// with values of any shape, repeated, among other cookies, or bytes of any kind.
    fn cookie_header() -> impl Strategy<Value = Vec<u8>> {
        let name = prop_oneof![
            Just("gotthard_csrf".to_string()),
            Just("__Host-gotthard_csrf".to_string()),
            Just("gotthard_session".to_string()),
            "[a-zA-Z_-]{0,12}",
        ];
        let value = prop_oneof![
            "[A-Za-z0-9_-]{43}",
            "[A-Za-z0-9_-]{0,50}",
            "(%[0-9A-Fa-f]{2}|[ -~]){0,50}",
            ".{0,20}",
        ];
        prop_oneof![
            3 => prop::collection::vec((name, value), 0..5).prop_map(|cookies| {
                cookies
                    .into_iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
                    .into_bytes()
            }),
            1 => prop::collection::vec(any::<u8>(), 0..120),
        ]
    }

    fn jar_of(header: &[u8]) -> Option<CookieJar> {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_bytes(header).ok()?);
        Some(CookieJar::from_headers(&headers))
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(256))]

        /// Any cookie and any submitted token is refused with `Csrf` (403), unless the token
        /// is the one issued for that very cookie and binding.
        #[test]
        fn fuzz_csrf_refused_unless_issued(
            cookies in cookie_header(),
            https in any::<bool>(),
            binding in prop_oneof![Just(String::new()), "[A-Za-z0-9_-]{43}"],
            submitted in prop_oneof!["[A-Za-z0-9_-]{43}", ".{0,60}"],
        ) {
            // Bytes no header can carry never reach the server.
            let Some(jar) = jar_of(&cookies) else { return Ok(()) };
            let issued = jar
                .get(&cookie_name(CSRF_COOKIE, https))
                .and_then(|c| OpaqueToken::from_client(c.value()))
                .map(|cookie| form_token(&KEYRING, cookie.as_str(), &binding));
            match verify(&KEYRING, &jar, https, &binding, &submitted) {
                Ok(()) => prop_assert_eq!(issued.as_deref(), Some(submitted.as_str())),
                Err(WebError::Csrf) => prop_assert_ne!(issued.as_deref(), Some(submitted.as_str())),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        /// A token issued to a browser verifies with its cookie, and stops verifying once a
        /// character changes or it is presented under another binding.
        #[test]
        fn fuzz_csrf_round_trip(
            cookies in cookie_header(),
            https in any::<bool>(),
            binding in "[A-Za-z0-9_-]{43}",
            other in "[A-Za-z0-9_-]{43}",
            at in 0usize..43,
            replacement in "[A-Za-z0-9_-]",
        ) {
            let Some(jar) = jar_of(&cookies) else { return Ok(()) };
            let (jar, token) = issue(&KEYRING, jar, https, &binding);
            prop_assert!(verify(&KEYRING, &jar, https, &binding, &token).is_ok());
            if other != binding {
                prop_assert!(verify(&KEYRING, &jar, https, &other, &token).is_err());
            }
            let mut changed = token.clone();
            changed.replace_range(at..at + 1, &replacement);
            if changed != token {
                prop_assert!(verify(&KEYRING, &jar, https, &binding, &changed).is_err());
            }
        }
    }
}
