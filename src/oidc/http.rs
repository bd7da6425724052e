//! The provider's HTTP endpoints. OAuth endpoints answer JSON errors (RFC 6749 §5.2) with
//! `Cache-Control: no-store`; the browser-facing ones (authorize, consent, logout) answer
//! pages, and redirect to a client only once its redirect URI is verified.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use minijinja::context;

mod logout;

use super::provider::{
    AuthorizeError, AuthorizeRequest, AuthorizeStep, BearerError, ClientCredentials, OAuthError,
    OAuthErrorKind,
};
use crate::AppState;
use crate::audit::ClientInfo;
use crate::error::WebError;
use crate::http::{HtmlForm, PageContext, SignedIn, csp_allowing, parse_pairs};

pub fn routes() -> Router<AppState> {
    // Browser apps (public clients) call these from their own origin, without cookies.
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(3600));
    let cross_origin = Router::new()
        .route("/oauth2/token", post(token))
        .route("/oauth2/userinfo", get(userinfo).post(userinfo))
        .route("/oauth2/revoke", post(revoke))
        .layer(cors);
    Router::new()
        .merge(cross_origin)
        .route("/oauth2/authorize", get(authorize).post(authorize))
        .route("/oauth2/consent", post(consent))
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/logout", get(logout::logout).post(logout::logout))
        .route("/oauth2/logout/confirm", post(logout::logout_confirm))
}

/// Discovery and JWKS: public documents serialized once, mounted outside the middleware
/// stack (no session, no form, no error page, nothing to log per request), so that they cost
/// what a bare handler returning the same bytes costs. Their headers are set here.
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route(
            "/.well-known/oauth-authorization-server",
            get(authorization_server),
        )
        .route("/oauth2/jwks", get(jwks))
}

/// Public JSON documents; any origin may read them.
fn public_json(body: Bytes) -> Response {
    public_document("application/json", body)
}

fn public_document(content_type: &'static str, body: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn discovery(State(state): State<AppState>) -> Response {
    public_json(state.provider.discovery_json())
}

async fn authorization_server(State(state): State<AppState>) -> Response {
    public_json(state.provider.authorization_server_json())
}

async fn jwks(State(state): State<AppState>) -> Response {
    public_document(
        "application/jwk-set+json",
        state.provider.keys().jwks_json(),
    )
}

// ----- OAuth JSON answers ----------------------------------------------------------------

/// The HTTP status of each OAuth error (RFC 6749 §5.2: 400, or 401 for a failed client
/// authentication; §4.1.2.1's server errors as 500 and 503).
fn oauth_status(kind: OAuthErrorKind) -> StatusCode {
    match kind {
        OAuthErrorKind::InvalidRequest
        | OAuthErrorKind::InvalidGrant
        | OAuthErrorKind::UnauthorizedClient
        | OAuthErrorKind::UnsupportedGrantType
        | OAuthErrorKind::InvalidScope => StatusCode::BAD_REQUEST,
        OAuthErrorKind::InvalidClient => StatusCode::UNAUTHORIZED,
        OAuthErrorKind::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        OAuthErrorKind::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = oauth_status(self.kind);
        let body = serde_json::json!({
            "error": self.error(),
            "error_description": self.description,
        });
        let mut response = (status, no_store(), axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"gotthard\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::store::RETRY_AFTER_SECS),
            );
        }
        response
    }
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// Parses an `application/x-www-form-urlencoded` body strictly: the media type, UTF-8, no
/// repeated parameter (RFC 6749 §3.2), no oversized value.
fn oauth_form(headers: &HeaderMap, body: &Bytes) -> Result<HashMap<String, String>, OAuthError> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    parse_pairs(body).map(|pairs| pairs.into_iter().collect::<HashMap<_, _>>())
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: both parts
/// form-urlencoded) and the body.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<ClientCredentials, OAuthError> {
    let mut creds = ClientCredentials {
        client_id: form.get("client_id").cloned(),
        client_secret: form.get("client_secret").cloned(),
        assertion_type: form.get("client_assertion_type").cloned(),
        assertion: form.get("client_assertion").cloned(),
        basic: None,
    };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| OAuthError::invalid_client())?;
        let Some((scheme, encoded)) = value.split_once(' ') else {
            return Err(OAuthError::invalid_client());
        };
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(OAuthError::invalid_client)?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(OAuthError::invalid_client)?;
            let unescape = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| OAuthError::invalid_client())
            };
            creds.basic = Some((unescape(id)?, unescape(secret)?));
        }
    }
    Ok(creds)
}

async fn token(
    State(state): State<AppState>,
    requester: ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let form = oauth_form(&headers, &body)?;
        let creds = client_credentials(&headers, &form)?;
        state.provider.token(&form, &creds, &requester, now).await
    }
    .await;
    match result {
        Ok(tokens) => (no_store(), axum::Json(tokens)).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn introspect(
    State(state): State<AppState>,
    requester: ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let form = oauth_form(&headers, &body)?;
        let creds = client_credentials(&headers, &form)?;
        let client = state
            .provider
            .authenticate_client(&creds, &requester, now)
            .await?;
        if client.is_public() {
            return Err(OAuthError::invalid_client());
        }
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        Ok(state.provider.introspect(&client, token, now).await?)
    }
    .await;
    match result {
        Ok(body) => (no_store(), axum::Json(body)).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn revoke(
    State(state): State<AppState>,
    requester: ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let form = oauth_form(&headers, &body)?;
        let creds = client_credentials(&headers, &form)?;
        let client = state
            .provider
            .authenticate_client(&creds, &requester, now)
            .await?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        state
            .provider
            .revoke(&client, token, &requester, now)
            .await?;
        Ok::<_, OAuthError>(())
    }
    .await;
    match result {
        Ok(()) => (StatusCode::OK, no_store()).into_response(),
        Err(err) => err.into_response(),
    }
}

// ----- bearer endpoints ------------------------------------------------------------------

/// The bearer token of a request: the `Authorization` header, or (POST only) the
/// `access_token` form field (RFC 6750 §2.2); never both.
fn bearer_token(
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<String, BearerAnswer> {
    let from_header = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().map_err(|_| BearerAnswer::InvalidRequest)?;
            match value.split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                {
                    Some(token.trim().to_string())
                }
                _ => return Err(BearerAnswer::InvalidRequest),
            }
        }
        None => None,
    };
    let from_body = if method == Method::POST && !body.is_empty() {
        let pairs = parse_pairs(body).map_err(|_| BearerAnswer::InvalidRequest)?;
        pairs
            .into_iter()
            .find(|(n, _)| n == "access_token")
            .map(|(_, v)| v)
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (Some(_), Some(_)) => Err(BearerAnswer::InvalidRequest),
        (None, None) => Err(BearerAnswer::Missing),
    }
}

/// RFC 6750 §3 answers.
pub enum BearerAnswer {
    Missing,
    InvalidRequest,
    InvalidToken,
    InsufficientScope(&'static str),
    Unavailable,
}

impl From<BearerError> for BearerAnswer {
    fn from(err: BearerError) -> Self {
        match err {
            BearerError::Invalid(_) | BearerError::Revoked => BearerAnswer::InvalidToken,
            BearerError::InsufficientScope => BearerAnswer::InsufficientScope("openid"),
            BearerError::Store(e) => {
                tracing::error!(error = %e, "store failure while checking a token");
                BearerAnswer::Unavailable
            }
        }
    }
}

impl IntoResponse for BearerAnswer {
    fn into_response(self) -> Response {
        let (status, challenge) = match self {
            BearerAnswer::Missing => (
                StatusCode::UNAUTHORIZED,
                "Bearer realm=\"gotthard\"".to_string(),
            ),
            BearerAnswer::InvalidRequest => (
                StatusCode::BAD_REQUEST,
                "Bearer realm=\"gotthard\", error=\"invalid_request\"".to_string(),
            ),
            BearerAnswer::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "Bearer realm=\"gotthard\", error=\"invalid_token\"".to_string(),
            ),
            BearerAnswer::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer realm=\"gotthard\", error=\"insufficient_scope\", scope=\"{scope}\""
                ),
            ),
            BearerAnswer::Unavailable => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    no_store(),
                    [(
                        header::RETRY_AFTER,
                        crate::store::RETRY_AFTER_SECS.to_string(),
                    )],
                )
                    .into_response();
            }
        };
        let mut response = (status, no_store()).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

async fn userinfo(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let token = bearer_token(&method, &headers, &body)?;
        let (claims, user) = state
            .provider
            .verify_access_token(&token, state.clock.now())
            .await?;
        Ok::<_, BearerAnswer>(state.provider.userinfo(&claims, user.as_ref())?)
    }
    .await;
    match result {
        Ok(body) => (no_store(), axum::Json(body)).into_response(),
        Err(answer) => answer.into_response(),
    }
}

// ----- authorization endpoint -----------------------------------------------------------

fn with_csp(mut response: Response, redirect_uri: &str) -> Response {
    if let Some(csp) = csp_allowing(redirect_uri) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

fn request_params(
    method: &Method,
    query: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Vec<(String, String)>, WebError> {
    if method == Method::POST {
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !form_type {
            return Err(WebError::UnsupportedMediaType);
        }
        parse_pairs(body).map_err(|_| WebError::BadRequest("oidc-error-invalid-request"))
    } else {
        parse_pairs(query.unwrap_or_default().as_bytes())
            .map_err(|_| WebError::BadRequest("oidc-error-invalid-request"))
    }
}

async fn authorize(
    State(state): State<AppState>,
    page: PageContext,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    signed_in: Result<SignedIn, WebError>,
    body: Bytes,
) -> Result<Response, WebError> {
    let params = request_params(&method, query, &headers, &body)?;
    let request = match state.provider.authorization_request(&params).await {
        Ok(request) => request,
        Err(err) => return Ok(authorize_error(&state, err)),
    };
    let now = state.clock.now();
    let signed_in = signed_in.ok();
    let step = state
        .provider
        .next_step(
            &request,
            &params,
            signed_in.as_ref().map(|s| (&s.session, &s.user)),
            now,
        )
        .await;
    match step {
        Err(err) => Ok(authorize_error(&state, err)),
        Ok(AuthorizeStep::Login { resume_query }) => {
            let next = format!("/oauth2/authorize?{resume_query}");
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("next", &next)
                .finish();
            Ok(Redirect::to(&format!("/login?{query}")).into_response())
        }
        Ok(AuthorizeStep::Consent) => {
            let Some(signed_in) = signed_in else {
                return Err(WebError::NotSignedIn);
            };
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter())
                .finish();
            consent_page(&state, page, &signed_in, &request, &query)
        }
        Ok(AuthorizeStep::Issue) => {
            let Some(signed_in) = signed_in else {
                return Err(WebError::NotSignedIn);
            };
            let url = state
                .provider
                .issue_code(&request, &signed_in.session, now)
                .await?;
            Ok(Redirect::to(&url).into_response())
        }
    }
}

fn authorize_error(state: &AppState, err: AuthorizeError) -> Response {
    match err {
        AuthorizeError::Page(key) => WebError::BadRequest(key).into_response(),
        AuthorizeError::Redirect {
            redirect_uri,
            state: client_state,
            error,
            description,
        } => Redirect::to(&state.provider.error_redirect(
            &redirect_uri,
            client_state.as_deref(),
            error,
            &description,
        ))
        .into_response(),
    }
}

fn consent_page(
    state: &AppState,
    page: PageContext,
    signed_in: &SignedIn,
    request: &AuthorizeRequest,
    query: &str,
) -> Result<Response, WebError> {
    let (jar, token) = page.csrf_token(state, &signed_in.cookie);
    let scopes: Vec<String> = request
        .scope
        .iter()
        .map(|s| page.tr.t(&format!("scope-{}", s.replace([':', '_'], "-"))))
        .collect();
    let html = state.pages.render(
        "consent.html",
        &page.tr,
        context! {
            csrf => token,
            client => request.client.name,
            scopes => scopes,
            request => query,
            email => signed_in.user.email,
        },
    )?;
    Ok(with_csp(
        (jar, Html(html)).into_response(),
        &request.redirect_uri,
    ))
}

#[derive(serde::Deserialize)]
struct ConsentForm {
    #[serde(default)]
    csrf: String,
    request: String,
    decision: String,
}

async fn consent(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    HtmlForm(form): HtmlForm<ConsentForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let params = parse_pairs(form.request.as_bytes())
        .map_err(|_| WebError::BadRequest("oidc-error-invalid-request"))?;
    let request = match state.provider.authorization_request(&params).await {
        Ok(request) => request,
        Err(err) => return Ok(authorize_error(&state, err)),
    };
    let now = state.clock.now();
    if form.decision != "allow" {
        return Ok(Redirect::to(&state.provider.error_redirect(
            &request.redirect_uri,
            request.state.as_deref(),
            "access_denied",
            "the user declined",
        ))
        .into_response());
    }
    state
        .provider
        .grant_consent(&request, &signed_in.user, &page.client, now)
        .await?;
    let url = state
        .provider
        .issue_code(&request, &signed_in.session, now)
        .await?;
    Ok(Redirect::to(&url).into_response())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// `Authorization` values: the two schemes in any case, with tokens, Basic credentials
    /// (base64 of `id:secret`, escaped or not, or of any bytes), spaces, and bytes of any kind.
    fn authorization() -> impl Strategy<Value = Vec<u8>> {
        let scheme = prop_oneof![
            prop::sample::select(vec![
                "Bearer", "bearer", "BEARER", "Basic", "basic", "DPoP", ""
            ])
            .prop_map(str::to_string),
            "[A-Za-z]{0,8}",
        ];
        let credentials = prop_oneof![
            "[A-Za-z0-9._~+/=-]{0,200}",
            " {0,3}.{0,40} {0,3}",
            (".{0,20}", ".{0,20}").prop_map(|(id, secret)| {
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
            }),
            (
                "(%[0-9A-Fa-f]{2}|[a-z+]){0,20}",
                "(%[0-9A-Fa-f]{2}|[a-z+]){0,20}"
            )
                .prop_map(|(id, secret)| {
                    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
                }),
            prop::collection::vec(any::<u8>(), 0..60)
                .prop_map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        ];
        prop_oneof![
            4 => (scheme, " {0,2}", credentials).prop_map(|(s, sp, c)| format!("{s}{sp}{c}").into_bytes()),
            1 => prop::collection::vec(any::<u8>(), 0..80),
        ]
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(Vec::new()),
            ".{0,40}".prop_map(|t| format!("access_token={t}").into_bytes()),
            "(access_token=[a-z]{1,5}&?){1,3}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..80),
        ]
    }

    fn headers(authorization: Option<&[u8]>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization.and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.insert(header::AUTHORIZATION, value);
        }
        headers
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(256))]

        /// Any `Authorization` header and body at userinfo: one token, or the RFC 6750 §3
        /// answer (400 `invalid_request`, or 401 without a token).
        #[test]
        fn fuzz_bearer_header_and_body(
            authorization in prop::option::of(authorization()),
            post in any::<bool>(),
            body in body(),
        ) {
            let method = if post { Method::POST } else { Method::GET };
            let headers = headers(authorization.as_deref());
            match bearer_token(&method, &headers, &Bytes::from(body)) {
                Ok(token) => prop_assert!(!token.is_empty()),
                Err(BearerAnswer::Missing) => prop_assert!(headers.get(header::AUTHORIZATION).is_none()),
                Err(BearerAnswer::InvalidRequest) => {}
                Err(_) => prop_assert!(false, "no token was checked"),
            }
        }

        /// Any `Authorization` header at the token, introspection and revocation endpoints:
        /// credentials, or `invalid_client` (401).
        #[test]
        fn fuzz_client_auth_header(
            authorization in prop::option::of(authorization()),
            client_id in prop::option::of(".{0,20}"),
        ) {
            let headers = headers(authorization.as_deref());
            let mut form = HashMap::new();
            if let Some(id) = client_id {
                form.insert("client_id".to_string(), id);
            }
            match client_credentials(&headers, &form) {
                Ok(creds) => {
                    let scheme = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split_once(' '))
                        .map(|(scheme, _)| scheme.to_ascii_lowercase());
                    prop_assert_eq!(creds.basic.is_some(), scheme.as_deref() == Some("basic"));
                }
                Err(err) => prop_assert_eq!(err.kind, OAuthErrorKind::InvalidClient),
            }
        }
    }
}
