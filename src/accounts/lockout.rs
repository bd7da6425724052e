//! The lockout rule. The count itself is atomic in SQL (`AccountStore::count_attempt`), taken
//! *before* argon2 runs, so parallel wrong passwords — also on several instances — lock the
//! account at exactly N (the race of Keycloak CVE-2024-4629 and ZITADEL CVE-2023-47111).

/// Bounds of the threshold users choose, and the default of new accounts.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub min_threshold: i32,
    pub max_threshold: i32,
    pub default_threshold: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("lockout_threshold must be between {min} and {max}")]
pub struct ThresholdOutOfRange {
    pub min: i32,
    pub max: i32,
}

/// What the gate says about one password attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Counted as the `n`th attempt in a row; the password may be checked. If it is wrong
    /// and `n` reached the threshold, the account locks.
    Counted { n: i32, threshold: i32 },
    /// Locked (or at its threshold): the password is not checked, the answer is the same.
    Refused,
}

impl Attempt {
    /// A wrong password on this attempt locks the account.
    pub fn locks_on_failure(self) -> bool {
        matches!(self, Attempt::Counted { n, threshold } if n >= threshold)
    }
}

impl LockoutPolicy {
    pub fn check_threshold(&self, threshold: i32) -> Result<i32, ThresholdOutOfRange> {
        if (self.min_threshold..=self.max_threshold).contains(&threshold) {
            Ok(threshold)
        } else {
            Err(ThresholdOutOfRange {
                min: self.min_threshold,
                max: self.max_threshold,
            })
        }
    }
}

/// The rule's pure part. The transitions themselves (count, lock at N, reset, unlock by an
/// administrator or by link) are single SQL statements, tested on both backends by the store
/// suite (`tests/it/store/lockout.rs`).
#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: LockoutPolicy = LockoutPolicy {
        min_threshold: 3,
        max_threshold: 50,
        default_threshold: 10,
    };

    #[test]
    fn counted_failures_below_the_threshold_do_not_lock_and_the_nth_does() {
        for n in 1..5 {
            let attempt = Attempt::Counted { n, threshold: 5 };
            assert!(!attempt.locks_on_failure(), "attempt {n} of 5");
        }
        assert!(Attempt::Counted { n: 5, threshold: 5 }.locks_on_failure());
        assert!(Attempt::Counted { n: 1, threshold: 1 }.locks_on_failure());
    }

    #[test]
    fn out_of_range_thresholds_are_refused_not_clamped_and_name_the_bounds() {
        let refused = Err(ThresholdOutOfRange { min: 3, max: 50 });
        for threshold in [i32::MIN, -1, 0, 1, 2, 51, 1000, i32::MAX] {
            assert_eq!(POLICY.check_threshold(threshold), refused, "{threshold}");
        }
        for threshold in [3, 4, 10, 49, 50] {
            assert_eq!(POLICY.check_threshold(threshold), Ok(threshold));
        }
        assert_eq!(POLICY.check_threshold(POLICY.default_threshold), Ok(10));
        let message = ThresholdOutOfRange { min: 3, max: 50 }.to_string();
        assert_eq!(message, "lockout_threshold must be between 3 and 50");
    }

    #[test]
    fn the_last_counted_failure_locks() {
        assert!(!Attempt::Counted { n: 2, threshold: 3 }.locks_on_failure());
        assert!(Attempt::Counted { n: 3, threshold: 3 }.locks_on_failure());
        assert!(!Attempt::Refused.locks_on_failure());
    }

    #[test]
    fn thresholds_are_bounded() {
        let policy = LockoutPolicy {
            min_threshold: 3,
            max_threshold: 50,
            default_threshold: 10,
        };
        assert_eq!(policy.check_threshold(3), Ok(3));
        assert_eq!(policy.check_threshold(50), Ok(50));
        assert!(policy.check_threshold(2).is_err());
        assert!(policy.check_threshold(51).is_err());
    }
}

mod service {
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::super::{Accounts, User, normalize_email};
    use super::{SecuritySettings, ThresholdOutOfRange, UnlockToken};
    use crate::audit::{Action, ActivityEvent, ClientInfo};
    use crate::store::StoreError;
    use crate::tokens::OpaqueToken;

    /// An unlock link that cannot be used: unknown, used, expired, or voided.
    #[derive(Debug, thiserror::Error)]
    pub enum UnlockError {
        #[error("this unlock link is invalid, expired or already used")]
        LinkUnusable,
        #[error(transparent)]
        Store(#[from] StoreError),
    }

    /// Unlock-link requests for one account: at most one per this period.
    const UNLOCK_REQUEST_PERIOD: time::Duration = time::Duration::minutes(2);

    impl Accounts {
        fn unlock_link(
            &self,
            user_id: Uuid,
            now: OffsetDateTime,
        ) -> (OpaqueToken, UnlockToken, String) {
            let token = OpaqueToken::generate();
            let link = format!(
                "{}/unlock/confirm?token={}",
                self.mail.issuer,
                token.as_str()
            );
            let stored = UnlockToken {
                digest: token.digest(),
                user_id,
                created_at: now,
                expires_at: now + self.mail.unlock_link_ttl,
                used_at: None,
            };
            (token, stored, link)
        }

        /// Locks the account (its count reached the threshold): the event, the owner's mail
        /// with a fresh unlock link, in one transaction. Sessions stay as they are.
        pub(in crate::accounts) async fn lock(
            &self,
            user: &User,
            client: &ClientInfo,
            now: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            let (_, stored, link) = self.unlock_link(user.id, now);
            let event = ActivityEvent::new(
                Some(user.id),
                Action::AccountLocked,
                client,
                serde_json::json!({ "threshold": user.lockout_threshold }),
                now,
            );
            let mail = crate::mail::account_locked(&self.mail.i18n, user, client, &link, now);
            self.store
                .lock_account(user.id, &stored, &event, &mail)
                .await
        }

        /// `POST /unlock`: mails a new link when the account exists and is locked. The caller
        /// answers the same in every case; requests per account are limited.
        pub async fn request_unlock_link(
            &self,
            email: &str,
            client: &ClientInfo,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let Ok(email) = normalize_email(email) else {
                return Ok(());
            };
            let Some(user) = self.store.user_by_email(&email).await? else {
                return Ok(());
            };
            if user.locked_at.is_none() {
                return Ok(());
            }
            let (_, stored, link) = self.unlock_link(user.id, now);
            let mail = crate::mail::unlock_link(&self.mail.i18n, &user, client, &link, now);
            self.store
                .issue_unlock_token(&stored, now - UNLOCK_REQUEST_PERIOD, &mail)
                .await?;
            Ok(())
        }

        /// Whether an unlock link can still be used (for its confirmation page).
        pub async fn check_unlock_link(
            &self,
            token: &str,
            now: OffsetDateTime,
        ) -> Result<Uuid, UnlockError> {
            let token = OpaqueToken::from_client(token).ok_or(UnlockError::LinkUnusable)?;
            match self.store.unlock_token(&token.digest()).await? {
                Some(t) if t.used_at.is_none() && t.expires_at > now => Ok(t.user_id),
                _ => Err(UnlockError::LinkUnusable),
            }
        }

        /// The confirmation page's POST: uses the link once and unlocks.
        pub async fn unlock_by_link(
            &self,
            token: &str,
            client: &ClientInfo,
            now: OffsetDateTime,
        ) -> Result<(), UnlockError> {
            let user_id = self.check_unlock_link(token, now).await?;
            let token = OpaqueToken::from_client(token).ok_or(UnlockError::LinkUnusable)?;
            let event = ActivityEvent::new(
                Some(user_id),
                Action::AccountUnlocked,
                client,
                serde_json::json!({ "by": "self", "via": "mail_link" }),
                now,
            );
            if self.store.unlock_by_token(&token.digest(), &event).await? {
                Ok(())
            } else {
                Err(UnlockError::LinkUnusable)
            }
        }

        /// Unlock by an administrator of organization `org` (`actor`) or, with `None`, an
        /// operator at the command line. The owner is mailed every time (an administrator
        /// unlocking an account again and again, so that someone can keep guessing, does not
        /// go unseen). `false` when the account was not locked.
        pub async fn unlock_by_admin(
            &self,
            user_id: Uuid,
            actor: Option<(Uuid, Uuid)>,
            client: &ClientInfo,
            now: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            let details = match actor {
                Some((_, org)) => serde_json::json!({ "by": "admin", "org_id": org }),
                None => serde_json::json!({ "by": "operator" }),
            };
            let mut event =
                ActivityEvent::new(Some(user_id), Action::AccountUnlocked, client, details, now);
            event.actor_id = actor.map(|(admin, _)| admin);
            let Some(user) = self.store.user_by_id(user_id).await? else {
                return Ok(false);
            };
            let link = format!("{}/account/activity", self.mail.issuer);
            let mail = crate::mail::account_unlocked(&self.mail.i18n, &user, client, &link, now);
            self.store.unlock_account(user_id, &event, &mail).await
        }

        /// Changes the security settings, within the server's bounds.
        pub async fn update_security(
            &self,
            user: &User,
            settings: SecuritySettings,
            client: &ClientInfo,
            now: OffsetDateTime,
        ) -> Result<User, SecurityError> {
            self.lockout.check_threshold(settings.lockout_threshold)?;
            let event = ActivityEvent::new(
                Some(user.id),
                Action::SecuritySettingsChanged,
                client,
                serde_json::json!({
                    "lockout_threshold": settings.lockout_threshold,
                    "notify_on_success": settings.notify_on_success,
                    "notify_on_failure": settings.notify_on_failure,
                }),
                now,
            );
            Ok(self
                .store
                .update_security(user.id, &settings, &event)
                .await?)
        }
    }

    #[derive(Debug, thiserror::Error)]
    pub enum SecurityError {
        #[error(transparent)]
        OutOfRange(#[from] ThresholdOutOfRange),
        #[error(transparent)]
        Store(#[from] StoreError),
    }
}

pub use service::{SecurityError, UnlockError};

pub use crate::store::account::{SecuritySettings, UnlockToken};
