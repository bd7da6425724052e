//! `/unlock`: the self-service unlock. The request form always answers the same; the mailed
//! link opens a confirmation page, and only its POST unlocks (mail scanners prefetch links).

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

use crate::AppState;
use crate::accounts::{MAX_EMAIL_LEN, UnlockError};
use crate::error::WebError;
use crate::http::{HtmlForm, PageContext};

pub async fn form(State(state): State<AppState>, page: PageContext) -> Result<Response, WebError> {
    let (jar, csrf) = page.csrf_token(&state, "");
    let html = state
        .pages
        .render("unlock.html", &page.tr, context! { csrf, sent => false })?;
    Ok((jar, Html(html)).into_response())
}

#[derive(Deserialize)]
pub struct UnlockRequest {
    email: String,
    #[serde(default)]
    csrf: String,
}

pub async fn request(
    State(state): State<AppState>,
    page: PageContext,
    HtmlForm(form): HtmlForm<UnlockRequest>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, "", &form.csrf)?;
    if form.email.len() > MAX_EMAIL_LEN {
        return Err(WebError::BadForm);
    }
    state
        .accounts
        .request_unlock_link(&form.email, &page.client, state.clock.now())
        .await?;
    // The same page whether the address exists, is locked, or was asked for a moment ago.
    let html = state
        .pages
        .render("unlock.html", &page.tr, context! { sent => true })?;
    Ok(Html(html).into_response())
}

#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: String,
}

pub async fn confirm_page(
    State(state): State<AppState>,
    page: PageContext,
    Query(query): Query<LinkQuery>,
) -> Result<Response, WebError> {
    state
        .accounts
        .check_unlock_link(&query.token, state.clock.now())
        .await?;
    let (jar, csrf) = page.csrf_token(&state, "");
    let html = state.pages.render(
        "unlock_confirm.html",
        &page.tr,
        context! { csrf, token => query.token },
    )?;
    Ok((jar, Html(html)).into_response())
}

#[derive(Deserialize)]
pub struct UnlockConfirm {
    token: String,
    #[serde(default)]
    csrf: String,
}

pub async fn confirm(
    State(state): State<AppState>,
    page: PageContext,
    HtmlForm(form): HtmlForm<UnlockConfirm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, "", &form.csrf)?;
    state
        .accounts
        .unlock_by_link(&form.token, &page.client, state.clock.now())
        .await?;
    let html = state.pages.render(
        "message.html",
        &page.tr,
        context! {
            title => page.tr.t("unlock-confirm-title"),
            message => page.tr.t("unlock-done"),
        },
    )?;
    Ok(Html(html).into_response())
}

impl From<UnlockError> for WebError {
    fn from(err: UnlockError) -> Self {
        match err {
            UnlockError::LinkUnusable => WebError::UnlockLinkUnusable,
            UnlockError::Store(e) => e.into(),
        }
    }
}
