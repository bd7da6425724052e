//! The OAuth parameters as the provider's endpoints and the sign-in pages read them: the
//! strict parameter parser, the CSP that lets a form end at a client, and the authorization
//! request a sign-in form resumes afterwards.

use axum::http::HeaderValue;

use crate::AppState;
use crate::oidc::OAuthError;

/// Longest value accepted for one parameter of the token, introspection and revocation
/// endpoints (codes and refresh tokens are 43 characters, JWTs a few hundred).
const MAX_PARAM_LEN: usize = 8192;

/// The pairs of a form-urlencoded body or query, strictly: UTF-8 only, no parameter repeated,
/// none oversized; empty ones count as omitted.
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
