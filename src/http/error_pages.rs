//! The answers of errors, in the form each kind of client reads: plain (or JSON) for probes
//! and OAuth clients, problem details for the API, a localized page for browsers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;

use super::Problem;
use super::pages::translator_for;
use crate::AppState;
use crate::error::ErrorPage;

/// Renders the localized page of an error response: for our own
/// [`WebError`](crate::error::WebError)s (marked with [`ErrorPage`]) and for the plain-text
/// rejections of the framework (404, 405, 408, 413).
pub async fn error_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Probes, scrapers and OAuth clients get the plain (or JSON) answers of their endpoints.
    let path = request.uri().path();
    let machine = matches!(
        path,
        "/healthz"
            | "/readyz"
            | "/metrics"
            | "/oauth2/token"
            | "/oauth2/userinfo"
            | "/oauth2/introspect"
            | "/oauth2/revoke"
            | "/oauth2/jwks"
    ) || path.starts_with("/.well-known/");
    if machine {
        return next.run(request).await;
    }
    // The API answers problem details, also for the framework's own rejections.
    if request.uri().path().starts_with("/api/") {
        let response = next.run(request).await;
        let status = response.status();
        let plain = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("text/plain"));
        if (status.is_client_error() || status.is_server_error()) && plain {
            let detail = status.canonical_reason().unwrap_or("Error");
            let mut problem = Problem::new(status, detail).into_response();
            // The wait of a rate limit (or an outage) stays with the answer.
            if let Some(wait) = response.headers().get(header::RETRY_AFTER) {
                problem
                    .headers_mut()
                    .insert(header::RETRY_AFTER, wait.clone());
            }
            return problem;
        }
        return response;
    }
    // Kept aside cheaply; the translator is only built for an error.
    let headers = HeaderMap::from_iter(
        [
            header::ACCEPT_LANGUAGE,
            HeaderName::from_static("x-request-id"),
        ]
        .into_iter()
        .filter_map(|name| Some((name.clone(), request.headers().get(&name)?.clone()))),
    );
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let tr = translator_for(&state, &headers);
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let marked = response.extensions().get::<ErrorPage>().map(|p| p.0);
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    let key = match (marked, plain) {
        (Some(key), _) => key,
        (None, true) => key_for_status(status),
        (None, false) => return response,
    };
    let message = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        tr.t("error-internal")
    } else {
        tr.t(key)
    };
    let ctx = context! {
        title => tr.t("error-title"),
        message => message,
        request_id => status.is_server_error().then_some(request_id).flatten(),
    };
    let (mut parts, _) = response.into_parts();
    let body = state
        .pages
        .render("message.html", &tr, ctx)
        .unwrap_or_else(|_| tr.t(key));
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    (parts, Html(body)).into_response()
}

fn key_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "error-not-found",
        StatusCode::METHOD_NOT_ALLOWED => "error-method",
        StatusCode::REQUEST_TIMEOUT => "error-timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "error-too-large",
        StatusCode::SERVICE_UNAVAILABLE => "error-unavailable",
        s if s.is_server_error() => "error-internal",
        _ => "error-bad-request",
    }
}
