//! Accounts: users, their passwords, and the first-start setup of the first administrator.

mod email;
mod email_change;
pub mod lockout;
pub mod password;
mod phones;
mod profile;
mod reauth;
mod recovery;
mod setup;

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

pub use email::{EmailProblem, MAX_EMAIL_LEN, normalize_email};
pub use email_change::{EMAIL_CHANGE_TTL, EMAIL_UNDO_TTL, EmailChangeError, PendingEmail};
pub use lockout::{
    Attempt, LockoutPolicy, SecurityError, SecuritySettings, ThresholdOutOfRange, UnlockError,
    UnlockToken,
};
pub use password::{HashError, PasswordHasher, PasswordPolicy, PasswordProblem, Verification};
pub use phones::{
    MAX_PHONES, PhoneError, PhoneNumber, VERIFICATION_UNAVAILABLE, display_phone, parse_phone,
};
pub use profile::{MAX_NAME_PART_CHARS, PersonName, ProfileChange, known_time_zone};
pub use reauth::{ReauthError, ReauthLimit};
pub use recovery::{LinkProblem, ResetError};
pub use setup::{FirstStart, SetupError, SetupToken};

// The account records live with the store that reads and writes them.
pub use crate::store::account::{NewUser, ProfileRecord, User};
pub use crate::store::deletion::Deletion;
pub use crate::store::recovery::{EmailChange, EmailLink};

use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::store::{Store, StoreError};

/// Failure alerts to one account: at most one per this period (an attacker guessing
/// passwords must not flood the owner's mailbox).
pub const FAILURE_ALERT_PERIOD: time::Duration = time::Duration::minutes(15);

/// Longest display name accepted (a first and a last name of the longest length).
pub const MAX_NAME_CHARS: usize = 2 * MAX_NAME_PART_CHARS + 1;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("e-mail address {0}")]
    InvalidEmail(#[from] EmailProblem),
    #[error("name too long")]
    NameTooLong,
    #[error("password {0}")]
    WeakPassword(#[from] PasswordProblem),
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    /// Organizations need the user: their only legal representative or only member.
    #[error("still needed by: {}", .0.join(", "))]
    LastLegalRepresentative(Vec<String>),
    /// A language that pages and mails do not speak.
    #[error("unsupported locale")]
    UnsupportedLocale,
    /// A time zone that is not an IANA name this server knows.
    #[error("unknown time zone")]
    UnknownTimeZone,
    /// The current password did not confirm the change.
    #[error(transparent)]
    Reauth(#[from] ReauthError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AccountError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => AccountError::EmailTaken,
            other => AccountError::Store(other),
        }
    }
}

/// Why a password is being checked; failures are recorded under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    Login,
    PasswordChange,
    EmailChange,
    AccountDeletion,
}

impl PasswordCheck {
    /// A signed-in user confirming their own password (not a sign-in).
    pub fn is_reauthentication(self) -> bool {
        self != PasswordCheck::Login
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PasswordCheck::Login => "login",
            PasswordCheck::PasswordChange => "password_change",
            PasswordCheck::EmailChange => "email_change",
            PasswordCheck::AccountDeletion => "account_deletion",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown e-mail or wrong password: one answer for both.
    #[error("wrong e-mail or password")]
    WrongCredentials,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The account rules: creating users and checking passwords.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn Store>,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
    lockout: LockoutPolicy,
    /// What mails about the account need: the public URL, texts, link lifetime.
    mail: MailContext,
    /// The limit on re-checks of signed-in users' passwords.
    reauth: Arc<dyn ReauthLimit>,
}

/// What the account's mails need: links start at the configured issuer (never the request's
/// Host header), texts come in the user's language.
#[derive(Clone)]
pub struct MailContext {
    pub issuer: String,
    pub i18n: Arc<crate::i18n::I18n>,
    pub unlock_link_ttl: time::Duration,
    /// Lifetime of a forgotten-password link.
    pub password_reset_ttl: time::Duration,
}

impl Accounts {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        lockout: LockoutPolicy,
        mail: MailContext,
        reauth: Arc<dyn ReauthLimit>,
    ) -> Self {
        Self {
            store,
            hasher,
            policy,
            lockout,
            mail,
            reauth,
        }
    }

    pub fn lockout_policy(&self) -> LockoutPolicy {
        self.lockout
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Checks e-mail, name (one field, split at the first space) and password against the
    /// rules and hashes the password.
    pub async fn prepare_user(
        &self,
        email: &str,
        name: &str,
        password: &str,
        is_admin: bool,
        now: OffsetDateTime,
    ) -> Result<NewUser, AccountError> {
        let email = normalize_email(email)?;
        let name = PersonName::split(name)?;
        self.policy.check(password, &email)?;
        let password_hash = self.hasher.hash(password).await?;
        Ok(NewUser {
            id: Uuid::now_v7(),
            email,
            name: name.display(),
            given_name: name.given,
            family_name: name.family,
            password_hash: Some(password_hash),
            is_admin,
            lockout_threshold: self.lockout.default_threshold,
            created_at: now,
        })
    }

    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        password: &str,
        is_admin: bool,
        now: OffsetDateTime,
    ) -> Result<User, AccountError> {
        let new = self
            .prepare_user(email, name, password, is_admin, now)
            .await?;
        // Refuse a taken address before anything else is written; the unique index is the
        // final guard against a race.
        if self.store.user_by_email(&new.email).await?.is_some() {
            return Err(AccountError::EmailTaken);
        }
        Ok(self.store.insert_user(&new).await?)
    }

    pub async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.store.user_by_id(id).await
    }

    /// The account of an address, looked up without regard to case; `None` for a malformed
    /// address, which cannot have one.
    pub async fn by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        match normalize_email(email) {
            Ok(email) => self.store.user_by_email(&email).await,
            Err(_) => Ok(None),
        }
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.store.list_users().await
    }

    /// Checks an e-mail and password. An unknown address costs one argon2 verify, like a
    /// wrong password, and gets the same error. A failure on an existing account is
    /// recorded in its activity log; parameters that changed since the hash was made are
    /// applied by re-hashing on success.
    pub async fn check_password(
        &self,
        email: &str,
        password: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<User, LoginError> {
        // A malformed address cannot match an account; it still costs a verify.
        let user = self.by_email(email).await?;
        self.verify(user, password, PasswordCheck::Login, client, now)
            .await
    }

    /// Re-authentication of a signed-in user before a sensitive change (password, e-mail,
    /// deletion): the same verify, rehash and failure record as a login.
    pub async fn confirm_password(
        &self,
        user: &User,
        password: &str,
        purpose: PasswordCheck,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<User, LoginError> {
        self.verify(Some(user.clone()), password, purpose, client, now)
            .await
    }

    /// The one path every password check takes. The attempt is counted before argon2 runs;
    /// at sign-in a locked account (or one without a password, or no account) costs the
    /// same verify against the dummy hash and gets the same answer as a wrong password; a
    /// re-authentication refused by the lock gets that answer without any hash.
    async fn verify(
        &self,
        user: Option<User>,
        password: &str,
        purpose: PasswordCheck,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<User, LoginError> {
        // Every path runs the same statements (the counting UPDATE matches no row for an
        // unknown address) so that timing does not tell which addresses have accounts.
        let counted_id = match &user {
            Some(u) if u.password_hash.is_some() => u.id,
            _ => Uuid::nil(),
        };
        let attempt = match self.store.count_attempt(counted_id).await? {
            Some((n, threshold)) if !counted_id.is_nil() => Attempt::Counted { n, threshold },
            _ => Attempt::Refused,
        };
        let phc = match attempt {
            Attempt::Counted { .. } => user.as_ref().and_then(|u| u.password_hash.as_deref()),
            Attempt::Refused => None,
        };
        // A re-check of a signed-in user's own password on a locked account is answered
        // without argon2: the caller already owns the session, so the time saved tells them
        // nothing, while a hash per refused attempt would let one session keep the pool
        // busy. Sign-in (and anything else before a session) keeps the equal work.
        let skip_hash = attempt == Attempt::Refused && purpose.is_reauthentication();
        let checked = if skip_hash {
            Ok(Verification::Mismatch)
        } else {
            self.hasher.verify(password, phc).await
        };
        let verification = match checked {
            Ok(verification) => verification,
            Err(err) => {
                // Not checked (the pool is saturated): the attempt must not count, or a flood
                // could push the account to its threshold without a lock, and so without the
                // mail and the unlock that come with one.
                if let (Attempt::Counted { .. }, Some(u)) = (attempt, &user) {
                    self.store.release_attempt(u.id).await?;
                }
                return Err(err.into());
            }
        };
        let Some(user) = user else {
            // Recorded without the address typed (it is not an account, and could be a
            // password typed in the wrong field): the attempt, its origin, nothing else.
            let event = ActivityEvent::new(
                None,
                Action::LoginFailed,
                client,
                serde_json::json!({ "reason": "unknown_account", "method": "password" }),
                now,
            );
            self.store.record_failure(&event, None).await?;
            return Err(LoginError::WrongCredentials);
        };
        if let (Attempt::Counted { .. }, Verification::Match { rehashed }) =
            (attempt, &verification)
        {
            self.store.reset_attempts(user.id).await?;
            if let Some(fresh) = rehashed {
                self.store.set_password_hash(user.id, fresh, now).await?;
            }
            return Ok(user);
        }
        let reason = match attempt {
            Attempt::Counted { .. } => "wrong_password",
            Attempt::Refused if user.password_hash.is_none() => "no_password",
            Attempt::Refused => "locked",
        };
        let mut details = serde_json::json!({ "reason": reason, "method": "password" });
        if let Attempt::Counted { n, .. } = attempt {
            details["attempt"] = n.into();
        }
        let action = match purpose {
            PasswordCheck::Login => Action::LoginFailed,
            other => {
                details["for"] = other.as_str().into();
                Action::ReauthenticationFailed
            }
        };
        let event = ActivityEvent::new(Some(user.id), action, client, details, now);
        let alert = user.notify_on_failure.then(|| {
            (
                crate::mail::login_failed(&self.mail.i18n, &user, client, &self.mail.issuer, now),
                ActivityEvent::alert_sent(user.id, "login_failed", client, now),
            )
        });
        let since = now - FAILURE_ALERT_PERIOD;
        self.store
            .record_failure(
                &event,
                alert.as_ref().map(|(mail, sent)| (mail, sent, since)),
            )
            .await?;
        if attempt.locks_on_failure() {
            self.lock(&user, client, now).await?;
        }
        Err(LoginError::WrongCredentials)
    }
}
