//! `/account/orgs/{org}/sso`: an organization's administrators connect it to their Entra ID
//! tenant, change the connection, or remove it. The secret field is always empty: the stored
//! secret is never shown, and an empty field keeps it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use uuid::Uuid;

use super::{CsrfOnly, HtmlForm, PageContext, SignedIn, Translator};
use crate::AppState;
use crate::error::WebError;
use crate::orgs::{OrgRole, SsoEditor, SsoSettings, SsoSettingsError};

#[derive(Deserialize)]
pub struct Notice {
    saved: Option<String>,
    removed: Option<String>,
}

/// The form's fields; unchecked boxes are absent.
#[derive(Deserialize, Default)]
pub struct SsoAdminForm {
    #[serde(default)]
    tenant_id: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    domains: String,
    #[serde(default)]
    authority: String,
    #[serde(default)]
    provision: Option<String>,
    #[serde(default)]
    default_role: String,
    #[serde(default)]
    enforce_sso: Option<String>,
    #[serde(default)]
    csrf: String,
}

async fn admin_org(
    state: &AppState,
    signed_in: &SignedIn,
    org: &str,
) -> Result<(Uuid, String), WebError> {
    let org_id: Uuid = org.parse().map_err(|_| WebError::NotFound)?;
    state.orgs.require_admin(org_id, signed_in.user.id).await?;
    let name = state
        .orgs
        .by_id(org_id)
        .await?
        .map(|o| o.name)
        .ok_or(WebError::NotFound)?;
    Ok((org_id, name))
}

pub async fn page(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Path(org): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    let (org_id, name) = admin_org(&state, &signed_in, &org).await?;
    let form = match state.sso.get(org_id).await? {
        Some(c) => SsoAdminForm {
            tenant_id: c.tenant_id,
            client_id: c.client_id,
            domains: c.domains.join(" "),
            authority: c.authority,
            provision: c.provision.then(String::new),
            default_role: c.default_role.as_str().to_string(),
            enforce_sso: c.enforce_sso.then(String::new),
            ..SsoAdminForm::default()
        },
        None => SsoAdminForm::default(),
    };
    let connected = !form.tenant_id.is_empty();
    let notice = match (notice.saved, notice.removed) {
        (Some(_), _) => Some(page.tr.t("sso-admin-saved")),
        (_, Some(_)) => Some(page.tr.t("sso-admin-removed")),
        _ => None,
    };
    render(
        &state,
        page,
        &signed_in,
        StatusCode::OK,
        (org_id, &name),
        &form,
        connected,
        notice,
        None,
    )
}

#[allow(clippy::too_many_arguments)]
fn render(
    state: &AppState,
    page: PageContext,
    signed_in: &SignedIn,
    status: StatusCode,
    (org_id, name): (Uuid, &str),
    form: &SsoAdminForm,
    connected: bool,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, WebError> {
    let (jar, csrf) = page.csrf_token(state, &signed_in.cookie);
    let html = state.pages.render(
        "sso_admin.html",
        &page.tr,
        context! {
            csrf, notice, error, connected,
            org => name,
            org_id => org_id.to_string(),
            redirect_uri => state.federation.redirect_uri(),
            tenant_id => form.tenant_id,
            client_id => form.client_id,
            domains => form.domains,
            authority => form.authority,
            provision => form.provision.is_some(),
            admin_role => form.default_role == "admin",
            enforce_sso => form.enforce_sso.is_some(),
        },
    )?;
    Ok((status, jar, Html(html)).into_response())
}

fn message(tr: &Translator, error: &SsoSettingsError) -> String {
    match error {
        SsoSettingsError::InvalidTenant => tr.t("sso-admin-error-tenant"),
        SsoSettingsError::InvalidClientId => tr.t("sso-admin-error-client"),
        SsoSettingsError::SecretRequired => tr.t("sso-admin-error-secret-required"),
        SsoSettingsError::InvalidSecret => tr.t("sso-admin-error-secret"),
        SsoSettingsError::DomainCount => tr.t("sso-admin-error-domain-count"),
        SsoSettingsError::InvalidDomain(d) => {
            tr.t_with("sso-admin-error-domain", &[("domain", d.clone())])
        }
        SsoSettingsError::DomainTaken(d) => {
            tr.t_with("sso-admin-error-domain-taken", &[("domain", d.clone())])
        }
        SsoSettingsError::InvalidAuthority => tr.t("sso-admin-error-authority"),
        SsoSettingsError::AuthorityNotAllowed => tr.t("sso-admin-error-authority-not-allowed"),
        SsoSettingsError::InvalidRole => tr.t("sso-admin-error-role"),
        SsoSettingsError::Secret(_) | SsoSettingsError::Store(_) => tr.t("error-internal"),
    }
}

pub async fn save(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Path(org): Path<String>,
    HtmlForm(mut form): HtmlForm<SsoAdminForm>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let (org_id, name) = admin_org(&state, &signed_in, &org).await?;
    let default_role = match form.default_role.as_str() {
        "admin" => OrgRole::Admin,
        _ => OrgRole::Member,
    };
    let settings = SsoSettings {
        tenant_id: form.tenant_id.clone(),
        client_id: form.client_id.clone(),
        client_secret: (!form.client_secret.is_empty()).then(|| form.client_secret.clone()),
        domains: form
            .domains
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect(),
        authority: Some(form.authority.clone()),
        provision: form.provision.is_some(),
        default_role,
        enforce_sso: form.enforce_sso.is_some(),
    };
    let editor = SsoEditor::Admin {
        user_id: signed_in.user.id,
        instance_admin: signed_in.user.is_admin,
    };
    match state
        .sso
        .set(org_id, settings, editor, &page.client, state.clock.now())
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/account/orgs/{org_id}/sso?saved=1")).into_response()),
        Err(SsoSettingsError::Store(e)) => Err(e.into()),
        Err(SsoSettingsError::Secret(e)) => Err(WebError::Internal(e.to_string())),
        Err(error) => {
            let text = message(&page.tr, &error);
            // The typed secret is not sent back into the page.
            form.client_secret.clear();
            let connected = state.sso.get(org_id).await?.is_some();
            render(
                &state,
                page,
                &signed_in,
                StatusCode::UNPROCESSABLE_ENTITY,
                (org_id, &name),
                &form,
                connected,
                None,
                Some(text),
            )
        }
    }
}

pub async fn remove(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Path(org): Path<String>,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let (org_id, _) = admin_org(&state, &signed_in, &org).await?;
    let editor = SsoEditor::Admin {
        user_id: signed_in.user.id,
        instance_admin: signed_in.user.is_admin,
    };
    state
        .sso
        .remove(org_id, editor, &page.client, state.clock.now())
        .await?;
    Ok(Redirect::to(&format!("/account/orgs/{org_id}/sso?removed=1")).into_response())
}
