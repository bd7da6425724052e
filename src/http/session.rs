//! The signed-in browser: the session cookie, and the extractor that finds its session.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
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
        let Some(cookie) = session_cookie(&parts.headers, state.config.is_https()) else {
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

/// The value of the session cookie among the request's cookies (the sessions service refuses
/// any that is not one of its tokens before the store sees it).
fn session_cookie(headers: &HeaderMap, https: bool) -> Option<String> {
    let jar = CookieJar::from_headers(headers);
    let name = csrf::cookie_name(SESSION_COOKIE, https);
    jar.get(&name).map(|c| c.value().to_string())
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        Self::from_parts(parts, state)
            .await?
            .ok_or(WebError::NotSignedIn)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, header};
    use proptest::prelude::*;

    use super::*;
    use crate::tokens::OpaqueToken;

    fn cookie() -> impl Strategy<Value = (String, String)> {
        let name = prop_oneof![
            Just("gotthard_session".to_string()),
            Just("__Host-gotthard_session".to_string()),
            Just("gotthard_csrf".to_string()),
            "[a-zA-Z_$-]{0,16}",
        ];
        let value = prop_oneof![
            "[A-Za-z0-9_-]{43}",
            "[A-Za-z0-9_-]{40,46}",
            "\"[A-Za-z0-9_-]{43}\"",
            "(%[0-9A-Fa-f]{2}|[ -~]){0,60}",
            ".{0,30}",
        ];
        (name, value)
    }

    fn headers_of(values: &[Vec<u8>]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(header::COOKIE, value);
            }
        }
        headers
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(256))]

        /// Any `Cookie` headers (several, repeated names, any bytes): the session cookie is
        /// found or not, and only a value shaped like one of our tokens goes on to the store.
        #[test]
        fn fuzz_cookie_any_header_yields_a_token_or_nothing(
            https in any::<bool>(),
            lines in prop::collection::vec(
                prop_oneof![
                    3 => prop::collection::vec(cookie(), 0..5).prop_map(|cookies| {
                        cookies
                            .into_iter()
                            .map(|(n, v)| format!("{n}={v}"))
                            .collect::<Vec<_>>()
                            .join("; ")
                            .into_bytes()
                    }),
                    1 => prop::collection::vec(any::<u8>(), 0..100),
                ],
                0..3,
            ),
        ) {
            let headers = headers_of(&lines);
            let token = session_cookie(&headers, https)
                .and_then(|value| OpaqueToken::from_client(&value));
            if let Some(token) = token {
                prop_assert_eq!(token.as_str().len(), 43);
                prop_assert!(token
                    .as_str()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            }
        }

        /// A session token among other cookies is found as it was set.
        #[test]
        fn fuzz_cookie_round_trip(
            https in any::<bool>(),
            before in prop::collection::vec(cookie(), 0..3),
            after in prop::collection::vec(cookie(), 0..3),
        ) {
            let token = OpaqueToken::generate();
            let name = csrf::cookie_name(SESSION_COOKIE, https);
            let others = |cookies: &[(String, String)]| {
                cookies
                    .iter()
                    .filter(|(n, _)| !n.is_empty() && n != &name)
                    // A `;` would end the cookie; a header with bytes other than visible ASCII is
                    // not read at all (as `axum-extra` reads cookies), so others stay ASCII.
                    .filter(|(_, v)| !v.contains(';') && v.bytes().all(|b| (0x20..0x7f).contains(&b)))
                    .map(|(n, v)| format!("{n}={v}; "))
                    .collect::<String>()
            };
            let line = format!("{}{name}={}; {}", others(&before), token.as_str(), others(&after));
            let found = session_cookie(&headers_of(&[line.into_bytes()]), https);
            prop_assert_eq!(found.as_deref(), Some(token.as_str()));
        }
    }
}
