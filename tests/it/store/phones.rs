//! `PhoneStore`: numbers of a profile, limited per account, unique per account.

use gotthard::accounts::PhoneNumber;
use gotthard::audit::Action;
use gotthard::store::StoreError;
use uuid::Uuid;

use super::{add_user, each_store, event, now};

fn phone(user: Uuid, number: &str, at: time::OffsetDateTime) -> PhoneNumber {
    PhoneNumber {
        id: Uuid::now_v7(),
        user_id: user,
        label: "Mobile".into(),
        number: number.into(),
        verified_at: None,
        created_at: at,
    }
}

#[tokio::test]
async fn numbers_are_added_once_up_to_the_limit_and_removed_by_their_owner_only() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let eve = add_user(&*store, "eve@example.com", at).await;
        let added = || event(ada.id, Action::ProfileChanged, at);
        let first = phone(ada.id, "+41446681800", at);
        assert!(
            store.add_phone(&first, 2, &added()).await.unwrap(),
            "{}",
            db.backend
        );
        // The same number again: a conflict, nothing written.
        let again = store
            .add_phone(&phone(ada.id, "+41446681800", at), 2, &added())
            .await;
        assert!(matches!(again, Err(StoreError::Conflict)), "{}", db.backend);
        // Eve may hold the same number.
        assert!(
            store
                .add_phone(
                    &phone(eve.id, "+41446681800", at),
                    2,
                    &event(eve.id, Action::ProfileChanged, at)
                )
                .await
                .unwrap()
        );
        assert!(
            store
                .add_phone(&phone(ada.id, "+34912345678", at), 2, &added())
                .await
                .unwrap()
        );
        // The limit: a third is refused, nothing written.
        assert!(
            !store
                .add_phone(&phone(ada.id, "+33123456789", at), 2, &added())
                .await
                .unwrap()
        );
        let listed = store.phones(ada.id).await.unwrap();
        let numbers: Vec<&str> = listed.iter().map(|p| p.number.as_str()).collect();
        assert_eq!(numbers, ["+41446681800", "+34912345678"], "{}", db.backend);
        assert!(
            listed
                .iter()
                .all(|p| p.verified_at.is_none() && p.label == "Mobile")
        );
        assert_eq!(store.recent_events(ada.id, 10).await.unwrap().len(), 2);

        // Only the owner removes a number.
        let removed = || event(ada.id, Action::ProfileChanged, at);
        assert!(
            !store
                .remove_phone(eve.id, first.id, &removed())
                .await
                .unwrap()
        );
        assert!(
            store
                .remove_phone(ada.id, first.id, &removed())
                .await
                .unwrap()
        );
        assert!(
            !store
                .remove_phone(ada.id, first.id, &removed())
                .await
                .unwrap()
        );
        assert_eq!(store.phones(ada.id).await.unwrap().len(), 1);
        assert_eq!(store.phones(eve.id).await.unwrap().len(), 1);
    }
}
