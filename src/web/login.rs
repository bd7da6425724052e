//! `GET/POST /login` and `POST /logout`.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;
use minijinja::context;
use serde::Deserialize;

use crate::AppState;
use crate::accounts::{LoginError, MAX_EMAIL_LEN};
use crate::error::WebError;
use crate::http::next_path::refuse_malformed;
use crate::http::{
    HtmlForm, LoginOutcome, PageContext, ResumedRequest, SESSION_COOKIE, SignedIn, csrf,
};
use crate::signin::PasswordSignIn;

pub async fn root(signed_in: Result<SignedIn, WebError>) -> Redirect {
    match signed_in {
        Ok(_) => Redirect::to("/account"),
        Err(_) => Redirect::to("/login"),
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    /// The authorization request to resume after signing in (only those are accepted: no
    /// open redirect).
    next: Option<String>,
}

pub async fn form(
    State(state): State<AppState>,
    page: PageContext,
    Query(query): Query<LoginQuery>,
) -> Result<Response, WebError> {
    let next = query.next.as_deref().unwrap_or("");
    refuse_malformed(next)?;
    let flow = ResumedRequest::of(&state, next).await;
    let hint = flow.as_ref().and_then(|f| f.login_hint.clone());
    render_form(
        &state,
        page,
        StatusCode::OK,
        hint.as_deref().unwrap_or(""),
        None,
        flow,
    )
}

fn render_form(
    state: &AppState,
    mut page: PageContext,
    status: StatusCode,
    email: &str,
    error: Option<String>,
    flow: Option<ResumedRequest>,
) -> Result<Response, WebError> {
    if let Some(locales) = flow.as_ref().and_then(|f| f.ui_locales.as_deref()) {
        // OIDC `ui_locales` (space-separated, in order of preference) before Accept-Language.
        page.tr = state.pages.i18n.negotiate(Some(&locales.replace(' ', ",")));
    }
    let (jar, token) = page.csrf_token(state, "");
    let next = flow.as_ref().map(|f| f.next.as_str()).unwrap_or("");
    let html = state.pages.render(
        "login.html",
        &page.tr,
        context! {
            csrf => token, email => email, error => error, next => next,
            sso_href => super::sso::sso_href("", next),
        },
    )?;
    let mut response = (status, jar, Html(html)).into_response();
    if let Some(flow) = flow {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, flow.csp);
    }
    Ok(response)
}

/// The password form again, saying that this address signs in with SSO only, with the SSO
/// button already carrying the address.
fn render_sso_required(
    state: &AppState,
    page: PageContext,
    email: &str,
    flow: Option<ResumedRequest>,
) -> Result<Response, WebError> {
    let (jar, token) = page.csrf_token(state, "");
    let next = flow.as_ref().map(|f| f.next.as_str()).unwrap_or("");
    let html = state.pages.render(
        "login.html",
        &page.tr,
        context! {
            csrf => token,
            email => email,
            error => page.tr.t("login-sso-required"),
            next => next,
            sso_href => super::sso::sso_href(email, next),
        },
    )?;
    let mut response = (StatusCode::FORBIDDEN, jar, Html(html)).into_response();
    if let Some(flow) = flow {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, flow.csp);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

pub async fn submit(
    State(state): State<AppState>,
    page: PageContext,
    HtmlForm(form): HtmlForm<LoginForm>,
) -> Result<Response, WebError> {
    let https = state.config.is_https();
    page.check_csrf(&state, "", &form.csrf)?;
    // Before anything is written: the redirect at the end must not fail after sign-in.
    refuse_malformed(&form.next)?;
    let flow = ResumedRequest::of(&state, &form.next).await;
    if form.email.len() > MAX_EMAIL_LEN {
        let error = page.tr.t("error-email-too-long");
        return render_form(
            &state,
            page,
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
            Some(error),
            flow,
        );
    }
    let signed_in = state
        .signin
        .with_password(&form.email, &form.password, &page.client, state.clock.now())
        .await;
    let token = match signed_in {
        Ok(PasswordSignIn::SignedIn { token, .. }) => {
            state.metrics.login(LoginOutcome::Success);
            token
        }
        Ok(PasswordSignIn::WrongCredentials) => {
            state.metrics.login(LoginOutcome::WrongCredentials);
            let error = page.tr.t("login-wrong-credentials");
            return render_form(
                &state,
                page,
                StatusCode::UNAUTHORIZED,
                form.email.trim(),
                Some(error),
                flow,
            );
        }
        Ok(PasswordSignIn::SsoRequired) => {
            state.metrics.login(LoginOutcome::WrongCredentials);
            return render_sso_required(&state, page, form.email.trim(), flow);
        }
        Err(LoginError::Hash(crate::accounts::HashError::Busy)) => {
            state.metrics.login(LoginOutcome::Busy);
            return Err(WebError::Busy);
        }
        Err(other) => {
            state.metrics.login(LoginOutcome::Error);
            return Err(other.into());
        }
    };
    let name = csrf::cookie_name(SESSION_COOKIE, https);
    let jar = page.jar.add(csrf::security_cookie(
        name,
        token.as_str().to_string(),
        https,
    ));
    let target = flow.as_ref().map_or("/account", |f| f.next.as_str());
    let mut response = (jar, Redirect::to(target)).into_response();
    if let Some(flow) = flow {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, flow.csp);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    HtmlForm(form): HtmlForm<LogoutForm>,
) -> Result<Response, WebError> {
    let https = state.config.is_https();
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    state
        .sessions
        .end_by_logout(&signed_in.session, &page.client, state.clock.now())
        .await?;
    let jar: CookieJar = page
        .jar
        .remove(Cookie::build(csrf::cookie_name(SESSION_COOKIE, https)).path("/"));
    Ok((jar, Redirect::to("/login")).into_response())
}
