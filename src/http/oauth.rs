//! The OAuth parameters as the provider's endpoints and the sign-in pages read them: the
//! strict parameter parser, the CSP that lets a form end at a client, and the authorization
//! request a sign-in form resumes afterwards.

use axum::http::HeaderValue;

use crate::AppState;
use crate::oidc::OAuthError;

/// Longest value accepted for one parameter of the token, introspection and revocation
/// endpoints (codes and refresh tokens are 43 characters, JWTs a few hundred).
const MAX_PARAM_LEN: usize = 8192;

/// The pairs of a form-urlencoded body or query, strictly: UTF-8 only, no NUL, no parameter
/// repeated, none oversized; empty ones count as omitted.
pub fn parse_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(OAuthError::invalid_request("the body is not UTF-8"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut pairs = Vec::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        if value.contains('\u{FFFD}') || name.contains('\u{FFFD}') {
            return Err(OAuthError::invalid_request("a parameter is not UTF-8"));
        }
        // RFC 6749 Appendix A: no parameter admits a NUL (nor can PostgreSQL store one).
        if value.contains('\0') || name.contains('\0') {
            return Err(OAuthError::invalid_request(
                "a parameter holds a NUL character",
            ));
        }
        if value.len() > MAX_PARAM_LEN || name.len() > 64 {
            return Err(OAuthError::invalid_request(format!(
                "parameter {} is too long",
                name.chars().take(64).collect::<String>()
            )));
        }
        // Empty parameters are treated as omitted (RFC 6749 §3.1).
        if value.is_empty() {
            continue;
        }
        if !seen.insert(name.to_string()) {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name} repeated"
            )));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

/// A CSP whose `form-action` also allows the client's origin: Chrome applies form-action to
/// the redirects that follow a form post, and the login and consent forms end at the client.
pub fn csp_allowing(redirect_uri: &str) -> Option<HeaderValue> {
    let origin = url::Url::parse(redirect_uri).ok()?.origin();
    if !origin.is_tuple() {
        return None;
    }
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' {}; \
         frame-ancestors 'none'; base-uri 'none'",
        origin.ascii_serialization()
    ))
    .ok()
}

/// An authorization request a sign-in form resumes afterwards (`?next=` of the login and SSO
/// pages): only a request that validates is accepted, so `next` is never an open redirect.
pub struct ResumedRequest {
    pub next: String,
    /// The CSP that lets the form's post end at the client (its `form-action`).
    pub csp: HeaderValue,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    /// What the request demands of a sign-in (passed on to Entra ID by SSO).
    pub reauth: crate::federation::Reauthentication,
}

impl ResumedRequest {
    pub async fn of(state: &AppState, next: &str) -> Option<Self> {
        if !super::next_path::is_local_path(next) {
            return None;
        }
        let query = next.strip_prefix("/oauth2/authorize?")?;
        let params = parse_pairs(query.as_bytes()).ok()?;
        let request = state.provider.authorization_request(&params).await.ok()?;
        Some(Self {
            next: next.to_string(),
            csp: csp_allowing(&request.redirect_uri)?,
            reauth: crate::federation::Reauthentication {
                prompt_login: request.wants_fresh_login(),
                max_age: request.max_age,
            },
            login_hint: request.login_hint,
            ui_locales: request.ui_locales,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::oidc::OAuthErrorKind;

    fn query() -> impl Strategy<Value = Vec<u8>> {
        let name = prop_oneof![
            prop::sample::select(vec![
                "client_id",
                "redirect_uri",
                "response_type",
                "scope",
                "state",
                "code_challenge",
                "grant_type",
                "client_assertion",
                "token",
            ])
            .prop_map(str::to_string),
            "[a-z_]{0,70}",
            ".{0,4}",
        ];
        let value = prop_oneof![
            ".{0,30}",
            "(%[0-9A-Fa-f]{2}|%00|[a-z+=&;#?/:]){0,40}",
            (8150usize..8250).prop_map(|n| "v".repeat(n)),
        ];
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec((name, value), 0..10).prop_map(|pairs| {
                pairs
                    .into_iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
                    .into_bytes()
            }),
        ]
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(256))]

        /// Any query or body gives distinct, bounded, non-empty parameters or `invalid_request`.
        #[test]
        fn fuzz_oauth_params_strict_or_invalid_request(bytes in query()) {
            match parse_pairs(&bytes) {
                Ok(pairs) => {
                    let mut names = std::collections::HashSet::new();
                    for (name, value) in &pairs {
                        prop_assert!(names.insert(name));
                        prop_assert!(!value.is_empty() && value.len() <= MAX_PARAM_LEN);
                        prop_assert!(name.len() <= 64);
                        prop_assert!(!value.contains(char::REPLACEMENT_CHARACTER) && !name.contains(char::REPLACEMENT_CHARACTER));
                        prop_assert!(!value.contains('\0') && !name.contains('\0'));
                    }
                }
                Err(err) => prop_assert_eq!(err.kind, OAuthErrorKind::InvalidRequest),
            }
        }

        #[test]
        fn fuzz_oauth_params_round_trip(
            pairs in prop::collection::btree_map("[a-z_]{1,20}", "[^\u{FFFD}\0]{1,60}", 0..8)
        ) {
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            let parsed = parse_pairs(encoded.as_bytes())
                .map_err(|e| TestCaseError::fail(e.description))?;
            let back: std::collections::BTreeMap<String, String> = parsed.into_iter().collect();
            prop_assert_eq!(back, pairs);
        }
    }
}
