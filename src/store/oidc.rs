//! The OIDC provider's persistence, written once for both backends like `sql.rs`; its
//! records are in `oidc/records.rs`.

mod issues;
mod records;

use std::sync::LazyLock;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::account::User;
use super::{PostgresStore, SqliteStore, StoreError};
use crate::tokens::{SigningAlg, TokenDigest};

pub use records::{
    AccessTokenState, AuthorizationCode, Client, ClientAuthMethod, CodeRedemption, GrantState,
    IssueRecord, NewRefreshToken, RefreshUse, SessionMethod, SessionTimes,
};

/// How long a dead-lettered logout stays visible before it is deleted (by `prune_oidc`).
pub const DEAD_LOGOUT_RETENTION: time::Duration = time::Duration::days(30);

#[async_trait]
pub trait OidcStore: Send + Sync {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    async fn client(&self, id: &str) -> Result<Option<Client>, StoreError>;
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError>;

    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;
    /// Claims the code for a new grant `grant_id` (one winner among parallel redemptions);
    /// a second presentation revokes the grant the first one started.
    async fn redeem_code(
        &self,
        digest: &TokenDigest,
        grant_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<CodeRedemption, StoreError>;

    async fn grant(&self, id: Uuid) -> Result<Option<GrantState>, StoreError>;
    async fn revoke_grant(
        &self,
        id: Uuid,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Records what was issued: per token its event and its refresh token, if any; a batch
    /// of them in one transaction (group commit).
    async fn record_issues(&self, issues: &[IssueRecord]) -> Result<(), StoreError>;
    /// Rotates a refresh token of `client_id`; a token of another client is left untouched
    /// (RFC 6749 §6) and unusable.
    async fn use_refresh_token(
        &self,
        digest: &TokenDigest,
        client_id: &str,
        now: OffsetDateTime,
        grace: time::Duration,
    ) -> Result<RefreshUse, StoreError>;
    /// The grant of a refresh token that is neither rotated nor expired.
    async fn refresh_token_grant(
        &self,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Option<GrantState>, StoreError>;
    async fn access_token_state(
        &self,
        jti: &str,
        grant_id: Option<Uuid>,
    ) -> Result<AccessTokenState, StoreError>;
    /// Remembers a `jti` until it expires; false when it was already there.
    async fn remember_jti(&self, jti: &str, expires_at: OffsetDateTime)
    -> Result<bool, StoreError>;

    /// Deletes expired codes, revoked-jti entries, sent logouts and old dead-lettered ones.
    async fn prune_oidc(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

const CLIENT_COLUMNS: &str = "id, name, secret_hash, auth_method, jwks, redirect_uris, \
     post_logout_redirect_uris, backchannel_logout_uri, first_party, require_pkce, \
     id_token_alg, created_at, admin_scope, introspect_for";

const CODE_COLUMNS: &str = "code_hash, client_id, user_id, session_id, redirect_uri, scope, \
     nonce, code_challenge, auth_time, created_at, expires_at";

/// A grant and its session's state, in the shape of [`GrantRow`].
const GRANT_STATE: &str = "SELECT g.id, g.client_id, g.user_id, g.session_id, g.scope, \
     g.auth_time, g.revoked_at, s.method AS s_method, s.created_at AS s_created_at, \
     s.last_seen_at AS s_last_seen_at \
     FROM oauth_grants g LEFT JOIN sessions s ON s.id = g.session_id AND s.ended_at IS NULL";

/// The liveness of an access token and its user in one statement (see `access_token_state`).
static ACCESS_TOKEN_STATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT EXISTS (SELECT 1 FROM oauth_revoked_jti WHERE jti = $1) AS jti_revoked, \
         g.id AS g_id, g.client_id AS g_client_id, g.user_id AS g_user_id, \
         g.session_id AS g_session_id, g.scope AS g_scope, g.auth_time AS g_auth_time, \
         g.revoked_at AS g_revoked_at, s.method AS s_method, s.created_at AS s_created_at, \
         s.last_seen_at AS s_last_seen_at, {} \
         FROM (SELECT 1 AS one) o \
         LEFT JOIN oauth_grants g ON g.id = $2 \
         LEFT JOIN sessions s ON s.id = g.session_id AND s.ended_at IS NULL \
         LEFT JOIN users u ON u.id = g.user_id",
        super::sql::user_columns_of("u")
    )
});

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    name: String,
    secret_hash: Option<Vec<u8>>,
    auth_method: String,
    jwks: Option<String>,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    backchannel_logout_uri: Option<String>,
    first_party: bool,
    require_pkce: bool,
    id_token_alg: String,
    created_at: OffsetDateTime,
    admin_scope: bool,
    introspect_for: String,
}

impl ClientRow {
    fn into_client(self) -> Client {
        Client {
            id: self.id,
            name: self.name,
            secret_hash: self
                .secret_hash
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
                .map(TokenDigest),
            auth_method: ClientAuthMethod::parse(&self.auth_method)
                .unwrap_or(ClientAuthMethod::ClientSecretBasic),
            jwks: self.jwks,
            redirect_uris: serde_json::from_str(&self.redirect_uris).unwrap_or_default(),
            post_logout_redirect_uris: serde_json::from_str(&self.post_logout_redirect_uris)
                .unwrap_or_default(),
            backchannel_logout_uri: self.backchannel_logout_uri,
            first_party: self.first_party,
            require_pkce: self.require_pkce,
            id_token_alg: SigningAlg::parse(&self.id_token_alg).unwrap_or(SigningAlg::Rs256),
            admin_scope: self.admin_scope,
            created_at: self.created_at,
            introspect_for: serde_json::from_str(&self.introspect_for).unwrap_or_default(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct CodeRow {
    code_hash: Vec<u8>,
    client_id: String,
    user_id: Uuid,
    session_id: Uuid,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    auth_time: OffsetDateTime,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl CodeRow {
    fn into_code(self) -> AuthorizationCode {
        AuthorizationCode {
            digest: TokenDigest(<[u8; 32]>::try_from(self.code_hash).unwrap_or([0; 32])),
            client_id: self.client_id,
            user_id: self.user_id,
            session_id: self.session_id,
            redirect_uri: self.redirect_uri,
            scope: self.scope,
            nonce: self.nonce,
            code_challenge: self.code_challenge,
            auth_time: self.auth_time,
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: Uuid,
    client_id: String,
    user_id: Option<Uuid>,
    session_id: Option<Uuid>,
    scope: String,
    auth_time: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
    s_method: Option<String>,
    s_created_at: Option<OffsetDateTime>,
    s_last_seen_at: Option<OffsetDateTime>,
}

impl GrantRow {
    fn into_state(self) -> GrantState {
        let session = match (self.s_method, self.s_created_at, self.s_last_seen_at) {
            (Some(method), Some(created_at), Some(last_seen_at)) => Some(SessionTimes {
                method: if method == "sso" {
                    SessionMethod::Sso
                } else {
                    SessionMethod::Password
                },
                created_at,
                last_seen_at,
            }),
            _ => None,
        };
        GrantState {
            id: self.id,
            client_id: self.client_id,
            user_id: self.user_id,
            session_id: self.session_id,
            scope: self.scope,
            auth_time: self.auth_time,
            revoked: self.revoked_at.is_some(),
            session,
        }
    }
}

macro_rules! oidc_store {
    ($store:ident, $db:ty) => {
        impl $store {
            /// Inside a transaction that ends sessions: revokes the grants under them and
            /// queues a back-channel logout for every client with tokens under them.
            pub(super) async fn end_session_grants(
                tx: &mut sqlx::Transaction<'_, $db>,
                session_ids: &[Uuid],
                now: OffsetDateTime,
            ) -> Result<(), sqlx::Error> {
                for session_id in session_ids {
                    let clients: Vec<(String, Uuid)> = sqlx::query_as(
                        "SELECT DISTINCT g.client_id, g.user_id FROM oauth_grants g \
                         JOIN oauth_clients c ON c.id = g.client_id \
                         WHERE g.session_id = $1 AND g.user_id IS NOT NULL \
                         AND c.backchannel_logout_uri IS NOT NULL",
                    )
                    .bind(session_id)
                    .fetch_all(&mut **tx)
                    .await?;
                    sqlx::query(
                        "UPDATE oauth_grants SET revoked_at = $1, revoked_reason = 'session_ended' \
                         WHERE session_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(session_id)
                    .execute(&mut **tx)
                    .await?;
                    for (client_id, user_id) in clients {
                        sqlx::query(
                            "INSERT INTO backchannel_outbox (id, client_id, subject, session_id, \
                             created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $5)",
                        )
                        .bind(Uuid::now_v7())
                        .bind(client_id)
                        .bind(user_id.to_string())
                        .bind(session_id.to_string())
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                    }
                }
                Ok(())
            }

            /// Revokes a grant inside the caller's transaction.
            async fn revoke_grant_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: Uuid,
                reason: &str,
                now: OffsetDateTime,
            ) -> Result<bool, sqlx::Error> {
                Ok(sqlx::query(
                    "UPDATE oauth_grants SET revoked_at = $1, revoked_reason = $2 \
                     WHERE id = $3 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(reason)
                .bind(id)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1)
            }

            async fn grant_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: Uuid,
            ) -> Result<Option<GrantState>, sqlx::Error> {
                let sql = format!("{GRANT_STATE} WHERE g.id = $1");
                Ok(sqlx::query_as::<_, GrantRow>(&sql)
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?
                    .map(GrantRow::into_state))
            }
        }

        #[async_trait]
        impl OidcStore for $store {
            async fn insert_client(&self, c: &Client) -> Result<(), StoreError> {
                sqlx::query(&format!(
                    "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                ))
                .bind(&c.id)
                .bind(&c.name)
                .bind(c.secret_hash.map(|d| d.0.to_vec()))
                .bind(c.auth_method.as_str())
                .bind(c.jwks.as_deref())
                .bind(serde_json::to_string(&c.redirect_uris).unwrap_or_default())
                .bind(serde_json::to_string(&c.post_logout_redirect_uris).unwrap_or_default())
                .bind(c.backchannel_logout_uri.as_deref())
                .bind(c.first_party)
                .bind(c.require_pkce)
                .bind(c.id_token_alg.as_str())
                .bind(c.created_at)
                .bind(c.admin_scope)
                .bind(serde_json::to_string(&c.introspect_for).unwrap_or_default())
                .execute(&self.writer)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
                let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1");
                Ok(sqlx::query_as::<_, ClientRow>(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(ClientRow::into_client))
            }

            async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
                let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY name, id");
                Ok(sqlx::query_as::<_, ClientRow>(&sql)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(ClientRow::into_client)
                    .collect())
            }

            async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
                let deleted = sqlx::query("DELETE FROM oauth_clients WHERE id = $1")
                    .bind(id)
                    .execute(&self.writer)
                    .await?
                    .rows_affected()
                    == 1;
                self.revocations.note();
                Ok(deleted)
            }

            async fn insert_code(&self, c: &AuthorizationCode) -> Result<(), StoreError> {
                sqlx::query(&format!(
                    "INSERT INTO oauth_codes ({CODE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .bind(c.digest.as_bytes())
                .bind(&c.client_id)
                .bind(c.user_id)
                .bind(c.session_id)
                .bind(&c.redirect_uri)
                .bind(&c.scope)
                .bind(c.nonce.as_deref())
                .bind(c.code_challenge.as_deref())
                .bind(c.auth_time)
                .bind(c.created_at)
                .bind(c.expires_at)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn redeem_code(
                &self,
                digest: &TokenDigest,
                grant_id: Uuid,
                now: OffsetDateTime,
            ) -> Result<CodeRedemption, StoreError> {
                let mut tx = self.writer.begin().await?;
                // The guard is the WHERE: of parallel redemptions exactly one updates the row.
                let claimed = sqlx::query_as::<_, CodeRow>(&format!(
                    "UPDATE oauth_codes SET grant_id = $1 \
                     WHERE code_hash = $2 AND grant_id IS NULL AND expires_at > $3 \
                     RETURNING {CODE_COLUMNS}"
                ))
                .bind(grant_id)
                .bind(digest.as_bytes())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(code) = claimed {
                    sqlx::query(
                        "INSERT INTO oauth_grants (id, client_id, user_id, session_id, scope, \
                         auth_time, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(grant_id)
                    .bind(&code.client_id)
                    .bind(code.user_id)
                    .bind(code.session_id)
                    .bind(&code.scope)
                    .bind(code.auth_time)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(CodeRedemption::Redeemed(code.into_code()));
                }
                let used: Option<(Option<Uuid>,)> =
                    sqlx::query_as("SELECT grant_id FROM oauth_codes WHERE code_hash = $1")
                        .bind(digest.as_bytes())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((Some(first), )) = used else {
                    return Ok(CodeRedemption::Unusable);
                };
                Self::revoke_grant_in(&mut tx, first, "code_replayed", now).await?;
                let code = sqlx::query_as::<_, CodeRow>(&format!(
                    "SELECT {CODE_COLUMNS} FROM oauth_codes WHERE code_hash = $1"
                ))
                .bind(digest.as_bytes())
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                self.revocations.note();
                Ok(CodeRedemption::Replayed(code.into_code()))
            }

            async fn grant(&self, id: Uuid) -> Result<Option<GrantState>, StoreError> {
                let sql = format!("{GRANT_STATE} WHERE g.id = $1");
                Ok(sqlx::query_as::<_, GrantRow>(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(GrantRow::into_state))
            }

            async fn revoke_grant(
                &self,
                id: Uuid,
                reason: &str,
                now: OffsetDateTime,
            ) -> Result<bool, StoreError> {
                let mut tx = self.writer.begin().await?;
                let revoked = Self::revoke_grant_in(&mut tx, id, reason, now).await?;
                tx.commit().await?;
                self.revocations.note();
                Ok(revoked)
            }

            async fn record_issues(&self, issues: &[IssueRecord]) -> Result<(), StoreError> {
                let mut tx = self.writer.begin().await?;
                Self::insert_issues(&mut tx, issues).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn use_refresh_token(
                &self,
                digest: &TokenDigest,
                client_id: &str,
                now: OffsetDateTime,
                grace: time::Duration,
            ) -> Result<RefreshUse, StoreError> {
                // The single-use guard is this one statement, atomic on its own: the common
                // case (an unused token) needs no transaction around it. The grant is read
                // after the rotation committed, so a revocation racing it is seen.
                let rotated: Option<(Uuid,)> = sqlx::query_as(
                    "UPDATE oauth_refresh_tokens SET rotated_at = $1 \
                     WHERE token_hash = $2 AND rotated_at IS NULL AND expires_at > $1 \
                     AND grant_id IN (SELECT id FROM oauth_grants WHERE client_id = $3) \
                     RETURNING grant_id",
                )
                .bind(now)
                .bind(digest.as_bytes())
                .bind(client_id)
                .fetch_optional(&self.writer)
                .await?;
                if let Some((grant_id,)) = rotated {
                    let grant = self.grant(grant_id).await?;
                    return Ok(grant.map_or(RefreshUse::Unusable, RefreshUse::Rotated));
                }
                let mut tx = self.writer.begin().await?;
                let used: Option<(Uuid, Option<OffsetDateTime>, OffsetDateTime)> =
                    sqlx::query_as(
                        "SELECT r.grant_id, r.rotated_at, r.expires_at \
                         FROM oauth_refresh_tokens r JOIN oauth_grants g ON g.id = r.grant_id \
                         WHERE r.token_hash = $1 AND g.client_id = $2",
                    )
                    .bind(digest.as_bytes())
                    .bind(client_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((grant_id, Some(rotated_at), expires_at)) = used else {
                    return Ok(RefreshUse::Unusable);
                };
                if expires_at <= now {
                    return Ok(RefreshUse::Unusable);
                }
                if now - rotated_at <= grace && grace > time::Duration::ZERO {
                    let grant = Self::grant_in(&mut tx, grant_id).await?;
                    tx.commit().await?;
                    return Ok(grant.map_or(RefreshUse::Unusable, RefreshUse::Rotated));
                }
                Self::revoke_grant_in(&mut tx, grant_id, "refresh_reused", now).await?;
                let grant = Self::grant_in(&mut tx, grant_id).await?;
                tx.commit().await?;
                self.revocations.note();
                Ok(grant.map_or(RefreshUse::Unusable, RefreshUse::Reused))
            }

            async fn refresh_token_grant(
                &self,
                digest: &TokenDigest,
                now: OffsetDateTime,
            ) -> Result<Option<GrantState>, StoreError> {
                let sql = format!(
                    "{GRANT_STATE} JOIN oauth_refresh_tokens r ON r.grant_id = g.id \
                     WHERE r.token_hash = $1 AND r.rotated_at IS NULL AND r.expires_at > $2"
                );
                Ok(sqlx::query_as::<_, GrantRow>(&sql)
                    .bind(digest.as_bytes())
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(GrantRow::into_state))
            }

            async fn access_token_state(
                &self,
                jti: &str,
                grant_id: Option<Uuid>,
            ) -> Result<AccessTokenState, StoreError> {
                use sqlx::{FromRow, Row};
                // One round trip for every bearer request: the jti, the grant, its session
                // and its user.
                let row = sqlx::query(&ACCESS_TOKEN_STATE)
                    .bind(jti)
                    .bind(grant_id)
                    .fetch_one(&self.pool)
                    .await?;
                let jti_revoked: bool = row.try_get("jti_revoked")?;
                let grant = match row.try_get::<Option<Uuid>, _>("g_id")? {
                    Some(id) => Some(
                        GrantRow {
                            id,
                            client_id: row.try_get("g_client_id")?,
                            user_id: row.try_get("g_user_id")?,
                            session_id: row.try_get("g_session_id")?,
                            scope: row.try_get("g_scope")?,
                            auth_time: row.try_get("g_auth_time")?,
                            revoked_at: row.try_get("g_revoked_at")?,
                            s_method: row.try_get("s_method")?,
                            s_created_at: row.try_get("s_created_at")?,
                            s_last_seen_at: row.try_get("s_last_seen_at")?,
                        }
                        .into_state(),
                    ),
                    None => None,
                };
                let user = match row.try_get::<Option<Uuid>, _>("id")? {
                    Some(_) => Some(User::from_row(&row)?),
                    None => None,
                };
                Ok(AccessTokenState {
                    jti_revoked,
                    grant,
                    user,
                })
            }

            async fn remember_jti(
                &self,
                jti: &str,
                expires_at: OffsetDateTime,
            ) -> Result<bool, StoreError> {
                let remembered = sqlx::query(
                    "INSERT INTO oauth_revoked_jti (jti, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(expires_at)
                .execute(&self.writer)
                .await?
                .rows_affected()
                    == 1;
                self.revocations.note();
                Ok(remembered)
            }

            async fn prune_oidc(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
                let mut deleted = 0;
                for sql in [
                    "DELETE FROM oauth_codes WHERE expires_at <= $1",
                    "DELETE FROM oauth_revoked_jti WHERE expires_at <= $1",
                    "DELETE FROM oauth_refresh_tokens WHERE expires_at <= $1",
                ] {
                    deleted += sqlx::query(sql)
                        .bind(now)
                        .execute(&self.writer)
                        .await?
                        .rows_affected();
                }
                deleted += sqlx::query(
                    "DELETE FROM backchannel_outbox WHERE sent_at IS NOT NULL AND sent_at <= $1",
                )
                .bind(now - time::Duration::days(1))
                .execute(&self.writer)
                .await?
                .rows_affected();
                deleted += sqlx::query("DELETE FROM backchannel_outbox WHERE dead_at <= $1")
                    .bind(now - DEAD_LOGOUT_RETENTION)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                Ok(deleted)
            }
        }
    };
}

oidc_store!(SqliteStore, sqlx::Sqlite);
oidc_store!(PostgresStore, sqlx::Postgres);
