//! `/api/v1/orgs/{org}/domains`: an organization's e-mail domains and their verification
//! by DNS, for its administrators and legal representatives.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::me::ApiJson;
use super::{AdminCaller, ApiError, Problem};
use crate::AppState;
use crate::orgs::{DomainChallenge, DomainEditor, DomainError, OrgDomain};

/// One domain and what proves it.
#[derive(Serialize, ToSchema)]
pub struct DomainView {
    pub domain: String,
    /// Only a verified domain routes its addresses to the organization's SSO.
    pub verified: bool,
    /// `dns` or `operator`, once verified.
    pub proof: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    /// The TXT record to publish: its name …
    pub record_name: String,
    /// … and its value (the same for every domain of the organization).
    pub record_value: String,
}

#[derive(Serialize, ToSchema)]
pub struct DomainList {
    pub domains: Vec<DomainView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainAdd {
    pub domain: String,
}

fn view(domain: OrgDomain, challenge: DomainChallenge) -> DomainView {
    DomainView {
        verified: domain.is_verified(),
        proof: domain.verified.map(|(_, p)| p.as_str().to_string()),
        verified_at: domain.verified.map(|(at, _)| at),
        domain: domain.domain,
        record_name: challenge.name,
        record_value: challenge.value,
    }
}

async fn admin_of(state: &AppState, caller: &AdminCaller, org: &str) -> Result<Uuid, ApiError> {
    let org: Uuid = org.parse().map_err(|_| ApiError::NotFound)?;
    state.orgs.require_admin(org, caller.me.user.id).await?;
    Ok(org)
}

async fn view_of(state: &AppState, org: Uuid, domain: &str) -> Result<DomainView, ApiError> {
    let now = state.clock.now();
    let found = state
        .domains
        .list(org)
        .await?
        .into_iter()
        .find(|d| d.domain == domain)
        .ok_or(ApiError::NotFound)?;
    let challenge = state.domains.challenge(org, domain, now).await?;
    Ok(view(found, challenge))
}

/// The organization's domains, each with the TXT record that verifies it.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/domains", tag = "organizations",
    params(("org" = Uuid, Path)),
    responses(
        (status = 200, body = DomainList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(org): Path<String>,
) -> Result<Json<DomainList>, ApiError> {
    let org = admin_of(&state, &caller, &org).await?;
    let now = state.clock.now();
    let mut domains = Vec::new();
    for domain in state.domains.list(org).await? {
        let challenge = state.domains.challenge(org, &domain.domain, now).await?;
        domains.push(view(domain, challenge));
    }
    Ok(Json(DomainList { domains }))
}

/// Lists a domain for the organization, unverified until its TXT record is found.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/domains", tag = "organizations",
    params(("org" = Uuid, Path)), request_body = DomainAdd,
    responses(
        (status = 201, body = DomainView),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "Verified by another organization"),
        (status = 422, body = Problem, content_type = "application/problem+json",
            description = "Not a domain name, or a public mail provider's"),
    ))]
pub async fn add(
    State(state): State<AppState>,
    caller: AdminCaller,
    headers: HeaderMap,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<DomainAdd>,
) -> Result<Response, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let org = admin_of(&state, &caller, &org).await?;
    let editor = DomainEditor::Admin(caller.me.user.id);
    let domain = state
        .domains
        .add(org, &body.domain, editor, &caller.client, state.clock.now())
        .await?;
    let view = view_of(&state, org, &domain).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Looks the domain's TXT record up now: 200 once verified; 422 naming the record when it is
/// not there (yet); 503 when DNS does not answer.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/domains/{domain}/verify", tag = "organizations",
    params(("org" = Uuid, Path), ("domain" = String, Path)),
    responses(
        (status = 200, body = DomainView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    caller: AdminCaller,
    headers: HeaderMap,
    Path((org, domain)): Path<(String, String)>,
) -> Result<Json<DomainView>, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let org = admin_of(&state, &caller, &org).await?;
    let editor = DomainEditor::Admin(caller.me.user.id);
    let verified = state
        .domains
        .verify(org, &domain, editor, &caller.client, state.clock.now())
        .await;
    match verified {
        Ok(found) => Ok(Json(view_of(&state, org, &found.domain).await?)),
        Err(DomainError::NotListed(_)) => Err(ApiError::NotFound),
        Err(other) => Err(other.into()),
    }
}

/// Removes the domain from the organization (its addresses no longer route to its SSO).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/domains/{domain}", tag = "organizations",
    params(("org" = Uuid, Path), ("domain" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    caller: AdminCaller,
    headers: HeaderMap,
    Path((org, domain)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let org = admin_of(&state, &caller, &org).await?;
    let editor = DomainEditor::Admin(caller.me.user.id);
    if !state
        .domains
        .remove(org, &domain, editor, &caller.client, state.clock.now())
        .await?
    {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
