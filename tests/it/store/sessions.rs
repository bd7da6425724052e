//! `SessionStore`: browser sessions started, found, touched, ended, pruned.

use gotthard::audit::Action;
use gotthard::sessions::{NewSession, SignInMethod};
use gotthard::tokens::OpaqueToken;
use time::Duration;
use uuid::Uuid;

use super::{add_org, add_user, each_store, event, mail, new_user, now, start};

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

#[tokio::test]
async fn a_session_starts_with_its_event_and_the_owners_alert() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let org = add_org(&*store, "Acme", at).await;
        let token = OpaqueToken::generate();
        let session = NewSession {
            id: Uuid::now_v7(),
            user_id: ada.id,
            token_digest: token.digest(),
            method: SignInMethod::Sso,
            sso_org_id: Some(org.id),
            ip: "192.0.2.7".into(),
            user_agent: "TestAgent/1.0".into(),
            created_at: at,
        };
        let started = event(ada.id, Action::LoginSucceeded, at);
        let alert = mail(&ada.email, at);
        let sent = event(ada.id, Action::AlertSent, at + Duration::seconds(1));
        store
            .start_session(&session, &started, Some((&alert, &sent)))
            .await
            .unwrap();
        let (found, _) = store
            .session_by_digest(&token.digest())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.method, "sso", "{}", db.backend);
        assert_eq!(found.sso_org_id, Some(org.id));
        assert_eq!(found.ip, "192.0.2.7");
        assert_eq!(found.user_agent, "TestAgent/1.0");
        assert_eq!(found.created_at, at);
        assert_eq!(db.count("mail_outbox").await, 1, "{}", db.backend);
        let actions: Vec<_> = store
            .recent_events(ada.id, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["alert.sent", "login.succeeded"], "{}", db.backend);

        // A cookie digest names one session: a second one is refused, and nothing written.
        let twin = NewSession {
            id: Uuid::now_v7(),
            ..session
        };
        let started = event(ada.id, Action::LoginSucceeded, at);
        assert!(
            store.start_session(&twin, &started, None).await.is_err(),
            "{}",
            db.backend
        );
        assert_eq!(db.count("sessions").await, 1);
        assert_eq!(store.recent_events(ada.id, 10).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn an_ended_session_is_not_touched_and_ending_none_writes_nothing() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let (only, _) = start(&*store, ada.id, None, at).await;
        let ended = event(ada.id, Action::SessionEnded, at);
        let none = store
            .end_other_sessions(ada.id, only, "owner", &ended)
            .await;
        assert_eq!(none.unwrap(), 0, "{}", db.backend);
        assert_eq!(
            store.recent_events(ada.id, 10).await.unwrap().len(),
            1,
            "{}: no event for no session",
            db.backend
        );

        let logout = event(ada.id, Action::Logout, at);
        assert!(
            store
                .end_session(ada.id, only, "logout", &logout)
                .await
                .unwrap()
        );
        let later = at + Duration::minutes(5);
        store
            .touch_session(only, "198.51.100.1", later, later)
            .await
            .unwrap();
        assert_eq!(
            db.count_where("sessions", "ip = '198.51.100.1'").await,
            0,
            "{}",
            db.backend
        );
    }
}

#[tokio::test]
async fn sessions_past_their_lifetime_are_pruned_even_when_in_use() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let (old, _) = start(&*store, ada.id, None, at - Duration::days(100)).await;
        let (young, _) = start(&*store, ada.id, None, at).await;
        store.touch_session(old, "192.0.2.7", at, at).await.unwrap();
        let pruned = store
            .prune_sessions(at - Duration::days(14), at - Duration::days(90), 10)
            .await
            .unwrap();
        assert_eq!(pruned, 1, "{}", db.backend);
        let left: Vec<_> = store
            .sessions_of_user(ada.id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(left, [young], "{}", db.backend);
    }
}
