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
