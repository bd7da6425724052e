//! `OutboxStore`: mail queued with its cause, claimed under a lease, marked sent or failed,
//! pruned.

use gotthard::audit::Action;
use gotthard::store::Store;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{add_user, each_store, event, mail, now};

/// Queues a mail to `to`, due from `at`, with the change that causes it (a password change).
async fn queue(store: &dyn Store, user: Uuid, to: &str, at: OffsetDateTime) -> Uuid {
    let alert = mail(to, at);
    let changed = event(user, Action::PasswordChanged, at);
    store
        .change_password(user, "$argon2id$new", Uuid::nil(), &changed, &alert)
        .await
        .unwrap();
    alert.id
}

#[tokio::test]
async fn due_mail_is_claimed_once_per_lease_oldest_first() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let late = queue(
            &*store,
            ada.id,
            "late@example.com",
            at + Duration::seconds(2),
        )
        .await;
        let early = queue(
            &*store,
            ada.id,
            "early@example.com",
            at + Duration::seconds(1),
        )
        .await;
        queue(
            &*store,
            ada.id,
            "future@example.com",
            at + Duration::hours(1),
        )
        .await;

        let t = at + Duration::seconds(10);
        let lease = t + Duration::minutes(5);
        let first = store.claim_due_mail(t, lease, 1).await.unwrap();
        assert_eq!(first.len(), 1, "{}", db.backend);
        assert_eq!(first[0].id, early, "{}: the oldest", db.backend);
        assert_eq!(first[0].recipient, "early@example.com");
        assert_eq!(first[0].subject, "Subject");
        assert_eq!(first[0].body_text, "Text");
        assert_eq!(first[0].body_html.as_deref(), Some("<p>Text</p>"));
        assert_eq!(first[0].attempts, 0);

        // Claimed mail is skipped until its lease ends; mail not yet due is not claimed.
        let second = store.claim_due_mail(t, lease, 10).await.unwrap();
        let ids: Vec<_> = second.iter().map(|m| m.id).collect();
        assert_eq!(ids, [late], "{}", db.backend);
        assert!(store.claim_due_mail(t, lease, 10).await.unwrap().is_empty());

        // A lease that ran out without an answer: due again. Sent mail is not.
        store.mark_mail_sent(early, t).await.unwrap();
        let after = lease + Duration::seconds(1);
        let again = store
            .claim_due_mail(after, after + Duration::minutes(5), 10)
            .await
            .unwrap();
        let ids: Vec<_> = again.iter().map(|m| m.id).collect();
        assert_eq!(ids, [late], "{}", db.backend);
    }
}

#[tokio::test]
async fn a_failed_mail_waits_for_its_retry_and_counts_its_attempts() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let id = queue(&*store, ada.id, "ada@example.com", at).await;
        let lease = at + Duration::minutes(5);
        assert_eq!(store.claim_due_mail(at, lease, 10).await.unwrap().len(), 1);
        let error = "x".repeat(2000);
        let retry = at + Duration::seconds(60);
        store.mark_mail_failed(id, retry, &error).await.unwrap();
        assert_eq!(
            db.count_where("mail_outbox", "LENGTH(last_error) = 1000")
                .await,
            1,
            "{}: the error is kept short",
            db.backend
        );

        let before = retry - Duration::seconds(1);
        assert!(
            store
                .claim_due_mail(before, lease, 10)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.backend
        );
        let retried = store.claim_due_mail(retry, lease, 10).await.unwrap();
        assert_eq!(retried.len(), 1, "{}", db.backend);
        assert_eq!(retried[0].attempts, 1);
        store.mark_mail_sent(id, retry).await.unwrap();
        assert_eq!(
            db.count_where(
                "mail_outbox",
                "attempts = 2 AND sent_at IS NOT NULL AND last_error IS NULL"
            )
            .await,
            1,
            "{}",
            db.backend
        );
    }
}

#[tokio::test]
async fn sent_and_given_up_mail_is_pruned_in_batches() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let sent_long_ago = queue(&*store, ada.id, "a@example.com", at - Duration::days(11)).await;
        store
            .mark_mail_sent(sent_long_ago, at - Duration::days(10))
            .await
            .unwrap();
        let sent_now = queue(&*store, ada.id, "b@example.com", at).await;
        store.mark_mail_sent(sent_now, at).await.unwrap();
        queue(&*store, ada.id, "c@example.com", at - Duration::days(8)).await;
        queue(&*store, ada.id, "d@example.com", at).await;

        let (sent_before, given_up_before) = (at - Duration::days(1), at - Duration::days(7));
        let prune = || store.prune_mail(sent_before, given_up_before, 1);
        assert_eq!(prune().await.unwrap(), 1, "{}", db.backend);
        assert_eq!(prune().await.unwrap(), 1, "{}", db.backend);
        assert_eq!(prune().await.unwrap(), 0, "{}", db.backend);
        let kept = db
            .count_where(
                "mail_outbox",
                "recipient IN ('b@example.com', 'd@example.com')",
            )
            .await;
        assert_eq!(
            (db.count("mail_outbox").await, kept),
            (2, 2),
            "{}",
            db.backend
        );
    }
}
