//! Organizations, their memberships and members, written once for both backends like
//! `sql.rs`.

use std::str::FromStr;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{PostgresStore, SqliteStore, StoreError};

// The records: what the store reads and writes for organizations, re-exported by `orgs`.

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgRole {
    LegalRepresentative,
    Admin,
    Member,
}

impl OrgRole {
    /// Legal representative above administrator above member.
    pub fn rank(self) -> u8 {
        match self {
            OrgRole::LegalRepresentative => 2,
            OrgRole::Admin => 1,
            OrgRole::Member => 0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::LegalRepresentative => "legal-representative",
            OrgRole::Admin => "admin",
            OrgRole::Member => "member",
        }
    }
}

impl FromStr for OrgRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "legal-representative" => Ok(OrgRole::LegalRepresentative),
            "admin" => Ok(OrgRole::Admin),
            "member" => Ok(OrgRole::Member),
            other => Err(format!(
                "unknown role `{other}` (legal-representative, admin or member)"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Membership {
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub role: OrgRole,
    pub created_at: OffsetDateTime,
}

/// A user as listed among an organization's members.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: OrgRole,
    /// Locked after too many wrong passwords.
    pub locked: bool,
}

/// Organizations and memberships (removing a member is [`super::SsoStore::delete_membership`]).
#[async_trait]
pub trait OrganizationStore: Send + Sync {
    async fn insert_org(&self, org: &Organization) -> Result<(), StoreError>;
    async fn org_by_name(&self, name: &str) -> Result<Option<Organization>, StoreError>;
    async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError>;
    /// Adds a member, or changes the role of an existing one.
    async fn put_membership(&self, membership: &Membership) -> Result<(), StoreError>;
    async fn members_of_org(&self, org_id: Uuid) -> Result<Vec<Member>, StoreError>;
    /// The role of a user in an organization, if they belong to it.
    async fn membership_role(
        &self,
        org_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<OrgRole>, StoreError>;
    async fn orgs_of_user(&self, user_id: Uuid)
    -> Result<Vec<(Organization, OrgRole)>, StoreError>;
}

macro_rules! organization_store {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl OrganizationStore for $store {
            async fn insert_org(&self, org: &Organization) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(org.id)
                    .bind(&org.name)
                    .bind(org.created_at)
                    .execute(&self.writer)
                    .await
                    .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn org_by_name(&self, name: &str) -> Result<Option<Organization>, StoreError> {
                Ok(sqlx::query_as::<_, Organization>(
                    "SELECT id, name, created_at FROM organizations WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
                Ok(sqlx::query_as::<_, Organization>(
                    "SELECT id, name, created_at FROM organizations ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn put_membership(&self, m: &Membership) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO memberships (org_id, user_id, role, created_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(m.org_id)
                .bind(m.user_id)
                .bind(m.role.as_str())
                .bind(m.created_at)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn members_of_org(&self, org_id: Uuid) -> Result<Vec<Member>, StoreError> {
                let rows: Vec<(Uuid, String, String, String, bool)> = sqlx::query_as(
                    "SELECT u.id, u.email, u.name, m.role, u.locked_at IS NOT NULL \
                     FROM memberships m JOIN users u ON u.id = m.user_id \
                     WHERE m.org_id = $1 ORDER BY u.email_key",
                )
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(user_id, email, name, role, locked)| {
                        Some(Member {
                            user_id,
                            email,
                            name,
                            role: role.parse().ok()?,
                            locked,
                        })
                    })
                    .collect())
            }

            async fn membership_role(
                &self,
                org_id: Uuid,
                user_id: Uuid,
            ) -> Result<Option<OrgRole>, StoreError> {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
                )
                .bind(org_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(|(role,)| role.parse().ok()))
            }

            async fn orgs_of_user(
                &self,
                user_id: Uuid,
            ) -> Result<Vec<(Organization, OrgRole)>, StoreError> {
                let rows: Vec<(Uuid, String, time::OffsetDateTime, String)> = sqlx::query_as(
                    "SELECT o.id, o.name, o.created_at, m.role FROM memberships m \
                     JOIN organizations o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY o.name",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(id, name, created_at, role)| {
                        Some((Organization { id, name, created_at }, role.parse().ok()?))
                    })
                    .collect())
            }
        }
    };
}

organization_store!(SqliteStore, sqlx::Sqlite);
organization_store!(PostgresStore, sqlx::Postgres);
