//! `ActivityStore`: events recorded, failures and their alerts, queries, pruning.

use gotthard::audit::{
    Action, ActivityCursor, ActivityEvent, ActivityFilter, EventKind, EventOwner,
};
use time::{Duration, OffsetDateTime};

use super::{add_user, anonymous_event, client, each_store, event, mail, new_user, now};

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
                    .query_events(EventOwner::User(ada.id), &filter, None, 100)
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
                .query_events(
                    EventOwner::User(ada.id),
                    &ActivityFilter::default(),
                    cursor.as_ref(),
                    2,
                )
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
        // Machine: a token without a user, a failed client authentication.
        for action in [Action::TokenIssued, Action::ClientAuthFailed] {
            store
                .record_event(&anonymous_event(action, old))
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

/// A machine event of client `id` (named "Shared", like its twin) from `ip`.
fn machine(id: &str, action: Action, ip: &str, at: OffsetDateTime) -> ActivityEvent {
    let mut e = anonymous_event(action, at).for_client(id, "Shared");
    e.ip = ip.to_string();
    e
}

#[tokio::test]
async fn a_clients_events_are_read_by_its_id_and_counted_per_hour_and_address() {
    for (store, db) in each_store().await {
        // On the hour, so that the buckets below are the test's own.
        let at = now().replace_minute(0).unwrap().replace_second(0).unwrap() - Duration::hours(5);
        let ada = add_user(&*store, "ada@example.com", at).await;
        store
            .insert_client(&client("twin-a", "Shared", None, at))
            .await
            .unwrap();
        store
            .insert_client(&client("twin-b", "Shared", None, at))
            .await
            .unwrap();
        let m = |minutes| at + Duration::minutes(minutes);
        let a_events = [
            machine("twin-a", Action::TokenIssued, "192.0.2.1", m(1)),
            machine("twin-a", Action::TokenIssued, "192.0.2.1", m(2)),
            machine("twin-a", Action::ClientAuthFailed, "198.51.100.9", m(3)),
            machine("twin-a", Action::TokenIssued, "192.0.2.2", m(61)),
            machine("twin-a", Action::TokenIssued, "192.0.2.1", m(125)),
        ];
        // Through the group commit's statement, as the token endpoint writes them.
        let issues: Vec<_> = a_events.iter().map(|e| (None, e.clone())).collect();
        store.record_issues(&issues).await.unwrap();
        // A user's token under the same client, and the twin's token.
        let mut users = event(ada.id, Action::TokenIssued, m(4)).for_client("twin-a", "Shared");
        users.ip = "192.0.2.1".into();
        store.record_event(&users).await.unwrap();
        store
            .record_event(&machine("twin-b", Action::TokenIssued, "203.0.113.5", m(5)))
            .await
            .unwrap();

        let read = |owner: &'static str, filter: ActivityFilter| {
            let store = store.clone();
            async move {
                store
                    .query_events(EventOwner::Client(owner), &filter, None, 100)
                    .await
                    .unwrap()
            }
        };
        let all = read("twin-a", ActivityFilter::default()).await;
        assert_eq!(all.len(), 6, "{}: twin-a's only", db.backend);
        assert!(all.iter().all(|e| e.client_id.as_deref() == Some("twin-a")));
        assert_eq!(all[0].id, a_events[4].id, "{}: newest first", db.backend);
        let twin = read("twin-b", ActivityFilter::default()).await;
        assert_eq!(twin.len(), 1, "{}", db.backend);
        assert_eq!(twin[0].product, "Shared");
        let failures = read(
            "twin-a",
            ActivityFilter {
                action: Some("client.auth_failed".into()),
                ..ActivityFilter::default()
            },
        )
        .await;
        assert_eq!(failures.len(), 1, "{}", db.backend);
        assert_eq!(failures[0].user_id, None);
        // The user's own log holds the user's token, not the machine's.
        let ada_log = store
            .query_events(
                EventOwner::User(ada.id),
                &ActivityFilter::default(),
                None,
                10,
            )
            .await
            .unwrap();
        assert_eq!(ada_log.len(), 1, "{}", db.backend);

        let counts = store
            .client_counts("twin-a", at, at + Duration::hours(3))
            .await
            .unwrap();
        let hours: Vec<_> = counts
            .hours
            .iter()
            .map(|h| ((h.hour - at).whole_hours(), h.tokens, h.failures))
            .collect();
        assert_eq!(hours, [(0, 3, 1), (1, 1, 0), (2, 1, 0)], "{}", db.backend);
        let addresses: Vec<_> = counts
            .addresses
            .iter()
            .map(|a| (a.ip.as_str(), a.tokens, a.failures))
            .collect();
        assert_eq!(
            addresses,
            [
                ("192.0.2.1", 4, 0),
                ("192.0.2.2", 1, 0),
                ("198.51.100.9", 0, 1)
            ],
            "{}",
            db.backend
        );
        assert_eq!(counts.addresses[0].last_seen, m(125), "{}", db.backend);
        assert_eq!(counts.last_issued, Some(m(125)), "{}", db.backend);
        // The window is [from, to): the last hour's token falls out; the last use stays.
        let early = store.client_counts("twin-a", at, m(61)).await.unwrap();
        assert_eq!(early.hours.len(), 1, "{}", db.backend);
        assert_eq!(early.hours[0].tokens, 3);
        assert_eq!(early.last_issued, Some(m(125)));
        let none = store.client_counts("nobody", at, m(200)).await.unwrap();
        assert_eq!(none, Default::default(), "{}", db.backend);

        // On record: registered, or still named by the log once deleted; else not.
        assert!(store.client_on_record("twin-b").await.unwrap());
        assert!(store.delete_client("twin-b").await.unwrap());
        assert!(
            store.client_on_record("twin-b").await.unwrap(),
            "{}",
            db.backend
        );
        store
            .insert_client(&client("quiet", "Quiet", None, at))
            .await
            .unwrap();
        assert!(store.client_on_record("quiet").await.unwrap());
        assert!(store.delete_client("quiet").await.unwrap());
        assert!(
            !store.client_on_record("quiet").await.unwrap(),
            "{}",
            db.backend
        );
        assert!(!store.client_on_record("nobody").await.unwrap());
    }
}
