//! Browser sessions: started at sign-in, found by the digest of their cookie, listed for
//! their owner, ended by logout, by the owner from another device, or by expiry.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::{MailContext, User};
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::store::{Store, StoreError};
use crate::tokens::OpaqueToken;

// The device label lives in audit, beside `ClientInfo`, so that mail (below sessions) can
// use it without a circle.
pub use crate::audit::DeviceLabel;

// The session records live with the store that reads and writes them.
pub use crate::store::session::{NewSession, Session, SignInMethod};

/// How long sessions live; a pure decision over a session and the time.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle_timeout: time::Duration,
    pub absolute_lifetime: time::Duration,
    pub touch_interval: time::Duration,
}

impl SessionPolicy {
    pub fn is_expired(&self, session: &Session, now: OffsetDateTime) -> bool {
        now - session.last_seen_at >= self.idle_timeout
            || now - session.created_at >= self.absolute_lifetime
    }

    fn needs_touch(&self, session: &Session, now: OffsetDateTime) -> bool {
        now - session.last_seen_at >= self.touch_interval
    }
}

/// Who ended a session, as the activity log tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// The owner, from this or another of their devices.
    Owner,
    /// Nobody: it expired.
    Expiry,
    /// An administrator of an organization the owner belongs to (their user id).
    Admin(Uuid),
}

impl EndedBy {
    fn as_str(self) -> &'static str {
        match self {
            EndedBy::Owner => "owner",
            EndedBy::Expiry => "expiry",
            EndedBy::Admin(_) => "admin",
        }
    }
}

/// Sessions deleted per pruning batch.
const PRUNE_BATCH: i64 = 500;

#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    policy: SessionPolicy,
    mail: MailContext,
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>, policy: SessionPolicy, mail: MailContext) -> Self {
        Self {
            store,
            policy,
            mail,
        }
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
        self.start_with(user, method, None, client, now).await
    }

    /// Starts the session of an SSO sign-in through `org_id`'s connection: like [`start`]
    /// (event, login alert), and the session remembers the organization.
    ///
    /// [`start`]: Sessions::start
    pub async fn start_sso(
        &self,
        user: &User,
        org_id: Uuid,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(OpaqueToken, Uuid), StoreError> {
        self.start_with(user, SignInMethod::Sso, Some(org_id), client, now)
            .await
    }

    async fn start_with(
        &self,
        user: &User,
        method: SignInMethod,
        sso_org_id: Option<Uuid>,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(OpaqueToken, Uuid), StoreError> {
        let token = OpaqueToken::generate();
        let session = NewSession {
            id: Uuid::now_v7(),
            user_id: user.id,
            token_digest: token.digest(),
            method,
            sso_org_id,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            created_at: now,
        };
        let event = ActivityEvent::new(
            Some(user.id),
            Action::LoginSucceeded,
            client,
            match sso_org_id {
                Some(org) => serde_json::json!({
                    "method": method.as_str(), "session_id": session.id, "org_id": org
                }),
                None => serde_json::json!({ "method": method.as_str(), "session_id": session.id }),
            },
            now,
        );
        // The owner's login alert, when they asked for one, goes with the session.
        let alert = user.notify_on_success.then(|| {
            (
                crate::mail::login_succeeded(&self.mail.i18n, user, client, &self.mail.issuer, now),
                ActivityEvent::alert_sent(user.id, "login_succeeded", client, now),
            )
        });
        self.store
            .start_session(&session, &event, alert.as_ref().map(|(m, e)| (m, e)))
            .await?;
        Ok((token, session.id))
    }

    /// The signed-in session and user for a cookie value, if it is valid, not ended and not
    /// expired. An expired session is ended on the spot; "last seen" is written at most once
    /// per touch interval.
    pub async fn current(
        &self,
        cookie: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Option<(Session, User)>, StoreError> {
        let Some(token) = OpaqueToken::from_client(cookie) else {
            return Ok(None);
        };
        let Some((mut session, user)) = self.store.session_by_digest(&token.digest()).await? else {
            return Ok(None);
        };
        if self.policy.is_expired(&session, now) {
            self.end(session.user_id, session.id, EndedBy::Expiry, client, now)
                .await?;
            return Ok(None);
        }
        if self.policy.needs_touch(&session, now) {
            let stale_before = now - self.policy.touch_interval;
            self.store
                .touch_session(session.id, &client.ip, now, stale_before)
                .await?;
            session.last_seen_at = now;
            session.ip = client.ip.clone();
        }
        Ok(Some((session, user)))
    }

    /// The user's session with this id, unless it ended (as the account API's bearer
    /// check finds the session its token was issued in); `None` for another user's session.
    pub async fn by_id(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<Option<Session>, StoreError> {
        Ok(self
            .store
            .sessions_of_user(user_id)
            .await?
            .into_iter()
            .find(|s| s.id == session_id))
    }

    /// The owner's active sessions, newest first.
    pub async fn list(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let mut sessions = self.store.sessions_of_user(user_id).await?;
        sessions.retain(|s| !self.policy.is_expired(s, now));
        Ok(sessions)
    }

    /// The sessions of `user_id` that organization `org_id` vouched for (signed in through
    /// its SSO): all an administrator of the organization may see or end of a member.
    pub async fn list_for_org(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let mut sessions = self.list(user_id, now).await?;
        sessions.retain(|s| s.sso_org_id == Some(org_id));
        Ok(sessions)
    }

    /// An administrator of `org_id` ends one of those sessions; `false` for any other.
    pub async fn end_for_org(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        session_id: Uuid,
        admin: Uuid,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let owned = self.list_for_org(org_id, user_id, now).await?;
        if !owned.iter().any(|s| s.id == session_id) {
            return Ok(false);
        }
        self.end(user_id, session_id, EndedBy::Admin(admin), client, now)
            .await
    }

    /// Ends one of `user_id`'s sessions; `false` when they have no such active session (an id
    /// of another user's session is not touched). Its cookie is refused from the next request.
    pub async fn end(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        by: EndedBy,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut event = ActivityEvent::new(
            Some(user_id),
            Action::SessionEnded,
            client,
            serde_json::json!({ "session_id": session_id, "by": by.as_str() }),
            now,
        );
        if let EndedBy::Admin(admin) = by {
            event.actor_id = Some(admin);
        }
        self.store
            .end_session(user_id, session_id, by.as_str(), &event)
            .await
    }

    /// Ends every session of the user except `keep` (the one making the request).
    pub async fn end_others(
        &self,
        user_id: Uuid,
        keep: Uuid,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let event = ActivityEvent::new(
            Some(user_id),
            Action::SessionEnded,
            client,
            serde_json::json!({ "all_except": keep, "by": EndedBy::Owner.as_str() }),
            now,
        );
        self.store
            .end_other_sessions(user_id, keep, EndedBy::Owner.as_str(), &event)
            .await
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
        self.store
            .end_session(session.user_id, session.id, "logout", &event)
            .await
    }

    /// Deletes ended and expired sessions, in small batches; returns how many.
    pub async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let idle_before = now - self.policy.idle_timeout;
        let started_before = now - self.policy.absolute_lifetime;
        let mut total = 0;
        loop {
            let deleted = self
                .store
                .prune_sessions(idle_before, started_before, PRUNE_BATCH)
                .await?;
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}
