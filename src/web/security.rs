//! `/account/security`: the lockout threshold, the login alerts, and the way to the password
//! change.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use crate::AppState;
use crate::accounts::{SecurityError, SecuritySettings};
use crate::error::WebError;
use crate::http::{HtmlForm, PageContext, SignedIn};
use crate::web::console::{Console, Section};

#[derive(Deserialize)]
pub struct Saved {
    saved: Option<String>,
    /// `changed` after `/account/security/password`.
    password: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Query(saved): Query<Saved>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    let notice = match (saved.saved, saved.password.as_deref()) {
        (_, Some("changed")) => Some(page.tr.t("password-change-done")),
        (Some(_), _) => Some(page.tr.t("security-saved")),
        _ => None,
    };
    let settings = SecuritySettings::of(&signed_in.user);
    render(
        &state,
        page,
        &signed_in,
        StatusCode::OK,
        settings,
        notice,
        None,
    )
}

fn render(
    state: &AppState,
    page: PageContext,
    signed_in: &SignedIn,
    status: StatusCode,
    settings: SecuritySettings,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, WebError> {
    let policy = state.accounts.lockout_policy();
    let bounds = [
        ("min", policy.min_threshold.to_string()),
        ("max", policy.max_threshold.to_string()),
    ];
    let console = Console::open(state, &page, signed_in, Section::Security);
    let hint = console.tr.t_with("security-threshold-hint", &bounds);
    let csrf = console.csrf.clone();
    console.render_with_status(
        state,
        status,
        "security.html",
        context! {
            csrf, notice, error, hint,
            threshold => settings.lockout_threshold,
            notify_on_success => settings.notify_on_success,
            notify_on_failure => settings.notify_on_failure,
            min => policy.min_threshold,
            max => policy.max_threshold,
        },
    )
}

/// The form's fields, named as in the API. Unchecked boxes are simply absent.
#[derive(Deserialize)]
pub struct SecurityForm {
    lockout_threshold: String,
    #[serde(default)]
    notify_on_success: Option<String>,
    #[serde(default)]
    notify_on_failure: Option<String>,
    #[serde(default)]
    csrf: String,
}

pub async fn save(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    HtmlForm(form): HtmlForm<SecurityForm>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let policy = state.accounts.lockout_policy();
    let settings = SecuritySettings {
        // Not a number is out of range, with the same message.
        lockout_threshold: form.lockout_threshold.trim().parse().unwrap_or(i32::MIN),
        notify_on_success: form.notify_on_success.is_some(),
        notify_on_failure: form.notify_on_failure.is_some(),
    };
    let saved = state
        .accounts
        .update_security(&signed_in.user, settings, &page.client, state.clock.now())
        .await;
    match saved {
        Ok(_) => Ok(Redirect::to("/account/security?saved=1").into_response()),
        Err(SecurityError::OutOfRange(_)) => {
            let error = page.tr.t_with(
                "security-threshold-out-of-range",
                &[
                    ("min", policy.min_threshold.to_string()),
                    ("max", policy.max_threshold.to_string()),
                ],
            );
            let shown = SecuritySettings {
                lockout_threshold: signed_in.user.lockout_threshold,
                ..settings
            };
            render(
                &state,
                page,
                &signed_in,
                StatusCode::UNPROCESSABLE_ENTITY,
                shown,
                None,
                Some(error),
            )
        }
        Err(SecurityError::Store(e)) => Err(e.into()),
    }
}
