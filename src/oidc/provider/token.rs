//! The token endpoint's grants (authorization code, refresh token, client credentials),
//! the tokens they issue, and revocation (RFC 7009).

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{OAuthError, OAuthErrorKind, Provider, SCOPES, app_event, profile_claims};
use crate::accounts::User;
use crate::audit::{Action, ClientInfo};
use crate::oidc::claims::{self, AccessClaims};
use crate::oidc::model::{
    Client, CodeRedemption, GrantState, NewRefreshToken, RefreshUse, SessionMethod,
};
use crate::store::StoreError;
use crate::tokens::{OpaqueToken, SigningAlg};

/// How a client authenticated at the token, introspection or revocation endpoint.
#[derive(Debug, Default)]
pub struct ClientCredentials {
    /// From `Authorization: Basic` (already URL-decoded).
    pub basic: Option<(String, String)>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub assertion_type: Option<String>,
    pub assertion: Option<String>,
}

/// What the token endpoint answers (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl Provider {
    pub async fn token(
        &self,
        params: &HashMap<String, String>,
        creds: &ClientCredentials,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        let grant_type = params
            .get("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        let client = self.authenticate_client(creds, client_info, now).await?;
        match grant_type.as_str() {
            "authorization_code" => self.exchange_code(&client, params, client_info, now).await,
            "refresh_token" => self.refresh(&client, params, client_info, now).await,
            "client_credentials" => {
                self.client_credentials(&client, params, client_info, now)
                    .await
            }
            _ => Err(OAuthError::new(
                OAuthErrorKind::UnsupportedGrantType,
                "supported: authorization_code, refresh_token, client_credentials",
            )),
        }
    }

    async fn exchange_code(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        let code = params
            .get("code")
            .and_then(|c| OpaqueToken::from_client(c))
            .ok_or_else(|| OAuthError::invalid_grant("unknown, expired or used code"))?;
        let grant_id = Uuid::now_v7();
        let code = match self
            .store
            .redeem_code(&code.digest(), grant_id, now)
            .await?
        {
            CodeRedemption::Redeemed(code) => code,
            CodeRedemption::Replayed(code) => {
                // The grant the first use started is revoked by now; say so in the log.
                let event = app_event(
                    Some(code.user_id),
                    Action::TokenReuseDetected,
                    client,
                    json!({ "client_id": code.client_id, "kind": "authorization_code" }),
                    client_info,
                    now,
                );
                self.store.record_event(&event).await?;
                return Err(OAuthError::invalid_grant("unknown, expired or used code"));
            }
            CodeRedemption::Unusable => {
                return Err(OAuthError::invalid_grant("unknown, expired or used code"));
            }
        };
        // The code is spent now: any failure below burns it (and its fresh grant).
        let refusal = if code.client_id != client.id {
            Some("the code was issued to another client")
        } else if params.get("redirect_uri") != Some(&code.redirect_uri) {
            Some("redirect_uri differs from the authorization request")
        } else {
            match (&code.code_challenge, params.get("code_verifier")) {
                (Some(challenge), Some(verifier))
                    if claims::valid_pkce_value(verifier)
                        && claims::pkce_matches(challenge, verifier) =>
                {
                    None
                }
                (Some(_), _) => Some("PKCE verification failed"),
                (None, Some(_)) => Some("code_verifier sent without a code_challenge"),
                (None, None) => None,
            }
        };
        if let Some(why) = refusal {
            self.store
                .revoke_grant(grant_id, "code_refused", now)
                .await?;
            return Err(OAuthError::invalid_grant(why));
        }
        let Some(grant) = self.store.grant(grant_id).await? else {
            return Err(OAuthError::server());
        };
        let user = self
            .store
            .user_by_id(code.user_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("the account no longer exists"))?;
        // Only the session decides here: a replay racing this request may already have
        // revoked the grant, and then these tokens are born revoked rather than refused
        // (so exactly one of two parallel redemptions succeeds).
        if !self.session_alive(&grant, now) {
            return Err(OAuthError::invalid_grant("the session has ended"));
        }
        self.issue(
            client,
            &grant,
            &user,
            code.nonce.as_deref(),
            "authorization_code",
            client_info,
            now,
        )
        .await
    }

    async fn refresh(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        let token = params
            .get("refresh_token")
            .and_then(|c| OpaqueToken::from_client(c))
            .ok_or_else(|| OAuthError::invalid_grant("unknown or expired refresh token"))?;
        let digest = token.digest();
        let grace = self.config.refresh_grace();
        let grant = match self
            .store
            .use_refresh_token(&digest, &client.id, now, grace)
            .await?
        {
            RefreshUse::Rotated(grant) if grant.client_id == client.id => grant,
            RefreshUse::Reused(grant) => {
                let event = app_event(
                    grant.user_id,
                    Action::TokenReuseDetected,
                    client,
                    json!({ "client_id": grant.client_id, "kind": "refresh_token" }),
                    client_info,
                    now,
                );
                self.store.record_event(&event).await?;
                return Err(OAuthError::invalid_grant(
                    "unknown or expired refresh token",
                ));
            }
            _ => {
                return Err(OAuthError::invalid_grant(
                    "unknown or expired refresh token",
                ));
            }
        };
        if !self.grant_alive(&grant, now) {
            return Err(OAuthError::invalid_grant("the session or grant has ended"));
        }
        let user = match grant.user_id {
            Some(id) => self.store.user_by_id(id).await?,
            None => None,
        }
        .ok_or_else(|| OAuthError::invalid_grant("the account no longer exists"))?;
        // Narrowing the scope on refresh is allowed (RFC 6749 §6), widening is not.
        let mut grant = grant;
        if let Some(requested) = params.get("scope") {
            let held: BTreeSet<&str> = grant.scope.split(' ').collect();
            let asked: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
            if asked.iter().any(|s| !held.contains(s)) {
                return Err(OAuthError::new(
                    OAuthErrorKind::InvalidScope,
                    "scope wider than granted",
                ));
            }
            grant.scope = asked.join(" ");
        }
        self.issue(
            client,
            &grant,
            &user,
            None,
            "refresh_token",
            client_info,
            now,
        )
        .await
    }

    async fn client_credentials(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        if client.is_public() {
            return Err(OAuthError::new(
                OAuthErrorKind::UnauthorizedClient,
                "public clients cannot use client_credentials",
            ));
        }
        let requested = params.get("scope").map(String::as_str).unwrap_or("");
        let scope: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
        // No user behind these tokens: the OIDC and account scopes mean nothing here.
        if let Some(bad) = scope.iter().find(|s| SCOPES.contains(s)) {
            return Err(OAuthError::new(
                OAuthErrorKind::InvalidScope,
                format!("{bad} needs a user"),
            ));
        }
        let scope = scope.join(" ");
        let jti = Uuid::now_v7().simple().to_string();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: client.id.clone(),
            aud: self.issuer.clone(),
            exp: now.unix_timestamp() + self.config.access_token_ttl_secs,
            iat: now.unix_timestamp(),
            jti,
            client_id: client.id.clone(),
            scope: scope.clone(),
            sid: None,
            auth_time: None,
            gid: None,
        };
        let access_token = self.sign_access(&claims)?;
        let event = app_event(
            None,
            Action::TokenIssued,
            client,
            json!({ "client_id": client.id, "grant_type": "client_credentials" }),
            client_info,
            now,
        );
        self.issues.record((None, event)).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.config.access_token_ttl_secs,
            scope,
            refresh_token: None,
            id_token: None,
        })
    }

    fn sign_access(&self, claims: &AccessClaims) -> Result<String, OAuthError> {
        let key = self
            .keys
            .active(SigningAlg::Es256)
            .ok_or_else(OAuthError::server)?;
        key.sign_jwt("at+jwt", claims)
            .map_err(|_| OAuthError::server())
    }

    /// Access token, refresh token and (for `openid`) ID token under a grant.
    #[allow(clippy::too_many_arguments)]
    async fn issue(
        &self,
        client: &Client,
        grant: &GrantState,
        user: &User,
        nonce: Option<&str>,
        grant_type: &str,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        let sid = grant.session_id.map(|s| s.to_string());
        let auth_time = grant.auth_time.map(OffsetDateTime::unix_timestamp);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: user.id.to_string(),
            aud: self.issuer.clone(),
            exp: now.unix_timestamp() + self.config.access_token_ttl_secs,
            iat: now.unix_timestamp(),
            jti: Uuid::now_v7().simple().to_string(),
            client_id: client.id.clone(),
            scope: grant.scope.clone(),
            sid: sid.clone(),
            auth_time,
            gid: Some(grant.id.simple().to_string()),
        };
        let access_token = self.sign_access(&claims)?;
        let refresh = OpaqueToken::generate();
        let expires_at = now + self.config.refresh_token_ttl();
        let id_token = if grant.scope.split(' ').any(|s| s == "openid") {
            let alg = client.id_token_alg;
            let key = self.keys.active(alg).ok_or_else(OAuthError::server)?;
            let mut id = serde_json::Map::new();
            id.insert("iss".into(), json!(self.issuer));
            id.insert("sub".into(), json!(user.id.to_string()));
            id.insert("aud".into(), json!(client.id));
            id.insert("azp".into(), json!(client.id));
            id.insert("iat".into(), json!(now.unix_timestamp()));
            id.insert(
                "exp".into(),
                json!(now.unix_timestamp() + self.config.id_token_ttl_secs),
            );
            if let Some(auth_time) = auth_time {
                id.insert("auth_time".into(), json!(auth_time));
            }
            if let Some(nonce) = nonce {
                id.insert("nonce".into(), json!(nonce));
            }
            if let Some(sid) = &sid {
                id.insert("sid".into(), json!(sid));
            }
            let fed = grant
                .session
                .is_some_and(|s| s.method == SessionMethod::Sso);
            id.insert("amr".into(), json!([if fed { "fed" } else { "pwd" }]));
            id.insert(
                "acr".into(),
                json!(if fed {
                    "urn:gotthard:acr:sso"
                } else {
                    "urn:gotthard:acr:password"
                }),
            );
            id.insert(
                "at_hash".into(),
                json!(claims::half_hash(alg, &access_token)),
            );
            for (name, value) in profile_claims(user, &grant.scope, &self.issuer) {
                id.insert(name.into(), value);
            }
            Some(key.sign_jwt("JWT", &id).map_err(|_| OAuthError::server())?)
        } else {
            None
        };
        let event = app_event(
            Some(user.id),
            Action::TokenIssued,
            client,
            json!({ "client_id": client.id, "grant_type": grant_type }),
            client_info,
            now,
        );
        let refresh_record = NewRefreshToken {
            digest: refresh.digest(),
            grant_id: grant.id,
            created_at: now,
            expires_at,
        };
        self.issues.record((Some(refresh_record), event)).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.config.access_token_ttl_secs,
            scope: grant.scope.clone(),
            refresh_token: Some(refresh.as_str().to_string()),
            id_token,
        })
    }

    /// RFC 7009: a refresh token revokes its whole grant, an access token itself. Tokens of
    /// other clients and unknown tokens are ignored (the answer is 200 either way).
    pub async fn revoke(
        &self,
        client: &Client,
        token: &str,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if let Some(opaque) = OpaqueToken::from_client(token) {
            if let Some(grant) = self
                .store
                .refresh_token_grant(&opaque.digest(), now)
                .await?
                && grant.client_id == client.id
                && self
                    .store
                    .revoke_grant(grant.id, "revoked_by_client", now)
                    .await?
            {
                let event = app_event(
                    grant.user_id,
                    Action::TokenRevoked,
                    client,
                    json!({ "client_id": client.id }),
                    client_info,
                    now,
                );
                self.store.record_event(&event).await?;
            }
            return Ok(());
        }
        let parsed: Result<AccessClaims, _> = claims::verify_own(
            &self.keys,
            &self.issuer,
            token,
            Some("at+jwt"),
            None,
            Some(now),
        );
        if let Ok(claims) = parsed
            && claims.client_id == client.id
        {
            let expires = OffsetDateTime::from_unix_timestamp(claims.exp).unwrap_or(now);
            self.store.remember_jti(&claims.jti, expires).await?;
        }
        Ok(())
    }
}
