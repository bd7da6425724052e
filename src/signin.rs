//! Signing in with a password, in one place: the account looked up once and its password
//! checked (`accounts`), an organization's "SSO only" rule (`federation`), then the session
//! started with the owner's login alert (`sessions`). Pages map each outcome to an answer
//! and to the login metrics; the order of the steps is decided here.

use time::OffsetDateTime;

use crate::accounts::{Accounts, FirstStart, LoginError, SetupError, User};
use crate::audit::ClientInfo;
use crate::federation::Federation;
use crate::sessions::{Sessions, SignInMethod};
use crate::tokens::OpaqueToken;

/// How a password sign-in ended, when nothing failed on the way.
pub enum PasswordSignIn {
    /// A session started: the cookie's value (only its digest is stored).
    SignedIn { user: Box<User>, token: OpaqueToken },
    /// Unknown address, wrong password or a locked account: one answer for all.
    WrongCredentials,
    /// The right password, but the address's organization allows its members SSO only
    /// (recorded as a failed login).
    SsoRequired,
}

/// The sign-in service.
#[derive(Clone)]
pub struct SignIn {
    accounts: Accounts,
    first_start: FirstStart,
    federation: Federation,
    sessions: Sessions,
}

impl SignIn {
    pub fn new(
        accounts: Accounts,
        first_start: FirstStart,
        federation: Federation,
        sessions: Sessions,
    ) -> Self {
        Self {
            accounts,
            first_start,
            federation,
            sessions,
        }
    }

    /// A sign-in with e-mail and password. The password is checked before the SSO rule is
    /// looked at, so that the "SSO only" answer tells nothing to whoever lacks the password.
    pub async fn with_password(
        &self,
        email: &str,
        password: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<PasswordSignIn, LoginError> {
        let user = match self
            .accounts
            .check_password(email, password, client, now)
            .await
        {
            Ok(user) => user,
            Err(LoginError::WrongCredentials) => return Ok(PasswordSignIn::WrongCredentials),
            Err(other) => return Err(other),
        };
        if self.federation.password_refused(&user, client, now).await? {
            return Ok(PasswordSignIn::SsoRequired);
        }
        let (token, _) = self
            .sessions
            .start(&user, SignInMethod::Password, client, now)
            .await?;
        Ok(PasswordSignIn::SignedIn {
            user: Box::new(user),
            token,
        })
    }

    /// The first administrator, created through the setup link, signed in at once. Returns
    /// the session cookie's value.
    pub async fn first_administrator(
        &self,
        link: &str,
        email: &str,
        name: &str,
        password: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<OpaqueToken, SetupError> {
        let user = self
            .first_start
            .complete(link, email, name, password, client, now)
            .await?;
        let (token, _) = self
            .sessions
            .start(&user, SignInMethod::Password, client, now)
            .await?;
        Ok(token)
    }
}
