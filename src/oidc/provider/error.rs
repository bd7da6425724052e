//! The OAuth error answer of the provider's flows (RFC 6749 §5.2 and friends).

use crate::store::StoreError;

/// An OAuth error response (RFC 6749 §5.2 and friends). `status` is the HTTP status code.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", description)
    }

    pub fn invalid_client() -> Self {
        Self::new(401, "invalid_client", "client authentication failed")
    }

    pub fn server() -> Self {
        Self::new(500, "server_error", "the request could not be completed")
    }
}

impl From<StoreError> for OAuthError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "store failure in the OIDC provider");
        Self::new(503, "temporarily_unavailable", "try again shortly")
    }
}
