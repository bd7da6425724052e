//! "Sign in with SSO": the work e-mail form, the hop to the organization's Entra ID tenant,
//! the callback, and the one-time password confirmation that links an existing account.
//! The decisions are `federation`'s; these handlers parse and render.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use crate::AppState;
use crate::accounts::{HashError, LoginError, MAX_EMAIL_LEN, User};
use crate::error::WebError;
use crate::federation::{BeginError, Callback, Finished, LinkError, Refusal};
use crate::http::next_path::refuse_malformed;
use crate::http::{HtmlForm, LoginOutcome, PageContext, ResumedRequest, SESSION_COOKIE, csrf};

/// An authorization request of a relying app to resume after signing in, and the CSP that
/// lets a form of ours end at that app; `None` unless `next` is a valid request.
async fn resume(state: &AppState, next: &str) -> Option<(String, HeaderValue)> {
    ResumedRequest::of(state, next)
        .await
        .map(|r| (r.next, r.csp))
}

/// The login page's "Sign in with SSO" link, carrying what the password form had.
pub(crate) fn sso_href(email: &str, next: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !email.is_empty() {
        query.append_pair("email", email);
    }
    if !next.is_empty() {
        query.append_pair("next", next);
    }
    let query = query.finish();
    if query.is_empty() {
        "/login/sso".to_string()
    } else {
        format!("/login/sso?{query}")
    }
}

fn with_csp(mut response: Response, csp: Option<HeaderValue>) -> Response {
    if let Some(csp) = csp {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The browser's CSRF cookie: what a flow is bound to.
fn browser_cookie(state: &AppState, page: &PageContext) -> Option<String> {
    page.jar
        .get(&csrf::cookie_name(
            csrf::CSRF_COOKIE,
            state.config.is_https(),
        ))
        .map(|c| c.value().to_string())
}

#[derive(Deserialize)]
pub struct EmailQuery {
    #[serde(default)]
    email: String,
    #[serde(default)]
    next: String,
}

pub async fn form(
    State(state): State<AppState>,
    page: PageContext,
    Query(query): Query<EmailQuery>,
) -> Result<Response, WebError> {
    let email: String = query.email.chars().take(MAX_EMAIL_LEN).collect();
    refuse_malformed(&query.next)?;
    let next = resume(&state, &query.next).await.map(|(n, _)| n);
    render_form(&state, page, StatusCode::OK, &email, next.as_deref(), None)
}

fn render_form(
    state: &AppState,
    page: PageContext,
    status: StatusCode,
    email: &str,
    next: Option<&str>,
    error: Option<String>,
) -> Result<Response, WebError> {
    let (jar, token) = page.csrf_token(state, "");
    let next = next.unwrap_or("");
    let html = state.pages.render(
        "sso.html",
        &page.tr,
        context! {
            csrf => token, email => email, error => error, next => next,
            password_href => if next.is_empty() {
                "/login".to_string()
            } else {
                format!("/login?{}", form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next).finish())
            },
        },
    )?;
    Ok((status, jar, Html(html)).into_response())
}

#[derive(Deserialize)]
pub struct SsoForm {
    email: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// Home-realm discovery, then the hop to Entra ID. The hop is a page that refreshes to the
/// authorize URL (with a link as well): a redirect answering a form post would be held to
/// the page's CSP `form-action 'self'` by Chrome.
pub async fn begin(
    State(state): State<AppState>,
    page: PageContext,
    HtmlForm(form): HtmlForm<SsoForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, "", &form.csrf)?;
    let email = form.email.trim().to_string();
    // Before the flow (which keeps `next`) is written.
    refuse_malformed(&form.next)?;
    let resumed = ResumedRequest::of(&state, &form.next).await;
    let reauth = resumed.as_ref().map(|r| r.reauth).unwrap_or_default();
    let next = resumed.map(|r| r.next);
    let next = next.as_deref();
    if email.len() > MAX_EMAIL_LEN {
        let error = page.tr.t("error-email-too-long");
        return render_form(
            &state,
            page,
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
            next,
            Some(error),
        );
    }
    let browser = browser_cookie(&state, &page).unwrap_or_default();
    match state
        .federation
        .begin(&email, &browser, next, reauth, state.clock.now())
        .await
    {
        Ok(url) => {
            let html = state
                .pages
                .render("sso_redirect.html", &page.tr, context! { url })?;
            Ok(Html(html).into_response())
        }
        Err(BeginError::InvalidEmail) => {
            let error = page.tr.t("error-email-malformed");
            render_form(
                &state,
                page,
                StatusCode::UNPROCESSABLE_ENTITY,
                &email,
                next,
                Some(error),
            )
        }
        Err(BeginError::UnknownDomain) => {
            // Says nothing about which organizations exist.
            let error = page.tr.t("sso-unknown-domain");
            render_form(
                &state,
                page,
                StatusCode::NOT_FOUND,
                &email,
                next,
                Some(error),
            )
        }
        Err(BeginError::Upstream(detail)) => {
            tracing::warn!(error = %detail, "SSO sign-in cannot begin");
            error_page(
                &state,
                &page,
                StatusCode::BAD_GATEWAY,
                "sso-error-unreachable",
                None,
            )
        }
        Err(BeginError::Store(e)) => Err(e.into()),
    }
}

/// Where Entra ID sends the browser back.
pub async fn callback(
    State(state): State<AppState>,
    page: PageContext,
    Query(callback): Query<Callback>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let browser = browser_cookie(&state, &page);
    let finished = state
        .federation
        .finish(&callback, browser.as_deref(), &page.client, now)
        .await;
    match finished {
        Ok(Finished::SignedIn { user, org_id, next }) => {
            sign_in(&state, page, &user, org_id, next).await
        }
        Ok(Finished::LinkNeeded {
            token,
            email,
            org_name,
            next,
        }) => {
            let csp = match next {
                Some(next) => resume(&state, &next).await.map(|(_, csp)| csp),
                None => None,
            };
            let page = render_link(
                &state,
                page,
                StatusCode::OK,
                token.as_str(),
                &email,
                &org_name,
                None,
            )?;
            Ok(with_csp(page, csp))
        }
        Err(refusal) => {
            state.metrics.login(LoginOutcome::WrongCredentials);
            let (status, key) = match &refusal {
                Refusal::StateUnusable => (StatusCode::BAD_REQUEST, "sso-error-state"),
                Refusal::Upstream { .. } => (StatusCode::UNAUTHORIZED, "sso-error-upstream"),
                // The round trip itself failed (unreachable, or the connection's client id
                // or secret refused): a matter for the organization's administrator.
                Refusal::Token("exchange" | "discovery" | "client_secret" | "no_id_token") => {
                    (StatusCode::BAD_GATEWAY, "sso-error-exchange")
                }
                Refusal::Token(_) => (StatusCode::UNAUTHORIZED, "sso-error-token"),
                Refusal::NoConnection => (StatusCode::FORBIDDEN, "sso-error-no-connection"),
                Refusal::AddressOutsideDomains => {
                    (StatusCode::FORBIDDEN, "sso-error-outside-domains")
                }
                Refusal::NoAccount => (StatusCode::FORBIDDEN, "sso-error-no-account"),
                Refusal::NotMember => (StatusCode::FORBIDDEN, "sso-error-not-member"),
                Refusal::Store(e) => return Err(e.into()),
            };
            let upstream = match refusal {
                Refusal::Upstream { error, description } => Some((error, description)),
                _ => None,
            };
            error_page(&state, &page, status, key, upstream)
        }
    }
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    link: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

/// The owner of the existing account confirms with its password; then the identity is
/// linked and the SSO session starts.
pub async fn link(
    State(state): State<AppState>,
    page: PageContext,
    HtmlForm(form): HtmlForm<LinkForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, "", &form.csrf)?;
    let now = state.clock.now();
    let browser = browser_cookie(&state, &page);
    let linked = state
        .federation
        .link(
            &form.link,
            browser.as_deref(),
            &form.password,
            &page.client,
            now,
        )
        .await;
    match linked {
        Ok((user, org_id, next)) => sign_in(&state, page, &user, org_id, next).await,
        Err(LinkError::WrongPassword) => {
            state.metrics.login(LoginOutcome::WrongCredentials);
            // The same pending link, asked again.
            let pending = state
                .federation
                .pending(&form.link, browser.as_deref(), now)
                .await;
            let Ok(pending) = pending else {
                return error_page(&state, &page, StatusCode::GONE, "sso-link-unusable", None);
            };
            let email = state
                .accounts
                .by_id(pending.user_id)
                .await?
                .map(|u| u.email)
                .unwrap_or_default();
            let org = state
                .orgs
                .by_id(pending.org_id)
                .await?
                .map(|o| o.name)
                .unwrap_or_default();
            let csp = match pending.next {
                Some(next) => resume(&state, &next).await.map(|(_, csp)| csp),
                None => None,
            };
            let error = page.tr.t("login-wrong-credentials");
            let page = render_link(
                &state,
                page,
                StatusCode::UNAUTHORIZED,
                &form.link,
                &email,
                &org,
                Some(error),
            )?;
            Ok(with_csp(page, csp))
        }
        Err(LinkError::Unusable) => {
            error_page(&state, &page, StatusCode::GONE, "sso-link-unusable", None)
        }
        Err(LinkError::NotMember) => error_page(
            &state,
            &page,
            StatusCode::FORBIDDEN,
            "sso-error-not-member",
            None,
        ),
        Err(LinkError::Login(LoginError::Hash(HashError::Busy))) => Err(WebError::Busy),
        Err(LinkError::Login(other)) => Err(other.into()),
        Err(LinkError::Store(e)) => Err(e.into()),
    }
}

/// Starts the SSO session and goes on to `/account`, or to the relying app's authorization
/// request the sign-in began with (a path of ours: no open redirect).
async fn sign_in(
    state: &AppState,
    page: PageContext,
    user: &User,
    org_id: uuid::Uuid,
    next: Option<String>,
) -> Result<Response, WebError> {
    let https = state.config.is_https();
    let (token, _) = state
        .sessions
        .start_sso(user, org_id, &page.client, state.clock.now())
        .await?;
    state.metrics.login(LoginOutcome::Success);
    let name = csrf::cookie_name(SESSION_COOKIE, https);
    let jar = page.jar.add(csrf::security_cookie(
        name,
        token.as_str().to_string(),
        https,
    ));
    let resumed = match next {
        Some(next) => resume(state, &next).await,
        None => None,
    };
    let target = resumed
        .as_ref()
        .map_or("/account", |(next, _)| next.as_str());
    let response = (jar, Redirect::to(target)).into_response();
    Ok(with_csp(response, resumed.map(|(_, csp)| csp)))
}

fn render_link(
    state: &AppState,
    page: PageContext,
    status: StatusCode,
    link: &str,
    email: &str,
    org: &str,
    error: Option<String>,
) -> Result<Response, WebError> {
    let (jar, csrf) = page.csrf_token(state, "");
    let intro = page.tr.t_with(
        "sso-link-intro",
        &[("email", email.to_string()), ("org", org.to_string())],
    );
    let html = state.pages.render(
        "sso_link.html",
        &page.tr,
        context! { csrf, link, email, intro, error },
    )?;
    Ok((status, jar, Html(html)).into_response())
}

/// A clear page for a refused sign-in. Entra's `error` and `error_description` are shown as
/// text (the template escapes them) and cut to a sane length.
fn error_page(
    state: &AppState,
    page: &PageContext,
    status: StatusCode,
    key: &str,
    upstream: Option<(String, String)>,
) -> Result<Response, WebError> {
    let (code, description) = match upstream {
        Some((code, description)) => (
            Some(code.chars().take(100).collect::<String>()),
            Some(description.chars().take(500).collect::<String>()),
        ),
        None => (None, None),
    };
    let html = state.pages.render(
        "sso_error.html",
        &page.tr,
        context! { message => page.tr.t(key), code, description },
    )?;
    Ok((status, Html(html)).into_response())
}
