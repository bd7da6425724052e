//! The OAuth error that the provider's flows return (RFC 6749 §5.2 and friends). It says
//! what went wrong, in the RFC's words; the HTTP adapter chooses the status.

use crate::store::StoreError;

/// The RFC 6749 error codes (§4.1.2.1, §5.2) that the provider answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorKind {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// A failure on our side.
    ServerError,
    /// The store is unreachable for now; the client may retry.
    TemporarilyUnavailable,
}

impl OAuthErrorKind {
    /// The `error` code of the answer.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// An OAuth error answer: its kind and a description for the developer of the client.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub kind: OAuthErrorKind,
    pub description: String,
}

impl OAuthError {
    pub fn new(kind: OAuthErrorKind, description: impl Into<String>) -> Self {
        Self {
            kind,
            description: description.into(),
        }
    }

    /// The `error` code of the answer (RFC 6749 §5.2).
    pub fn error(&self) -> &'static str {
        self.kind.code()
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidRequest, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidGrant, description)
    }

    pub fn invalid_client() -> Self {
        Self::new(
            OAuthErrorKind::InvalidClient,
            "client authentication failed",
        )
    }

    pub fn server() -> Self {
        Self::new(
            OAuthErrorKind::ServerError,
            "the request could not be completed",
        )
    }
}

impl From<StoreError> for OAuthError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "store failure in the OIDC provider");
        Self::new(OAuthErrorKind::TemporarilyUnavailable, "try again shortly")
    }
}
