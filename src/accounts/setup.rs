//! First start: on an empty database, a one-time link at which the first administrator
//! chooses an e-mail and a password.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{AccountError, Accounts, User};
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::store::{Store, StoreError};
use crate::tokens::OpaqueToken;

pub use crate::store::account::SetupToken;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Unknown, expired or already used: one answer, since the link cannot be trusted.
    #[error("this setup link is invalid, expired or already used")]
    LinkUnusable,
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for SetupError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::TokenUnusable => SetupError::LinkUnusable,
            other => SetupError::Store(other),
        }
    }
}

#[derive(Clone)]
pub struct FirstStart {
    store: Arc<dyn Store>,
    accounts: Accounts,
    issuer: String,
    link_ttl: time::Duration,
}

impl FirstStart {
    pub fn new(
        store: Arc<dyn Store>,
        accounts: Accounts,
        issuer: String,
        link_ttl: time::Duration,
    ) -> Self {
        Self {
            store,
            accounts,
            issuer,
            link_ttl,
        }
    }

    /// On an empty database, creates a setup link (voiding older unused ones) and returns it.
    pub async fn issue_link_if_empty(
        &self,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let token = OpaqueToken::generate();
        self.store
            .replace_setup_token(&SetupToken {
                digest: token.digest(),
                created_at: now,
                expires_at: now + self.link_ttl,
                used_at: None,
            })
            .await?;
        Ok(Some(format!(
            "{}/setup?token={}",
            self.issuer,
            token.as_str()
        )))
    }

    /// Whether the link may still be used (for showing the form).
    pub async fn check_link(&self, token: &str, now: OffsetDateTime) -> Result<(), SetupError> {
        let token = OpaqueToken::from_client(token).ok_or(SetupError::LinkUnusable)?;
        let stored = self.store.setup_token(&token.digest()).await?;
        match stored {
            Some(t) if t.used_at.is_none() && t.expires_at > now => {
                if self.store.count_users().await? > 0 {
                    return Err(SetupError::LinkUnusable);
                }
                Ok(())
            }
            _ => Err(SetupError::LinkUnusable),
        }
    }

    /// Creates the first administrator and uses up the link, atomically.
    pub async fn complete(
        &self,
        token: &str,
        email: &str,
        name: &str,
        password: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<User, SetupError> {
        self.check_link(token, now).await?;
        let token = OpaqueToken::from_client(token).ok_or(SetupError::LinkUnusable)?;
        let new = self
            .accounts
            .prepare_user(email, name, password, true, now)
            .await?;
        let event = ActivityEvent::new(
            Some(new.id),
            Action::AccountCreated,
            client,
            serde_json::json!({ "via": "setup_link", "admin": true }),
            now,
        );
        Ok(self
            .store
            .complete_setup(&token.digest(), &new, &event)
            .await?)
    }
}
