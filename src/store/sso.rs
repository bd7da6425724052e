//! Sign in with SSO (issue 7): connections, flow state, linked identities; written once
//! for both backends like `sql.rs`.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::account::{NewUser, User};
use super::activity::ActivityEvent;
use super::organization::{Membership, OrgRole, Organization};
use super::sql::{INSERT_USER, USER_COLUMNS, bind_user};
use super::{PostgresStore, SqliteStore, StoreError};
use crate::tokens::TokenDigest;

// The record: what the store reads and writes for an SSO connection, re-exported by `orgs`.

#[derive(Debug, Clone)]
pub struct SsoConnection {
    pub org_id: Uuid,
    /// The Entra tenant id: a GUID, lower-case.
    pub tenant_id: String,
    /// The application (client) id registered in that tenant.
    pub client_id: String,
    pub client_secret_enc: Vec<u8>,
    /// Base URL without a trailing slash, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
    /// A new account (and membership) at the first sign-in of an unknown identity.
    pub provision: bool,
    pub default_role: OrgRole,
    /// Password sign-in is refused for the organization's members at its verified domains.
    pub enforce_sso: bool,
    /// The organization's domains, lower-case, sorted, verified or not.
    pub domains: Vec<String>,
    /// Those of `domains` the organization proved it owns: the only ones that route.
    pub verified_domains: Vec<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

// The records: what the store reads and writes for SSO sign-ins, re-exported by `federation`.

/// The state of a sign-in on its way through Entra ID (stored; single-use).
#[derive(Debug, Clone)]
pub struct SsoFlow {
    pub state: TokenDigest,
    pub org_id: Uuid,
    /// Digest of the CSRF cookie of the browser that began it: the answer must come back to
    /// the same browser (no login CSRF with someone else's callback URL).
    pub browser: TokenDigest,
    pub nonce: String,
    /// The authorization request (of a relying app) to resume once signed in.
    pub next: Option<String>,
    /// What that app asked of the sign-in, passed on to Entra ID and checked on return.
    pub reauth: Reauthentication,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A relying app's demand for a recent sign-in (`prompt=login`, `max_age`), passed on to
/// Entra ID. What comes back is checked: Entra's `auth_time` must be after the sign-in began
/// (`prompt=login`) and within `max_age` — required with `max_age` (OIDC Core §3.1.2.1),
/// checked when present with `prompt=login` alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reauthentication {
    pub prompt_login: bool,
    pub max_age: Option<i64>,
}

/// An Entra identity linked to an account.
#[derive(Debug, Clone)]
pub struct FederatedIdentity {
    pub tenant_id: String,
    pub object_id: String,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub created_at: OffsetDateTime,
}

/// An identity waiting for the owner of an existing account to confirm with its password.
#[derive(Debug, Clone)]
pub struct PendingLink {
    pub token: TokenDigest,
    pub browser: TokenDigest,
    pub tenant_id: String,
    pub object_id: String,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub next: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait SsoStore: Send + Sync {
    async fn org_by_id(&self, id: Uuid) -> Result<Option<Organization>, StoreError>;
    /// Removes a membership and ends the member's sessions signed in through the
    /// organization's SSO (writing `event` when some ended), in one transaction; `None` when
    /// there was no such membership, else how many sessions ended.
    async fn delete_membership(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        event: &ActivityEvent,
    ) -> Result<Option<u64>, StoreError>;
    /// Creates or replaces an organization's connection and makes `connection.domains` the
    /// organization's list of domains (those that stay keep their verification), in one
    /// transaction.
    async fn put_sso_connection(&self, connection: &SsoConnection) -> Result<(), StoreError>;
    async fn sso_connection(&self, org_id: Uuid) -> Result<Option<SsoConnection>, StoreError>;
    /// The connection of the organization that verified `domain` (unverified domains route
    /// nobody).
    async fn sso_connection_for_domain(
        &self,
        domain: &str,
    ) -> Result<Option<SsoConnection>, StoreError>;
    /// Removes the connection; the organization keeps its domains and their verification.
    async fn delete_sso_connection(&self, org_id: Uuid) -> Result<bool, StoreError>;
    async fn insert_sso_flow(&self, flow: &SsoFlow) -> Result<(), StoreError>;
    /// Deletes and returns the flow of this state digest: a state works once.
    async fn take_sso_flow(&self, state: &TokenDigest) -> Result<Option<SsoFlow>, StoreError>;
    async fn federated_identity(
        &self,
        tenant_id: &str,
        object_id: &str,
    ) -> Result<Option<FederatedIdentity>, StoreError>;
    /// The first SSO sign-in of a provisioned user: the account, its link, its membership and
    /// the event, in one transaction ([`StoreError::Conflict`] if the address was taken).
    async fn provision_sso_user(
        &self,
        user: &NewUser,
        identity: &FederatedIdentity,
        membership: &Membership,
        event: &ActivityEvent,
    ) -> Result<User, StoreError>;
    async fn insert_pending_link(&self, link: &PendingLink) -> Result<(), StoreError>;
    async fn pending_link(&self, token: &TokenDigest) -> Result<Option<PendingLink>, StoreError>;
    /// Uses the pending link (once) and records the identity (and the membership, when
    /// given) with the event; `false` when the link was already used.
    async fn complete_link(
        &self,
        token: &TokenDigest,
        identity: &FederatedIdentity,
        membership: Option<&Membership>,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
    /// Records a link made by an operator, with the event ([`StoreError::Conflict`] when the
    /// identity is linked already).
    async fn insert_federated_identity(
        &self,
        identity: &FederatedIdentity,
        event: &ActivityEvent,
    ) -> Result<(), StoreError>;
    /// Deletes flows and pending links that expired before `before`; returns how many.
    async fn prune_sso_state(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

/// A 32-byte digest read back from a BLOB/BYTEA column.
fn digest_of(bytes: Vec<u8>) -> Option<TokenDigest> {
    bytes.try_into().ok().map(TokenDigest)
}

const SSO_COLUMNS: &str = "org_id, tenant_id, client_id, client_secret_enc, authority, provision, \
     default_role, enforce_sso, created_at, updated_at";

type SsoRow = (
    Uuid,
    String,
    String,
    Vec<u8>,
    String,
    bool,
    String,
    bool,
    time::OffsetDateTime,
    time::OffsetDateTime,
);

fn sso_connection_of(row: SsoRow, domains: Vec<(String, bool)>) -> Option<SsoConnection> {
    let (
        org_id,
        tenant_id,
        client_id,
        secret,
        authority,
        provision,
        role,
        enforce,
        created,
        updated,
    ) = row;
    Some(SsoConnection {
        org_id,
        tenant_id,
        client_id,
        client_secret_enc: secret,
        authority,
        provision,
        default_role: role.parse().ok()?,
        enforce_sso: enforce,
        verified_domains: domains
            .iter()
            .filter(|(_, verified)| *verified)
            .map(|(d, _)| d.clone())
            .collect(),
        domains: domains.into_iter().map(|(d, _)| d).collect(),
        created_at: created,
        updated_at: updated,
    })
}

type FlowRow = (
    Vec<u8>,
    Uuid,
    Vec<u8>,
    String,
    Option<String>,
    time::OffsetDateTime,
    time::OffsetDateTime,
    bool,
    Option<i64>,
);

type LinkRow = (
    Vec<u8>,
    Vec<u8>,
    String,
    String,
    Uuid,
    Uuid,
    Option<String>,
    time::OffsetDateTime,
    time::OffsetDateTime,
);

macro_rules! sso_store {
    ($store:ident, $db:ty) => {
        impl $store {
            /// The organization's domains, each with whether it is verified.
            async fn sso_domains(&self, org_id: Uuid) -> Result<Vec<(String, bool)>, sqlx::Error> {
                sqlx::query_as(
                    "SELECT domain, verified_at IS NOT NULL FROM org_domains WHERE org_id = $1 \
                     ORDER BY domain",
                )
                .bind(org_id)
                .fetch_all(&self.pool)
                .await
            }

            async fn insert_identity(
                tx: &mut sqlx::Transaction<'_, $db>,
                identity: &FederatedIdentity,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO federated_identities (tenant_id, object_id, user_id, org_id, \
                     created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&identity.tenant_id)
                .bind(&identity.object_id)
                .bind(identity.user_id)
                .bind(identity.org_id)
                .bind(identity.created_at)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn insert_membership(
                tx: &mut sqlx::Transaction<'_, $db>,
                m: &Membership,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO memberships (org_id, user_id, role, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, user_id) DO NOTHING",
                )
                .bind(m.org_id)
                .bind(m.user_id)
                .bind(m.role.as_str())
                .bind(m.created_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl SsoStore for $store {
            async fn org_by_id(&self, id: Uuid) -> Result<Option<Organization>, StoreError> {
                Ok(sqlx::query_as::<_, Organization>(
                    "SELECT id, name, created_at FROM organizations WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn delete_membership(
                &self,
                org_id: Uuid,
                user_id: Uuid,
                event: &ActivityEvent,
            ) -> Result<Option<u64>, StoreError> {
                let mut tx = self.writer.begin().await?;
                let removed =
                    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
                        .bind(org_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                if !removed {
                    return Ok(None);
                }
                // The organization vouched for these sessions; it no longer does.
                let ended: Vec<Uuid> = sqlx::query_scalar(
                    "UPDATE sessions SET ended_at = $1, ended_reason = 'membership_removed' \
                     WHERE user_id = $2 AND sso_org_id = $3 AND ended_at IS NULL RETURNING id",
                )
                .bind(event.created_at)
                .bind(user_id)
                .bind(org_id)
                .fetch_all(&mut *tx)
                .await?;
                // Relying apps hear of it like of any other ended session.
                Self::end_session_grants(&mut tx, &ended, event.created_at).await?;
                if !ended.is_empty() {
                    Self::insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                self.revocations.note();
                Ok(Some(ended.len() as u64))
            }

            async fn put_sso_connection(&self, c: &SsoConnection) -> Result<(), StoreError> {
                let mut tx = self.writer.begin().await?;
                sqlx::query(
                    "INSERT INTO sso_connections (org_id, tenant_id, client_id, \
                     client_secret_enc, authority, provision, default_role, enforce_sso, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (org_id) DO UPDATE SET tenant_id = excluded.tenant_id, \
                     client_id = excluded.client_id, \
                     client_secret_enc = excluded.client_secret_enc, \
                     authority = excluded.authority, provision = excluded.provision, \
                     default_role = excluded.default_role, enforce_sso = excluded.enforce_sso, \
                     updated_at = excluded.updated_at",
                )
                .bind(c.org_id)
                .bind(&c.tenant_id)
                .bind(&c.client_id)
                .bind(&c.client_secret_enc)
                .bind(&c.authority)
                .bind(c.provision)
                .bind(c.default_role.as_str())
                .bind(c.enforce_sso)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&mut *tx)
                .await?;
                Self::replace_org_domains(&mut tx, c.org_id, &c.domains, c.updated_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn sso_connection(
                &self,
                org_id: Uuid,
            ) -> Result<Option<SsoConnection>, StoreError> {
                let sql = format!("SELECT {SSO_COLUMNS} FROM sso_connections WHERE org_id = $1");
                let row: Option<SsoRow> = sqlx::query_as(&sql)
                    .bind(org_id)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(row) => Ok(sso_connection_of(row, self.sso_domains(org_id).await?)),
                    None => Ok(None),
                }
            }

            async fn sso_connection_for_domain(
                &self,
                domain: &str,
            ) -> Result<Option<SsoConnection>, StoreError> {
                let owner: Option<(Uuid,)> =
                    sqlx::query_as(
                        "SELECT org_id FROM org_domains WHERE domain = $1 \
                         AND verified_at IS NOT NULL",
                    )
                        .bind(domain)
                        .fetch_optional(&self.pool)
                        .await?;
                match owner {
                    Some((org_id,)) => self.sso_connection(org_id).await,
                    None => Ok(None),
                }
            }

            async fn delete_sso_connection(&self, org_id: Uuid) -> Result<bool, StoreError> {
                Ok(sqlx::query("DELETE FROM sso_connections WHERE org_id = $1")
                    .bind(org_id)
                    .execute(&self.writer)
                    .await?
                    .rows_affected()
                    == 1)
            }

            async fn insert_sso_flow(&self, flow: &SsoFlow) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sso_flows (state_hash, org_id, browser_hash, nonce, next, \
                     created_at, expires_at, reauth_prompt, reauth_max_age) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(flow.state.as_bytes())
                .bind(flow.org_id)
                .bind(flow.browser.as_bytes())
                .bind(&flow.nonce)
                .bind(flow.next.as_deref())
                .bind(flow.created_at)
                .bind(flow.expires_at)
                .bind(flow.reauth.prompt_login)
                .bind(flow.reauth.max_age)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn take_sso_flow(
                &self,
                state: &TokenDigest,
            ) -> Result<Option<SsoFlow>, StoreError> {
                // One statement decides: of two callbacks with the same state, one gets the row.
                let row: Option<FlowRow> = sqlx::query_as(
                    "DELETE FROM sso_flows WHERE state_hash = $1 RETURNING state_hash, org_id, \
                     browser_hash, nonce, next, created_at, expires_at, reauth_prompt, \
                     reauth_max_age",
                )
                .bind(state.as_bytes())
                .fetch_optional(&self.writer)
                .await?;
                Ok(row.and_then(|(s, org_id, b, nonce, next, created_at, expires_at, prompt, max_age)| {
                    Some(SsoFlow {
                        state: digest_of(s)?,
                        org_id,
                        browser: digest_of(b)?,
                        nonce,
                        next,
                        reauth: Reauthentication {
                            prompt_login: prompt,
                            max_age,
                        },
                        created_at,
                        expires_at,
                    })
                }))
            }

            async fn federated_identity(
                &self,
                tenant_id: &str,
                object_id: &str,
            ) -> Result<Option<FederatedIdentity>, StoreError> {
                let row: Option<(String, String, Uuid, Uuid, time::OffsetDateTime)> =
                    sqlx::query_as(
                        "SELECT tenant_id, object_id, user_id, org_id, created_at \
                         FROM federated_identities WHERE tenant_id = $1 AND object_id = $2",
                    )
                    .bind(tenant_id)
                    .bind(object_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(
                    |(tenant_id, object_id, user_id, org_id, created_at)| FederatedIdentity {
                        tenant_id,
                        object_id,
                        user_id,
                        org_id,
                        created_at,
                    },
                ))
            }

            async fn provision_sso_user(
                &self,
                user: &NewUser,
                identity: &FederatedIdentity,
                membership: &Membership,
                event: &ActivityEvent,
            ) -> Result<User, StoreError> {
                let mut tx = self.writer.begin().await?;
                let sql = format!("{INSERT_USER} RETURNING {USER_COLUMNS}");
                let created = bind_user(sqlx::query_as::<_, User>(&sql), user)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                Self::insert_identity(&mut tx, identity).await?;
                Self::insert_membership(&mut tx, membership).await?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn insert_pending_link(&self, link: &PendingLink) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sso_pending_links (token_hash, browser_hash, tenant_id, \
                     object_id, user_id, org_id, next, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(link.token.as_bytes())
                .bind(link.browser.as_bytes())
                .bind(&link.tenant_id)
                .bind(&link.object_id)
                .bind(link.user_id)
                .bind(link.org_id)
                .bind(link.next.as_deref())
                .bind(link.created_at)
                .bind(link.expires_at)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn pending_link(
                &self,
                token: &TokenDigest,
            ) -> Result<Option<PendingLink>, StoreError> {
                let row: Option<LinkRow> = sqlx::query_as(
                    "SELECT token_hash, browser_hash, tenant_id, object_id, user_id, org_id, \
                     next, created_at, expires_at FROM sso_pending_links WHERE token_hash = $1",
                )
                .bind(token.as_bytes())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(
                    |(t, b, tenant_id, object_id, user_id, org_id, next, created_at, expires_at)| {
                        Some(PendingLink {
                            token: digest_of(t)?,
                            browser: digest_of(b)?,
                            tenant_id,
                            object_id,
                            user_id,
                            org_id,
                            next,
                            created_at,
                            expires_at,
                        })
                    },
                ))
            }

            async fn complete_link(
                &self,
                token: &TokenDigest,
                identity: &FederatedIdentity,
                membership: Option<&Membership>,
                event: &ActivityEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let used = sqlx::query("DELETE FROM sso_pending_links WHERE token_hash = $1")
                    .bind(token.as_bytes())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !used {
                    return Ok(false);
                }
                Self::insert_identity(&mut tx, identity).await?;
                if let Some(m) = membership {
                    Self::insert_membership(&mut tx, m).await?;
                }
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn insert_federated_identity(
                &self,
                identity: &FederatedIdentity,
                event: &ActivityEvent,
            ) -> Result<(), StoreError> {
                let mut tx = self.writer.begin().await?;
                Self::insert_identity(&mut tx, identity).await?;
                Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn prune_sso_state(
                &self,
                before: time::OffsetDateTime,
            ) -> Result<u64, StoreError> {
                let flows = sqlx::query("DELETE FROM sso_flows WHERE expires_at < $1")
                    .bind(before)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                let links = sqlx::query("DELETE FROM sso_pending_links WHERE expires_at < $1")
                    .bind(before)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                Ok(flows + links)
            }
        }
    };
}

sso_store!(SqliteStore, sqlx::Sqlite);
sso_store!(PostgresStore, sqlx::Postgres);
