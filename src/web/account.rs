//! The account pages besides the profile and security: `/account/sessions` (account
//! access) and `/account/activity` (account activity), two tabs of one page;
//! `/account/orgs` (organizations) and `/account/apps` (apps you allowed).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::audit::{Action, EventOwner};
use crate::error::WebError;
use crate::http::{ActivityQuery, CsrfOnly, HtmlForm, PageContext, SignedIn};
use crate::sessions::{DeviceLabel, EndedBy};
use crate::web::console::{Console, Section};

/// `GET /account/orgs`: the user's organizations and their role in each; administrators
/// reach the members and the SSO settings from here.
pub async fn organizations(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    let console = Console::open(&state, &page, &signed_in, Section::Organizations);
    let organizations: Vec<_> = state
        .orgs
        .of_user(signed_in.user.id)
        .await?
        .into_iter()
        .map(|(org, role)| {
            context! {
                id => org.id.to_string(),
                name => org.name,
                role => console.tr.t(&format!("role-{}", role.as_str())),
                admin => role != crate::orgs::OrgRole::Member,
            }
        })
        .collect();
    console.render(&state, "organizations.html", context! { organizations })
}

/// `GET /account/apps`: the apps the user allowed to use the account, each withdrawable.
pub async fn apps(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    let console = Console::open(&state, &page, &signed_in, Section::Apps);
    let apps: Vec<_> = state
        .provider
        .consents(&signed_in.user)
        .await?
        .into_iter()
        .map(|c| {
            context! {
                id => c.client_id,
                name => c.client_name,
                scope => c.scope,
                since => console.time(c.created_at),
            }
        })
        .collect();
    let csrf = console.csrf.clone();
    console.render(&state, "apps.html", context! { apps, csrf })
}

/// `POST /account/apps/{client}/revoke`: withdraws an app's permission; its tokens stop.
pub async fn revoke_app(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Path(client): Path<String>,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let revoked = state
        .provider
        .revoke_consent(&signed_in.user, &client, &page.client, state.clock.now())
        .await?;
    if !revoked {
        return Err(WebError::NotFound);
    }
    Ok(Redirect::to("/account/apps").into_response())
}

#[derive(Deserialize)]
pub struct SessionsNotice {
    ended: Option<String>,
    count: Option<u64>,
}

/// `GET /account/sessions`: "Account access", every device signed in, this one marked.
pub async fn sessions(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Query(notice): Query<SessionsNotice>,
) -> Result<Response, WebError> {
    let console = Console::open(&state, &page, &signed_in, Section::Access);
    let tr = &console.tr;
    let list = state
        .sessions
        .list(signed_in.user.id, state.clock.now())
        .await?;
    let others = list.iter().any(|s| s.id != signed_in.session.id);
    let org_names = sso_org_names(&state, &list).await?;
    let sessions: Vec<_> = list
        .iter()
        .map(|s| {
            let device = DeviceLabel::from_user_agent(&s.user_agent);
            context! {
                id => s.id.to_string(),
                current => s.id == signed_in.session.id,
                device => format!("{} · {}", device.summary(), device.category),
                ip => s.ip.clone(),
                method => method_label(tr, s, &org_names),
                created => console.time(s.created_at),
                seen => console.time(s.last_seen_at),
            }
        })
        .collect();
    let notice = match (notice.ended.as_deref(), notice.count) {
        (Some("one"), _) => Some(tr.t("sessions-ended-one")),
        (Some("others"), Some(n)) => {
            Some(tr.t_with("sessions-ended-others", &[("count", n.to_string())]))
        }
        _ => None,
    };
    let csrf = console.csrf.clone();
    console.render(
        &state,
        "sessions.html",
        context! { sessions, others, notice, csrf },
    )
}

/// `POST /account/sessions/{id}/end`: signs one device out. Not one of yours: 404.
pub async fn end_session(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Path(id): Path<String>,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let id: Uuid = id.parse().map_err(|_| WebError::NotFound)?;
    let ended = state
        .sessions
        .end(
            signed_in.user.id,
            id,
            EndedBy::Owner,
            &page.client,
            state.clock.now(),
        )
        .await?;
    if !ended {
        return Err(WebError::NotFound);
    }
    Ok(Redirect::to("/account/sessions?ended=one").into_response())
}

/// `POST /account/sessions/end-others`: signs out every device but this one.
pub async fn end_other_sessions(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let count = state
        .sessions
        .end_others(
            signed_in.user.id,
            signed_in.session.id,
            &page.client,
            state.clock.now(),
        )
        .await?;
    Ok(Redirect::to(&format!("/account/sessions?ended=others&count={count}")).into_response())
}

/// `GET /account/activity`: "Account activity", with the API's filters as form fields.
pub async fn activity(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Query(query): Query<ActivityQuery>,
) -> Result<Response, WebError> {
    let console = Console::open(&state, &page, &signed_in, Section::Access);
    let tr = &console.tr;
    let label = |code: &str| action_label(tr, code);
    let actions: Vec<_> = Action::ALL
        .iter()
        .map(|a| context! { code => a.as_str(), label => label(a.as_str()) })
        .collect();
    let (status, events, older, error) = match query.parse() {
        Ok((filter, cursor, limit)) => {
            let found = state
                .activity
                .page(EventOwner::User(signed_in.user.id), &filter, cursor, limit)
                .await?;
            let events: Vec<_> = found
                .events
                .iter()
                .map(|e| {
                    let device = DeviceLabel::from_user_agent(&e.user_agent);
                    context! {
                        code => e.action.clone(),
                        label => label(&e.action),
                        time => console.time(e.created_at),
                        product => e.product.clone(),
                        ip => e.ip.clone(),
                        device => device.summary(),
                    }
                })
                .collect();
            let older = found
                .next
                .map(|next| link_query(&query, Some(next.encode())));
            (StatusCode::OK, events, older, None)
        }
        Err(bad) => (
            StatusCode::BAD_REQUEST,
            Vec::new(),
            None,
            Some(tr.t_with("activity-bad-filter", &[("name", bad.name.to_string())])),
        ),
    };
    let shown = context! {
        from => query.from.clone().unwrap_or_default(),
        to => query.to.clone().unwrap_or_default(),
        product => query.product.clone().unwrap_or_default(),
        action => query.action.clone().unwrap_or_default(),
    };
    console.render_with_status(
        &state,
        status,
        "activity.html",
        context! {
            q => shown,
            actions,
            events,
            older,
            error,
            filters => link_query(&query, None),
        },
    )
}

/// The words for an action code (`token.reuse_detected` → `action-token-reuse-detected`);
/// the code itself when no locale has it.
pub(super) fn action_label(tr: &crate::web::Translator, code: &str) -> String {
    let key = format!("action-{}", code.replace(['.', '_'], "-"));
    let text = tr.t(&key);
    if text == key { code.to_string() } else { text }
}

/// The filters of `query` (and a cursor) as a query string for links.
pub(super) fn link_query(query: &ActivityQuery, cursor: Option<String>) -> String {
    let pairs = [
        ("from", query.from.clone()),
        ("to", query.to.clone()),
        ("product", query.product.clone()),
        ("action", query.action.clone()),
        ("limit", query.limit.clone()),
        ("cursor", cursor),
    ];
    let present: Vec<(&str, String)> = pairs
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect();
    serde_urlencoded::to_string(present).unwrap_or_default()
}

/// The names of the organizations whose SSO signed these sessions in.
async fn sso_org_names(
    state: &AppState,
    sessions: &[crate::sessions::Session],
) -> Result<std::collections::HashMap<uuid::Uuid, String>, WebError> {
    let mut names = std::collections::HashMap::new();
    for org_id in sessions.iter().filter_map(|s| s.sso_org_id) {
        if let std::collections::hash_map::Entry::Vacant(entry) = names.entry(org_id)
            && let Some(org) = state.orgs.by_id(org_id).await?
        {
            entry.insert(org.name);
        }
    }
    Ok(names)
}

/// "password", or "SSO: <organization>" for a session signed in through an organization.
fn method_label(
    tr: &crate::web::Translator,
    session: &crate::sessions::Session,
    org_names: &std::collections::HashMap<uuid::Uuid, String>,
) -> String {
    match session.sso_org_id.and_then(|id| org_names.get(&id)) {
        Some(org) => tr.t_with("sessions-method-sso", &[("org", org.clone())]),
        None => session.method.clone(),
    }
}
