//! Organizations' e-mail domains and their proof of ownership (issue 14), written once for
//! both backends like `sql.rs`.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::activity::ActivityEvent;
use super::{PostgresStore, SqliteStore, StoreError};

// The records: what the store reads and writes for domains, re-exported by `orgs`.

/// How a domain was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainProof {
    /// The TXT record, checked by the server (and re-checked).
    Dns,
    /// An operator vouched for it at the command line (never re-checked).
    Operator,
}

impl DomainProof {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainProof::Dns => "dns",
            DomainProof::Operator => "operator",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "dns" => Some(DomainProof::Dns),
            "operator" => Some(DomainProof::Operator),
            _ => None,
        }
    }
}

/// A domain an organization lists.
#[derive(Debug, Clone)]
pub struct OrgDomain {
    pub org_id: Uuid,
    pub domain: String,
    /// When and how it was proven; `None` while unverified.
    pub verified: Option<(OffsetDateTime, DomainProof)>,
    pub last_checked_at: Option<OffsetDateTime>,
    /// DNS answers in a row without the record (re-checks of a verified domain).
    pub missing_checks: i32,
    pub created_at: OffsetDateTime,
}

impl OrgDomain {
    pub fn is_verified(&self) -> bool {
        self.verified.is_some()
    }
}

#[async_trait]
pub trait DomainStore: Send + Sync {
    /// The organization's challenge token, created from `candidate` the first time.
    async fn domain_challenge(
        &self,
        org_id: Uuid,
        candidate: &str,
        now: OffsetDateTime,
    ) -> Result<String, StoreError>;
    /// The organization's domains, verified or not, by name.
    async fn org_domains(&self, org_id: Uuid) -> Result<Vec<OrgDomain>, StoreError>;
    /// The organization that verified `domain`, if any.
    async fn verified_domain_owner(&self, domain: &str) -> Result<Option<Uuid>, StoreError>;
    /// Lists a domain for the organization (unverified); `false` when it was listed already.
    async fn claim_domain(
        &self,
        org_id: Uuid,
        domain: &str,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
    /// Removes a domain from the organization; `false` when it was not listed.
    async fn remove_domain(
        &self,
        org_id: Uuid,
        domain: &str,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
    /// Marks a listed domain verified; [`StoreError::Conflict`] when another organization
    /// verified it first, `false` when the organization does not list it.
    async fn mark_domain_verified(
        &self,
        org_id: Uuid,
        domain: &str,
        proof: DomainProof,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
    /// Domains verified through DNS whose last check is older than `before`, oldest first.
    async fn domains_due_for_recheck(
        &self,
        before: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<OrgDomain>, StoreError>;
    /// A re-check found the record: the count of missing answers starts again.
    async fn domain_record_found(
        &self,
        org_id: Uuid,
        domain: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// A re-check found no record: counts it, and withdraws the verification (with the
    /// event) once `limit` answers in a row were missing. Returns whether it was withdrawn.
    async fn domain_record_missing(
        &self,
        org_id: Uuid,
        domain: &str,
        limit: i32,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
}

pub(super) const DOMAIN_COLUMNS: &str =
    "org_id, domain, verified_at, verified_by, last_checked_at, missing_checks, created_at";

pub(super) type DomainRow = (
    Uuid,
    String,
    Option<OffsetDateTime>,
    Option<String>,
    Option<OffsetDateTime>,
    i32,
    OffsetDateTime,
);

pub(super) fn domain_of_row(row: DomainRow) -> OrgDomain {
    let (org_id, domain, verified_at, verified_by, last_checked_at, missing_checks, created_at) =
        row;
    OrgDomain {
        org_id,
        domain,
        verified: verified_at.zip(verified_by.as_deref().and_then(DomainProof::parse)),
        last_checked_at,
        missing_checks,
        created_at,
    }
}

macro_rules! domain_store {
    ($store:ident, $db:ty) => {
        impl $store {
            /// Inside a transaction: makes `domains` the organization's list, keeping what is
            /// known of the domains that stay.
            pub(super) async fn replace_org_domains(
                tx: &mut sqlx::Transaction<'_, $db>,
                org_id: Uuid,
                domains: &[String],
                now: OffsetDateTime,
            ) -> Result<(), sqlx::Error> {
                let listed: Vec<String> =
                    sqlx::query_scalar("SELECT domain FROM org_domains WHERE org_id = $1")
                        .bind(org_id)
                        .fetch_all(&mut **tx)
                        .await?;
                for gone in listed.iter().filter(|d| !domains.contains(d)) {
                    sqlx::query("DELETE FROM org_domains WHERE org_id = $1 AND domain = $2")
                        .bind(org_id)
                        .bind(gone)
                        .execute(&mut **tx)
                        .await?;
                }
                for domain in domains.iter().filter(|d| !listed.contains(d)) {
                    sqlx::query(
                        "INSERT INTO org_domains (org_id, domain, created_at) VALUES ($1, $2, $3)",
                    )
                    .bind(org_id)
                    .bind(domain)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }
        }

        #[async_trait]
        impl DomainStore for $store {
            async fn domain_challenge(
                &self,
                org_id: Uuid,
                candidate: &str,
                now: OffsetDateTime,
            ) -> Result<String, StoreError> {
                // Read first: a page or list that shows the record writes nothing once the
                // organization has its value.
                let known: Option<String> =
                    sqlx::query_scalar("SELECT token FROM org_domain_challenges WHERE org_id = $1")
                        .bind(org_id)
                        .fetch_optional(&self.pool)
                        .await?;
                if let Some(token) = known {
                    return Ok(token);
                }
                sqlx::query(
                    "INSERT INTO org_domain_challenges (org_id, token, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (org_id) DO NOTHING",
                )
                .bind(org_id)
                .bind(candidate)
                .bind(now)
                .execute(&self.writer)
                .await?;
                Ok(
                    sqlx::query_scalar("SELECT token FROM org_domain_challenges WHERE org_id = $1")
                        .bind(org_id)
                        .fetch_one(&self.writer)
                        .await?,
                )
            }

            async fn org_domains(&self, org_id: Uuid) -> Result<Vec<OrgDomain>, StoreError> {
                let sql = format!(
                    "SELECT {DOMAIN_COLUMNS} FROM org_domains WHERE org_id = $1 ORDER BY domain"
                );
                let rows: Vec<DomainRow> = sqlx::query_as(&sql)
                    .bind(org_id)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(domain_of_row).collect())
            }

            async fn verified_domain_owner(
                &self,
                domain: &str,
            ) -> Result<Option<Uuid>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT org_id FROM org_domains WHERE domain = $1 AND verified_at IS NOT NULL",
                )
                .bind(domain)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn claim_domain(
                &self,
                org_id: Uuid,
                domain: &str,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let added = sqlx::query(
                    "INSERT INTO org_domains (org_id, domain, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (org_id, domain) DO NOTHING",
                )
                .bind(org_id)
                .bind(domain)
                .bind(event.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if added {
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                Ok(added)
            }

            async fn remove_domain(
                &self,
                org_id: Uuid,
                domain: &str,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let removed =
                    sqlx::query("DELETE FROM org_domains WHERE org_id = $1 AND domain = $2")
                        .bind(org_id)
                        .bind(domain)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                if removed {
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                Ok(removed)
            }

            async fn mark_domain_verified(
                &self,
                org_id: Uuid,
                domain: &str,
                proof: DomainProof,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let marked = sqlx::query(
                    "UPDATE org_domains SET verified_at = COALESCE(verified_at, $1), \
                     verified_by = $2, last_checked_at = $1, missing_checks = 0 \
                     WHERE org_id = $3 AND domain = $4",
                )
                .bind(event.created_at)
                .bind(proof.as_str())
                .bind(org_id)
                .bind(domain)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?
                .rows_affected()
                    == 1;
                if marked {
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                Ok(marked)
            }

            async fn domains_due_for_recheck(
                &self,
                before: OffsetDateTime,
                limit: i64,
            ) -> Result<Vec<OrgDomain>, StoreError> {
                let sql = format!(
                    "SELECT {DOMAIN_COLUMNS} FROM org_domains \
                     WHERE verified_by = 'dns' AND verified_at IS NOT NULL \
                     AND last_checked_at < $1 ORDER BY last_checked_at LIMIT $2"
                );
                let rows: Vec<DomainRow> = sqlx::query_as(&sql)
                    .bind(before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(domain_of_row).collect())
            }

            async fn domain_record_found(
                &self,
                org_id: Uuid,
                domain: &str,
                now: OffsetDateTime,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE org_domains SET last_checked_at = $1, missing_checks = 0 \
                     WHERE org_id = $2 AND domain = $3",
                )
                .bind(now)
                .bind(org_id)
                .bind(domain)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn domain_record_missing(
                &self,
                org_id: Uuid,
                domain: &str,
                limit: i32,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let missing: Option<i32> = sqlx::query_scalar(
                    "UPDATE org_domains SET last_checked_at = $1, \
                     missing_checks = missing_checks + 1 \
                     WHERE org_id = $2 AND domain = $3 RETURNING missing_checks",
                )
                .bind(event.created_at)
                .bind(org_id)
                .bind(domain)
                .fetch_optional(&mut *tx)
                .await?;
                let withdrawn = missing.is_some_and(|n| n >= limit);
                if withdrawn {
                    sqlx::query(
                        "UPDATE org_domains SET verified_at = NULL, verified_by = NULL, \
                         missing_checks = 0 WHERE org_id = $1 AND domain = $2",
                    )
                    .bind(org_id)
                    .bind(domain)
                    .execute(&mut *tx)
                    .await?;
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                Ok(withdrawn)
            }
        }
    };
}

domain_store!(SqliteStore, sqlx::Sqlite);
domain_store!(PostgresStore, sqlx::Postgres);
