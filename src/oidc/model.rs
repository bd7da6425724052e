//! What the provider stores: clients, codes, grants (token families), refresh tokens,
//! consents and queued back-channel logouts. The records live with the store that reads and
//! writes them (`store::oidc`, `store::consents`, `store::logouts`); they keep their paths here.

pub use crate::store::consents::Consent;
pub use crate::store::logouts::{LogoutCounts, QueuedLogout};
pub use crate::store::oidc::{
    AccessTokenState, AuthorizationCode, Client, ClientAuthMethod, CodeRedemption,
    DEAD_LOGOUT_RETENTION, GrantState, IssueRecord, NewRefreshToken, RefreshUse, SessionMethod,
    SessionTimes,
};
