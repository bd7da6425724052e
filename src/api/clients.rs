//! `/api/v1/clients` (instance administrators register relying applications) and
//! `/api/v1/me/consents` (the applications a user allowed, and taking that back).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::me::ApiJson;
use super::{AdminCaller, ApiError, Caller, Problem};
use crate::AppState;
use crate::oidc::{Client, ClientAuthMethod, ClientSpec, ClientSpecError, Consent};
use crate::tokens::SigningAlg;

#[derive(Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub token_endpoint_auth_method: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub first_party: bool,
    pub require_pkce: bool,
    pub id_token_signed_response_alg: String,
    /// May ask for the `admin` scope (the user is asked each time).
    pub admin_scope: bool,
    /// Clients whose access tokens this one may introspect.
    pub introspect_for: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Only in the answer to the creation, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl ClientView {
    fn new(client: &Client, secret: Option<String>) -> Self {
        Self {
            client_id: client.id.clone(),
            name: client.name.clone(),
            token_endpoint_auth_method: client.auth_method.as_str().to_string(),
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: client.backchannel_logout_uri.clone(),
            first_party: client.first_party,
            require_pkce: client.require_pkce,
            id_token_signed_response_alg: client.id_token_alg.as_str().to_string(),
            admin_scope: client.admin_scope,
            introspect_for: client.introspect_for.clone(),
            created_at: client.created_at,
            client_secret: secret,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientView>,
}

/// A client to register (names after RFC 7591 where it has one).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCreate {
    pub name: String,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Receives back-channel logout tokens: `https`, or `http` only to a loopback host.
    pub backchannel_logout_uri: Option<String>,
    /// `client_secret_basic` (default), `client_secret_post`, `private_key_jwt` or `none`
    /// (a public client: PKCE required).
    pub token_endpoint_auth_method: Option<String>,
    /// The client's public keys (a JWK Set) for `private_key_jwt`.
    #[schema(value_type = Object)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub first_party: bool,
    #[serde(default)]
    pub require_pkce: bool,
    /// `RS256` (default), `ES256` or `EdDSA`.
    pub id_token_signed_response_alg: Option<String>,
    /// Allow the client to ask for the `admin` scope (administration through the API; the
    /// user is asked each time).
    #[serde(default)]
    pub admin_scope: bool,
    /// Ids of clients whose access tokens this one may introspect (it is their resource
    /// server); without, it introspects only its own tokens.
    #[serde(default)]
    pub introspect_for: Vec<String>,
}

pub(super) fn require_instance_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.me.user.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Lists the registered clients (instance administrators).
#[utoipa::path(get, path = "/api/v1/clients", tag = "clients", responses(
    (status = 200, body = ClientList),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    caller: AdminCaller,
) -> Result<Json<ClientList>, ApiError> {
    require_instance_admin(&caller)?;
    let clients = state.provider.list_clients().await?;
    Ok(Json(ClientList {
        clients: clients.iter().map(|c| ClientView::new(c, None)).collect(),
    }))
}

/// Registers a client; the answer carries its secret, once.
#[utoipa::path(post, path = "/api/v1/clients", tag = "clients", request_body = ClientCreate, responses(
    (status = 201, body = ClientView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create(
    State(state): State<AppState>,
    caller: AdminCaller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ClientCreate>,
) -> Result<Response, ApiError> {
    caller.require_csrf(&state, &headers)?;
    require_instance_admin(&caller)?;
    let method = body
        .token_endpoint_auth_method
        .as_deref()
        .unwrap_or("client_secret_basic");
    let auth_method = ClientAuthMethod::parse(method).ok_or_else(|| {
        ApiError::Invalid(format!("unknown `token_endpoint_auth_method` {method}"))
    })?;
    let alg = body
        .id_token_signed_response_alg
        .as_deref()
        .unwrap_or("RS256");
    let id_token_alg = SigningAlg::parse(alg).ok_or_else(|| {
        ApiError::Invalid(format!("unsupported `id_token_signed_response_alg` {alg}"))
    })?;
    let spec = ClientSpec {
        name: body.name,
        auth_method,
        jwks: body.jwks.map(|j| j.to_string()),
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        backchannel_logout_uri: body.backchannel_logout_uri,
        first_party: body.first_party,
        require_pkce: body.require_pkce,
        id_token_alg,
        admin_scope: body.admin_scope,
        introspect_for: body.introspect_for,
    };
    let (client, secret) = state
        .provider
        .create_client(spec, state.clock.now())
        .await
        .map_err(|e| match e {
            ClientSpecError::Invalid(message) => ApiError::Invalid(message),
            ClientSpecError::Store(e) => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(ClientView::new(&client, secret))).into_response())
}

/// Deletes a client: its tokens stop working at once.
#[utoipa::path(delete, path = "/api/v1/clients/{id}", tag = "clients", responses(
    (status = 204),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete(
    State(state): State<AppState>,
    caller: AdminCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_csrf(&state, &headers)?;
    require_instance_admin(&caller)?;
    if state.provider.delete_client(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConsentList {
    pub consents: Vec<Consent>,
}

/// The applications the caller allowed, and to what.
#[utoipa::path(get, path = "/api/v1/me/consents", tag = "me", responses(
    (status = 200, body = ConsentList),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn consents(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ConsentList>, ApiError> {
    Ok(Json(ConsentList {
        consents: state.provider.consents(&caller.me.user).await?,
    }))
}

/// Withdraws a consent: the application asks again next time, and the tokens the user gave
/// it stop working at once.
#[utoipa::path(delete, path = "/api/v1/me/consents/{client_id}", tag = "me", responses(
    (status = 204),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke_consent(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_csrf(&state, &headers)?;
    let revoked = state
        .provider
        .revoke_consent(
            &caller.me.user,
            &client_id,
            &caller.client,
            state.clock.now(),
        )
        .await?;
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
