//! `/password/forgot` and `/password/reset`: the forgotten password. The request form
//! answers the same for every address; the mailed link opens the form for the new password
//! (opening it uses nothing: mail scanners prefetch links), and only its POST sets it.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minijinja::context;
use serde::Deserialize;

use crate::AppState;
use crate::accounts::{LinkProblem, MAX_EMAIL_LEN, PasswordProblem, ResetError};
use crate::error::WebError;
use crate::http::{HtmlForm, PageContext};
use crate::i18n::Translator;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/password/forgot", get(forgot_form).post(forgot))
        .route("/password/reset", get(reset_form).post(reset))
}

async fn forgot_form(
    State(state): State<AppState>,
    page: PageContext,
) -> Result<Response, WebError> {
    let (jar, csrf) = page.csrf_token(&state, "");
    let html = state.pages.render(
        "password_forgot.html",
        &page.tr,
        context! { csrf, sent => false },
    )?;
    Ok((jar, Html(html)).into_response())
}

#[derive(Deserialize)]
struct ForgotForm {
    email: String,
    #[serde(default)]
    csrf: String,
}

async fn forgot(
    State(state): State<AppState>,
    page: PageContext,
    HtmlForm(form): HtmlForm<ForgotForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, "", &form.csrf)?;
    if form.email.len() > MAX_EMAIL_LEN {
        return Err(WebError::BadForm);
    }
    state
        .accounts
        .request_password_reset(&form.email, &page.client, state.clock.now())
        .await?;
    // The same page, byte for byte, whatever the address: an account with a password, one
    // that signs in with SSO, no account, a malformed address, a request a moment ago.
    let minutes = state.config.accounts.password_reset_ttl_minutes.to_string();
    let sent = page
        .tr
        .t_with("password-forgot-sent", &[("minutes", minutes)]);
    let html = state
        .pages
        .render("password_forgot.html", &page.tr, context! { sent })?;
    Ok(Html(html).into_response())
}

#[derive(Deserialize)]
struct LinkQuery {
    #[serde(default)]
    token: String,
}

async fn reset_form(
    State(state): State<AppState>,
    page: PageContext,
    Query(query): Query<LinkQuery>,
) -> Result<Response, WebError> {
    match state
        .accounts
        .check_password_reset(&query.token, state.clock.now())
        .await
    {
        Ok(user) => render_form(
            &state,
            &page,
            &query.token,
            &user.email,
            None,
            StatusCode::OK,
        ),
        Err(err) => refused(&state, &page, err),
    }
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
    #[serde(default)]
    csrf: String,
}

async fn reset(
    State(state): State<AppState>,
    page: PageContext,
    HtmlForm(form): HtmlForm<ResetForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, "", &form.csrf)?;
    let now = state.clock.now();
    let user = match state.accounts.check_password_reset(&form.token, now).await {
        Ok(user) => user,
        Err(err) => return refused(&state, &page, err),
    };
    let unprocessable = |error: String| {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        render_form(&state, &page, &form.token, &user.email, Some(error), status)
    };
    if form.new_password != form.confirm_password {
        return unprocessable(page.tr.t("password-reset-mismatch"));
    }
    match state
        .accounts
        .reset_password(&form.token, &form.new_password, &page.client, now)
        .await
    {
        Ok(_) => {
            let tr = &page.tr;
            let html = state.pages.render(
                "link_result.html",
                tr,
                context! {
                    title => tr.t("password-reset-done-title"),
                    message => tr.t("password-reset-done"),
                    href => "/login",
                    label => tr.t("password-reset-sign-in"),
                },
            )?;
            Ok(Html(html).into_response())
        }
        Err(ResetError::WeakPassword(problem)) => {
            unprocessable(password_problem(&page.tr, problem))
        }
        Err(err) => refused(&state, &page, err),
    }
}

fn render_form(
    state: &AppState,
    page: &PageContext,
    token: &str,
    email: &str,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let (jar, csrf) = page.csrf_token(state, "");
    let intro = page
        .tr
        .t_with("password-reset-intro", &[("email", email.to_string())]);
    let html = state.pages.render(
        "password_reset.html",
        &page.tr,
        context! { csrf, token, intro, error },
    )?;
    Ok((status, jar, Html(html)).into_response())
}

/// A link that cannot be used (410, with why and where to ask for a new one), or a failure
/// that is not the user's.
fn refused(state: &AppState, page: &PageContext, err: ResetError) -> Result<Response, WebError> {
    let problem = match err {
        ResetError::LinkUnusable(problem) => problem,
        ResetError::WeakPassword(_) => return Err(WebError::BadForm),
        ResetError::Hash(e) => return Err(e.into()),
        ResetError::Store(e) => return Err(e.into()),
    };
    let tr = &page.tr;
    let key = match problem {
        LinkProblem::Used => "password-link-used",
        LinkProblem::Expired => "password-link-expired",
        LinkProblem::Unknown => "password-link-unknown",
    };
    let html = state.pages.render(
        "link_result.html",
        tr,
        context! {
            title => tr.t("password-reset-title"),
            message => tr.t(key),
            failed => true,
            href => "/password/forgot",
            label => tr.t("password-link-new"),
        },
    )?;
    Ok((StatusCode::GONE, Html(html)).into_response())
}

/// The words for a rule a new password broke.
pub(super) fn password_problem(tr: &Translator, problem: PasswordProblem) -> String {
    match problem {
        PasswordProblem::TooShort { min } => {
            tr.t_with("error-password-too-short", &[("min", min.to_string())])
        }
        PasswordProblem::TooLong => tr.t("error-password-too-long"),
        PasswordProblem::TooCommon => tr.t("error-password-too-common"),
        PasswordProblem::ContainsEmail => tr.t("error-password-email"),
    }
}
