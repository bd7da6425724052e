//! `/account/security/password`: the signed-in user changes their password, confirmed by the
//! current one (counted towards the lockout like a sign-in); every other session ends.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::context;
use serde::Deserialize;

use super::recovery::password_problem;
use crate::AppState;
use crate::accounts::{AccountError, LoginError, ReauthError};
use crate::error::WebError;
use crate::http::{HtmlForm, PageContext, SignedIn};
use crate::web::console::{Console, Section};

pub fn routes() -> Router<AppState> {
    Router::new().route("/account/security/password", get(form).post(change))
}

async fn form(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    render(&state, &page, &signed_in, StatusCode::OK, None)
}

fn render(
    state: &AppState,
    page: &PageContext,
    signed_in: &SignedIn,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, WebError> {
    let console = Console::open(state, page, signed_in, Section::Security);
    let csrf = console.csrf.clone();
    console.render_with_status(
        state,
        status,
        "password_change.html",
        context! { csrf, error },
    )
}

#[derive(Deserialize)]
struct ChangeForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
    #[serde(default)]
    csrf: String,
}

async fn change(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    HtmlForm(form): HtmlForm<ChangeForm>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let refuse = |status, key: String| render(&state, &page, &signed_in, status, Some(key));
    if form.new_password != form.confirm_password {
        let message = page.tr.t("password-reset-mismatch");
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, message);
    }
    let changed = state
        .accounts
        .change_password(
            &signed_in.user,
            signed_in.session.id,
            &form.current_password,
            &form.new_password,
            &page.client,
            state.clock.now(),
        )
        .await;
    let tr = &page.tr;
    match changed {
        Ok(_) => Ok(Redirect::to("/account/security?password=changed").into_response()),
        Err(AccountError::Reauth(ReauthError::Login(LoginError::WrongCredentials))) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            tr.t("password-change-wrong"),
        ),
        Err(AccountError::Reauth(ReauthError::TooMany(wait))) => {
            let mut response = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                tr.t("password-change-too-many"),
            )?;
            let secs = wait.as_secs().max(1);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
            Ok(response)
        }
        Err(AccountError::WeakPassword(problem)) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            password_problem(tr, problem),
        ),
        Err(AccountError::Reauth(ReauthError::Login(other))) => Err(other.into()),
        Err(other) => Err(other.into()),
    }
}
