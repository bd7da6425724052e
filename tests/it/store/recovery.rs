//! `RecoveryStore`: forgotten-password mails and their limit, the single use of a reset link
//! and what it ends, e-mail change links (confirmation, undo), their guards and pruning.

use gotthard::accounts::{EmailChange, EmailLink};
use gotthard::audit::Action;
use gotthard::federation::FederatedIdentity;
use gotthard::store::StoreError;
use gotthard::store::recovery::{MailLimit, PasswordReset, ResetMail};
use gotthard::tokens::OpaqueToken;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{add_grant, add_org, add_user, client, each_store, event, mail, now, start};

fn reset(user: Uuid, kind: ResetMail, at: OffsetDateTime) -> (OpaqueToken, PasswordReset) {
    let token = OpaqueToken::generate();
    let stored = PasswordReset {
        digest: token.digest(),
        user_id: user,
        kind,
        created_at: at,
        expires_at: at + Duration::minutes(30),
        used_at: None,
    };
    (token, stored)
}

fn limit(at: OffsetDateTime) -> MailLimit {
    MailLimit {
        not_since: at - Duration::minutes(2),
        window_start: at - Duration::hours(1),
        max_in_window: 3,
    }
}

fn change(user: Uuid, kind: EmailLink, at: OffsetDateTime) -> (OpaqueToken, EmailChange) {
    let token = OpaqueToken::generate();
    let stored = EmailChange {
        digest: token.digest(),
        kind,
        user_id: user,
        old_email: "ada@example.com".into(),
        new_email: "ada@new.example".into(),
        created_at: at,
        expires_at: at + Duration::hours(24),
        used_at: None,
    };
    (token, stored)
}

#[tokio::test]
async fn password_mails_are_limited_per_account_and_a_link_works_once() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(store.as_ref(), "ada@example.com", at).await;
        let send = |kind: ResetMail, at: OffsetDateTime, user: Uuid| {
            let store = store.clone();
            async move {
                let (token, stored) = reset(user, kind, at);
                let requested = event(user, Action::PasswordResetRequested, at);
                let queued = mail("ada@example.com", at);
                let sent = store
                    .issue_password_mail(&stored, &limit(at), &queued, &requested)
                    .await
                    .unwrap();
                (sent, token)
            }
        };
        // An unknown account: nothing written.
        let (sent, _) = send(ResetMail::Link, at, Uuid::nil()).await;
        assert!(!sent, "{}", db.backend);
        assert_eq!(db.count("password_resets").await, 0);
        assert_eq!(db.count("mail_outbox").await, 0);

        let (sent, first) = send(ResetMail::Link, at, ada.id).await;
        assert!(sent);
        let (sent, _) = send(ResetMail::Link, at + Duration::seconds(60), ada.id).await;
        assert!(!sent, "a second mail within the period is refused");
        let (sent, second) = send(ResetMail::Link, at + Duration::minutes(3), ada.id).await;
        assert!(sent);
        // The newer link voids the older one.
        let older = store
            .password_reset(&first.digest())
            .await
            .unwrap()
            .unwrap();
        assert!(older.expires_at <= at + Duration::minutes(3));
        let (sent, _) = send(ResetMail::SsoNotice, at + Duration::minutes(6), ada.id).await;
        assert!(sent, "a notice counts like a link");
        let (sent, _) = send(ResetMail::Link, at + Duration::minutes(9), ada.id).await;
        assert!(!sent, "at most three an hour here");
        assert_eq!(db.count("mail_outbox").await, 3);
        assert_eq!(
            db.count_where("activity_events", "action = 'password.reset_requested'")
                .await,
            3
        );

        // Reset: once, with every session ended, every grant revoked, the lock gone.
        let later = at + Duration::minutes(10);
        let (session, _) = start(store.as_ref(), ada.id, None, at).await;
        store
            .insert_client(&client(
                "webmail",
                "Webmail",
                Some("https://webmail.example/bc"),
                at,
            ))
            .await
            .unwrap();
        let grant = add_grant(store.as_ref(), "webmail", ada.id, session, at).await;
        while store.count_attempt(ada.id).await.unwrap().is_some() {}
        let stored = store
            .password_reset(&second.digest())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((stored.user_id, stored.kind), (ada.id, ResetMail::Link));
        let done = [event(ada.id, Action::PasswordReset, later)];
        let notice = mail("ada@example.com", later);
        let ended = store
            .reset_password(&second.digest(), ada.id, "$argon2id$new", &done, &notice)
            .await
            .unwrap();
        assert_eq!(ended, Some(1), "{}", db.backend);
        let user = store.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(user.password_hash.as_deref(), Some("$argon2id$new"));
        assert_eq!((user.failed_attempts, user.locked_at), (0, None));
        assert!(user.email_verified, "the owner read mail at the address");
        assert!(store.grant(grant).await.unwrap().unwrap().revoked);
        assert_eq!(db.count("backchannel_outbox").await, 1);
        let again = store
            .reset_password(&second.digest(), ada.id, "$argon2id$other", &done, &notice)
            .await
            .unwrap();
        assert_eq!(again, None, "single use");
        assert_eq!(
            store
                .user_by_id(ada.id)
                .await
                .unwrap()
                .unwrap()
                .password_hash
                .as_deref(),
            Some("$argon2id$new")
        );

        // The organization of an SSO-linked account.
        let acme = add_org(store.as_ref(), "Acme", at).await;
        assert_eq!(store.sso_org_name(ada.id).await.unwrap(), None);
        let identity = FederatedIdentity {
            tenant_id: "tenant".into(),
            object_id: "object".into(),
            user_id: ada.id,
            org_id: acme.id,
            created_at: at,
        };
        let linked = event(ada.id, Action::SsoLinked, at);
        store
            .insert_federated_identity(&identity, &linked)
            .await
            .unwrap();
        assert_eq!(
            store.sso_org_name(ada.id).await.unwrap().as_deref(),
            Some("Acme")
        );

        // Pruning takes links expired before the given time only.
        let pruned = store.prune_links(later, 100).await.unwrap();
        assert!(pruned >= 1);
        assert!(
            store
                .password_reset(&first.digest())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .password_reset(&second.digest())
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test]
async fn an_email_change_is_confirmed_once_and_undone_once() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(store.as_ref(), "ada@example.com", at).await;
        let asked = || event(ada.id, Action::EmailChangeRequested, at);
        let to_new = || mail("ada@new.example", at);
        let (older, pending) = change(ada.id, EmailLink::Confirm, at);
        store
            .request_email_change(&pending, &asked(), &to_new())
            .await
            .unwrap();
        let (token, pending) = change(ada.id, EmailLink::Confirm, at);
        store
            .request_email_change(&pending, &asked(), &to_new())
            .await
            .unwrap();
        let voided = store.email_change(&older.digest()).await.unwrap().unwrap();
        assert!(voided.expires_at <= at, "{}: older links void", db.backend);
        let read = store.email_change(&token.digest()).await.unwrap().unwrap();
        assert_eq!(read.kind, EmailLink::Confirm);
        assert_eq!(read.new_email, "ada@new.example");

        // Another account takes the address meanwhile: refused, nothing changes.
        let later = at + Duration::minutes(5);
        let (undo_token, undo) = change(ada.id, EmailLink::Undo, later);
        let changed = event(ada.id, Action::EmailChanged, later);
        let notice = mail("ada@example.com", later);
        let bob = add_user(store.as_ref(), "ADA@new.example", at).await;
        let taken = store
            .confirm_email_change(&token.digest(), &undo, &changed, &notice)
            .await;
        assert!(matches!(taken, Err(StoreError::Conflict)), "{taken:?}");
        let gone = event(bob.id, Action::AccountDeleted, later);
        let deleted = store
            .delete_user(bob.id, &gone, &mail("ADA@new.example", later))
            .await
            .unwrap();
        assert_eq!(deleted, gotthard::accounts::Deletion::Deleted);

        let (session, _) = start(store.as_ref(), ada.id, None, at).await;
        store
            .confirm_email_change(&token.digest(), &undo, &changed, &notice)
            .await
            .unwrap();
        let user = store.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(user.email, "ada@new.example");
        assert!(user.email_verified);
        assert!(
            store
                .user_by_email("ada@example.com")
                .await
                .unwrap()
                .is_none()
        );
        let again = store
            .confirm_email_change(&token.digest(), &undo, &changed, &notice)
            .await;
        assert!(matches!(again, Err(StoreError::TokenUnusable)), "{again:?}");
        assert!(
            store.sessions_of_user(ada.id).await.unwrap().len() == 1,
            "the change itself ends no session"
        );

        let undone = event(ada.id, Action::EmailChangeUndone, later);
        let ended = store
            .undo_email_change(&undo_token.digest(), &undone)
            .await
            .unwrap();
        assert_eq!(ended, 1);
        assert!(
            !store
                .sessions_of_user(ada.id)
                .await
                .unwrap()
                .iter()
                .any(|s| s.id == session)
        );
        let user = store.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(user.email, "ada@example.com");
        let twice = store.undo_email_change(&undo_token.digest(), &undone).await;
        assert!(matches!(twice, Err(StoreError::TokenUnusable)), "{twice:?}");
    }
}
