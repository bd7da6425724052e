//! `ConsentStore`: consents remembered per user and client; withdrawing one revokes the
//! grants under it.

use gotthard::audit::Action;
use time::Duration;

use super::{add_grant, add_user, client, each_store, event, now, start};

#[tokio::test]
async fn a_consent_is_one_per_user_and_client_and_its_latest_scope() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let bob = add_user(&*store, "bob@example.com", at).await;
        store
            .insert_client(&client("wiki", "Zed Wiki", None, at))
            .await
            .unwrap();
        store
            .insert_client(&client("app", "Alpha", None, at))
            .await
            .unwrap();
        assert!(store.consent(ada.id, "wiki").await.unwrap().is_none());

        let granted = event(ada.id, Action::ConsentGranted, at);
        store
            .put_consent(ada.id, "wiki", "openid", &granted)
            .await
            .unwrap();
        let later = at + Duration::seconds(5);
        let widened = event(ada.id, Action::ConsentGranted, later);
        store
            .put_consent(ada.id, "wiki", "openid email", &widened)
            .await
            .unwrap();
        let scope = store.consent(ada.id, "wiki").await.unwrap();
        assert_eq!(scope.as_deref(), Some("openid email"), "{}", db.backend);
        assert!(store.consent(bob.id, "wiki").await.unwrap().is_none());
        assert_eq!(store.recent_events(ada.id, 10).await.unwrap().len(), 2);

        let granted = event(ada.id, Action::ConsentGranted, at);
        store
            .put_consent(ada.id, "app", "openid", &granted)
            .await
            .unwrap();
        let listed: Vec<_> = store
            .consents_of_user(ada.id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.client_id, c.client_name, c.scope, c.created_at))
            .collect();
        assert_eq!(
            listed,
            [
                ("app".into(), "Alpha".into(), "openid".into(), at),
                (
                    "wiki".into(),
                    "Zed Wiki".into(),
                    "openid email".into(),
                    later
                ),
            ],
            "{}: one per client, by name",
            db.backend
        );
        assert!(store.consents_of_user(bob.id).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn withdrawing_a_consent_revokes_the_users_grants_of_that_client_only() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let bob = add_user(&*store, "bob@example.com", at).await;
        for id in ["wiki", "app"] {
            let c = client(id, id, None, at);
            store.insert_client(&c).await.unwrap();
        }
        let (ada_session, _) = start(&*store, ada.id, None, at).await;
        let (bob_session, _) = start(&*store, bob.id, None, at).await;
        let ada_wiki = add_grant(&*store, "wiki", ada.id, ada_session, at).await;
        let ada_app = add_grant(&*store, "app", ada.id, ada_session, at).await;
        let bob_wiki = add_grant(&*store, "wiki", bob.id, bob_session, at).await;
        for (user, client_id) in [(ada.id, "wiki"), (ada.id, "app"), (bob.id, "wiki")] {
            let granted = event(user, Action::ConsentGranted, at);
            store
                .put_consent(user, client_id, "openid", &granted)
                .await
                .unwrap();
        }

        let epoch = store.revocations().epoch();
        let revoked = event(ada.id, Action::ConsentRevoked, at);
        let withdrawn = store.revoke_consent(ada.id, "wiki", &revoked).await;
        assert!(withdrawn.unwrap(), "{}", db.backend);
        assert!(store.revocations().epoch() > epoch);
        assert!(store.consent(ada.id, "wiki").await.unwrap().is_none());
        assert!(
            store.grant(ada_wiki).await.unwrap().unwrap().revoked,
            "{}",
            db.backend
        );
        assert!(
            !store.grant(ada_app).await.unwrap().unwrap().revoked,
            "{}",
            db.backend
        );
        assert!(
            !store.grant(bob_wiki).await.unwrap().unwrap().revoked,
            "{}",
            db.backend
        );
        assert!(store.consent(bob.id, "wiki").await.unwrap().is_some());
        let events = store.recent_events(ada.id, 1).await.unwrap();
        assert_eq!(events[0].action, "consent.revoked", "{}", db.backend);

        let revoked = event(ada.id, Action::ConsentRevoked, at);
        let again = store.revoke_consent(ada.id, "wiki", &revoked).await;
        assert!(!again.unwrap(), "{}", db.backend);
        assert_eq!(
            store.recent_events(ada.id, 1).await.unwrap()[0].id,
            events[0].id
        );
    }
}
