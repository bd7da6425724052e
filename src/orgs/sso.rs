//! SSO connections: the Entra ID tenant an organization federates, the e-mail domains it
//! answers for, and its rules (provisioning, SSO-only). The client secret is encrypted before
//! it reaches the store and is never given back.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use super::OrgRole;
use super::domains::{DomainError, MAX_DOMAINS, claimable};
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::outbound::AllowedHosts;
use crate::store::{Store, StoreError};
use crate::tokens::{SecretUnreadable, UpstreamSecrets};

pub use crate::store::sso::SsoConnection;

/// Entra ID's public cloud; national clouds (and tests) set another authority.
pub const PUBLIC_CLOUD: &str = "https://login.microsoftonline.com";

/// Entra ID's clouds (public, US government, China): an organization's administrator may
/// choose among these. Any other base URL makes Gotthard fetch from wherever it points, so
/// only an operator (CLI) or an administrator of this Gotthard instance may set one.
pub const ENTRA_CLOUDS: [&str; 4] = [
    PUBLIC_CLOUD,
    "https://login.microsoftonline.us",
    "https://login.partner.microsoftonline.cn",
    "https://login.chinacloudapi.cn",
];

/// Who changes a connection: what they may set, and whose activity records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsoEditor {
    /// `gotthard org sso …` on the server.
    Operator,
    /// A signed-in administrator (or legal representative) of the organization;
    /// `instance_admin` when they also administer this Gotthard instance.
    Admin { user_id: Uuid, instance_admin: bool },
}

impl SsoEditor {
    fn user(self) -> Option<Uuid> {
        match self {
            SsoEditor::Operator => None,
            SsoEditor::Admin { user_id, .. } => Some(user_id),
        }
    }

    fn may_set_any_authority(self) -> bool {
        matches!(
            self,
            SsoEditor::Operator
                | SsoEditor::Admin {
                    instance_admin: true,
                    ..
                }
        )
    }
}

/// Longest client secret accepted (Entra's are 40 characters).
pub const MAX_SECRET_LEN: usize = 1024;

// The record lives with the store that reads and writes it; what it means is decided here.
impl SsoConnection {
    /// The issuer Entra ID puts in this tenant's tokens (v2.0 endpoint).
    pub fn issuer(&self) -> String {
        format!("{}/{}/v2.0", self.authority, self.tenant_id)
    }

    /// Whether `email` (already normalized) belongs to one of the organization's verified
    /// domains.
    pub fn covers(&self, email: &str) -> bool {
        domain_of(email).is_some_and(|d| self.verified_domains.contains(&d))
    }
}

/// What an administrator or operator sets. `client_secret: None` keeps the stored one.
#[derive(Clone)]
pub struct SsoSettings {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub domains: Vec<String>,
    pub authority: Option<String>,
    pub provision: bool,
    pub default_role: OrgRole,
    pub enforce_sso: bool,
}

impl std::fmt::Debug for SsoSettings {
    // The secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoSettings")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("domains", &self.domains)
            .field("authority", &self.authority)
            .field("provision", &self.provision)
            .field("default_role", &self.default_role)
            .field("enforce_sso", &self.enforce_sso)
            .finish()
    }
}

/// Why settings are refused; each names the field.
#[derive(Debug, thiserror::Error)]
pub enum SsoSettingsError {
    #[error("`tenant_id` must be the tenant's GUID")]
    InvalidTenant,
    #[error("`client_id` must be the application's GUID")]
    InvalidClientId,
    #[error("`client_secret` is required for a new connection")]
    SecretRequired,
    #[error("`client_secret` must be 1 to {MAX_SECRET_LEN} characters")]
    InvalidSecret,
    #[error("`domains` must list 1 to {MAX_DOMAINS} domains")]
    DomainCount,
    #[error("`domains`: `{0}` is not a domain name")]
    InvalidDomain(String),
    #[error("`domains`: `{0}` is verified by another organization")]
    DomainTaken(String),
    #[error("`domains`: `{0}` is a public mail provider's domain, which no organization can claim")]
    PublicMailDomain(String),
    #[error("`authority` must be an https URL without query or fragment")]
    InvalidAuthority,
    #[error(
        "`authority` must be one of Entra ID's clouds ({}); an operator can set another",
        ENTRA_CLOUDS.join(", ")
    )]
    AuthorityNotAllowed,
    #[error("`authority`: {0}")]
    AuthorityUnreachable(String),
    #[error("`default_role` must be `member` or `admin`")]
    InvalidRole,
    #[error(transparent)]
    Secret(#[from] SecretUnreadable),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The organization's SSO connection: set, read, found by an address's domain.
#[derive(Clone)]
pub struct SsoConnections {
    store: Arc<dyn Store>,
    secrets: Arc<UpstreamSecrets>,
    allowed: AllowedHosts,
}

impl SsoConnections {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<UpstreamSecrets>,
        allowed: AllowedHosts,
    ) -> Self {
        Self {
            store,
            secrets,
            allowed,
        }
    }

    /// Creates or replaces the connection of `org_id` (which must exist). An administrator's
    /// change is recorded in their activity.
    pub async fn set(
        &self,
        org_id: Uuid,
        settings: SsoSettings,
        by: SsoEditor,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<SsoConnection, SsoSettingsError> {
        let existing = self.store.sso_connection(org_id).await?;
        let tenant_id = guid(&settings.tenant_id).ok_or(SsoSettingsError::InvalidTenant)?;
        let client_id = guid(&settings.client_id).ok_or(SsoSettingsError::InvalidClientId)?;
        let authority = match settings.authority.as_deref().map(str::trim) {
            None | Some("") => PUBLIC_CLOUD.to_string(),
            Some(url) => authority(url).ok_or(SsoSettingsError::InvalidAuthority)?,
        };
        let unchanged = existing.as_ref().is_some_and(|c| c.authority == authority);
        let entra = ENTRA_CLOUDS.contains(&authority.as_str());
        if !(entra || unchanged || by.may_set_any_authority()) {
            return Err(SsoSettingsError::AuthorityNotAllowed);
        }
        if !(entra || unchanged || by == SsoEditor::Operator) {
            // An instance administrator's own server: https, and not this machine or its
            // network unless an operator allowed the host (requests are checked again as
            // they are made, so a later DNS change cannot turn it inward).
            self.reachable_authority(&authority).await?;
        }
        // A legal representative is a legal designation, never granted by a sign-in.
        if settings.default_role == OrgRole::LegalRepresentative {
            return Err(SsoSettingsError::InvalidRole);
        }
        let mut domains = Vec::new();
        for raw in &settings.domains {
            let domain =
                claimable(self.store.as_ref(), org_id, raw)
                    .await
                    .map_err(|e| match e {
                        DomainError::PublicMail(d) => SsoSettingsError::PublicMailDomain(d),
                        DomainError::Taken(d) => SsoSettingsError::DomainTaken(d),
                        DomainError::Store(e) => SsoSettingsError::Store(e),
                        _ => SsoSettingsError::InvalidDomain(raw.clone()),
                    })?;
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
        domains.sort();
        if domains.is_empty() || domains.len() > MAX_DOMAINS {
            return Err(SsoSettingsError::DomainCount);
        }

        let client_secret_enc = match (settings.client_secret.as_deref(), &existing) {
            (Some(secret), _) => {
                if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
                    return Err(SsoSettingsError::InvalidSecret);
                }
                self.secrets.encrypt(org_id, secret)?
            }
            (None, Some(old)) => old.client_secret_enc.clone(),
            (None, None) => return Err(SsoSettingsError::SecretRequired),
        };
        let connection = SsoConnection {
            org_id,
            tenant_id,
            client_id,
            client_secret_enc,
            authority,
            provision: settings.provision,
            default_role: settings.default_role,
            enforce_sso: settings.enforce_sso,
            verified_domains: Vec::new(),
            domains,
            created_at: existing.map(|c| c.created_at).unwrap_or(now),
            updated_at: now,
        };
        self.store.put_sso_connection(&connection).await?;
        // What changed is told; the secret only as "replaced".
        self.record_change(
            by,
            client,
            serde_json::json!({
                "org_id": org_id,
                "tenant_id": connection.tenant_id,
                "domains": connection.domains,
                "provision": connection.provision,
                "enforce_sso": connection.enforce_sso,
                "secret_replaced": settings.client_secret.is_some(),
            }),
            now,
        )
        .await?;
        // Read back: which of the domains are verified is the store's to say.
        Ok(self
            .store
            .sso_connection(org_id)
            .await?
            .unwrap_or(connection))
    }

    async fn reachable_authority(&self, authority: &str) -> Result<(), SsoSettingsError> {
        let url = url::Url::parse(authority).map_err(|_| SsoSettingsError::InvalidAuthority)?;
        let host = url.host_str().ok_or(SsoSettingsError::InvalidAuthority)?;
        if url.scheme() != "https" && !self.allowed.contains(host) {
            return Err(SsoSettingsError::InvalidAuthority);
        }
        let port = url.port_or_known_default().unwrap_or(443);
        self.allowed
            .addresses(host, port)
            .await
            .map(|_| ())
            .map_err(SsoSettingsError::AuthorityUnreachable)
    }

    async fn record_change(
        &self,
        by: SsoEditor,
        client: &ClientInfo,
        details: serde_json::Value,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if let Some(admin) = by.user() {
            let event = ActivityEvent::new(Some(admin), Action::SsoChanged, client, details, now);
            self.store.record_event(&event).await?;
        }
        Ok(())
    }

    pub async fn get(&self, org_id: Uuid) -> Result<Option<SsoConnection>, StoreError> {
        self.store.sso_connection(org_id).await
    }

    /// Removes the connection (and its domains); `false` when there was none.
    pub async fn remove(
        &self,
        org_id: Uuid,
        by: SsoEditor,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let removed = self.store.delete_sso_connection(org_id).await?;
        if removed {
            let details = serde_json::json!({ "org_id": org_id, "removed": true });
            self.record_change(by, client, details, now).await?;
        }
        Ok(removed)
    }

    /// Home-realm discovery: the connection of the organization that verified the address's
    /// domain.
    pub async fn for_email(&self, email: &str) -> Result<Option<SsoConnection>, StoreError> {
        match domain_of(email) {
            Some(domain) => self.store.sso_connection_for_domain(&domain).await,
            None => Ok(None),
        }
    }

    /// The client secret in clear, for the token request only.
    pub fn client_secret(&self, connection: &SsoConnection) -> Result<String, SecretUnreadable> {
        self.secrets
            .decrypt(connection.org_id, &connection.client_secret_enc)
    }
}

/// The lower-cased domain of an address.
pub fn domain_of(email: &str) -> Option<String> {
    email
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

fn guid(value: &str) -> Option<String> {
    Uuid::parse_str(value.trim())
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// An https base URL (http only towards a loopback address, for local test servers).
fn authority(value: &str) -> Option<String> {
    let url = url::Url::parse(value).ok()?;
    let loopback = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(d) => d == "localhost",
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    let clean = url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    (scheme_ok && clean).then(|| url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_authorities_are_checked() {
        assert_eq!(
            authority("https://login.microsoftonline.us/").as_deref(),
            Some("https://login.microsoftonline.us")
        );
        assert!(authority("http://login.example.com").is_none());
        assert!(authority("http://127.0.0.1:9000").is_some());
        assert!(authority("https://x.example/?q=1").is_none());
        assert_eq!(domain_of("a@Contoso.com").as_deref(), Some("contoso.com"));
    }
}
