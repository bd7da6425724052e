//! RP-initiated logout (OIDC RP-Initiated Logout 1.0).

use std::collections::HashMap;

use super::{Provider, append_query};
use crate::oidc::claims;

/// A checked RP-initiated logout request.
#[derive(Debug)]
pub struct LogoutRequest {
    pub client_name: Option<String>,
    pub hint_subject: Option<String>,
    pub hint_session: Option<String>,
    /// Where to send the browser afterwards (`state` appended).
    pub redirect: Option<String>,
}

impl Provider {
    /// Validates an RP-initiated logout request (OIDC RP-Initiated Logout 1.0 §2). The
    /// `id_token_hint` may be expired but must be ours; a `post_logout_redirect_uri` must be
    /// registered for the client it names.
    pub async fn logout_request(
        &self,
        params: &HashMap<String, String>,
    ) -> Result<LogoutRequest, &'static str> {
        #[derive(serde::Deserialize)]
        struct Hint {
            aud: Audience,
            sub: String,
            sid: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Audience {
            One(String),
            Many(Vec<String>),
        }
        let hint = match params.get("id_token_hint") {
            Some(token) => Some(
                claims::verify_own::<Hint>(&self.keys, &self.issuer, token, None, None, None)
                    .map_err(|_| "oidc-error-id-token-hint")?,
            ),
            None => None,
        };
        let hint_client = hint.as_ref().and_then(|h| match &h.aud {
            Audience::One(a) => Some(a.clone()),
            Audience::Many(v) => v.first().cloned(),
        });
        let client_id = match (params.get("client_id"), hint_client) {
            (Some(given), Some(from_hint)) if *given != from_hint => {
                return Err("oidc-error-invalid-request");
            }
            (Some(given), _) => Some(given.clone()),
            (None, from_hint) => from_hint,
        };
        let client = match client_id {
            Some(id) => Some(
                self.client(&id)
                    .await
                    .map_err(|_| "oidc-error-unavailable")?
                    .ok_or("oidc-error-unknown-client")?,
            ),
            None => None,
        };
        let redirect = match params.get("post_logout_redirect_uri") {
            None => None,
            Some(uri) => {
                let registered = client
                    .as_ref()
                    .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
                if !registered {
                    return Err("oidc-error-redirect-uri");
                }
                let mut pairs = Vec::new();
                if let Some(state) = params.get("state") {
                    pairs.push(("state", state.clone()));
                }
                Some(append_query(uri, &pairs))
            }
        };
        Ok(LogoutRequest {
            client_name: client.map(|c| c.name),
            hint_subject: hint.as_ref().map(|h| h.sub.clone()),
            hint_session: hint.and_then(|h| h.sid),
            redirect,
        })
    }
}
