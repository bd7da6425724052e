//! Browser sessions: started at sign-in, found by the digest of their cookie, ended at logout.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::User;
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::store::{Store, StoreError};
use crate::tokens::{OpaqueToken, TokenDigest};

/// How the user signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    Password,
    Sso,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Password => "password",
            SignInMethod::Sso => "sso",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub method: String,
    pub sso_org_id: Option<Uuid>,
    pub ip: String,
    pub user_agent: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_digest: TokenDigest,
    pub method: SignInMethod,
    pub sso_org_id: Option<Uuid>,
    pub ip: String,
    pub user_agent: String,
    pub created_at: OffsetDateTime,
}

#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Starts a session with a fresh random id (never one the browser brought: no fixation)
    /// and records the login. Returns the cookie value; only its digest is stored.
    pub async fn start(
        &self,
        user: &User,
        method: SignInMethod,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(OpaqueToken, Uuid), StoreError> {
        let token = OpaqueToken::generate();
        let session = NewSession {
            id: Uuid::now_v7(),
            user_id: user.id,
            token_digest: token.digest(),
            method,
            sso_org_id: None,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            created_at: now,
        };
        let event = ActivityEvent::new(
            Some(user.id),
            Action::LoginSucceeded,
            client,
            serde_json::json!({ "method": method.as_str(), "session_id": session.id }),
            now,
        );
        self.store.start_session(&session, &event).await?;
        Ok((token, session.id))
    }

    /// The signed-in session and user for a cookie value, if it is valid and not ended.
    pub async fn current(&self, cookie: &str) -> Result<Option<(Session, User)>, StoreError> {
        let Some(token) = OpaqueToken::from_client(cookie) else {
            return Ok(None);
        };
        let Some(session) = self.store.session_by_digest(&token.digest()).await? else {
            return Ok(None);
        };
        let user = self.store.user_by_id(session.user_id).await?;
        Ok(user.map(|user| (session, user)))
    }

    /// Ends a session at logout; `false` when it had already ended.
    pub async fn end_by_logout(
        &self,
        session: &Session,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let event = ActivityEvent::new(
            Some(session.user_id),
            Action::Logout,
            client,
            serde_json::json!({ "session_id": session.id }),
            now,
        );
        self.store.end_session(session.id, "logout", &event).await
    }
}
