//! `GET/POST /setup`: the first administrator, from the one-time link printed at first start.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use crate::AppState;
use crate::accounts::{AccountError, EmailProblem, PasswordProblem, SetupError};
use crate::error::WebError;
use crate::http::{HtmlForm, PageContext, SESSION_COOKIE, csrf};

#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: String,
}

pub async fn form(
    State(state): State<AppState>,
    page: PageContext,
    Query(query): Query<LinkQuery>,
) -> Result<Response, WebError> {
    state
        .first_start
        .check_link(&query.token, state.clock.now())
        .await?;
    render(&state, page, StatusCode::OK, &query.token, "", "", None)
}

fn render(
    state: &AppState,
    page: PageContext,
    status: StatusCode,
    token: &str,
    email: &str,
    name: &str,
    error: Option<String>,
) -> Result<Response, WebError> {
    let (jar, csrf) = page.csrf_token(state, "");
    let html = state.pages.render(
        "setup.html",
        &page.tr,
        context! {
            csrf, token, email, name, error,
            min_length => state.config.password.min_length,
        },
    )?;
    Ok((status, jar, Html(html)).into_response())
}

#[derive(Deserialize)]
pub struct SetupForm {
    token: String,
    email: String,
    #[serde(default)]
    name: String,
    password: String,
    password_repeat: String,
    #[serde(default)]
    csrf: String,
}

pub async fn submit(
    State(state): State<AppState>,
    page: PageContext,
    HtmlForm(form): HtmlForm<SetupForm>,
) -> Result<Response, WebError> {
    let https = state.config.is_https();
    page.check_csrf(&state, "", &form.csrf)?;
    let now = state.clock.now();
    // An unusable link is refused before anything else is looked at.
    state.first_start.check_link(&form.token, now).await?;
    let problem = if form.password != form.password_repeat {
        Some(page.tr.t("setup-passwords-differ"))
    } else {
        match state
            .signin
            .first_administrator(
                &form.token,
                &form.email,
                &form.name,
                &form.password,
                &page.client,
                now,
            )
            .await
        {
            Ok(token) => {
                let cookie = csrf::security_cookie(
                    csrf::cookie_name(SESSION_COOKIE, https),
                    token.as_str().to_string(),
                    https,
                );
                return Ok((page.jar.add(cookie), Redirect::to("/account")).into_response());
            }
            Err(SetupError::Account(err)) => match account_problem(&page, &err) {
                Some(message) => Some(message),
                None => return Err(err.into()),
            },
            Err(other) => return Err(other.into()),
        }
    };
    let Some(message) = problem else {
        return Err(WebError::BadForm);
    };
    let email = if form.email.len() > crate::accounts::MAX_EMAIL_LEN {
        ""
    } else {
        form.email.trim()
    };
    let name: String = form
        .name
        .chars()
        .take(crate::accounts::MAX_NAME_CHARS)
        .collect();
    render(
        &state,
        page,
        StatusCode::UNPROCESSABLE_ENTITY,
        &form.token,
        email,
        &name,
        Some(message),
    )
}

/// The message for a rule the new account broke; `None` for failures that are not the
/// user's (those become error pages).
fn account_problem(page: &PageContext, err: &AccountError) -> Option<String> {
    let tr = &page.tr;
    Some(match err {
        AccountError::InvalidEmail(EmailProblem::Empty) => tr.t("error-email-empty"),
        AccountError::InvalidEmail(EmailProblem::TooLong) => tr.t("error-email-too-long"),
        AccountError::InvalidEmail(EmailProblem::Malformed) => tr.t("error-email-malformed"),
        AccountError::NameTooLong => tr.t("error-name-too-long"),
        AccountError::EmailTaken => tr.t("error-email-taken"),
        AccountError::WeakPassword(PasswordProblem::TooShort { min }) => {
            tr.t_with("error-password-too-short", &[("min", min.to_string())])
        }
        AccountError::WeakPassword(PasswordProblem::TooLong) => tr.t("error-password-too-long"),
        AccountError::WeakPassword(PasswordProblem::TooCommon) => tr.t("error-password-too-common"),
        AccountError::WeakPassword(PasswordProblem::ContainsEmail) => tr.t("error-password-email"),
        AccountError::Hash(_)
        | AccountError::Store(_)
        | AccountError::LastLegalRepresentative(_)
        | AccountError::UnsupportedLocale
        | AccountError::UnknownTimeZone
        | AccountError::Reauth(_) => return None,
    })
}
