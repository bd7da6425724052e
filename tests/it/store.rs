//! The store conformance suite: the same assertions on SQLite and PostgreSQL, one file per
//! store trait (`store/*.rs`); `store/coverage.rs` fails when a store method is never called.

use std::sync::Arc;

use gotthard::accounts::{NewUser, User};
use gotthard::audit::{Action, ActivityEvent, ClientInfo};
use gotthard::mail::NewMail;
use gotthard::oidc::{AuthorizationCode, Client, ClientAuthMethod, CodeRedemption};
use gotthard::orgs::Organization;
use gotthard::sessions::{NewSession, SignInMethod};
use gotthard::store::{Store, connect};
use gotthard::tokens::{OpaqueToken, SigningAlg, TokenDigest};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::support::databases;

mod accounts;
mod activity;
mod avatars;
mod backends;
mod consents;
mod coverage;
mod domains;
mod lockout;
mod logouts;
mod oidc;
mod organizations;
mod outbox;
mod phones;
mod recovery;
mod sessions;
mod sso;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn new_user(email: &str, at: OffsetDateTime) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        email: email.to_string(),
        name: "Ada".to_string(),
        given_name: "Ada".to_string(),
        family_name: String::new(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_string()),
        is_admin: false,
        lockout_threshold: 10,
        created_at: at,
    }
}

fn event(user: Uuid, action: Action, at: OffsetDateTime) -> ActivityEvent {
    ActivityEvent::new(
        Some(user),
        action,
        &ClientInfo::new("192.0.2.7", "TestAgent/1.0"),
        serde_json::json!({ "k": "v" }),
        at,
    )
}

/// An event of no user (an operator's change, an unknown address).
fn anonymous_event(action: Action, at: OffsetDateTime) -> ActivityEvent {
    ActivityEvent::new(
        None,
        action,
        &ClientInfo::new("192.0.2.7", "TestAgent/1.0"),
        serde_json::json!({}),
        at,
    )
}

fn mail(to: &str, at: OffsetDateTime) -> NewMail {
    NewMail {
        id: Uuid::now_v7(),
        recipient: to.to_string(),
        subject: "Subject".to_string(),
        body_text: "Text".to_string(),
        body_html: Some("<p>Text</p>".to_string()),
        created_at: at,
    }
}

async fn each_store() -> Vec<(Arc<dyn Store>, crate::support::TestDb)> {
    let mut stores = Vec::new();
    for db in databases().await {
        let store = connect(&db.url, 5).await.unwrap();
        store.migrate().await.unwrap();
        // Migrations are idempotent: a second run is a no-op.
        store.migrate().await.unwrap();
        stores.push((store, db));
    }
    stores
}

async fn add_user(store: &dyn Store, email: &str, at: OffsetDateTime) -> User {
    store.insert_user(&new_user(email, at)).await.unwrap()
}

async fn add_org(store: &dyn Store, name: &str, at: OffsetDateTime) -> Organization {
    let org = Organization {
        id: Uuid::now_v7(),
        name: name.to_string(),
        created_at: at,
    };
    store.insert_org(&org).await.unwrap();
    org
}

/// Starts a password session of `user` (an SSO one through `sso_org`); its id and cookie.
async fn start(
    store: &dyn Store,
    user: Uuid,
    sso_org: Option<Uuid>,
    at: OffsetDateTime,
) -> (Uuid, OpaqueToken) {
    let token = OpaqueToken::generate();
    let session = NewSession {
        id: Uuid::now_v7(),
        user_id: user,
        token_digest: token.digest(),
        method: if sso_org.is_some() {
            SignInMethod::Sso
        } else {
            SignInMethod::Password
        },
        sso_org_id: sso_org,
        ip: "192.0.2.7".into(),
        user_agent: "TestAgent/1.0".into(),
        created_at: at,
    };
    let started = event(user, Action::LoginSucceeded, at);
    store.start_session(&session, &started, None).await.unwrap();
    (session.id, token)
}

/// A confidential client; `backchannel` is its back-channel logout URI.
fn client(id: &str, name: &str, backchannel: Option<&str>, at: OffsetDateTime) -> Client {
    Client {
        id: id.to_string(),
        name: name.to_string(),
        secret_hash: Some(TokenDigest::of("client-secret")),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        jwks: None,
        redirect_uris: vec![format!("https://{id}.example/callback")],
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: backchannel.map(str::to_string),
        first_party: false,
        require_pkce: true,
        id_token_alg: SigningAlg::Rs256,
        admin_scope: false,
        created_at: at,
        introspect_for: vec![],
    }
}

/// An authorization code of `client_id` for `user` in `session`, valid for `ttl`.
fn code(
    client_id: &str,
    user: Uuid,
    session: Uuid,
    at: OffsetDateTime,
    ttl: Duration,
) -> (OpaqueToken, AuthorizationCode) {
    let token = OpaqueToken::generate();
    let code = AuthorizationCode {
        digest: token.digest(),
        client_id: client_id.to_string(),
        user_id: user,
        session_id: session,
        redirect_uri: format!("https://{client_id}.example/callback"),
        scope: "openid email".to_string(),
        nonce: Some("n-0S6_WzA2Mj".to_string()),
        code_challenge: None,
        auth_time: at,
        created_at: at,
        expires_at: at + ttl,
    };
    (token, code)
}

/// A grant of `client_id` for `user` under `session`, started as the token endpoint does:
/// a code inserted and redeemed.
async fn add_grant(
    store: &dyn Store,
    client_id: &str,
    user: Uuid,
    session: Uuid,
    at: OffsetDateTime,
) -> Uuid {
    let (token, code) = code(client_id, user, session, at, Duration::minutes(1));
    store.insert_code(&code).await.unwrap();
    let grant = Uuid::now_v7();
    let redeemed = store.redeem_code(&token.digest(), grant, at).await.unwrap();
    assert!(matches!(redeemed, CodeRedemption::Redeemed(_)));
    grant
}
