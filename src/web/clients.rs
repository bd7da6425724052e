//! `/admin/clients/{id}/activity`: the operator's view of one OAuth client — a summary of
//! its tokens and failed authentications, then its events, with the filters of the account
//! activity page and a CSV link. Instance administrators only.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minijinja::context;
use time::format_description::well_known::Rfc3339;

use super::account::{action_label, link_query};
use crate::AppState;
use crate::audit::{Action, EventOwner};
use crate::error::WebError;
use crate::http::{ActivityQuery, PageContext, SignedIn};
use crate::sessions::DeviceLabel;

/// The actions that concern a client, for the filter.
const CLIENT_ACTIONS: [Action; 6] = [
    Action::TokenIssued,
    Action::ClientAuthFailed,
    Action::TokenRevoked,
    Action::TokenReuseDetected,
    Action::ConsentGranted,
    Action::ConsentRevoked,
];

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/clients/{id}/activity", get(activity))
}

async fn activity(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<ActivityQuery>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    if !signed_in.user.is_admin {
        return Err(WebError::AdminOnly);
    }
    if !state.activity.client_on_record(&id).await? {
        return Err(WebError::NotFound);
    }
    let tr = &page.tr;
    let time = |at: time::OffsetDateTime| at.format(&Rfc3339).unwrap_or_default();
    let actions: Vec<_> = CLIENT_ACTIONS
        .iter()
        .map(|a| context! { code => a.as_str(), label => action_label(tr, a.as_str()) })
        .collect();
    let name = state.provider.client(&id).await?.map(|c| c.name);
    let (status, summary, events, older, error) = match query.parse() {
        Ok((filter, cursor, limit)) => {
            let summary = state
                .activity
                .client_summary(&id, &filter, state.clock.now())
                .await?;
            let found = state
                .activity
                .page(EventOwner::Client(&id), &filter, cursor, limit)
                .await?;
            let events: Vec<_> = found
                .events
                .iter()
                .map(|e| {
                    let device = DeviceLabel::from_user_agent(&e.user_agent);
                    context! {
                        code => e.action.clone(),
                        label => action_label(tr, &e.action),
                        time => time(e.created_at),
                        ip => e.ip.clone(),
                        device => device.summary(),
                        details => details_line(&e.details),
                    }
                })
                .collect();
            let older = found
                .next
                .map(|next| link_query(&query, Some(next.encode())));
            let summary = context! {
                window => tr.t_with("client-activity-window", &[
                    ("from", time(summary.from)),
                    ("to", time(summary.to)),
                ]),
                tokens => summary.tokens,
                failures => summary.failures,
                last_used => summary.last_issued.map(time),
                hours => summary.hours.iter().map(|h| context! {
                    hour => time(h.hour), tokens => h.tokens, failures => h.failures,
                }).collect::<Vec<_>>(),
                addresses => summary.addresses.iter().map(|a| context! {
                    ip => a.ip.clone(), tokens => a.tokens, failures => a.failures,
                    last_seen => time(a.last_seen),
                }).collect::<Vec<_>>(),
            };
            (StatusCode::OK, Some(summary), events, older, None)
        }
        Err(bad) => (
            StatusCode::BAD_REQUEST,
            None,
            Vec::new(),
            None,
            Some(tr.t_with("activity-bad-filter", &[("name", bad.name.to_string())])),
        ),
    };
    let shown = context! {
        from => query.from.clone().unwrap_or_default(),
        to => query.to.clone().unwrap_or_default(),
        action => query.action.clone().unwrap_or_default(),
    };
    let title = tr.t_with(
        "client-activity-title",
        &[("name", name.clone().unwrap_or_else(|| id.clone()))],
    );
    let html = state.pages.render(
        "clients/activity.html",
        tr,
        context! {
            title,
            client_id => id.clone(),
            deleted => name.is_none(),
            path => format!("/admin/clients/{}/activity", urlencoding(&id)),
            csv => format!("/api/v1/clients/{}/activity.csv", urlencoding(&id)),
            q => shown,
            actions,
            summary,
            events,
            older,
            error,
            filters => link_query(&query, None),
        },
    )?;
    Ok((status, Html(html)).into_response())
}

/// An event's details as `key: value` pairs, without the client id the page is about.
fn details_line(details: &str) -> String {
    let map: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(details).unwrap_or_default();
    map.into_iter()
        .filter(|(k, _)| k != "client_id")
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}: {s}"),
            other => format!("{k}: {other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A path segment, percent-encoded (client ids are ours, but the path came from outside).
fn urlencoding(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}
