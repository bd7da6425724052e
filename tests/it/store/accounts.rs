//! `AccountStore`: users, profile and password changes, deletion, the first-start setup link.

use gotthard::accounts::{NewUser, SetupToken};
use gotthard::audit::Action;
use gotthard::store::StoreError;
use gotthard::tokens::OpaqueToken;
use time::{Duration, OffsetDateTime};

use super::{each_store, event, new_user, now};

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
