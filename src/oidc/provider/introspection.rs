//! Introspection (RFC 7662): what a client may learn about a token, and who may ask.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{BearerError, Provider};
use crate::oidc::Client;
use crate::store::StoreError;
use crate::tokens::OpaqueToken;

impl Provider {
    /// RFC 7662. A refresh token is described only to the client it was issued to; an
    /// access token to that client or to a client registered as its resource server
    /// (`introspect_for`). To any other caller every token is `{"active": false}`, the
    /// answer for an unknown one, so no client learns the subject, session or scopes of
    /// another client's tokens (RFC 7662 §4 lets the answer depend on the caller).
    pub async fn introspect(
        &self,
        client: &Client,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Value, StoreError> {
        let inactive = json!({ "active": false });
        if let Some(opaque) = OpaqueToken::from_client(token) {
            let Some(grant) = self
                .store
                .refresh_token_grant(&opaque.digest(), now)
                .await?
            else {
                return Ok(inactive);
            };
            if grant.client_id != client.id || !self.grant_alive(&grant, now) {
                return Ok(inactive);
            }
            let mut body = json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": grant.client_id,
                "scope": grant.scope,
                "iss": self.issuer,
            });
            if let Some(user) = grant.user_id {
                body["sub"] = json!(user.to_string());
            }
            return Ok(body);
        }
        match self.verify_access_token(token, now).await {
            Ok((c, _)) if may_introspect(client, &c.client_id) => {
                let mut body = json!({
                    "active": true,
                    "token_type": "Bearer",
                    "client_id": c.client_id,
                    "scope": c.scope,
                    "sub": c.sub,
                    "aud": c.aud,
                    "iss": c.iss,
                    "exp": c.exp,
                    "iat": c.iat,
                    "jti": c.jti,
                });
                if let Some(sid) = c.sid {
                    body["sid"] = json!(sid);
                }
                if let Some(auth_time) = c.auth_time {
                    body["auth_time"] = json!(auth_time);
                }
                Ok(body)
            }
            Err(BearerError::Store(err)) => Err(err),
            Ok(_) | Err(_) => Ok(inactive),
        }
    }
}

/// Whether `caller` may see an access token issued to `token_client`: its own, or one of a
/// client it was registered as resource server for.
fn may_introspect(caller: &Client, token_client: &str) -> bool {
    caller.id == token_client || caller.introspect_for.iter().any(|id| id == token_client)
}
