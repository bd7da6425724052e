//! `ActivityStore`: events recorded, failures and their alerts, queries, pruning.

use gotthard::audit::{Action, ActivityCursor, ActivityFilter, EventKind};
use time::Duration;

use super::{add_user, anonymous_event, each_store, event, mail, new_user, now};

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
async fn failure_alerts_are_queued_at_most_once_per_period() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let period = Duration::minutes(15);
        let failed = |t| event(ada.id, Action::LoginFailed, t);
        let sent = |t| event(ada.id, Action::AlertSent, t);

        // Without an alert asked for: the event alone.
        assert!(!store.record_failure(&failed(at), None).await.unwrap());
        assert_eq!(db.count("mail_outbox").await, 0, "{}", db.backend);

        let t1 = at + Duration::seconds(1);
        let first = store
            .record_failure(
                &failed(t1),
                Some((&mail(&ada.email, t1), &sent(t1), t1 - period)),
            )
            .await
            .unwrap();
        assert!(first, "{}", db.backend);
        assert_eq!(db.count("mail_outbox").await, 1);

        // Within the period: the failure is recorded, no second alert.
        let t2 = at + Duration::minutes(2);
        let second = store
            .record_failure(
                &failed(t2),
                Some((&mail(&ada.email, t2), &sent(t2), t2 - period)),
            )
            .await
            .unwrap();
        assert!(!second, "{}", db.backend);
        assert_eq!(db.count("mail_outbox").await, 1);

        // After it: the next alert.
        let t3 = at + Duration::minutes(20);
        let third = store
            .record_failure(
                &failed(t3),
                Some((&mail(&ada.email, t3), &sent(t3), t3 - period)),
            )
            .await
            .unwrap();
        assert!(third, "{}", db.backend);
        assert_eq!(db.count("mail_outbox").await, 2);
        let actions: Vec<_> = store
            .recent_events(ada.id, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            [
                "alert.sent",
                "login.failed",
                "login.failed",
                "alert.sent",
                "login.failed",
                "login.failed"
            ],
            "{}",
            db.backend
        );

        // A failure of no account is recorded without a user.
        let unknown = anonymous_event(Action::LoginFailed, at);
        assert!(!store.record_failure(&unknown, None).await.unwrap());
        assert_eq!(
            db.count_where("activity_events", "user_id IS NULL").await,
            1,
            "{}",
            db.backend
        );
    }
}

#[tokio::test]
async fn queries_filter_by_time_product_and_action_and_page_without_repeats() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let bob = add_user(&*store, "bob@example.com", at).await;
        for i in 0..6 {
            let action = if i % 2 == 0 {
                Action::LoginFailed
            } else {
                Action::LoginSucceeded
            };
            let t = at + Duration::minutes(i);
            store.record_event(&event(ada.id, action, t)).await.unwrap();
        }
        let wiki =
            event(ada.id, Action::TokenIssued, at + Duration::minutes(2)).for_product("Wiki");
        store.record_event(&wiki).await.unwrap();
        let other = event(bob.id, Action::LoginFailed, at + Duration::minutes(3));
        store.record_event(&other).await.unwrap();

        let query = |filter: ActivityFilter| {
            let store = store.clone();
            async move {
                store
                    .query_events(ada.id, &filter, None, 100)
                    .await
                    .unwrap()
            }
        };
        let all = query(ActivityFilter::default()).await;
        assert_eq!(all.len(), 7, "{}: ada's only", db.backend);
        assert!(
            all.windows(2)
                .all(|w| (w[0].created_at, w[0].id) > (w[1].created_at, w[1].id)),
            "{}: newest first",
            db.backend
        );

        let window = query(ActivityFilter {
            from: Some(at + Duration::minutes(2)),
            to: Some(at + Duration::minutes(4)),
            ..ActivityFilter::default()
        })
        .await;
        let minutes: Vec<_> = window
            .iter()
            .map(|e| (e.created_at - at).whole_minutes())
            .collect();
        assert_eq!(
            minutes,
            [3, 2, 2],
            "{}: from inclusive, to exclusive",
            db.backend
        );

        let product = query(ActivityFilter {
            product: Some("Wiki".into()),
            ..ActivityFilter::default()
        })
        .await;
        assert_eq!(product.len(), 1, "{}", db.backend);
        assert_eq!(product[0].id, wiki.id);

        let failed = query(ActivityFilter {
            action: Some("login.failed".into()),
            from: Some(at + Duration::minutes(1)),
            ..ActivityFilter::default()
        })
        .await;
        assert_eq!(failed.len(), 2, "{}: filters combine", db.backend);

        // Page by page with a cursor: every event once, in the same order.
        let mut paged = Vec::new();
        let mut cursor: Option<ActivityCursor> = None;
        loop {
            let page = store
                .query_events(ada.id, &ActivityFilter::default(), cursor.as_ref(), 2)
                .await
                .unwrap();
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            cursor = Some(ActivityCursor::after(last));
            paged.extend(page.into_iter().map(|e| e.id));
        }
        let ids: Vec<_> = all.iter().map(|e| e.id).collect();
        assert_eq!(paged, ids, "{}", db.backend);
    }
}

#[tokio::test]
async fn events_older_than_the_retention_are_pruned_in_batches() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        for days in [10, 9, 8, 7, 6, 0, 0] {
            let t = at - Duration::days(days);
            store
                .record_event(&event(ada.id, Action::LoginSucceeded, t))
                .await
                .unwrap();
        }
        let before = at - Duration::days(1);
        assert_eq!(
            store
                .prune_events(EventKind::Account, before, 3)
                .await
                .unwrap(),
            3,
            "{}",
            db.backend
        );
        assert_eq!(
            store
                .prune_events(EventKind::Account, before, 3)
                .await
                .unwrap(),
            2,
            "{}",
            db.backend
        );
        assert_eq!(
            store
                .prune_events(EventKind::Account, before, 3)
                .await
                .unwrap(),
            0,
            "{}",
            db.backend
        );
        assert_eq!(store.recent_events(ada.id, 10).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn each_kind_of_event_is_pruned_on_its_own() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let old = at - Duration::days(100);
        // Machine: tokens without a user.
        for _ in 0..2 {
            store
                .record_event(&anonymous_event(Action::TokenIssued, old))
                .await
                .unwrap();
        }
        // The rest: the account's own token and sign-in, an attempt on an unknown address.
        store
            .record_event(&event(ada.id, Action::TokenIssued, old))
            .await
            .unwrap();
        store
            .record_event(&event(ada.id, Action::LoginSucceeded, old))
            .await
            .unwrap();
        store
            .record_event(&anonymous_event(Action::LoginFailed, old))
            .await
            .unwrap();
        let before = at - Duration::days(90);
        assert_eq!(
            store
                .prune_events(EventKind::Machine, before, 10)
                .await
                .unwrap(),
            2,
            "{}",
            db.backend
        );
        assert_eq!(db.count("activity_events").await, 3, "{}", db.backend);
        assert_eq!(
            store
                .prune_events(EventKind::Account, before, 10)
                .await
                .unwrap(),
            3,
            "{}",
            db.backend
        );
        assert_eq!(db.count("activity_events").await, 0, "{}", db.backend);
    }
}
