//! `ActivityStore`: events recorded, failures and their alerts, queries, pruning.

use gotthard::audit::Action;
use time::Duration;

use super::{each_store, event, new_user, now};

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
