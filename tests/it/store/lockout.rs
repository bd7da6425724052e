//! `AccountStore`'s lockout. Its transitions live in SQL (one guarded statement each, so
//! that parallel attempts on several instances cannot race past the threshold), so they are
//! tested here, on both backends: counting below the threshold, the lock at exactly N, a
//! locked account's attempts changing nothing, a success resetting, unlock by an
//! administrator and by link, unlock links and their rate. The pure rule around them
//! (`Attempt`, the threshold's bounds) has unit tests in `src/accounts/lockout.rs`.

use std::sync::Arc;

use gotthard::accounts::{NewUser, SecuritySettings, UnlockToken, User};
use gotthard::audit::Action;
use gotthard::store::Store;
use gotthard::tokens::OpaqueToken;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{each_store, event, mail, new_user, now};

async fn with_threshold(store: &dyn Store, threshold: i32, at: OffsetDateTime) -> User {
    let user = NewUser {
        lockout_threshold: threshold,
        ..new_user("ada@example.com", at)
    };
    store.insert_user(&user).await.unwrap()
}

/// An unlock link of `user` made at `at`, valid for an hour.
fn link(user: Uuid, at: OffsetDateTime) -> (OpaqueToken, UnlockToken) {
    let token = OpaqueToken::generate();
    let stored = UnlockToken {
        digest: token.digest(),
        user_id: user,
        created_at: at,
        expires_at: at + Duration::hours(1),
        used_at: None,
    };
    (token, stored)
}

/// The failure count and whether the account is locked, as stored.
async fn lock_state(store: &dyn Store, user: Uuid) -> (i32, bool) {
    let user = store.user_by_id(user).await.unwrap().unwrap();
    (user.failed_attempts, user.locked_at.is_some())
}

/// Counts attempts until the account is at its threshold, then locks it with a fresh link.
async fn lock(store: &dyn Store, user: &User, at: OffsetDateTime) -> OpaqueToken {
    while store.count_attempt(user.id).await.unwrap().is_some() {}
    let (token, stored) = link(user.id, at);
    let locked = event(user.id, Action::AccountLocked, at);
    let queued = mail(&user.email, at);
    assert!(
        store
            .lock_account(user.id, &stored, &locked, &queued)
            .await
            .unwrap()
    );
    token
}

#[tokio::test]
async fn attempts_count_up_to_the_threshold_and_stop_there() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = with_threshold(&*store, 3, at).await;
        for n in 1..=3 {
            let counted = store.count_attempt(ada.id).await.unwrap();
            assert_eq!(counted, Some((n, 3)), "{}: attempt {n}", db.backend);
        }
        // At its threshold and not yet locked: refused, and the count stays at N.
        assert_eq!(store.count_attempt(ada.id).await.unwrap(), None);
        assert_eq!(
            lock_state(&*store, ada.id).await,
            (3, false),
            "{}",
            db.backend
        );
        // The nil id of an unknown address counts nothing.
        assert_eq!(store.count_attempt(Uuid::nil()).await.unwrap(), None);
    }
}

#[tokio::test]
async fn parallel_attempts_never_pass_the_threshold() {
    for (store, db) in each_store().await {
        let ada = with_threshold(&*store, 5, now()).await;
        let attempts: Vec<_> = (0..20)
            .map(|_| {
                let store: Arc<dyn Store> = store.clone();
                tokio::spawn(async move { store.count_attempt(ada.id).await.unwrap() })
            })
            .collect();
        let mut counted = Vec::new();
        for attempt in attempts {
            if let Some((n, threshold)) = attempt.await.unwrap() {
                assert_eq!(threshold, 5);
                counted.push(n);
            }
        }
        counted.sort();
        assert_eq!(counted, [1, 2, 3, 4, 5], "{}", db.backend);
        assert_eq!(lock_state(&*store, ada.id).await, (5, false));
    }
}

#[tokio::test]
async fn a_released_attempt_is_given_back_and_a_success_resets_the_count() {
    for (store, db) in each_store().await {
        let ada = with_threshold(&*store, 3, now()).await;
        store.count_attempt(ada.id).await.unwrap();
        store.count_attempt(ada.id).await.unwrap();
        store.release_attempt(ada.id).await.unwrap();
        assert_eq!(
            lock_state(&*store, ada.id).await,
            (1, false),
            "{}",
            db.backend
        );
        assert_eq!(store.count_attempt(ada.id).await.unwrap(), Some((2, 3)));

        store.reset_attempts(ada.id).await.unwrap();
        assert_eq!(
            lock_state(&*store, ada.id).await,
            (0, false),
            "{}",
            db.backend
        );
        // Nothing to give back: the count never goes below zero.
        store.release_attempt(ada.id).await.unwrap();
        assert_eq!(
            lock_state(&*store, ada.id).await,
            (0, false),
            "{}",
            db.backend
        );
        assert_eq!(store.count_attempt(ada.id).await.unwrap(), Some((1, 3)));
    }
}

#[tokio::test]
async fn the_lock_comes_at_the_threshold_once_with_its_event_mail_and_link() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = with_threshold(&*store, 2, at).await;
        let (first, first_link) = link(ada.id, at);
        let locked = event(ada.id, Action::AccountLocked, at);
        let queued = mail(&ada.email, at);

        // Below the threshold the lock is refused and writes nothing.
        store.count_attempt(ada.id).await.unwrap();
        let early = store
            .lock_account(ada.id, &first_link, &locked, &queued)
            .await;
        assert!(!early.unwrap(), "{}", db.backend);
        assert_eq!(db.count("unlock_tokens").await, 0);
        assert_eq!(db.count("mail_outbox").await, 0);
        assert_eq!(db.count("activity_events").await, 0);

        assert_eq!(store.count_attempt(ada.id).await.unwrap(), Some((2, 2)));
        let later = at + Duration::seconds(1);
        let locked = event(ada.id, Action::AccountLocked, later);
        let now_locked = store
            .lock_account(ada.id, &first_link, &locked, &queued)
            .await;
        assert!(now_locked.unwrap(), "{}", db.backend);
        let user = store.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(user.locked_at, Some(later), "{}", db.backend);
        assert_eq!(user.failed_attempts, 2);
        let stored = store.unlock_token(&first.digest()).await.unwrap().unwrap();
        assert_eq!(stored.user_id, ada.id);
        assert_eq!(stored.created_at, at);
        assert_eq!(stored.expires_at, at + Duration::hours(1));
        assert!(stored.used_at.is_none());
        assert_eq!(db.count("mail_outbox").await, 1);
        let events = store.recent_events(ada.id, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, "account.locked");

        // Locked already: a second lock writes nothing, and the first link stays.
        let (second, second_link) = link(ada.id, later);
        let again = store
            .lock_account(ada.id, &second_link, &locked, &mail(&ada.email, later))
            .await;
        assert!(!again.unwrap(), "{}", db.backend);
        assert!(
            store
                .unlock_token(&second.digest())
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.unlock_token(&first.digest()).await.unwrap().is_some());
        assert_eq!(db.count("mail_outbox").await, 1);
    }
}

#[tokio::test]
async fn a_locked_accounts_attempts_change_nothing() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = with_threshold(&*store, 2, at).await;
        lock(&*store, &ada, at).await;
        assert_eq!(store.count_attempt(ada.id).await.unwrap(), None);
        // A right password on a locked account does not reset it; a released attempt
        // does not lower its count.
        store.reset_attempts(ada.id).await.unwrap();
        store.release_attempt(ada.id).await.unwrap();
        assert_eq!(
            lock_state(&*store, ada.id).await,
            (2, true),
            "{}",
            db.backend
        );
    }
}

#[tokio::test]
async fn an_unlock_by_an_administrator_clears_the_lock_the_count_and_the_links() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = with_threshold(&*store, 2, at).await;
        let token = lock(&*store, &ada, at).await;
        let unlocked = event(ada.id, Action::AccountUnlocked, at);
        let unlock = store
            .unlock_account(ada.id, &unlocked, &mail(&ada.email, at))
            .await;
        assert!(unlock.unwrap(), "{}", db.backend);
        assert_eq!(
            lock_state(&*store, ada.id).await,
            (0, false),
            "{}",
            db.backend
        );
        assert!(
            store.unlock_token(&token.digest()).await.unwrap().is_none(),
            "{}: the mailed link is void",
            db.backend
        );
        assert_eq!(
            db.count("mail_outbox").await,
            2,
            "the lock's and the unlock's"
        );
        assert_eq!(store.recent_events(ada.id, 10).await.unwrap().len(), 2);

        // Nothing to clear: nothing written.
        let unlocked = event(ada.id, Action::AccountUnlocked, at);
        let again = store
            .unlock_account(ada.id, &unlocked, &mail(&ada.email, at))
            .await;
        assert!(!again.unwrap(), "{}", db.backend);
        assert_eq!(db.count("mail_outbox").await, 2);
        assert_eq!(store.recent_events(ada.id, 10).await.unwrap().len(), 2);

        // A count without a lock is cleared too, and counting starts again from one.
        store.count_attempt(ada.id).await.unwrap();
        let unlocked = event(ada.id, Action::AccountUnlocked, at);
        let unlock = store
            .unlock_account(ada.id, &unlocked, &mail(&ada.email, at))
            .await;
        assert!(unlock.unwrap(), "{}", db.backend);
        assert_eq!(store.count_attempt(ada.id).await.unwrap(), Some((1, 2)));
    }
}

#[tokio::test]
async fn an_unlock_link_works_once_before_it_expires() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = with_threshold(&*store, 2, at).await;
        let token = lock(&*store, &ada, at).await;

        let expired = event(ada.id, Action::AccountUnlocked, at + Duration::hours(2));
        let late = store.unlock_by_token(&token.digest(), &expired).await;
        assert!(!late.unwrap(), "{}: expired", db.backend);
        let unknown = OpaqueToken::generate().digest();
        let unlocked = event(ada.id, Action::AccountUnlocked, at + Duration::minutes(10));
        assert!(!store.unlock_by_token(&unknown, &unlocked).await.unwrap());
        assert_eq!(
            lock_state(&*store, ada.id).await,
            (2, true),
            "{}",
            db.backend
        );

        assert!(
            store
                .unlock_by_token(&token.digest(), &unlocked)
                .await
                .unwrap(),
            "{}",
            db.backend
        );
        assert_eq!(
            lock_state(&*store, ada.id).await,
            (0, false),
            "{}",
            db.backend
        );
        let used = store.unlock_token(&token.digest()).await.unwrap().unwrap();
        assert_eq!(used.used_at, Some(at + Duration::minutes(10)));
        let events = store.recent_events(ada.id, 1).await.unwrap();
        assert_eq!(events[0].action, "account.unlocked");
        assert!(
            !store
                .unlock_by_token(&token.digest(), &unlocked)
                .await
                .unwrap(),
            "{}: a link works once",
            db.backend
        );
    }
}

#[tokio::test]
async fn unlock_links_go_to_locked_accounts_only_and_at_a_limited_rate() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = with_threshold(&*store, 2, at).await;
        let period = Duration::minutes(2);

        // Not locked: no link, no mail.
        let (unused, stored) = link(ada.id, at);
        let issued = store
            .issue_unlock_token(&stored, at - period, &mail(&ada.email, at))
            .await;
        assert!(!issued.unwrap(), "{}", db.backend);
        assert!(
            store
                .unlock_token(&unused.digest())
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(db.count("mail_outbox").await, 0);

        let first = lock(&*store, &ada, at).await;
        // The lock's link was sent within the period: refused, and the first link stays.
        let soon = at + Duration::minutes(1);
        let (refused, stored) = link(ada.id, soon);
        let issued = store
            .issue_unlock_token(&stored, soon - period, &mail(&ada.email, soon))
            .await;
        assert!(!issued.unwrap(), "{}", db.backend);
        assert!(
            store
                .unlock_token(&refused.digest())
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.unlock_token(&first.digest()).await.unwrap().is_some());
        assert_eq!(db.count("mail_outbox").await, 1);

        // After the period: a new link and its mail; the older link is void.
        let later = at + Duration::minutes(3);
        let (fresh, stored) = link(ada.id, later);
        let issued = store
            .issue_unlock_token(&stored, later - period, &mail(&ada.email, later))
            .await;
        assert!(issued.unwrap(), "{}", db.backend);
        assert!(store.unlock_token(&first.digest()).await.unwrap().is_none());
        assert_eq!(
            store
                .unlock_token(&fresh.digest())
                .await
                .unwrap()
                .unwrap()
                .user_id,
            ada.id
        );
        assert_eq!(db.count("mail_outbox").await, 2);
        let unlocked = event(ada.id, Action::AccountUnlocked, later);
        assert!(
            store
                .unlock_by_token(&fresh.digest(), &unlocked)
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn security_settings_round_trip_and_set_the_threshold_counted_against() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = with_threshold(&*store, 10, at).await;
        let settings = SecuritySettings {
            lockout_threshold: 4,
            notify_on_success: true,
            notify_on_failure: false,
        };
        let later = at + Duration::seconds(5);
        let changed = event(ada.id, Action::SecuritySettingsChanged, later);
        let updated = store
            .update_security(ada.id, &settings, &changed)
            .await
            .unwrap();
        assert_eq!(SecuritySettings::of(&updated), settings, "{}", db.backend);
        assert_eq!(updated.updated_at, later);
        let stored = store.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(SecuritySettings::of(&stored), settings, "{}", db.backend);
        let events = store.recent_events(ada.id, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, "security.changed");
        assert_eq!(store.count_attempt(ada.id).await.unwrap(), Some((1, 4)));
    }
}

#[tokio::test]
async fn a_threshold_lowered_below_the_count_lets_the_next_failure_lock() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = with_threshold(&*store, 10, at).await;
        for _ in 0..5 {
            store.count_attempt(ada.id).await.unwrap();
        }
        // Five failures in a row, then the owner (signed in elsewhere) asks for three.
        let settings = SecuritySettings {
            lockout_threshold: 3,
            ..SecuritySettings::of(&ada)
        };
        let changed = event(ada.id, Action::SecuritySettingsChanged, at);
        store
            .update_security(ada.id, &settings, &changed)
            .await
            .unwrap();
        // The next attempt is counted as the last one, so that a wrong password locks the
        // account with its mail and unlock link — not refused forever without a lock.
        let counted = store.count_attempt(ada.id).await.unwrap();
        assert_eq!(counted, Some((3, 3)), "{}", db.backend);
        lock(&*store, &ada, at).await;

        // Raised, or lowered above the count, the count stays as it was.
        let bob = store
            .insert_user(&NewUser {
                lockout_threshold: 10,
                ..new_user("bob@example.com", at)
            })
            .await
            .unwrap();
        store.count_attempt(bob.id).await.unwrap();
        for threshold in [20, 5] {
            let settings = SecuritySettings {
                lockout_threshold: threshold,
                ..SecuritySettings::of(&bob)
            };
            let changed = event(bob.id, Action::SecuritySettingsChanged, at);
            let updated = store.update_security(bob.id, &settings, &changed).await;
            assert_eq!(updated.unwrap().failed_attempts, 1, "{}", db.backend);
        }
    }
}
