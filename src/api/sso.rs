//! `/api/v1/orgs/{org}/sso`: an organization's administrators connect it to their Entra ID
//! tenant. The client secret goes in, encrypted, and never comes back out.

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
use crate::orgs::{OrgRole, SsoConnection, SsoEditor, SsoSettings, SsoSettingsError};

/// The connection as it is set. `client_secret` may be left out to keep the stored one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoPut {
    /// The Entra tenant id (a GUID).
    pub tenant_id: String,
    /// The application (client) id registered in that tenant (a GUID).
    pub client_id: String,
    /// The application's client secret; required for a new connection.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The e-mail domains whose users sign in through this tenant.
    pub domains: Vec<String>,
    /// Base URL of the Entra ID cloud; default `https://login.microsoftonline.com`. Other
    /// than Entra's clouds only for administrators of this Gotthard instance.
    #[serde(default)]
    pub authority: Option<String>,
    /// Create an account (and membership) at an unknown user's first sign-in.
    #[serde(default)]
    pub provision: bool,
    /// The role of provisioned users: `member` (default) or `admin`.
    #[serde(default)]
    pub default_role: Option<String>,
    /// Refuse password sign-in for addresses of these domains.
    #[serde(default)]
    pub enforce_sso: bool,
}

impl std::fmt::Debug for SsoPut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoPut")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

/// The connection without its secret.
#[derive(Serialize, ToSchema)]
pub struct SsoView {
    pub tenant_id: String,
    pub client_id: String,
    pub domains: Vec<String>,
    pub authority: String,
    pub provision: bool,
    pub default_role: String,
    pub enforce_sso: bool,
    /// The redirect URI to register in the Entra application.
    pub redirect_uri: String,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl SsoView {
    fn of(connection: SsoConnection, redirect_uri: &str) -> Self {
        Self {
            tenant_id: connection.tenant_id,
            client_id: connection.client_id,
            domains: connection.domains,
            authority: connection.authority,
            provision: connection.provision,
            default_role: connection.default_role.as_str().to_string(),
            enforce_sso: connection.enforce_sso,
            redirect_uri: redirect_uri.to_string(),
            updated_at: connection.updated_at,
        }
    }
}

fn editor(caller: &AdminCaller) -> SsoEditor {
    SsoEditor::Admin {
        user_id: caller.me.user.id,
        instance_admin: caller.me.user.is_admin,
    }
}

fn org_id(org: &str) -> Result<Uuid, ApiError> {
    org.parse().map_err(|_| ApiError::NotFound)
}

/// The organization's SSO connection (for its admins and legal representatives).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/sso", tag = "organizations",
    params(("org" = Uuid, Path)),
    responses(
        (status = 200, body = SsoView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(org): Path<String>,
) -> Result<Json<SsoView>, ApiError> {
    let org = org_id(&org)?;
    state.orgs.require_admin(org, caller.me.user.id).await?;
    let connection = state.sso.get(org).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(SsoView::of(
        connection,
        state.federation.redirect_uri(),
    )))
}

/// Creates or replaces the organization's SSO connection.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/sso", tag = "organizations",
    params(("org" = Uuid, Path)), request_body = SsoPut,
    responses(
        (status = 200, body = SsoView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    caller: AdminCaller,
    headers: HeaderMap,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<SsoPut>,
) -> Result<Json<SsoView>, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let org = org_id(&org)?;
    state.orgs.require_admin(org, caller.me.user.id).await?;
    let default_role = match body.default_role.as_deref() {
        None => OrgRole::Member,
        Some(role) => role
            .parse()
            .map_err(|_| ApiError::Invalid("`default_role` must be `member` or `admin`".into()))?,
    };
    let settings = SsoSettings {
        tenant_id: body.tenant_id,
        client_id: body.client_id,
        client_secret: body.client_secret,
        domains: body.domains,
        authority: body.authority,
        provision: body.provision,
        default_role,
        enforce_sso: body.enforce_sso,
    };
    let connection = state
        .sso
        .set(
            org,
            settings,
            editor(&caller),
            &caller.client,
            state.clock.now(),
        )
        .await
        .map_err(|e| match e {
            SsoSettingsError::DomainTaken(_) => ApiError::Conflict(e.to_string()),
            SsoSettingsError::Store(e) => e.into(),
            SsoSettingsError::Secret(e) => ApiError::Internal(e.to_string()),
            other => ApiError::Invalid(other.to_string()),
        })?;
    Ok(Json(SsoView::of(
        connection,
        state.federation.redirect_uri(),
    )))
}

/// Disconnects the organization from its tenant; its members sign in with passwords again.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/sso", tag = "organizations",
    params(("org" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    caller: AdminCaller,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let org = org_id(&org)?;
    state.orgs.require_admin(org, caller.me.user.id).await?;
    if !state
        .sso
        .remove(org, editor(&caller), &caller.client, state.clock.now())
        .await?
    {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
