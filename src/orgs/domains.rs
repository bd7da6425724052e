//! An organization's e-mail domains and the proof that it owns them (issue 14).
//!
//! A domain does nothing until it is verified: it routes nobody to SSO and blocks nobody's
//! password. Verification is a DNS TXT record `_gotthard-challenge.<domain>` holding the
//! organization's challenge value, looked up by the server with a bounded timeout and looked
//! up again periodically; an operator may vouch for a domain instead (CLI). While unverified,
//! several organizations may list the same domain, so that squatting one blocks nobody; once
//! one of them verifies it, it is that organization's only. Domains of public mail providers
//! can never be listed.

use std::sync::{Arc, LazyLock};

use time::OffsetDateTime;
use uuid::Uuid;

use super::dns::{CHALLENGE_LABEL, DnsChallenges, TxtAnswer};
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::store::{Store, StoreError};
use crate::tokens::OpaqueToken;

pub use crate::store::domains::{DomainProof, OrgDomain};

/// Most domains one organization lists.
pub const MAX_DOMAINS: usize = 50;
/// The prefix of the TXT value: `gotthard-domain-verification=<token>`.
pub const CHALLENGE_PREFIX: &str = "gotthard-domain-verification=";
/// Domains re-checked per maintenance tick, and how many lookups run at once.
const RECHECK_BATCH: i64 = 100;
const RECHECKS_AT_ONCE: usize = 8;

static PUBLIC_MAIL_DOMAINS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    include_str!("public_mail_domains.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// What to publish to verify a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainChallenge {
    /// The record's name, e.g. `_gotthard-challenge.contoso.com`.
    pub name: String,
    /// The TXT value, the same for every domain of the organization.
    pub value: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("`{0}` is not a domain name")]
    Invalid(String),
    #[error("`{0}` is a public mail provider's domain: anyone can have an address there")]
    PublicMail(String),
    #[error("`{0}` is verified by another organization")]
    Taken(String),
    #[error("an organization lists at most {MAX_DOMAINS} domains")]
    TooMany,
    #[error("the organization does not list `{0}`")]
    NotListed(String),
    #[error("no TXT record `{}` with the value `{}` was found", .0.name, .0.value)]
    RecordMissing(DomainChallenge),
    #[error("DNS did not answer; try again in a minute")]
    DnsUnavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who changes an organization's domains: recorded in their activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainEditor {
    /// `gotthard org domain …` on the server.
    Operator,
    /// A signed-in administrator (or legal representative) of the organization.
    Admin(Uuid),
}

impl DomainEditor {
    fn user(self) -> Option<Uuid> {
        match self {
            DomainEditor::Operator => None,
            DomainEditor::Admin(user) => Some(user),
        }
    }
}

/// When verified domains are looked up again, and when a missing record withdraws one.
#[derive(Debug, Clone, Copy)]
pub struct RecheckPolicy {
    pub every: time::Duration,
    /// Answers in a row without the record before the verification is withdrawn (a DNS
    /// outage counts as no answer, never as missing).
    pub withdraw_after: i32,
}

#[derive(Clone)]
pub struct OrgDomains {
    store: Arc<dyn Store>,
    dns: Arc<DnsChallenges>,
    recheck: RecheckPolicy,
}

impl OrgDomains {
    pub fn new(store: Arc<dyn Store>, dns: Arc<DnsChallenges>, recheck: RecheckPolicy) -> Self {
        Self {
            store,
            dns,
            recheck,
        }
    }

    /// The record to publish for `domain` (the organization's value, created the first time).
    pub async fn challenge(
        &self,
        org_id: Uuid,
        domain: &str,
        now: OffsetDateTime,
    ) -> Result<DomainChallenge, StoreError> {
        let candidate = OpaqueToken::generate();
        let token = self
            .store
            .domain_challenge(org_id, candidate.as_str(), now)
            .await?;
        Ok(DomainChallenge {
            name: format!("{CHALLENGE_LABEL}.{domain}"),
            value: format!("{CHALLENGE_PREFIX}{token}"),
        })
    }

    pub async fn list(&self, org_id: Uuid) -> Result<Vec<OrgDomain>, StoreError> {
        self.store.org_domains(org_id).await
    }

    /// Lists a domain (unverified) for the organization; returns it normalized.
    pub async fn add(
        &self,
        org_id: Uuid,
        raw: &str,
        by: DomainEditor,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<String, DomainError> {
        let domain = claimable(self.store.as_ref(), org_id, raw).await?;
        let listed = self.store.org_domains(org_id).await?;
        if !listed.iter().any(|d| d.domain == domain) && listed.len() >= MAX_DOMAINS {
            return Err(DomainError::TooMany);
        }
        let event = domain_event(by, client, &domain, "added", org_id, now);
        self.store.claim_domain(org_id, &domain, &event).await?;
        Ok(domain)
    }

    /// Removes a domain from the organization; `false` when it was not listed.
    pub async fn remove(
        &self,
        org_id: Uuid,
        raw: &str,
        by: DomainEditor,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let domain = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let event = domain_event(by, client, &domain, "removed", org_id, now);
        self.store.remove_domain(org_id, &domain, &event).await
    }

    /// Looks the challenge record up now and marks the domain verified when it is there.
    pub async fn verify(
        &self,
        org_id: Uuid,
        raw: &str,
        by: DomainEditor,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<OrgDomain, DomainError> {
        let domain = self.listed(org_id, raw).await?;
        if domain.is_verified() {
            return Ok(domain);
        }
        // Checked before DNS is asked, and again by the database when marking.
        claimable(self.store.as_ref(), org_id, &domain.domain).await?;
        let challenge = self.challenge(org_id, &domain.domain, now).await?;
        match self.dns.check(&domain.domain, &challenge.value).await {
            TxtAnswer::Found => {}
            TxtAnswer::Missing => return Err(DomainError::RecordMissing(challenge)),
            TxtAnswer::Unavailable => return Err(DomainError::DnsUnavailable),
        }
        self.mark(org_id, &domain.domain, DomainProof::Dns, by, client, now)
            .await
    }

    /// An operator vouches for the domain without DNS (CLI only).
    pub async fn vouch(
        &self,
        org_id: Uuid,
        raw: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<OrgDomain, DomainError> {
        let by = DomainEditor::Operator;
        let domain = self.add(org_id, raw, by, client, now).await?;
        self.mark(org_id, &domain, DomainProof::Operator, by, client, now)
            .await
    }

    async fn listed(&self, org_id: Uuid, raw: &str) -> Result<OrgDomain, DomainError> {
        let wanted = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        self.store
            .org_domains(org_id)
            .await?
            .into_iter()
            .find(|d| d.domain == wanted)
            .ok_or(DomainError::NotListed(wanted))
    }

    async fn mark(
        &self,
        org_id: Uuid,
        domain: &str,
        proof: DomainProof,
        by: DomainEditor,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<OrgDomain, DomainError> {
        let mut event = domain_event(by, client, domain, "verified", org_id, now);
        event.details = serde_json::json!({
            "org_id": org_id, "domain": domain, "change": "verified", "proof": proof.as_str(),
        })
        .to_string();
        match self
            .store
            .mark_domain_verified(org_id, domain, proof, &event)
            .await
        {
            Ok(true) => self.listed(org_id, domain).await,
            Ok(false) => Err(DomainError::NotListed(domain.to_string())),
            Err(StoreError::Conflict) => Err(DomainError::Taken(domain.to_string())),
            Err(other) => Err(other.into()),
        }
    }

    /// The maintenance tick: looks up again the DNS-verified domains last checked more than
    /// `recheck.every` ago. A record gone for `withdraw_after` answers in a row withdraws the
    /// verification; no answer changes nothing. Returns how many were withdrawn.
    pub async fn recheck_due(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        use futures_util::StreamExt;
        let due = self
            .store
            .domains_due_for_recheck(now - self.recheck.every, RECHECK_BATCH)
            .await?;
        // A few lookups at a time: a DNS outage costs this tick seconds, not minutes.
        let outcomes: Vec<Result<bool, StoreError>> = futures_util::stream::iter(due)
            .map(|domain| self.recheck(domain, now))
            .buffer_unordered(RECHECKS_AT_ONCE)
            .collect()
            .await;
        let mut withdrawn = 0;
        for outcome in outcomes {
            withdrawn += u64::from(outcome?);
        }
        Ok(withdrawn)
    }

    /// One re-check; whether it withdrew the verification.
    async fn recheck(&self, domain: OrgDomain, now: OffsetDateTime) -> Result<bool, StoreError> {
        let challenge = self.challenge(domain.org_id, &domain.domain, now).await?;
        match self.dns.check(&domain.domain, &challenge.value).await {
            TxtAnswer::Found => {
                self.store
                    .domain_record_found(domain.org_id, &domain.domain, now)
                    .await?;
                Ok(false)
            }
            TxtAnswer::Missing => {
                let client = ClientInfo::new("", "maintenance");
                let event = domain_event(
                    DomainEditor::Operator,
                    &client,
                    &domain.domain,
                    "withdrawn",
                    domain.org_id,
                    now,
                );
                let limit = self.recheck.withdraw_after;
                let withdrawn = self
                    .store
                    .domain_record_missing(domain.org_id, &domain.domain, limit, &event)
                    .await?;
                if withdrawn {
                    tracing::warn!(domain = %domain.domain, org = %domain.org_id,
                        "domain verification withdrawn: its TXT record is gone");
                }
                Ok(withdrawn)
            }
            TxtAnswer::Unavailable => Ok(false),
        }
    }
}

/// The normalized domain, if the organization may list it: a DNS name, not a public mail
/// provider's (nor under one), not verified by another organization.
pub(super) async fn claimable(
    store: &dyn Store,
    org_id: Uuid,
    raw: &str,
) -> Result<String, DomainError> {
    let domain = parse_domain(raw).ok_or_else(|| DomainError::Invalid(raw.to_string()))?;
    if is_public_mail(&domain) {
        return Err(DomainError::PublicMail(domain));
    }
    match store.verified_domain_owner(&domain).await? {
        Some(owner) if owner != org_id => Err(DomainError::Taken(domain)),
        _ => Ok(domain),
    }
}

/// Whether `domain` is (or is under) a public mail provider's domain.
pub fn is_public_mail(domain: &str) -> bool {
    PUBLIC_MAIL_DOMAINS
        .iter()
        .any(|p| domain == *p || domain.strip_suffix(p).is_some_and(|s| s.ends_with('.')))
}

/// A DNS name (ASCII; internationalized names in their `xn--` form), lower-cased.
pub(super) fn parse_domain(value: &str) -> Option<String> {
    let d = value.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (d.len() <= 253 && d.contains('.') && d.split('.').all(label_ok)).then_some(d)
}

fn domain_event(
    by: DomainEditor,
    client: &ClientInfo,
    domain: &str,
    change: &str,
    org_id: Uuid,
    now: OffsetDateTime,
) -> ActivityEvent {
    ActivityEvent::new(
        by.user(),
        Action::DomainChanged,
        client,
        serde_json::json!({ "org_id": org_id, "domain": domain, "change": change }),
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_mail_domains_and_their_subdomains_are_refused() {
        assert!(is_public_mail("gmail.com"));
        assert!(is_public_mail("mail.gmail.com"));
        assert!(!is_public_mail("notgmail.com"));
        assert!(!is_public_mail("contoso.com"));
        assert_eq!(
            parse_domain(" Contoso.COM. ").as_deref(),
            Some("contoso.com")
        );
        assert!(parse_domain("localhost").is_none());
        assert!(parse_domain("-bad.com").is_none());
        assert!(parse_domain("a b.com").is_none());
    }
}
