//! The account console: what every account page shares — the header with the product mark
//! and the user's pill menu, the navigation, the CSRF token of the page's forms, and times in
//! the reader's language and zone (the browser's zone, sent by the page's script in the
//! `gotthard_tz` cookie, else the profile's, else UTC).

use axum::response::{Html, IntoResponse, Response};
use axum_extra::extract::CookieJar;
use minijinja::{Value, context};
use time::OffsetDateTime;

use crate::AppState;
use crate::error::WebError;
use crate::http::{PageContext, SignedIn};
use crate::i18n::{ReaderZone, TimeView, Translator};

/// The cookie in which the page's script sends the browser's time zone.
pub const ZONE_COOKIE: &str = "gotthard_tz";

/// The sections of the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Profile,
    Security,
    Access,
    Organizations,
    Apps,
}

const SECTIONS: [(Section, &str, &str, &str); 5] = [
    (
        Section::Profile,
        "/account/profile",
        "nav-profile",
        "profile",
    ),
    (
        Section::Security,
        "/account/security",
        "nav-security",
        "security",
    ),
    (Section::Access, "/account/sessions", "nav-access", "access"),
    (
        Section::Organizations,
        "/account/orgs",
        "nav-organizations",
        "organizations",
    ),
    (Section::Apps, "/account/apps", "nav-apps", "apps"),
];

/// One account page being answered.
pub struct Console {
    pub tr: Translator,
    pub zone: ReaderZone,
    pub now: OffsetDateTime,
    pub csrf: String,
    jar: CookieJar,
    frame: Value,
}

impl Console {
    pub fn open(
        state: &AppState,
        page: &PageContext,
        signed_in: &SignedIn,
        section: Section,
    ) -> Self {
        let user = &signed_in.user;
        let tr = page.translator_for(state, user);
        let browser_zone = page.jar.get(ZONE_COOKIE).map(|c| c.value().to_string());
        let zone = ReaderZone::first_known([browser_zone.as_deref(), user.time_zone.as_deref()]);
        let (jar, csrf) = page.csrf_token(state, &signed_in.cookie);
        let nav: Vec<Value> = SECTIONS
            .iter()
            .map(|(s, href, key, id)| {
                context! { href, label => tr.t(key), id, current => *s == section }
            })
            .collect();
        let display = if user.name.is_empty() {
            user.email.clone()
        } else {
            user.name.clone()
        };
        let frame = context! {
            nav,
            csrf => csrf.clone(),
            me => context! {
                name => display,
                email => user.email.clone(),
                picture => crate::avatars::path_for(user, 64),
                has_avatar => user.avatar_key.is_some(),
            },
            zone => zone.name.clone(),
            zone_note => tr.t_with("time-zone-note", &[("zone", zone.name.clone())]),
        };
        Self {
            now: state.clock.now(),
            tr,
            zone,
            csrf,
            jar,
            frame,
        }
    }

    /// A time as this reader reads it.
    pub fn time(&self, at: OffsetDateTime) -> TimeView {
        self.tr.time(at, &self.zone, self.now)
    }

    /// Renders `template` with the console's frame and the page's own context.
    pub fn render(
        self,
        state: &AppState,
        template: &str,
        ctx: Value,
    ) -> Result<Response, WebError> {
        self.render_with_status(state, axum::http::StatusCode::OK, template, ctx)
    }

    pub fn render_with_status(
        self,
        state: &AppState,
        status: axum::http::StatusCode,
        template: &str,
        ctx: Value,
    ) -> Result<Response, WebError> {
        let html = state.pages.render(
            template,
            &self.tr,
            context! { console => self.frame, ..ctx },
        )?;
        Ok((status, self.jar, Html(html)).into_response())
    }
}
