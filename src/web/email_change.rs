//! The login address's change in the browser: `POST /account/email` (the profile page's form)
//! asks for it; the link mailed to the new address opens `/account/email/confirm`, the one
//! mailed to the old address `/account/email/undo`. Opening a link uses nothing (mail scanners
//! prefetch links); its page's button acts. The links need no session: the token is the proof.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use crate::AppState;
use crate::accounts::{EmailChangeError, EmailLink, LinkProblem, LoginError, ReauthError};
use crate::error::WebError;
use crate::http::{HtmlForm, PageContext, SignedIn};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/email", post(request))
        .route("/account/email/confirm", get(confirm_page).post(confirm))
        .route("/account/email/undo", get(undo_page).post(undo))
}

#[derive(Deserialize)]
struct EmailForm {
    #[serde(default)]
    new_email: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    csrf: String,
}

/// The profile page's form: back to it with `email=pending`, or `email_error=<code>`
/// (`wrong_password`, `taken`, `invalid`, `too_many`) for it to explain.
async fn request(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    HtmlForm(form): HtmlForm<EmailForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let asked = state
        .accounts
        .request_email_change(
            &signed_in.user,
            &form.new_email,
            &form.current_password,
            &page.client,
            state.clock.now(),
        )
        .await;
    let code = match asked {
        Ok(_) => return Ok(Redirect::to("/account/profile?email=pending").into_response()),
        Err(EmailChangeError::Invalid(_) | EmailChangeError::SameAddress) => "invalid",
        Err(EmailChangeError::Taken) => "taken",
        Err(EmailChangeError::Reauth(ReauthError::Login(LoginError::WrongCredentials))) => {
            "wrong_password"
        }
        Err(EmailChangeError::Reauth(ReauthError::TooMany(_))) => "too_many",
        Err(other) => return Err(failure(other)),
    };
    Ok(Redirect::to(&format!("/account/profile?email_error={code}")).into_response())
}

#[derive(Deserialize)]
struct LinkQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
struct LinkForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

async fn confirm_page(
    State(state): State<AppState>,
    page: PageContext,
    Query(query): Query<LinkQuery>,
) -> Result<Response, WebError> {
    link_page(&state, &page, &query.token, EmailLink::Confirm).await
}

async fn undo_page(
    State(state): State<AppState>,
    page: PageContext,
    Query(query): Query<LinkQuery>,
) -> Result<Response, WebError> {
    link_page(&state, &page, &query.token, EmailLink::Undo).await
}

/// The page a link opens: what its button will do, or why the link cannot be used.
async fn link_page(
    state: &AppState,
    page: &PageContext,
    token: &str,
    kind: EmailLink,
) -> Result<Response, WebError> {
    let change = match state
        .accounts
        .check_email_link(token, kind, state.clock.now())
        .await
    {
        Ok(change) => change,
        Err(err) => return refused(state, page, kind, err),
    };
    let tr = &page.tr;
    let (title, intro, submit, action) = match kind {
        EmailLink::Confirm => (
            tr.t("email-confirm-title"),
            tr.t_with("email-confirm-intro", &[("email", change.new_email)]),
            tr.t("email-confirm-submit"),
            "/account/email/confirm",
        ),
        EmailLink::Undo => (
            tr.t("email-undo-title"),
            tr.t_with("email-undo-intro", &[("email", change.old_email)]),
            tr.t("email-undo-submit"),
            "/account/email/undo",
        ),
    };
    let (jar, csrf) = page.csrf_token(state, "");
    let html = state.pages.render(
        "email_link.html",
        tr,
        context! { title, intro, submit, action, csrf, token },
    )?;
    Ok((jar, Html(html)).into_response())
}

async fn confirm(
    State(state): State<AppState>,
    page: PageContext,
    HtmlForm(form): HtmlForm<LinkForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, "", &form.csrf)?;
    let confirmed = state
        .accounts
        .confirm_email_change(&form.token, &page.client, state.clock.now())
        .await;
    let kind = EmailLink::Confirm;
    let tr = &page.tr;
    match confirmed {
        Ok(pending) => result(
            &state,
            &page,
            StatusCode::OK,
            (kind, false),
            tr.t_with("email-confirm-done", &[("email", pending.new_email)]),
        ),
        Err(err) => refused(&state, &page, kind, err),
    }
}

async fn undo(
    State(state): State<AppState>,
    page: PageContext,
    HtmlForm(form): HtmlForm<LinkForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, "", &form.csrf)?;
    let now = state.clock.now();
    let kind = EmailLink::Undo;
    let restored = match state
        .accounts
        .check_email_link(&form.token, kind, now)
        .await
    {
        Ok(change) => change.old_email,
        Err(err) => return refused(&state, &page, kind, err),
    };
    match state
        .accounts
        .undo_email_change(&form.token, &page.client, now)
        .await
    {
        Ok(_) => {
            let message = page.tr.t_with("email-undo-done", &[("email", restored)]);
            result(&state, &page, StatusCode::OK, (kind, false), message)
        }
        Err(err) => refused(&state, &page, kind, err),
    }
}

/// A link that cannot be used (410), an address taken meanwhile (409), or a failure that is
/// not the user's.
fn refused(
    state: &AppState,
    page: &PageContext,
    kind: EmailLink,
    err: EmailChangeError,
) -> Result<Response, WebError> {
    let (status, key) = match err {
        EmailChangeError::LinkUnusable(LinkProblem::Used) => (StatusCode::GONE, "email-link-used"),
        EmailChangeError::LinkUnusable(LinkProblem::Expired) => {
            (StatusCode::GONE, "email-link-expired")
        }
        EmailChangeError::LinkUnusable(LinkProblem::Unknown) => {
            (StatusCode::GONE, "email-link-unknown")
        }
        EmailChangeError::Taken => (StatusCode::CONFLICT, "email-taken"),
        EmailChangeError::OldAddressTaken => (StatusCode::CONFLICT, "email-old-taken"),
        other => return Err(failure(other)),
    };
    result(state, page, status, (kind, true), page.tr.t(key))
}

fn result(
    state: &AppState,
    page: &PageContext,
    status: StatusCode,
    (kind, failed): (EmailLink, bool),
    message: String,
) -> Result<Response, WebError> {
    let tr = &page.tr;
    // After an undo, the owner's next step is a new password; otherwise their account.
    let (title, href, label) = match kind {
        EmailLink::Confirm => (
            tr.t("email-confirm-title"),
            "/account",
            tr.t("account-title"),
        ),
        EmailLink::Undo if failed => (tr.t("email-undo-title"), "/login", tr.t("error-back")),
        EmailLink::Undo => (
            tr.t("email-undo-title"),
            "/password/forgot",
            tr.t("email-undo-reset-link"),
        ),
    };
    let html = state.pages.render(
        "link_result.html",
        tr,
        context! { title, message, failed, href, label },
    )?;
    Ok((status, Html(html)).into_response())
}

/// The failures that are not the user's: 503 pages for an outage, 500 otherwise.
fn failure(err: EmailChangeError) -> WebError {
    match err {
        EmailChangeError::Store(e) => e.into(),
        EmailChangeError::Reauth(ReauthError::Login(e)) => e.into(),
        other => WebError::Internal(other.to_string()),
    }
}
