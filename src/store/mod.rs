//! Persistence: one [`Store`] trait, implemented for SQLite and PostgreSQL by the same SQL
//! (see `sql.rs`), proven equal by one conformance suite (`tests/it/store.rs`). `Store` is
//! the sum of one trait per concept, each in its own file with its SQL written once for both
//! backends: accounts, sessions, activity, organizations, the mail outbox, SSO, domains, OIDC.

pub mod account;
pub mod activity;
pub mod avatars;
pub mod cache;
pub mod consents;
pub mod deletion;
pub mod domains;
pub mod files;
pub mod logouts;
pub mod oidc;
pub mod organization;
pub mod outbox;
pub mod phones;
pub mod recovery;
pub mod session;
mod sql;
pub mod sso;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use account::AccountStore;
pub use activity::ActivityStore;
pub use avatars::AvatarStore;
pub use consents::ConsentStore;
pub use deletion::DeletionStore;
pub use domains::DomainStore;
pub use logouts::LogoutStore;
pub use oidc::OidcStore;
pub use organization::OrganizationStore;
pub use outbox::OutboxStore;
pub use phones::PhoneStore;
pub use recovery::RecoveryStore;
pub use session::SessionStore;
pub use sso::SsoStore;

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

/// What a client is told to wait (`Retry-After`, seconds) when the database is unavailable.
pub const RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (e-mail or organization name taken).
    #[error("already exists")]
    Conflict,
    /// A single-use token was already used, has expired, or does not exist.
    #[error("token unusable")]
    TokenUnusable,
    /// The database cannot be reached or cannot serve now (connection refused or lost, pool
    /// exhausted, server starting or shutting down, busy): nothing was committed, and the
    /// same request may be tried again (callers answer 503 with `Retry-After`).
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if unavailable(&err) {
            StoreError::Unavailable(err)
        } else {
            StoreError::Database(err)
        }
    }
}

impl StoreError {
    pub(crate) fn from_write(err: sqlx::Error) -> Self {
        match err.as_database_error() {
            Some(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => err.into(),
        }
    }

    /// Whether the failure is the database's absence rather than a fault of the request or
    /// of the code: worth a 503 and a retry, not a 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// The errors of a database that is down, restarting, overloaded or out of connections.
/// PostgreSQL's SQLSTATE classes 08 (connection exception), 53 (insufficient resources),
/// 57P01–57P03 (shutdown, crash, cannot connect now) and 40001/40P01 (serialization failure,
/// deadlock: rolled back, safe to retry); SQLite's BUSY, LOCKED, FULL and I/O errors.
fn unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(&*code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
            } else {
                // SQLite reports its extended result code; the primary code is its low byte.
                code.parse::<i32>()
                    .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13))
            }
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[async_trait]
pub trait Store:
    AccountStore
    + DeletionStore
    + SessionStore
    + ActivityStore
    + OrganizationStore
    + OutboxStore
    + OidcStore
    + ConsentStore
    + LogoutStore
    + SsoStore
    + DomainStore
    + PhoneStore
    + RecoveryStore
    + AvatarStore
    + Send
    + Sync
{
    fn backend(&self) -> Backend;
    /// This store's revocation count (see [`Revocations`]).
    fn revocations(&self) -> &Arc<Revocations>;
    async fn migrate(&self) -> Result<(), StoreError>;
    /// A cheap round trip, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the database named by `url` (`sqlite:…` or `postgres://…`), waiting at most 5 s
/// for a connection.
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, max_connections, Duration::from_secs(5)).await
}

/// [`connect`], with the longest wait for a pooled connection: past it (the server is down,
/// restarting, or every connection busy) a call fails with [`StoreError::Unavailable`], so a
/// request gets its 503 within that time.
pub async fn connect_with(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<Arc<dyn Store>, StoreError> {
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
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Arc::new(SqliteStore::new(pool, writer)))
    } else {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect(url)
            .await?;
        Ok(Arc::new(PostgresStore::new(pool.clone(), pool)))
    }
}
