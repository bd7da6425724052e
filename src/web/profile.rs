//! `/account/profile` ("Manage my profile"): picture, first and last name, language and time
//! zone, the login e-mail, phone numbers, the data export and the deletion of the account.
//! The forms post here (or to the avatar and e-mail routes) and come back with a notice.

use std::sync::LazyLock;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use crate::AppState;
use uuid::Uuid;

use crate::accounts::{
    AccountError, LoginError, PhoneError, ProfileChange, ReauthError, display_phone,
};
use crate::error::WebError;
use crate::http::{CsrfOnly, HtmlForm, PageContext, SignedIn};
use crate::web::console::{Console, Section};

/// The IANA zones a user may choose, by name (the legacy aliases left out).
static ZONES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut zones: Vec<String> = jiff::tz::db()
        .available()
        .map(|name| name.to_string())
        .filter(|name| {
            name.contains('/') && !name.starts_with("Etc/") && !name.starts_with("SystemV/")
        })
        .collect();
    zones.push("UTC".into());
    zones.sort();
    zones
});

/// What a redirect back to the page says happened (each form names its outcome).
#[derive(Deserialize, Default)]
pub struct Notice {
    saved: Option<String>,
    avatar: Option<String>,
    avatar_error: Option<String>,
    email: Option<String>,
    email_error: Option<String>,
    phone: Option<String>,
    phone_error: Option<String>,
}

impl Notice {
    /// `(message, is_error)` for the page's status line, from known codes only.
    fn message(&self, tr: &crate::i18n::Translator) -> Option<(String, bool)> {
        let known = |prefix: &str, code: &str| {
            let key = format!("{prefix}-{code}");
            let text = tr.t(&key);
            (text != key).then_some(text)
        };
        if let Some((key, error)) =
            super::avatar::notice(self.avatar.as_deref(), self.avatar_error.as_deref())
        {
            return Some((tr.t(key), error));
        }
        let pairs = [
            (self.saved.as_deref(), "profile-saved", false),
            (self.email.as_deref(), "profile-email", false),
            (self.email_error.as_deref(), "profile-email-error", true),
            (self.phone.as_deref(), "profile-phone", false),
            (self.phone_error.as_deref(), "profile-phone-error", true),
        ];
        pairs.into_iter().find_map(|(code, prefix, error)| {
            code.and_then(|code| known(prefix, code))
                .map(|text| (text, error))
        })
    }
}

pub async fn page(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Query(notice): Query<Notice>,
) -> Result<Response, WebError> {
    let console = Console::open(&state, &page, &signed_in, Section::Profile);
    let message = notice.message(&console.tr);
    render(&state, console, &signed_in, StatusCode::OK, message, None).await
}

/// The profile form's fields; an empty language or zone means "the browser's".
#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    csrf: String,
    given_name: String,
    family_name: String,
    #[serde(default)]
    locale: String,
    #[serde(default)]
    time_zone: String,
}

/// `POST /account/profile`: names, language and time zone.
pub async fn save(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    HtmlForm(form): HtmlForm<ProfileForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let optional = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let change = ProfileChange {
        given_name: Some(form.given_name.clone()),
        family_name: Some(form.family_name.clone()),
        locale: Some(optional(&form.locale)),
        time_zone: Some(optional(&form.time_zone)),
    };
    let client = page.client.clone();
    let result = state
        .accounts
        .update_profile(&signed_in.user, change, &client, state.clock.now())
        .await;
    let problem = match result {
        Ok(_) => return Ok(Redirect::to("/account/profile?saved=1").into_response()),
        Err(AccountError::NameTooLong) => "profile-error-name-too-long",
        Err(AccountError::UnsupportedLocale) => "profile-error-locale",
        Err(AccountError::UnknownTimeZone) => "profile-error-time-zone",
        Err(other) => return Err(other.into()),
    };
    let console = Console::open(&state, &page, &signed_in, Section::Profile);
    let message = Some((console.tr.t(problem), true));
    let typed = context! {
        given_name => form.given_name,
        family_name => form.family_name,
        locale => form.locale,
        time_zone => form.time_zone,
    };
    render(
        &state,
        console,
        &signed_in,
        StatusCode::UNPROCESSABLE_ENTITY,
        message,
        Some(typed),
    )
    .await
}

async fn render(
    state: &AppState,
    console: Console,
    signed_in: &SignedIn,
    status: StatusCode,
    message: Option<(String, bool)>,
    typed: Option<Value>,
) -> Result<Response, WebError> {
    let user = &signed_in.user;
    let tr = &console.tr;
    let form = typed.unwrap_or_else(|| {
        context! {
            given_name => user.given_name.clone(),
            family_name => user.family_name.clone(),
            locale => user.locale.clone().unwrap_or_default(),
            time_zone => user.time_zone.clone().unwrap_or_default(),
        }
    });
    let locales: Vec<Value> = crate::i18n::LOCALES
        .iter()
        .map(|code| context! { code, label => tr.t(&format!("language-{code}")) })
        .collect();
    let (notice, error) = match message {
        Some((text, true)) => (None, Some(text)),
        Some((text, false)) => (Some(text), None),
        None => (None, None),
    };
    let member_since = console.time(user.created_at);
    let phones: Vec<Value> = state
        .accounts
        .phones(user)
        .await?
        .into_iter()
        .map(|p| {
            context! {
                id => p.id.to_string(),
                label => p.label,
                number => display_phone(&p.number),
            }
        })
        .collect();
    let orgs_kept: Vec<String> = state
        .orgs
        .of_user(user.id)
        .await?
        .into_iter()
        .map(|(org, _)| org.name)
        .collect();
    let needed = state.accounts.organizations_needing(user).await?;
    let delete_blocked = (!needed.is_empty())
        .then(|| tr.t_with("profile-delete-needed", &[("orgs", needed.join(", "))]));
    let csrf = console.csrf.clone();
    console.render_with_status(
        state,
        status,
        "profile.html",
        context! {
            csrf, notice, error, form, locales, member_since, orgs_kept, phones, delete_blocked,
            zones => &*ZONES,
            email => user.email.clone(),
            has_password => user.password_hash.is_some(),
            is_admin => user.is_admin,
            portrait => crate::avatars::path_for(user, 128),
        },
    )
}

#[derive(Deserialize)]
pub struct PhoneForm {
    #[serde(default)]
    csrf: String,
    label: String,
    number: String,
}

/// `POST /account/phones`: adds a number; back to the profile with the outcome.
pub async fn add_phone(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    HtmlForm(form): HtmlForm<PhoneForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let added = state
        .accounts
        .add_phone(
            &signed_in.user,
            &form.label,
            &form.number,
            &page.client,
            state.clock.now(),
        )
        .await;
    let outcome = match added {
        Ok(_) => "phone=added",
        Err(PhoneError::Malformed) => "phone_error=malformed",
        Err(PhoneError::BadLabel) => "phone_error=label",
        Err(PhoneError::Duplicate) => "phone_error=duplicate",
        Err(PhoneError::TooMany) => "phone_error=too_many",
        Err(PhoneError::Store(e)) => return Err(e.into()),
    };
    Ok(Redirect::to(&format!("/account/profile?{outcome}#phones-heading")).into_response())
}

/// `POST /account/phones/{id}/delete`: removes one of the user's numbers.
pub async fn remove_phone(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Path(id): Path<String>,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let id: Uuid = id.parse().map_err(|_| WebError::NotFound)?;
    let removed = state
        .accounts
        .remove_phone(&signed_in.user, id, &page.client, state.clock.now())
        .await?;
    if !removed {
        return Err(WebError::NotFound);
    }
    Ok(Redirect::to("/account/profile?phone=removed#phones-heading").into_response())
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

/// `POST /account/delete`: the password one last time; refused, with the organizations
/// named, while one still needs the user. Deleted: the cookie goes, and a page says so.
pub async fn delete(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    HtmlForm(form): HtmlForm<DeleteForm>,
) -> Result<Response, WebError> {
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let deleted = state
        .accounts
        .delete(
            &signed_in.user,
            &form.password,
            &page.client,
            state.clock.now(),
        )
        .await;
    let (status, message) = match deleted {
        Ok(()) => {
            let name = crate::http::csrf::cookie_name(
                crate::http::SESSION_COOKIE,
                state.config.is_https(),
            );
            let jar = page
                .jar
                .clone()
                .remove(axum_extra::extract::cookie::Cookie::build(name).path("/"));
            let html = state.pages.render(
                "message.html",
                &page.tr,
                context! {
                    title => page.tr.t("account-deleted-title"),
                    message => page.tr.t("account-deleted-text"),
                },
            )?;
            return Ok((jar, axum::response::Html(html)).into_response());
        }
        Err(AccountError::LastLegalRepresentative(orgs)) => (
            StatusCode::CONFLICT,
            page.tr
                .t_with("profile-delete-needed", &[("orgs", orgs.join(", "))]),
        ),
        Err(AccountError::Reauth(ReauthError::Login(LoginError::WrongCredentials))) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            page.tr.t("profile-delete-wrong-password"),
        ),
        Err(AccountError::Reauth(ReauthError::TooMany(_))) => (
            StatusCode::TOO_MANY_REQUESTS,
            page.tr.t("profile-email-error-too_many"),
        ),
        Err(other) => return Err(other.into()),
    };
    let console = Console::open(&state, &page, &signed_in, Section::Profile);
    render(
        &state,
        console,
        &signed_in,
        status,
        Some((message, true)),
        None,
    )
    .await
}
