//! `LogoutStore`: back-channel logouts queued when sessions end, claimed per client under a
//! lease, released, retried, sent, dead-lettered, counted; and every way a session ends
//! queues them.

use gotthard::audit::Action;
use gotthard::orgs::{Membership, OrgRole};
use gotthard::store::Store;
use gotthard::tokens::SigningAlg;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{add_grant, add_org, add_user, client, each_store, event, mail, now, start};

/// A session of `user` with a grant of `client_id`, ended at `at`: one logout queued for the
/// client, due at `at`. The session's id.
async fn ended_session(store: &dyn Store, client_id: &str, user: Uuid, at: OffsetDateTime) -> Uuid {
    let (session, _) = start(store, user, None, at).await;
    add_grant(store, client_id, user, session, at).await;
    let logout = event(user, Action::Logout, at);
    assert!(
        store
            .end_session(user, session, "logout", &logout)
            .await
            .unwrap()
    );
    session
}

async fn with_clients(store: &dyn Store, at: OffsetDateTime) {
    let wiki = gotthard::oidc::Client {
        id_token_alg: SigningAlg::Es256,
        ..client("wiki", "Wiki", Some("https://wiki.example/bc"), at)
    };
    store.insert_client(&wiki).await.unwrap();
    let app = client("app", "App", Some("https://app.example/bc"), at);
    store.insert_client(&app).await.unwrap();
    // Without a back-channel URI a client hears of nothing.
    let quiet = client("quiet", "Quiet", None, at);
    store.insert_client(&quiet).await.unwrap();
}

#[tokio::test]
async fn logouts_are_claimed_under_a_lease_a_few_per_client() {
    for (store, db) in each_store().await {
        let at = now();
        with_clients(&*store, at).await;
        let ada = add_user(&*store, "ada@example.com", at).await;
        let mut wiki_sessions = Vec::new();
        for _ in 0..3 {
            wiki_sessions.push(ended_session(&*store, "wiki", ada.id, at).await);
        }
        let app_session = ended_session(&*store, "app", ada.id, at).await;
        ended_session(&*store, "quiet", ada.id, at).await;
        let counts = store.count_logouts().await.unwrap();
        assert_eq!((counts.queued, counts.dead), (4, 0), "{}", db.backend);

        let lease = at + Duration::minutes(5);
        let mut claimed = store.claim_due_logouts(at, lease, 10, 2).await.unwrap();
        claimed.sort_by(|a, b| (&a.client_id, a.id).cmp(&(&b.client_id, b.id)));
        let clients: Vec<_> = claimed.iter().map(|l| l.client_id.as_str()).collect();
        assert_eq!(
            clients,
            ["app", "wiki", "wiki"],
            "{}: two per client",
            db.backend
        );
        let app = &claimed[0];
        assert_eq!(app.uri, "https://app.example/bc");
        assert_eq!(app.id_token_alg, SigningAlg::Rs256);
        assert_eq!(app.subject, ada.id.to_string());
        assert_eq!(app.session_id, app_session.to_string());
        assert_eq!(app.attempts, 1, "{}: a claim is an attempt", db.backend);
        assert_eq!(claimed[1].id_token_alg, SigningAlg::Es256);
        assert!(wiki_sessions.contains(&claimed[1].session_id.parse().unwrap()));

        // Leased: the next claim gets the one left, then nothing.
        let rest = store.claim_due_logouts(at, lease, 10, 2).await.unwrap();
        assert_eq!(rest.len(), 1, "{}", db.backend);
        assert_eq!(rest[0].client_id, "wiki");
        assert!(
            store
                .claim_due_logouts(at, lease, 10, 2)
                .await
                .unwrap()
                .is_empty()
        );
        // The limit bounds a claim as a whole.
        let after = lease + Duration::seconds(1);
        let limited = store
            .claim_due_logouts(after, after + Duration::minutes(5), 2, 2)
            .await;
        assert_eq!(limited.unwrap().len(), 2, "{}", db.backend);
    }
}

#[tokio::test]
async fn a_logout_is_released_retried_sent_or_dead_lettered() {
    for (store, db) in each_store().await {
        let at = now();
        with_clients(&*store, at).await;
        let ada = add_user(&*store, "ada@example.com", at).await;
        for _ in 0..3 {
            ended_session(&*store, "app", ada.id, at).await;
        }
        let lease = at + Duration::minutes(5);
        let claimed = store.claim_due_logouts(at, lease, 10, 10).await.unwrap();
        let [released, retried, dead] = [claimed[0].id, claimed[1].id, claimed[2].id];

        // Given back (its receiver was busy): due now, the claim not counted.
        let t = at + Duration::seconds(1);
        store.release_logout(released, t).await.unwrap();
        let again = store.claim_due_logouts(t, lease, 10, 10).await.unwrap();
        assert_eq!(again.len(), 1, "{}", db.backend);
        assert_eq!(
            (again[0].id, again[0].attempts),
            (released, 1),
            "{}",
            db.backend
        );
        store.mark_logout_sent(released, t).await.unwrap();

        // A failure waits for its retry.
        let retry = at + Duration::minutes(1);
        store
            .mark_logout_failed(retried, "503 Service Unavailable", retry)
            .await
            .unwrap();
        let early = retry - Duration::seconds(1);
        assert!(
            store
                .claim_due_logouts(early, lease, 10, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let due = store.claim_due_logouts(retry, lease, 10, 10).await.unwrap();
        assert_eq!(due.len(), 1, "{}", db.backend);
        assert_eq!((due[0].id, due[0].attempts), (retried, 2));
        assert_eq!(
            db.count_where(
                "backchannel_outbox",
                "last_error = '503 Service Unavailable'"
            )
            .await,
            1
        );

        store.mark_logout_dead(dead, "gave up", t).await.unwrap();
        let counts = store.count_logouts().await.unwrap();
        assert_eq!((counts.queued, counts.dead), (1, 1), "{}", db.backend);

        // Neither sent nor dead-lettered logouts are claimed again, leases or not.
        let much_later = at + Duration::hours(1);
        let left = store
            .claim_due_logouts(much_later, much_later + Duration::minutes(5), 10, 10)
            .await
            .unwrap();
        let ids: Vec<_> = left.iter().map(|l| l.id).collect();
        assert_eq!(ids, [retried], "{}", db.backend);
    }
}

#[tokio::test]
async fn sent_and_long_dead_logouts_are_pruned() {
    for (store, db) in each_store().await {
        let at = now();
        with_clients(&*store, at).await;
        let ada = add_user(&*store, "ada@example.com", at).await;
        for _ in 0..5 {
            ended_session(&*store, "app", ada.id, at).await;
        }
        let lease = at + Duration::minutes(5);
        let claimed = store.claim_due_logouts(at, lease, 10, 10).await.unwrap();
        let ids: Vec<_> = claimed.iter().map(|l| l.id).collect();
        store
            .mark_logout_sent(ids[0], at - Duration::days(2))
            .await
            .unwrap();
        store.mark_logout_sent(ids[1], at).await.unwrap();
        store
            .mark_logout_dead(ids[2], "gave up", at - Duration::days(31))
            .await
            .unwrap();
        store.mark_logout_dead(ids[3], "gave up", at).await.unwrap();
        // Codes from `ended_session` are still valid: only the two old logouts go.
        assert_eq!(store.prune_oidc(at).await.unwrap(), 2, "{}", db.backend);
        assert_eq!(db.count("backchannel_outbox").await, 3, "{}", db.backend);
        let counts = store.count_logouts().await.unwrap();
        assert_eq!((counts.queued, counts.dead), (1, 1), "{}", db.backend);
    }
}

#[tokio::test]
async fn every_way_a_session_ends_revokes_its_grants_and_queues_its_logouts() {
    for (store, db) in each_store().await {
        let at = now();
        with_clients(&*store, at).await;
        let org = add_org(&*store, "Acme", at).await;
        let ada = add_user(&*store, "ada@example.com", at).await;
        let member = Membership {
            org_id: org.id,
            user_id: ada.id,
            role: OrgRole::Member,
            created_at: at,
        };
        store.put_membership(&member).await.unwrap();
        let (kept, _) = start(&*store, ada.id, None, at).await;
        let mut grants = Vec::new();
        let session_with_grants = |session| {
            let store = store.clone();
            async move {
                let mut made = Vec::new();
                for client_id in ["app", "quiet"] {
                    made.push(add_grant(&*store, client_id, ada.id, session, at).await);
                }
                made
            }
        };
        let ending = || event(ada.id, Action::SessionEnded, at);

        let (one, _) = start(&*store, ada.id, None, at).await;
        grants.extend(session_with_grants(one).await);
        assert!(
            store
                .end_session(ada.id, one, "owner", &ending())
                .await
                .unwrap()
        );

        let (other, _) = start(&*store, ada.id, None, at).await;
        grants.extend(session_with_grants(other).await);
        let ended = store
            .end_other_sessions(ada.id, kept, "owner", &ending())
            .await;
        assert_eq!(ended.unwrap(), 1);

        let (before_change, _) = start(&*store, ada.id, None, at).await;
        grants.extend(session_with_grants(before_change).await);
        let changed = store
            .change_password(ada.id, "$new", kept, &ending(), &mail("a@b.c", at))
            .await;
        assert_eq!(changed.unwrap(), 1);

        let (sso, _) = start(&*store, ada.id, Some(org.id), at).await;
        grants.extend(session_with_grants(sso).await);
        let removed = store.delete_membership(org.id, ada.id, &ending()).await;
        assert_eq!(removed.unwrap(), Some(1), "{}", db.backend);

        for grant in &grants {
            let state = store.grant(*grant).await.unwrap().unwrap();
            assert!(state.revoked, "{}: grant {grant}", db.backend);
        }
        // One logout per ended session, for the client that listens.
        let counts = store.count_logouts().await.unwrap();
        assert_eq!(counts.queued, 4, "{}", db.backend);

        // Deleting the account ends the session it kept.
        let last = session_with_grants(kept).await;
        let deleted = event(ada.id, Action::AccountDeleted, at);
        assert_eq!(
            store
                .delete_user(ada.id, &deleted, &mail(&ada.email, at))
                .await
                .unwrap(),
            gotthard::accounts::Deletion::Deleted
        );
        assert_eq!(
            store.count_logouts().await.unwrap().queued,
            5,
            "{}",
            db.backend
        );
        assert!(
            store.grant(last[0]).await.unwrap().unwrap().revoked,
            "revoked with the account"
        );
    }
}
