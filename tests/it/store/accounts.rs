//! `AccountStore`: users, profile and password changes, deletion, the first-start setup link.

use gotthard::accounts::{Deletion, NewUser, ProfileRecord, SetupToken};
use gotthard::audit::Action;
use gotthard::orgs::{Membership, OrgRole};
use gotthard::store::StoreError;
use gotthard::tokens::OpaqueToken;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{add_org, add_user, each_store, event, mail, new_user, now, start};

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

#[tokio::test]
async fn addresses_are_one_account_whatever_their_case() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "Ada@Example.com", at).await;
        let found = store.user_by_email("ada@example.com").await.unwrap();
        assert_eq!(found.map(|u| u.id), Some(ada.id), "{}", db.backend);
        assert_eq!(ada.email, "Ada@Example.com", "the spelling given is kept");
        let taken = store.insert_user(&new_user("ADA@example.com", at)).await;
        assert!(matches!(taken, Err(StoreError::Conflict)), "{}", db.backend);

        add_user(&*store, "carol@example.com", at).await;
        add_user(&*store, "Bob@example.com", at).await;
        let emails: Vec<_> = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.email)
            .collect();
        assert_eq!(
            emails,
            ["Ada@Example.com", "Bob@example.com", "carol@example.com"],
            "{}: by address, whatever its case",
            db.backend
        );
        assert!(store.user_by_id(Uuid::now_v7()).await.unwrap().is_none());
    }
}

fn profile(given: &str, family: &str, locale: Option<&str>) -> ProfileRecord {
    ProfileRecord {
        name: format!("{given} {family}").trim().to_string(),
        given_name: given.into(),
        family_name: family.into(),
        locale: locale.map(str::to_string),
        time_zone: Some("Europe/Zurich".into()),
    }
}

#[tokio::test]
async fn a_profile_change_writes_its_event_and_leaves_the_address() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let epoch = store.revocations().epoch();
        let later = at + Duration::seconds(5);
        let changed = event(ada.id, Action::ProfileChanged, later);
        let updated = store
            .update_profile(ada.id, &profile("Ada", "L", Some("fr")), &changed)
            .await
            .unwrap();
        assert_eq!(updated.email, "ada@example.com", "{}", db.backend);
        assert_eq!(updated.name, "Ada L");
        assert_eq!(
            (updated.given_name.as_str(), updated.family_name.as_str()),
            ("Ada", "L")
        );
        assert_eq!(updated.time_zone.as_deref(), Some("Europe/Zurich"));
        assert_eq!(updated.locale.as_deref(), Some("fr"));
        assert_eq!(updated.updated_at, later);
        assert!(
            store.revocations().epoch() > epoch,
            "{}: tokens show the profile",
            db.backend
        );
        assert_eq!(store.recent_events(ada.id, 10).await.unwrap().len(), 1);

        // `None` clears the locale.
        let cleared = event(ada.id, Action::ProfileChanged, later);
        let updated = store
            .update_profile(ada.id, &profile("Ada", "L", None), &cleared)
            .await
            .unwrap();
        assert_eq!(updated.locale, None, "{}", db.backend);
    }
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_of_the_user() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let bob = add_user(&*store, "bob@example.com", at).await;
        let (kept, _) = start(&*store, ada.id, None, at).await;
        start(&*store, ada.id, None, at).await;
        start(&*store, ada.id, None, at).await;
        start(&*store, bob.id, None, at).await;

        let later = at + Duration::seconds(5);
        let changed = event(ada.id, Action::PasswordChanged, later);
        let alert = mail(&ada.email, later);
        let ended = store
            .change_password(ada.id, "$argon2id$new", kept, &changed, &alert)
            .await
            .unwrap();
        assert_eq!(ended, 2, "{}", db.backend);
        let left: Vec<_> = store
            .sessions_of_user(ada.id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(left, [kept], "{}", db.backend);
        assert_eq!(store.sessions_of_user(bob.id).await.unwrap().len(), 1);
        assert_eq!(
            db.count_where("sessions", "ended_reason = 'password_changed'")
                .await,
            2
        );
        let user = store.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(user.password_hash.as_deref(), Some("$argon2id$new"));
        assert_eq!(user.updated_at, later);
        assert_eq!(db.count("mail_outbox").await, 1, "{}", db.backend);
        let events = store.recent_events(ada.id, 1).await.unwrap();
        assert_eq!(events[0].action, "password.changed");

        // With no other session, nothing more ends.
        let changed = event(ada.id, Action::PasswordChanged, later);
        let ended = store
            .change_password(
                ada.id,
                "$argon2id$newer",
                kept,
                &changed,
                &mail(&ada.email, later),
            )
            .await
            .unwrap();
        assert_eq!(ended, 0, "{}", db.backend);
    }
}

#[tokio::test]
async fn deleting_a_user_keeps_a_tombstone_and_the_activity_without_personal_data() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let bob = add_user(&*store, "bob@example.com", at).await;
        let org = add_org(&*store, "Acme", at).await;
        let solo = add_org(&*store, "Solo", at).await;
        for (org_id, user, role) in [
            (org.id, ada.id, OrgRole::Member),
            (org.id, bob.id, OrgRole::LegalRepresentative),
            (solo.id, ada.id, OrgRole::LegalRepresentative),
        ] {
            let member = Membership {
                org_id,
                user_id: user,
                role,
                created_at: at,
            };
            store.put_membership(&member).await.unwrap();
        }
        for user in [ada.id, bob.id] {
            start(&*store, user, None, at).await;
        }
        let deleted = event(ada.id, Action::AccountDeleted, at);
        let goodbye = mail(&ada.email, at);
        // Ada is all of Solo: refused, nothing written.
        assert_eq!(
            store.delete_user(ada.id, &deleted, &goodbye).await.unwrap(),
            Deletion::StillNeeded(vec!["Solo".into()]),
            "{}",
            db.backend
        );
        assert_eq!(db.count("mail_outbox").await, 0);
        let left = event(bob.id, Action::ProfileChanged, at);
        store
            .delete_membership(solo.id, ada.id, &left)
            .await
            .unwrap();

        assert_eq!(
            store.delete_user(ada.id, &deleted, &goodbye).await.unwrap(),
            Deletion::Deleted,
            "{}",
            db.backend
        );
        // The row stays as a tombstone: the id is never reused, nothing personal is left.
        let tomb = store.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(
            (
                tomb.email.as_str(),
                tomb.name.as_str(),
                tomb.password_hash.as_deref()
            ),
            ("", "", None),
            "{}",
            db.backend
        );
        assert!(
            store
                .user_by_email("ada@example.com")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(db.count("memberships").await, 1, "{}: bob's", db.backend);
        // Sessions ended, without addresses or devices; events kept, scrubbed.
        assert!(store.sessions_of_user(ada.id).await.unwrap().is_empty());
        assert_eq!(store.sessions_of_user(bob.id).await.unwrap().len(), 1);
        let events = store.recent_events(ada.id, 10).await.unwrap();
        assert_eq!(events[0].action, "account.deleted", "{}", db.backend);
        assert!(events.len() >= 2, "the sign-in event stays");
        assert!(
            events[1..]
                .iter()
                .all(|e| e.ip.is_empty() && e.user_agent.is_empty() && e.details == "{}"),
            "{}",
            db.backend
        );
        assert_eq!(
            db.count("mail_outbox").await,
            1,
            "{}: the goodbye",
            db.backend
        );
        // The address is free for a new account, under a new id.
        let again = add_user(&*store, "ada@example.com", at).await;
        assert_ne!(again.id, ada.id);
        let listed: Vec<String> = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.email)
            .collect();
        assert_eq!(
            listed,
            ["ada@example.com", "bob@example.com"],
            "{}",
            db.backend
        );
    }
}

#[tokio::test]
async fn only_legal_representatives_and_only_members_are_named() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let bob = add_user(&*store, "bob@example.com", at).await;
        let roles = [
            ("Zeta", OrgRole::LegalRepresentative, None),
            ("Alpha", OrgRole::LegalRepresentative, Some(OrgRole::Member)),
            (
                "Both",
                OrgRole::LegalRepresentative,
                Some(OrgRole::LegalRepresentative),
            ),
            ("Run", OrgRole::Admin, Some(OrgRole::LegalRepresentative)),
            // The only member, whatever the role, is needed too.
            ("Solo", OrgRole::Member, None),
        ];
        for (name, ada_role, bob_role) in roles {
            let org = add_org(&*store, name, at).await;
            for (user, role) in [(ada.id, Some(ada_role)), (bob.id, bob_role)] {
                let Some(role) = role else { continue };
                let member = Membership {
                    org_id: org.id,
                    user_id: user,
                    role,
                    created_at: at,
                };
                store.put_membership(&member).await.unwrap();
            }
        }
        let only_ada = store.orgs_represented_only_by(ada.id).await.unwrap();
        assert_eq!(
            only_ada,
            ["Alpha", "Solo", "Zeta"],
            "{}: by name",
            db.backend
        );
        let only_bob = store.orgs_represented_only_by(bob.id).await.unwrap();
        assert_eq!(only_bob, ["Run"], "{}", db.backend);
    }
}

#[tokio::test]
async fn setup_creates_the_first_administrator_on_an_empty_database_only() {
    for (store, db) in each_store().await {
        let at = now();
        let token = OpaqueToken::generate();
        let stored = SetupToken {
            digest: token.digest(),
            created_at: at,
            expires_at: at + Duration::hours(1),
            used_at: None,
        };
        store.replace_setup_token(&stored).await.unwrap();
        let admin = NewUser {
            is_admin: true,
            ..new_user("root@example.com", at)
        };
        let created = event(admin.id, Action::AccountCreated, at);
        let first = store
            .complete_setup(&token.digest(), &admin, &created)
            .await
            .unwrap();
        assert!(first.is_admin, "{}", db.backend);
        assert_eq!(first.email, "root@example.com");
        let events = store.recent_events(first.id, 10).await.unwrap();
        assert_eq!(events.len(), 1, "{}", db.backend);
        assert_eq!(events[0].action, "account.created");

        // A new link does not erase the used one; it cannot be used while a user exists.
        let next = OpaqueToken::generate();
        let stored = SetupToken {
            digest: next.digest(),
            ..stored
        };
        store.replace_setup_token(&stored).await.unwrap();
        let used = store.setup_token(&token.digest()).await.unwrap().unwrap();
        assert_eq!(used.used_at, Some(at), "{}", db.backend);
        let second = NewUser {
            is_admin: true,
            ..new_user("eve@example.com", at)
        };
        let created = event(second.id, Action::AccountCreated, at);
        let refused = store
            .complete_setup(&next.digest(), &second, &created)
            .await;
        assert!(
            matches!(refused, Err(StoreError::TokenUnusable)),
            "{}",
            db.backend
        );
        assert_eq!(store.count_users().await.unwrap(), 1);
        let unused = store.setup_token(&next.digest()).await.unwrap().unwrap();
        assert!(unused.used_at.is_none(), "{}: nothing written", db.backend);
    }
}
