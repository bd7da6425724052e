//! Page rendering, shared by every adapter that answers a browser (the pages of `web`, the
//! consent and logout pages of `oidc::http`, the error pages): the templates and texts loaded
//! once, the request's language, and what each page handler needs about its request.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum_extra::extract::CookieJar;
use minijinja::{Environment, Value, context};

use super::{client_info, csrf};
use crate::AppState;
use crate::accounts::User;
use crate::audit::ClientInfo;
use crate::error::WebError;
use crate::i18n::{I18n, Translator};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("consent.html", include_str!("templates/consent.html")),
    (
        "logout_confirm.html",
        include_str!("templates/logout_confirm.html"),
    ),
    ("setup.html", include_str!("templates/setup.html")),
    ("console.html", include_str!("templates/console.html")),
    ("time.html", include_str!("templates/time.html")),
    ("profile.html", include_str!("templates/profile.html")),
    (
        "access_tabs.html",
        include_str!("templates/access_tabs.html"),
    ),
    (
        "organizations.html",
        include_str!("templates/organizations.html"),
    ),
    ("apps.html", include_str!("templates/apps.html")),
    ("sessions.html", include_str!("templates/sessions.html")),
    ("activity.html", include_str!("templates/activity.html")),
    ("unlock.html", include_str!("templates/unlock.html")),
    (
        "unlock_confirm.html",
        include_str!("templates/unlock_confirm.html"),
    ),
    ("security.html", include_str!("templates/security.html")),
    ("members.html", include_str!("templates/members.html")),
    ("message.html", include_str!("templates/message.html")),
    ("sso.html", include_str!("templates/sso.html")),
    (
        "sso_redirect.html",
        include_str!("templates/sso_redirect.html"),
    ),
    ("sso_error.html", include_str!("templates/sso_error.html")),
    ("sso_link.html", include_str!("templates/sso_link.html")),
    ("sso_admin.html", include_str!("templates/sso_admin.html")),
    (
        "clients/activity.html",
        include_str!("templates/clients/activity.html"),
    ),
    // Forgotten password, password change, login e-mail change.
    (
        "password_forgot.html",
        include_str!("templates/password_forgot.html"),
    ),
    (
        "password_reset.html",
        include_str!("templates/password_reset.html"),
    ),
    (
        "password_change.html",
        include_str!("templates/password_change.html"),
    ),
    ("email_link.html", include_str!("templates/email_link.html")),
    (
        "link_result.html",
        include_str!("templates/link_result.html"),
    ),
];

/// Templates and texts, loaded once at start.
pub struct Pages {
    env: Environment<'static>,
    pub i18n: Arc<I18n>,
}

impl Pages {
    pub fn load() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        // `.html` templates are auto-escaped: user input and upstream text never become markup.
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(Self {
            env,
            i18n: Arc::new(I18n::load()?),
        })
    }

    pub fn render(&self, name: &str, tr: &Translator, ctx: Value) -> Result<String, WebError> {
        let template = self.env.get_template(name)?;
        let texts = tr.clone();
        let t = Value::from_function(move |key: String| texts.t(&key));
        Ok(template.render(context! { lang => tr.lang(), t => t, ..ctx })?)
    }
}

/// What every page handler needs about the request: its language, where it came from, and
/// its cookies.
pub struct PageContext {
    pub tr: Translator,
    pub client: ClientInfo,
    pub jar: CookieJar,
}

impl FromRequestParts<AppState> for PageContext {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        Ok(Self {
            tr: translator_for(state, &parts.headers),
            client: client_info(parts, state),
            jar: CookieJar::from_headers(&parts.headers),
        })
    }
}

impl PageContext {
    /// The signed-in user's chosen language wins over the browser's.
    pub fn for_user(mut self, state: &AppState, user: &User) -> Self {
        self.tr = self.translator_for(state, user);
        self
    }

    /// The texts for `user`: their chosen language, else the browser's.
    pub fn translator_for(&self, state: &AppState, user: &User) -> Translator {
        match &user.locale {
            Some(locale) => state.pages.i18n.negotiate(Some(locale)),
            None => self.tr.clone(),
        }
    }

    /// The CSRF token for this page's forms (and the CSRF cookie, when the browser has none).
    /// `binding` is the session cookie once signed in, empty before.
    pub fn csrf_token(&self, state: &AppState, binding: &str) -> (CookieJar, String) {
        csrf::issue(
            &state.keyring,
            self.jar.clone(),
            state.config.is_https(),
            binding,
        )
    }

    /// Checks the CSRF token a form sent back.
    pub fn check_csrf(
        &self,
        state: &AppState,
        binding: &str,
        submitted: &str,
    ) -> Result<(), WebError> {
        csrf::verify(
            &state.keyring,
            &self.jar,
            state.config.is_https(),
            binding,
            submitted,
        )
    }
}

pub(super) fn translator_for(state: &AppState, headers: &HeaderMap) -> Translator {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    state.pages.i18n.negotiate(accept)
}
