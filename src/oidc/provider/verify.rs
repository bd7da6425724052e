//! Token checks: access tokens for userinfo and the account API's bearer check.

use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Provider, profile_claims};
use crate::accounts::User;
use crate::oidc::claims::{self, AccessClaims, JwtRefused};
use crate::store::StoreError;
use crate::tokens::TokenDigest;

/// Why a bearer token was refused.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("invalid token: {0}")]
    Invalid(JwtRefused),
    #[error("token revoked")]
    Revoked,
    #[error("insufficient scope")]
    InsufficientScope,
    #[error("store: {0}")]
    Store(StoreError),
}

impl Provider {
    /// Verifies an access token we issued and that it is still live (not revoked, its
    /// grant not revoked, its session not ended); with it comes its user (none for client
    /// credentials), read in the same query.
    pub async fn verify_access_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<(AccessClaims, Option<User>), BearerError> {
        let digest = TokenDigest::of(token);
        let claims = match self.checks.verified(&digest) {
            Some(claims) => claims,
            None => {
                let claims: AccessClaims = claims::verify_own(
                    &self.keys,
                    &self.issuer,
                    token,
                    Some("at+jwt"),
                    Some(&self.issuer),
                    Some(now),
                )
                .map_err(BearerError::Invalid)?;
                self.checks.keep_verified(digest, claims.clone());
                claims
            }
        };
        if claims.exp <= now.unix_timestamp() {
            return Err(BearerError::Invalid(JwtRefused::Expired));
        }
        let grant_id = match &claims.gid {
            Some(gid) => Some(
                Uuid::parse_str(gid).map_err(|_| BearerError::Invalid(JwtRefused::Malformed))?,
            ),
            None => None,
        };
        let epoch = self.checks.epoch();
        let state = match self.checks.liveness(&claims.jti, epoch) {
            Some(state) => state,
            None => {
                let state = self
                    .store
                    .access_token_state(&claims.jti, grant_id)
                    .await
                    .map_err(BearerError::Store)?;
                self.checks.keep_liveness(&claims.jti, epoch, state.clone());
                state
            }
        };
        if state.jti_revoked {
            return Err(BearerError::Revoked);
        }
        if grant_id.is_some() {
            match state.grant {
                Some(grant) if self.grant_alive(&grant, now) => {}
                _ => return Err(BearerError::Revoked),
            }
        }
        Ok((claims, state.user))
    }

    /// The userinfo response (OIDC Core 5.3) for a verified token and its user.
    pub fn userinfo(
        &self,
        claims: &AccessClaims,
        user: Option<&User>,
    ) -> Result<Value, BearerError> {
        if !claims.has_scope("openid") {
            return Err(BearerError::InsufficientScope);
        }
        let user = user.ok_or(BearerError::Revoked)?;
        let mut body = serde_json::Map::new();
        body.insert("sub".into(), json!(claims.sub));
        for (name, value) in profile_claims(user, &claims.scope, &self.issuer) {
            body.insert(name.into(), value);
        }
        Ok(Value::Object(body))
    }
}
