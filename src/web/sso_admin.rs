//! `/account/orgs/{org}/sso`: an organization's administrators connect it to their Entra ID
//! tenant, change the connection, or remove it. The secret field is always empty: the stored
//! secret is never shown, and an empty field keeps it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use uuid::Uuid;

use super::Translator;
use crate::AppState;
use crate::error::WebError;
use crate::http::{CsrfOnly, HtmlForm, PageContext, SignedIn};
use crate::orgs::{DomainEditor, DomainError, OrgRole, SsoEditor, SsoSettings, SsoSettingsError};
use crate::web::console::{Console, Section};

#[derive(Deserialize)]
pub struct Notice {
    saved: Option<String>,
    removed: Option<String>,
    /// A domain just verified, or the one whose verification failed (`domain_error`).
    domain: Option<String>,
    /// `missing`, `dns` or `taken`.
    domain_error: Option<String>,
}

/// The form of a domain's "Verify now" button.
#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    domain: String,
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
    // The query names a domain only to say how its check went: shown only for a domain the
    // organization lists (and "verified" only when it is), so a crafted link cannot put
    // words on this page.
    let listed = state.domains.list(org_id).await?;
    let known = notice
        .domain
        .as_deref()
        .and_then(|d| listed.iter().find(|l| l.domain == d));
    let domain = known.map(|d| d.domain.clone()).unwrap_or_default();
    let verified = known.is_some_and(|d| d.is_verified());
    let domain_error = notice.domain_error.as_deref().filter(|_| known.is_some());
    let (notice, error) = match (notice.saved, notice.removed, domain_error) {
        (Some(_), _, _) => (Some(page.tr.t("sso-admin-saved")), None),
        (_, Some(_), _) => (Some(page.tr.t("sso-admin-removed")), None),
        (_, _, Some(kind)) => {
            let key = match kind {
                "missing" => "domain-error-missing",
                "taken" => "domain-error-taken",
                _ => "domain-error-dns",
            };
            (None, Some(page.tr.t_with(key, &[("domain", domain)])))
        }
        _ if verified => (
            Some(page.tr.t_with("domain-verified", &[("domain", domain)])),
            None,
        ),
        _ => (None, None),
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
        error,
    )
    .await
}

/// "Verify now": looks the domain's TXT record up and comes back to the page saying how it
/// went.
pub async fn verify_domain(
    State(state): State<AppState>,
    page: PageContext,
    signed_in: SignedIn,
    Path(org): Path<String>,
    HtmlForm(form): HtmlForm<VerifyForm>,
) -> Result<Response, WebError> {
    let page = page.for_user(&state, &signed_in.user);
    page.check_csrf(&state, &signed_in.cookie, &form.csrf)?;
    let (org_id, _) = admin_org(&state, &signed_in, &org).await?;
    let editor = DomainEditor::Admin(signed_in.user.id);
    let outcome = state
        .domains
        .verify(
            org_id,
            &form.domain,
            editor,
            &page.client,
            state.clock.now(),
        )
        .await;
    let error = match outcome {
        Ok(_) => None,
        Err(DomainError::Store(e)) => return Err(e.into()),
        Err(DomainError::NotListed(_)) => return Err(WebError::NotFound),
        Err(DomainError::RecordMissing(_)) => Some("missing"),
        Err(DomainError::Taken(_)) => Some("taken"),
        Err(_) => Some("dns"),
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("domain", form.domain.trim());
    if let Some(error) = error {
        query.append_pair("domain_error", error);
    }
    let target = format!("/account/orgs/{org_id}/sso?{}#domains", query.finish());
    Ok(Redirect::to(&target).into_response())
}

#[allow(clippy::too_many_arguments)]
async fn render(
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
    let now = state.clock.now();
    let mut domain_rows = Vec::new();
    for domain in state.domains.list(org_id).await? {
        let challenge = state.domains.challenge(org_id, &domain.domain, now).await?;
        domain_rows.push(context! {
            name => domain.domain,
            verified => domain.verified.is_some(),
            record_name => challenge.name,
            record_value => challenge.value,
        });
    }
    let console = Console::open(state, &page, signed_in, Section::Organizations);
    let csrf = console.csrf.clone();
    console.render_with_status(
        state,
        status,
        "sso_admin.html",
        context! {
            csrf, notice, error, connected,
            domain_rows => domain_rows,
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
    )
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
        SsoSettingsError::PublicMailDomain(d) => {
            tr.t_with("sso-admin-error-domain-public", &[("domain", d.clone())])
        }
        SsoSettingsError::InvalidAuthority => tr.t("sso-admin-error-authority"),
        SsoSettingsError::AuthorityNotAllowed => tr.t("sso-admin-error-authority-not-allowed"),
        SsoSettingsError::AuthorityUnreachable(_) => tr.t("sso-admin-error-authority-private"),
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
            .await
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
