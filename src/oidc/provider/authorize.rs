//! The authorization endpoint: checking the request, the next step for the browser,
//! consent, codes and error redirects.

use std::collections::{BTreeSet, HashMap};

use serde_json::json;
use time::OffsetDateTime;

use super::{ADMIN_SCOPE, Provider, SCOPES, app_event, append_query};
use crate::accounts::User;
use crate::audit::{Action, ClientInfo};
use crate::oidc::claims;
use crate::oidc::model::{AuthorizationCode, Client, Consent};
use crate::sessions::Session;
use crate::store::StoreError;
use crate::tokens::OpaqueToken;

/// A validated authorization request (client and redirect URI verified).
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: BTreeSet<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    /// [`LOGIN_AFTER`]: a `prompt=login` already answered with the login form, resumed; the
    /// session must have begun at or after this time (Unix seconds).
    pub login_after: Option<i64>,
}

/// The parameter that replaces `prompt=login` in a resumed authorization request, so that
/// the sign-in it asked for is required of the session (and of Entra ID through SSO)
/// without asking again after it.
pub const LOGIN_AFTER: &str = "gotthard_login_after";

impl AuthorizeRequest {
    pub fn scope_string(&self) -> String {
        self.scope.join(" ")
    }

    /// Whether the relying app asked for a fresh sign-in (`prompt=login`, now or before the
    /// login form it led to).
    pub fn wants_fresh_login(&self) -> bool {
        self.prompt.contains("login") || self.login_after.is_some()
    }
}

/// Why an authorization request fails.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Client or redirect URI not verified: shown on our own page, never redirected.
    Page(&'static str),
    /// Reported to the client at its verified redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// What to do with a valid authorization request for the browser at hand.
#[derive(Debug)]
pub enum AuthorizeStep {
    /// Show the login form, then come back with this query (without `prompt=login`).
    Login { resume_query: String },
    /// Ask the user to allow the client.
    Consent,
    /// Issue a code.
    Issue,
}

impl Provider {
    /// Validates an authorization request given as its parameters (query or form). The
    /// client and redirect URI are checked first; only then do errors go back to it.
    pub async fn authorization_request(
        &self,
        params: &[(String, String)],
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        let mut map: HashMap<&str, &str> = HashMap::new();
        let mut duplicated = None;
        for (name, value) in params {
            if value.len() > 2048 {
                return Err(AuthorizeError::Page("oidc-error-invalid-request"));
            }
            if map.insert(name.as_str(), value.as_str()).is_some() {
                duplicated = Some(name.clone());
            }
        }
        let client_id = map.get("client_id").copied().unwrap_or_default();
        let client = match self.client(client_id).await {
            Ok(Some(client)) => client,
            Ok(None) => return Err(AuthorizeError::Page("oidc-error-unknown-client")),
            Err(_) => return Err(AuthorizeError::Page("oidc-error-unavailable")),
        };
        let redirect_uri = map.get("redirect_uri").copied().unwrap_or_default();
        if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
            return Err(AuthorizeError::Page("oidc-error-redirect-uri"));
        }
        if duplicated.as_deref() == Some("client_id")
            || duplicated.as_deref() == Some("redirect_uri")
        {
            return Err(AuthorizeError::Page("oidc-error-invalid-request"));
        }
        let state = map.get("state").map(|s| s.to_string());
        let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.to_string(),
            state: state.clone(),
            error,
            description: description.to_string(),
        };
        if let Some(name) = duplicated {
            return Err(fail(
                "invalid_request",
                &format!("parameter {name} repeated"),
            ));
        }
        if map.contains_key("request") {
            return Err(fail(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        if map.contains_key("request_uri") {
            return Err(fail(
                "request_uri_not_supported",
                "request_uri is not supported",
            ));
        }
        match map.get("response_type").copied() {
            Some("code") => {}
            None => return Err(fail("invalid_request", "response_type is required")),
            Some(_) => {
                return Err(fail(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ));
            }
        }
        if let Some(mode) = map.get("response_mode")
            && *mode != "query"
        {
            return Err(fail(
                "invalid_request",
                "only response_mode=query is supported",
            ));
        }
        let scope: Vec<String> = {
            let mut seen = BTreeSet::new();
            map.get("scope")
                .unwrap_or(&"")
                .split(' ')
                .filter(|s| SCOPES.contains(s) && seen.insert(*s))
                .map(str::to_string)
                .collect()
        };
        if scope.is_empty() {
            return Err(fail("invalid_scope", "no supported scope requested"));
        }
        if scope.iter().any(|s| s == ADMIN_SCOPE) && !client.admin_scope {
            return Err(fail(
                "invalid_scope",
                "this client is not registered for the admin scope",
            ));
        }
        let code_challenge = map.get("code_challenge").map(|s| s.to_string());
        match (map.get("code_challenge_method").copied(), &code_challenge) {
            (Some("S256"), Some(c)) if claims::valid_pkce_value(c) => {}
            (Some("S256"), _) => return Err(fail("invalid_request", "invalid code_challenge")),
            (Some(_), _) => {
                return Err(fail(
                    "invalid_request",
                    "only code_challenge_method=S256 is supported",
                ));
            }
            // RFC 7636 defaults a missing method to `plain`, which is refused.
            (None, Some(_)) => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method=S256 is required",
                ));
            }
            (None, None) if client.require_pkce => {
                return Err(fail(
                    "invalid_request",
                    "PKCE (S256) is required for this client",
                ));
            }
            (None, None) => {}
        }
        let prompt: BTreeSet<String> = map
            .get("prompt")
            .unwrap_or(&"")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if prompt
            .iter()
            .any(|p| !matches!(p.as_str(), "none" | "login" | "consent"))
        {
            return Err(fail("invalid_request", "unsupported prompt value"));
        }
        if prompt.contains("none") && prompt.len() > 1 {
            return Err(fail("invalid_request", "prompt=none cannot be combined"));
        }
        let max_age =
            match map.get("max_age") {
                None => None,
                Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    fail("invalid_request", "max_age must be a number of seconds")
                })?),
            };
        Ok(AuthorizeRequest {
            client,
            redirect_uri: redirect_uri.to_string(),
            scope,
            state,
            nonce: map.get("nonce").map(|s| s.to_string()),
            code_challenge,
            prompt,
            max_age,
            login_hint: map.get("login_hint").map(|s| s.to_string()),
            ui_locales: map.get("ui_locales").map(|s| s.to_string()),
            login_after: map.get(LOGIN_AFTER).and_then(|t| t.parse().ok()),
        })
    }

    /// Decides what the browser needs before a code can be issued.
    pub async fn next_step(
        &self,
        request: &AuthorizeRequest,
        params: &[(String, String)],
        signed_in: Option<(&Session, &User)>,
        now: OffsetDateTime,
    ) -> Result<AuthorizeStep, AuthorizeError> {
        let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            state: request.state.clone(),
            error,
            description: description.to_string(),
        };
        let none = request.prompt.contains("none");
        let stale = |session: &Session| {
            request
                .max_age
                .is_some_and(|max| now - session.created_at > time::Duration::seconds(max))
                || request
                    .login_after
                    .is_some_and(|t| session.created_at.unix_timestamp() < t)
        };
        let resume_query = || {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if request.prompt.contains("login") {
                query.append_pair(LOGIN_AFTER, &now.unix_timestamp().to_string());
            }
            for (name, value) in params {
                if name == LOGIN_AFTER && request.prompt.contains("login") {
                    continue;
                }
                if name == "prompt" {
                    let rest: Vec<&str> = value
                        .split(' ')
                        .filter(|p| *p != "login" && !p.is_empty())
                        .collect();
                    if !rest.is_empty() {
                        query.append_pair(name, &rest.join(" "));
                    }
                } else {
                    query.append_pair(name, value);
                }
            }
            query.finish()
        };
        let Some((session, user)) = signed_in else {
            if none {
                return Err(fail("login_required", "the user is not signed in"));
            }
            return Ok(AuthorizeStep::Login {
                resume_query: resume_query(),
            });
        };
        if request.prompt.contains("login") || stale(session) {
            if none {
                return Err(fail("login_required", "a fresh sign-in is required"));
            }
            return Ok(AuthorizeStep::Login {
                resume_query: resume_query(),
            });
        }
        // Administration is never granted silently: asked every time, even of first-party
        // clients and when allowed before.
        let admin = request.scope.iter().any(|s| s == ADMIN_SCOPE);
        if admin && none {
            return Err(fail(
                "consent_required",
                "the admin scope needs the user's consent each time",
            ));
        }
        if request.prompt.contains("consent") || admin {
            return Ok(AuthorizeStep::Consent);
        }
        if !request.client.first_party {
            let granted = self.store.consent(user.id, &request.client.id).await;
            let granted = granted.map_err(|_| fail("temporarily_unavailable", "try again"))?;
            let covered = granted.is_some_and(|g| {
                let g: BTreeSet<&str> = g.split(' ').collect();
                request.scope.iter().all(|s| g.contains(s.as_str()))
            });
            if !covered {
                if none {
                    return Err(fail(
                        "consent_required",
                        "the user has not allowed this client",
                    ));
                }
                return Ok(AuthorizeStep::Consent);
            }
        }
        Ok(AuthorizeStep::Issue)
    }

    /// Remembers the user's consent to the requested scopes.
    pub async fn grant_consent(
        &self,
        request: &AuthorizeRequest,
        user: &User,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let event = app_event(
            Some(user.id),
            Action::ConsentGranted,
            &request.client,
            json!({ "client_id": request.client.id, "scope": request.scope_string() }),
            client_info,
            now,
        );
        self.store
            .put_consent(user.id, &request.client.id, &request.scope_string(), &event)
            .await
    }

    pub async fn consents(&self, user: &User) -> Result<Vec<Consent>, StoreError> {
        self.store.consents_of_user(user.id).await
    }

    /// Forgets a consent and stops the tokens given under it.
    pub async fn revoke_consent(
        &self,
        user: &User,
        client_id: &str,
        client_info: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Some(client) = self.client(client_id).await? else {
            return Ok(false);
        };
        let event = app_event(
            Some(user.id),
            Action::ConsentRevoked,
            &client,
            json!({ "client_id": client.id }),
            client_info,
            now,
        );
        self.store.revoke_consent(user.id, &client.id, &event).await
    }

    /// Issues a code; returns the URL to send the browser to.
    pub async fn issue_code(
        &self,
        request: &AuthorizeRequest,
        session: &Session,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        let code = OpaqueToken::generate();
        self.store
            .insert_code(&AuthorizationCode {
                digest: code.digest(),
                client_id: request.client.id.clone(),
                user_id: session.user_id,
                session_id: session.id,
                redirect_uri: request.redirect_uri.clone(),
                scope: request.scope_string(),
                nonce: request.nonce.clone(),
                code_challenge: request.code_challenge.clone(),
                auth_time: session.created_at,
                created_at: now,
                expires_at: now + self.config.code_ttl(),
            })
            .await?;
        let mut pairs = vec![("code", code.as_str().to_string())];
        if let Some(state) = &request.state {
            pairs.push(("state", state.clone()));
        }
        // RFC 9207: the issuer identifies the response's origin (mix-up defence).
        pairs.push(("iss", self.issuer.clone()));
        Ok(append_query(&request.redirect_uri, &pairs))
    }

    /// The URL that reports an authorization error to a verified redirect URI.
    pub fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &str,
        description: &str,
    ) -> String {
        let mut pairs = vec![
            ("error", error.to_string()),
            ("error_description", description.to_string()),
        ];
        if let Some(state) = state {
            pairs.push(("state", state.to_string()));
        }
        pairs.push(("iss", self.issuer.clone()));
        append_query(redirect_uri, &pairs)
    }
}
