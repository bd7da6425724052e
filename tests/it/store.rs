//! The store conformance suite: the same assertions on SQLite and PostgreSQL.

use std::sync::Arc;

use gotthard::accounts::{NewUser, SetupToken};
use gotthard::audit::{Action, ActivityEvent, ClientInfo};
use gotthard::orgs::{Membership, OrgRole, Organization};
use gotthard::sessions::{NewSession, SignInMethod};
use gotthard::store::{Store, StoreError, connect};
use gotthard::tokens::OpaqueToken;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::support::databases;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn new_user(email: &str, at: OffsetDateTime) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        email: email.to_string(),
        name: "Ada".to_string(),
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

#[tokio::test]
async fn users_are_unique_by_email_and_round_trip() {
    for (store, db) in each_store().await {
        let at = now();
        let created = store
            .insert_user(&new_user("ada@example.com", at))
            .await
            .unwrap();
        assert_eq!(created.email, "ada@example.com", "{}", db.backend);
        assert_eq!(
            created.created_at, at,
            "{}: UTC timestamps round-trip",
            db.backend
        );
        assert_eq!(created.failed_attempts, 0);
        assert_eq!(created.lockout_threshold, 10);
        assert!(!created.is_admin);

        let dup = store.insert_user(&new_user("ada@example.com", at)).await;
        assert!(matches!(dup, Err(StoreError::Conflict)), "{}", db.backend);

        store
            .insert_user(&new_user("bob@example.com", at))
            .await
            .unwrap();
        assert_eq!(store.count_users().await.unwrap(), 2);
        let emails: Vec<_> = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.email)
            .collect();
        assert_eq!(emails, ["ada@example.com", "bob@example.com"]);

        let by_id = store.user_by_id(created.id).await.unwrap().unwrap();
        assert_eq!(by_id.email, "ada@example.com");
        assert!(
            store
                .user_by_email("nobody@example.com")
                .await
                .unwrap()
                .is_none()
        );

        store
            .set_password_hash(created.id, "$argon2id$new", at + Duration::seconds(5))
            .await
            .unwrap();
        let updated = store
            .user_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.password_hash.as_deref(), Some("$argon2id$new"));
        assert_eq!(updated.updated_at, at + Duration::seconds(5));
    }
}

#[tokio::test]
async fn memberships_carry_roles_and_can_change() {
    for (store, db) in each_store().await {
        let at = now();
        let user = store
            .insert_user(&new_user("ada@example.com", at))
            .await
            .unwrap();
        let org = Organization {
            id: Uuid::now_v7(),
            name: "Acme".into(),
            created_at: at,
        };
        store.insert_org(&org).await.unwrap();
        let dup = Organization {
            id: Uuid::now_v7(),
            ..org.clone()
        };
        assert!(matches!(
            store.insert_org(&dup).await,
            Err(StoreError::Conflict)
        ));

        let mut membership = Membership {
            org_id: org.id,
            user_id: user.id,
            role: OrgRole::Member,
            created_at: at,
        };
        store.put_membership(&membership).await.unwrap();
        membership.role = OrgRole::LegalRepresentative;
        store.put_membership(&membership).await.unwrap();

        let members = store.members_of_org(org.id).await.unwrap();
        assert_eq!(members.len(), 1, "{}", db.backend);
        assert_eq!(members[0].role, OrgRole::LegalRepresentative);
        let orgs = store.orgs_of_user(user.id).await.unwrap();
        assert_eq!(orgs.len(), 1);
        assert_eq!(orgs[0].0.name, "Acme");
        assert_eq!(store.org_by_name("Acme").await.unwrap().unwrap().id, org.id);
        assert_eq!(store.list_orgs().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn sessions_are_found_by_digest_and_end_once() {
    for (store, db) in each_store().await {
        let at = now();
        let user = store
            .insert_user(&new_user("ada@example.com", at))
            .await
            .unwrap();
        let token = OpaqueToken::generate();
        let session = NewSession {
            id: Uuid::now_v7(),
            user_id: user.id,
            token_digest: token.digest(),
            method: SignInMethod::Password,
            sso_org_id: None,
            ip: "192.0.2.7".into(),
            user_agent: "TestAgent/1.0".into(),
            created_at: at,
        };
        store
            .start_session(&session, &event(user.id, Action::LoginSucceeded, at), None)
            .await
            .unwrap();
        let (found, owner) = store
            .session_by_digest(&token.digest())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, session.id, "{}", db.backend);
        assert_eq!(
            owner.email, "ada@example.com",
            "the session comes with its user"
        );
        assert_eq!(found.method, "password");
        assert_eq!(found.last_seen_at, at);
        assert!(
            store
                .session_by_digest(&OpaqueToken::generate().digest())
                .await
                .unwrap()
                .is_none()
        );

        let later = at + Duration::seconds(30);
        assert!(
            store
                .end_session(
                    user.id,
                    session.id,
                    "logout",
                    &event(user.id, Action::Logout, later)
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .end_session(
                    user.id,
                    session.id,
                    "logout",
                    &event(user.id, Action::Logout, later)
                )
                .await
                .unwrap(),
            "a session ends once"
        );
        assert!(
            store
                .session_by_digest(&token.digest())
                .await
                .unwrap()
                .is_none()
        );
        // The login event came with the session, the logout event with its end (once).
        let actions: Vec<_> = store
            .recent_events(user.id, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["logout", "login.succeeded"], "{}", db.backend);
    }
}

#[tokio::test]
async fn recent_events_are_newest_first_and_limited() {
    for (store, db) in each_store().await {
        let at = now();
        let user = store
            .insert_user(&new_user("ada@example.com", at))
            .await
            .unwrap();
        for i in 0..5 {
            store
                .record_event(&event(
                    user.id,
                    Action::LoginFailed,
                    at + Duration::seconds(i),
                ))
                .await
                .unwrap();
        }
        // Two events in the same second are ordered by their UUIDv7.
        let last = event(user.id, Action::LoginSucceeded, at + Duration::seconds(4));
        store.record_event(&last).await.unwrap();
        let events = store.recent_events(user.id, 3).await.unwrap();
        assert_eq!(events.len(), 3, "{}", db.backend);
        assert_eq!(events[0].id, last.id);
        assert_eq!(events[0].details, r#"{"k":"v"}"#);
        assert_eq!(events[1].created_at, at + Duration::seconds(4));
        assert_eq!(events[2].created_at, at + Duration::seconds(3));
    }
}

#[tokio::test]
async fn setup_token_is_single_use_expires_and_voids_older_ones() {
    for (store, db) in each_store().await {
        let at = now();
        let old = OpaqueToken::generate();
        let token = OpaqueToken::generate();
        let stored = |t: &OpaqueToken, expires: OffsetDateTime| SetupToken {
            digest: t.digest(),
            created_at: at,
            expires_at: expires,
            used_at: None,
        };
        let admin = |email: &str| {
            let user = NewUser {
                is_admin: true,
                ..new_user(email, at)
            };
            let created = event(user.id, Action::AccountCreated, at);
            (user, created)
        };
        // An expired token is refused, and nothing is written.
        let stale = OpaqueToken::generate();
        store
            .replace_setup_token(&stored(&stale, at - Duration::seconds(1)))
            .await
            .unwrap();
        let (c, c_event) = admin("c@example.com");
        let refused = store.complete_setup(&stale.digest(), &c, &c_event).await;
        assert!(
            matches!(refused, Err(StoreError::TokenUnusable)),
            "{}",
            db.backend
        );
        assert_eq!(store.count_users().await.unwrap(), 0);

        store
            .replace_setup_token(&stored(&old, at + Duration::hours(1)))
            .await
            .unwrap();
        store
            .replace_setup_token(&stored(&token, at + Duration::hours(1)))
            .await
            .unwrap();
        assert!(
            store.setup_token(&old.digest()).await.unwrap().is_none(),
            "{}",
            db.backend
        );

        // Two racing completions: exactly one creates the administrator.
        let ((a_user, a_event), (b_user, b_event)) =
            (admin("a@example.com"), admin("b@example.com"));
        let digest = token.digest();
        let (a, b) = tokio::join!(
            store.complete_setup(&digest, &a_user, &a_event),
            store.complete_setup(&digest, &b_user, &b_event),
        );
        assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1, "{}", db.backend);
        assert!(matches!(
            a.err().or(b.err()),
            Some(StoreError::TokenUnusable)
        ));
        assert_eq!(store.count_users().await.unwrap(), 1);
        assert!(
            store
                .setup_token(&token.digest())
                .await
                .unwrap()
                .unwrap()
                .used_at
                .is_some()
        );
    }
}

#[tokio::test]
async fn sessions_are_listed_touched_ended_by_owner_and_pruned() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = store
            .insert_user(&new_user("ada@example.com", at))
            .await
            .unwrap();
        let eve = store
            .insert_user(&new_user("eve@example.com", at))
            .await
            .unwrap();
        let mut ids = Vec::new();
        for (i, owner) in [ada.id, ada.id, ada.id, eve.id].into_iter().enumerate() {
            let session = NewSession {
                id: Uuid::now_v7(),
                user_id: owner,
                token_digest: OpaqueToken::generate().digest(),
                method: SignInMethod::Password,
                sso_org_id: None,
                ip: format!("192.0.2.{i}"),
                user_agent: "TestAgent/1.0".into(),
                created_at: at + Duration::seconds(i as i64),
            };
            store
                .start_session(&session, &event(owner, Action::LoginSucceeded, at), None)
                .await
                .unwrap();
            ids.push(session.id);
        }
        let listed: Vec<_> = store
            .sessions_of_user(ada.id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(
            listed,
            [ids[2], ids[1], ids[0]],
            "{}: newest first",
            db.backend
        );

        // Touch writes only when the last write is old enough.
        let later = at + Duration::seconds(90);
        store
            .touch_session(ids[0], "198.51.100.1", later, later - Duration::seconds(60))
            .await
            .unwrap();
        store
            .touch_session(
                ids[0],
                "198.51.100.2",
                later + Duration::seconds(5),
                later - Duration::seconds(55),
            )
            .await
            .unwrap();
        let touched = store
            .sessions_of_user(ada.id)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.id == ids[0])
            .unwrap();
        assert_eq!(touched.last_seen_at, later, "{}", db.backend);
        assert_eq!(touched.ip, "198.51.100.1");

        // Another user's session is not touched by ada's end calls.
        let ended = store
            .end_session(
                ada.id,
                ids[3],
                "owner",
                &event(ada.id, Action::SessionEnded, later),
            )
            .await
            .unwrap();
        assert!(!ended, "{}", db.backend);
        assert_eq!(store.sessions_of_user(eve.id).await.unwrap().len(), 1);
        let n = store
            .end_other_sessions(
                ada.id,
                ids[1],
                "owner",
                &event(ada.id, Action::SessionEnded, later),
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
        let left: Vec<_> = store
            .sessions_of_user(ada.id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(left, [ids[1]]);
        assert_eq!(store.sessions_of_user(eve.id).await.unwrap().len(), 1);

        // Pruning deletes the ended ones and those idle too long, in batches.
        let pruned = store
            .prune_sessions(at + Duration::seconds(3), at - Duration::days(1), 1)
            .await
            .unwrap();
        assert_eq!(pruned, 1, "{}: one batch of one", db.backend);
        let mut total = pruned;
        loop {
            let n = store
                .prune_sessions(at + Duration::seconds(3), at - Duration::days(1), 1)
                .await
                .unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        // ids[0] and ids[2] ended, ids[1] idle since `at + 1s`; eve's (`at + 3s`) stays.
        assert_eq!(total, 3, "{}", db.backend);
        assert_eq!(db.count("sessions").await, 1);
    }
}
