//! `GET /account`: who is signed in (a minimal page until the account area grows).

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use time::format_description::well_known::Rfc3339;

use super::{PageContext, SignedIn, csrf};
use crate::AppState;
use crate::error::WebError;

/// Events shown on the page; the full, filterable log has its own page.
const RECENT_EVENTS: i64 = 10;

pub async fn page(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    let user = &signed_in.user;
    let session = &signed_in.session;
    let organizations: Vec<_> = state
        .orgs
        .of_user(user.id)
        .await?
        .into_iter()
        .map(|(org, role)| context! { name => org.name, role => role.as_str() })
        .collect();
    let activity: Vec<_> = state
        .store
        .recent_events(user.id, RECENT_EVENTS)
        .await?
        .into_iter()
        .map(|e| {
            context! {
                time => e.created_at.format(&Rfc3339).unwrap_or_default(),
                action => e.action,
                ip => e.ip,
            }
        })
        .collect();
    let tr = &page.tr;
    let session_line = tr.t_with(
        "account-session-method",
        &[
            ("method", session.method.clone()),
            ("ip", session.ip.clone()),
            (
                "time",
                session.created_at.format(&Rfc3339).unwrap_or_default(),
            ),
        ],
    );
    let (jar, token) = csrf::issue(
        &state.keyring,
        page.jar.clone(),
        state.config.is_https(),
        &signed_in.cookie,
    );
    let html = state.pages.render(
        "account.html",
        tr,
        context! {
            signed_in_as => tr.t_with("account-signed-in-as", &[("email", user.email.clone())]),
            name => user.name,
            email => user.email,
            is_admin => user.is_admin,
            session_line,
            organizations,
            activity,
            csrf => token,
        },
    )?;
    Ok((jar, Html(html)).into_response())
}
