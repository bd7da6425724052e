//! RP-initiated logout (OIDC RP-Initiated Logout 1.0): the question to the user when the
//! request does not come from an app of the very session, the end of the session, and the
//! way out.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;

use super::{parse_pairs, request_params, with_csp};
use crate::AppState;
use crate::error::WebError;
use crate::http::{HtmlForm, PageContext, SESSION_COOKIE, SignedIn, csrf};

pub(super) async fn logout(
    State(state): State<AppState>,
    page: PageContext,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    signed_in: Result<SignedIn, WebError>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs = request_params(&method, query, &headers, &body)?;
    let params: HashMap<String, String> = pairs.iter().cloned().collect();
    let request = state
        .provider
        .logout_request(&params)
        .await
        .map_err(WebError::BadRequest)?;
    let Ok(signed_in) = signed_in else {
        return signed_out(&state, page, request.redirect.as_deref());
    };
    // The hint proves the request comes from an app of this very session: no question.
    let same_session = request.hint_session.as_deref()
        == Some(signed_in.session.id.to_string().as_str())
        && request.hint_subject.as_deref() == Some(signed_in.user.id.to_string().as_str());
    if same_session {
        end_and_leave(&state, page, &signed_in, request.redirect.as_deref()).await
    } else {
        // Otherwise ask (a logout link on another site must not sign people out).
        let (jar, token) = page.csrf_token(&state, &signed_in.cookie);
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter())
            .finish();
        let html = state.pages.render(
            "logout_confirm.html",
            &page.tr,
            context! { csrf => token, request => query, client => request.client_name },
        )?;
        let response = (jar, Html(html)).into_response();
        Ok(match &request.redirect {
            Some(uri) => with_csp(response, uri),
            None => response,
        })
    }
}

#[derive(serde::Deserialize)]
pub(super) struct LogoutConfirmForm {
    #[serde(default)]
    csrf: String,
    request: String,
}

pub(super) async fn logout_confirm(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    HtmlForm(form): HtmlForm<LogoutConfirmForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let params: HashMap<String, String> = parse_pairs(form.request.as_bytes())
        .map_err(|_| WebError::BadRequest("oidc-error-invalid-request"))?
        .into_iter()
        .collect();
    let request = state
        .provider
        .logout_request(&params)
        .await
        .map_err(WebError::BadRequest)?;
    end_and_leave(&state, page, &signed_in, request.redirect.as_deref()).await
}

async fn end_and_leave(
    state: &AppState,
    page: PageContext,
    signed_in: &SignedIn,
    redirect: Option<&str>,
) -> Result<Response, WebError> {
    state
        .sessions
        .end_by_logout(&signed_in.session, &page.client, state.clock.now())
        .await?;
    state.backchannel.notify_one();
    let https = state.config.is_https();
    let jar = page.jar.clone().remove(
        axum_extra::extract::cookie::Cookie::build(csrf::cookie_name(SESSION_COOKIE, https))
            .path("/"),
    );
    let page = PageContext { jar, ..page };
    signed_out(state, page, redirect)
}

fn signed_out(
    state: &AppState,
    page: PageContext,
    redirect: Option<&str>,
) -> Result<Response, WebError> {
    if let Some(uri) = redirect {
        return Ok((page.jar, Redirect::to(uri)).into_response());
    }
    let html = state.pages.render(
        "message.html",
        &page.tr,
        context! { title => page.tr.t("logged-out-title"), message => page.tr.t("logged-out-text") },
    )?;
    Ok((page.jar, Html(html)).into_response())
}
