//! `Store` itself: which backend, its readiness check, migrations, the revocation count.

use gotthard::audit::Action;
use gotthard::store::Backend;

use super::{add_user, each_store, event, now, start};

#[tokio::test]
async fn each_store_names_its_backend_answers_pings_and_counts_its_revocations() {
    for (store, db) in each_store().await {
        let expected = match db.backend {
            "sqlite" => Backend::Sqlite,
            _ => Backend::Postgres,
        };
        assert_eq!(store.backend(), expected);
        store.ping().await.unwrap();
        // `each_store` ran the migrations twice; once more changes nothing.
        store.migrate().await.unwrap();

        let revocations = store.revocations();
        assert_eq!(revocations.epoch(), 0, "{}", db.backend);
        assert!(!revocations.any_here());
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let (session, _) = start(&*store, ada.id, None, at).await;
        assert_eq!(
            revocations.epoch(),
            0,
            "{}: a sign-in revokes nothing",
            db.backend
        );
        let logout = event(ada.id, Action::Logout, at);
        store
            .end_session(ada.id, session, "logout", &logout)
            .await
            .unwrap();
        assert_eq!(revocations.epoch(), 1, "{}", db.backend);
        assert!(revocations.any_here(), "{}", db.backend);
    }
}
