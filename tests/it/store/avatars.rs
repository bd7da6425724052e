//! `AvatarStore`: an avatar replaced in place (one row per user, the old key gone), each size
//! read by key, the user row's `avatar_key` and `updated_at` kept in step with the event in
//! one transaction, removal (and a removal of nothing, which writes nothing), and the
//! cascade when the user is deleted.

use gotthard::audit::Action;
use gotthard::store::avatars::NewAvatar;
use time::Duration;
use uuid::Uuid;

use super::{add_user, each_store, event, now};

fn avatar(user_id: Uuid, key: &str, at: time::OffsetDateTime) -> NewAvatar {
    NewAvatar {
        user_id,
        key: key.to_string(),
        image_64: vec![64; 3],
        image_128: vec![128; 3],
        image_256: b"\xFF\xD8\xFF\x00two-five-six".to_vec(),
        image_512: vec![2; 5],
        created_at: at,
    }
}

#[tokio::test]
async fn an_avatar_is_replaced_read_by_key_and_size_and_removed_with_its_user() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let eve = add_user(&*store, "eve@example.com", at).await;
        assert_eq!(ada.avatar_key, None);
        let first = "A".repeat(32);
        let epoch = store.revocations().epoch();
        let later = at + Duration::minutes(1);
        let saved = store
            .save_avatar(
                &avatar(ada.id, &first, later),
                &event(ada.id, Action::ProfileChanged, later),
            )
            .await
            .unwrap();
        assert_eq!(saved.avatar_key.as_deref(), Some(first.as_str()));
        assert_eq!(saved.updated_at, later, "{}", db.backend);
        assert!(store.revocations().epoch() > epoch, "token caches voided");
        let read = store.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(read.avatar_key.as_deref(), Some(first.as_str()));
        assert_eq!(
            store.avatar_image(&first, 256).await.unwrap().as_deref(),
            Some(&b"\xFF\xD8\xFF\x00two-five-six"[..])
        );
        assert_eq!(
            store.avatar_image(&first, 64).await.unwrap(),
            Some(vec![64; 3])
        );
        assert_eq!(store.avatar_image(&first, 100).await.unwrap(), None);
        assert_eq!(store.avatar_image(&"B".repeat(32), 64).await.unwrap(), None);

        // A second upload replaces the first: one row, the old key gone.
        let second = "C".repeat(32);
        store
            .save_avatar(
                &avatar(ada.id, &second, later),
                &event(ada.id, Action::ProfileChanged, later),
            )
            .await
            .unwrap();
        assert_eq!(store.avatar_image(&first, 64).await.unwrap(), None);
        assert!(store.avatar_image(&second, 512).await.unwrap().is_some());
        assert_eq!(db.count("avatars").await, 1);
        // Keys are unique across users.
        let taken = store
            .save_avatar(
                &avatar(eve.id, &second, later),
                &event(eve.id, Action::ProfileChanged, later),
            )
            .await;
        assert!(taken.is_err(), "{}", db.backend);
        assert_eq!(
            store.user_by_id(eve.id).await.unwrap().unwrap().avatar_key,
            None
        );

        let events = db.count_where("activity_events", "action = 'profile.changed'");
        assert_eq!(events.await, 2);
        let removed_at = later + Duration::minutes(1);
        let removed = store
            .delete_avatar(
                ada.id,
                removed_at,
                Some(&event(ada.id, Action::ProfileChanged, removed_at)),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(removed.avatar_key, None);
        assert_eq!(removed.updated_at, removed_at);
        assert_eq!(store.avatar_image(&second, 512).await.unwrap(), None);
        // Nothing to remove: nothing written, no event.
        assert!(
            store
                .delete_avatar(ada.id, removed_at, None)
                .await
                .unwrap()
                .is_none()
        );
        let events = db.count_where("activity_events", "action = 'profile.changed'");
        assert_eq!(events.await, 3);

        // Deleting the user deletes the avatar.
        store
            .save_avatar(
                &avatar(eve.id, &first, later),
                &event(eve.id, Action::ProfileChanged, later),
            )
            .await
            .unwrap();
        let deleted = event(eve.id, Action::AccountDeleted, later);
        let goodbye = super::mail(&eve.email, later);
        assert_eq!(
            store.delete_user(eve.id, &deleted, &goodbye).await.unwrap(),
            gotthard::accounts::Deletion::Deleted
        );
        assert_eq!(store.avatar_image(&first, 64).await.unwrap(), None);
        assert_eq!(db.count("avatars").await, 0, "{}", db.backend);
    }
}
