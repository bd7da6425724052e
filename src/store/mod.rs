//! Persistence: one [`Store`] trait, implemented for SQLite and PostgreSQL by the same SQL
//! (see `sql.rs`), proven equal by one conformance suite (`tests/it/store.rs`).

pub mod cache;
mod domains;
pub mod files;
mod oidc;
mod sql;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::{NewUser, SecuritySettings, SetupToken, UnlockToken, User};
use crate::audit::{ActivityCursor, ActivityEvent, ActivityFilter};
use crate::federation::{FederatedIdentity, PendingLink, SsoFlow};
use crate::mail::{NewMail, OutboxMail};
use crate::orgs::{Member, Membership, OrgRole, Organization, SsoConnection};
use crate::sessions::{NewSession, Session};
use crate::tokens::TokenDigest;

pub use domains::DomainStore;
pub use oidc::OidcStore;

/// Counts the writes that can make a live token dead or change what it shows (a session
/// ended, a grant or jti revoked, a client deleted, a profile changed), per store. Caches of
/// token checks remember the count they were filled at and are void once it moves; it moves
/// after the commit, so a reader never caches a state older than the count it saw. With
/// several instances the count also moves when another instance reports a revocation
/// (`cache::RevocationFeed`), and this store's own revocations are announced to them.
#[derive(Debug, Default)]
pub struct Revocations {
    epoch: std::sync::atomic::AtomicU64,
    /// Revocations committed by this instance (the epoch also counts others').
    here: std::sync::atomic::AtomicU64,
    /// Wakes the announcer after a revocation committed here.
    committed_here: tokio::sync::Notify,
}

impl Revocations {
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// After the commit of a write of this instance that can end a token.
    pub(crate) fn note(&self) {
        self.here.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.bump();
        self.committed_here.notify_one();
    }

    /// Whether this instance has committed a revocation since it started.
    pub fn any_here(&self) -> bool {
        self.here.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    /// A revocation elsewhere (or one that may have been missed): void what is cached.
    pub fn bump(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Resolves after the next revocation committed by this instance (several notes before
    /// the wait resolve it once).
    pub async fn committed_here(&self) {
        self.committed_here.notified().await;
    }
}

pub use sql::{PostgresStore, SqliteStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (e-mail or organization name taken).
    #[error("already exists")]
    Conflict,
    /// A single-use token was already used, has expired, or does not exist.
    #[error("token unusable")]
    TokenUnusable,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub(crate) fn from_write(err: sqlx::Error) -> Self {
        match err.as_database_error() {
            Some(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(err),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[async_trait]
pub trait Store: OidcStore + SsoStore + DomainStore + Send + Sync {
    fn backend(&self) -> Backend;
    /// This store's revocation count (see [`Revocations`]).
    fn revocations(&self) -> &Arc<Revocations>;
    async fn migrate(&self) -> Result<(), StoreError>;
    /// A cheap round trip, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    // Users.
    async fn insert_user(&self, user: &NewUser) -> Result<User, StoreError>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    async fn count_users(&self) -> Result<i64, StoreError>;
    // Lockout.
    /// Counts one password attempt *before* the password is checked, in one atomic update:
    /// the failure count goes up unless the account is locked or already at its threshold.
    /// Returns `(count, threshold)`, or `None` when the attempt is refused.
    async fn count_attempt(&self, user_id: Uuid) -> Result<Option<(i32, i32)>, StoreError>;
    /// Gives back an attempt that was counted but not checked.
    async fn release_attempt(&self, user_id: Uuid) -> Result<(), StoreError>;
    /// A right password: the count starts again (unless a lock came first).
    async fn reset_attempts(&self, user_id: Uuid) -> Result<(), StoreError>;
    /// Locks the account if its count reached its threshold and it is not locked yet: with
    /// the event, the owner's mail and a new unlock link (older links void), in one
    /// transaction. `false` when it was already locked.
    async fn lock_account(
        &self,
        user_id: Uuid,
        link: &UnlockToken,
        event: &ActivityEvent,
        mail: &NewMail,
    ) -> Result<bool, StoreError>;
    /// Unlocks (administrator, operator): clears the lock and the count and voids unlock
    /// links, with the event and the owner's mail. `false` when there was neither a lock nor
    /// a count to clear (nothing is written).
    async fn unlock_account(
        &self,
        user_id: Uuid,
        event: &ActivityEvent,
        mail: &NewMail,
    ) -> Result<bool, StoreError>;
    /// A new unlock link for a locked account (older unused links void) with its mail; `false`
    /// when the account is not locked or a link was sent since `not_since` (rate limit).
    async fn issue_unlock_token(
        &self,
        link: &UnlockToken,
        not_since: OffsetDateTime,
        mail: &NewMail,
    ) -> Result<bool, StoreError>;
    async fn unlock_token(&self, digest: &TokenDigest) -> Result<Option<UnlockToken>, StoreError>;
    /// Uses the link (once, before it expires) and unlocks its account, with the event.
    async fn unlock_by_token(
        &self,
        digest: &TokenDigest,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
    /// Writes the security settings with the event.
    async fn update_security(
        &self,
        user_id: Uuid,
        settings: &SecuritySettings,
        event: &ActivityEvent,
    ) -> Result<User, StoreError>;

    /// Sets the password hash, ends every other session of the user and records the event,
    /// in one transaction; returns how many sessions ended.
    async fn change_password(
        &self,
        user_id: Uuid,
        hash: &str,
        keep_session: Uuid,
        event: &ActivityEvent,
        alert: &NewMail,
    ) -> Result<u64, StoreError>;
    /// Writes name, e-mail and locale with the event; [`StoreError::Conflict`] when the
    /// e-mail belongs to another account.
    async fn update_profile(
        &self,
        user_id: Uuid,
        email: &str,
        name: &str,
        locale: Option<&str>,
        event: &ActivityEvent,
    ) -> Result<User, StoreError>;
    /// Names of the organizations whose only legal representative is this user.
    async fn orgs_represented_only_by(&self, user_id: Uuid) -> Result<Vec<String>, StoreError>;
    /// Deletes the user with their sessions, memberships and events.
    async fn delete_user(&self, user_id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError>;
    async fn set_password_hash(
        &self,
        user_id: Uuid,
        hash: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    // Organizations.
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

    // Sessions: created together with their activity event, in one transaction.
    async fn start_session(
        &self,
        session: &NewSession,
        event: &ActivityEvent,
        alert: Option<(&NewMail, &ActivityEvent)>,
    ) -> Result<(), StoreError>;
    /// The active (not ended) session whose cookie has this digest, with its user.
    async fn session_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(Session, User)>, StoreError>;
    /// Ends one session of `user_id`; `false` when there is no such active session of theirs
    /// (another user's id touches nothing). The event is written with it.
    async fn end_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: &str,
        event: &ActivityEvent,
    ) -> Result<bool, StoreError>;
    /// Ends every active session of `user_id` but `keep`; returns how many. One event for all.
    async fn end_other_sessions(
        &self,
        user_id: Uuid,
        keep: Uuid,
        reason: &str,
        event: &ActivityEvent,
    ) -> Result<u64, StoreError>;
    /// Writes "last seen" (and the address) unless it was written after `stale_before`.
    async fn touch_session(
        &self,
        session_id: Uuid,
        ip: &str,
        now: OffsetDateTime,
        stale_before: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// The active sessions of a user, newest first.
    async fn sessions_of_user(&self, user_id: Uuid) -> Result<Vec<Session>, StoreError>;
    /// Deletes up to `limit` sessions that ended, or were idle since before `idle_before`, or
    /// started before `started_before`; returns how many.
    async fn prune_sessions(
        &self,
        idle_before: OffsetDateTime,
        started_before: OffsetDateTime,
        limit: i64,
    ) -> Result<u64, StoreError>;

    // Activity.
    async fn record_event(&self, event: &ActivityEvent) -> Result<(), StoreError>;
    /// Records a failed attempt and, when the owner asked for failure alerts, queues one
    /// with its `alert.sent` event — unless one was queued since the given time (coalescing).
    /// Returns whether an alert was queued.
    async fn record_failure(
        &self,
        event: &ActivityEvent,
        alert: Option<(&NewMail, &ActivityEvent, OffsetDateTime)>,
    ) -> Result<bool, StoreError>;
    async fn recent_events(
        &self,
        user_id: Uuid,
        limit: i64,
    ) -> Result<Vec<ActivityEvent>, StoreError>;
    /// A user's events matching `filter`, newest first, strictly after `after`.
    async fn query_events(
        &self,
        user_id: Uuid,
        filter: &ActivityFilter,
        after: Option<&ActivityCursor>,
        limit: i64,
    ) -> Result<Vec<ActivityEvent>, StoreError>;
    /// Deletes up to `limit` events older than `before`; returns how many.
    async fn prune_events(&self, before: OffsetDateTime, limit: i64) -> Result<u64, StoreError>;

    // Mail outbox.
    /// Reserves up to `limit` due, unsent mails until `lease_until` (so that another
    /// instance skips them) and returns them, oldest first.
    async fn claim_due_mail(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<OutboxMail>, StoreError>;
    async fn mark_mail_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError>;
    async fn mark_mail_failed(
        &self,
        id: Uuid,
        retry_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError>;
    /// Deletes up to `limit` mails sent before `sent_before` or still unsent, created before
    /// `given_up_before`; returns how many. Their bodies hold unlock links.
    async fn prune_mail(
        &self,
        sent_before: OffsetDateTime,
        given_up_before: OffsetDateTime,
        limit: i64,
    ) -> Result<u64, StoreError>;

    // First-start setup link.
    /// Stores a new setup token and voids every unused older one.
    async fn replace_setup_token(&self, token: &SetupToken) -> Result<(), StoreError>;
    async fn setup_token(&self, digest: &TokenDigest) -> Result<Option<SetupToken>, StoreError>;
    /// Uses the token (once, before it expires, while no user exists) and creates the first
    /// administrator, atomically; [`StoreError::TokenUnusable`] otherwise.
    async fn complete_setup(
        &self,
        digest: &TokenDigest,
        user: &NewUser,
        event: &ActivityEvent,
    ) -> Result<User, StoreError>;
}

/// Sign in with SSO (issue 7): connections, flow state, linked identities.
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

/// Opens the database named by `url` (`sqlite:…` or `postgres://…`).
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let file = options.get_filename().to_path_buf();
        // Readable by this user only, whatever the umask: created (0600) before SQLite opens
        // it, which gives its -wal and -shm the same mode.
        let on_disk = !file.as_os_str().is_empty() && file.as_os_str() != ":memory:";
        if on_disk {
            if let Some(dir) = file.parent()
                && !dir.as_os_str().is_empty()
            {
                files::create_private_dir_if_missing(dir)
                    .map_err(|e| StoreError::Database(e.into()))?;
            }
            files::ensure_private_file(&file).map_err(|e| StoreError::Database(e.into()))?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        if on_disk {
            // Left by an older version, or by SQLite under another mode.
            for suffix in ["-wal", "-shm"] {
                let mut side = file.clone().into_os_string();
                side.push(suffix);
                files::narrow_if_present(std::path::Path::new(&side))
                    .map_err(|e| StoreError::Database(e.into()))?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Arc::new(SqliteStore::new(pool, writer)))
    } else {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Arc::new(PostgresStore::new(pool.clone(), pool)))
    }
}
