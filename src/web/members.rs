//! `/account/orgs/{org}/members`: an organization's administrators see its members, which
//! are locked, and unlock them.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::error::WebError;
use crate::http::{CsrfOnly, HtmlForm, PageContext, SignedIn};
use crate::web::console::{Console, Section};

#[derive(Deserialize)]
pub struct Notice {
    unlocked: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Path(org): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, WebError> {
    let org_id: Uuid = org.parse().map_err(|_| WebError::NotFound)?;
    state.orgs.require_admin(org_id, signed_in.user.id).await?;
    let name = state
        .orgs
        .of_user(signed_in.user.id)
        .await?
        .into_iter()
        .find(|(o, _)| o.id == org_id)
        .map(|(o, _)| o.name)
        .unwrap_or_default();
    let members: Vec<_> = state
        .orgs
        .members_by_id(org_id)
        .await?
        .into_iter()
        .map(|m| {
            context! {
                id => m.user_id.to_string(),
                email => m.email,
                name => m.name,
                role => m.role.as_str(),
                locked => m.locked,
            }
        })
        .collect();
    let console = Console::open(&state, &page, &signed_in, Section::Organizations);
    let csrf = console.csrf.clone();
    let notice = notice.unlocked.map(|_| console.tr.t("members-unlocked"));
    console.render(
        &state,
        "members.html",
        context! {
            org => name,
            org_id => org_id.to_string(),
            members,
            csrf,
            notice,
        },
    )
}

pub async fn unlock(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Path((org, user)): Path<(String, String)>,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let org_id: Uuid = org.parse().map_err(|_| WebError::NotFound)?;
    let user_id: Uuid = user.parse().map_err(|_| WebError::NotFound)?;
    let admin = signed_in.user.id;
    state
        .orgs
        .require_admin_over(org_id, admin, user_id)
        .await?;
    state
        .accounts
        .unlock_by_admin(
            user_id,
            Some((admin, org_id)),
            &page.client,
            state.clock.now(),
        )
        .await?;
    Ok(Redirect::to(&format!("/account/orgs/{org_id}/members?unlocked=1")).into_response())
}
