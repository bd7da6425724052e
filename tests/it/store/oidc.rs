//! `OidcStore`: clients, codes, grants, refresh tokens, revoked `jti`s, pruning.

use std::sync::Arc;

use gotthard::audit::Action;
use gotthard::oidc::{
    ClientAuthMethod, CodeRedemption, NewRefreshToken, RefreshUse, SessionMethod,
};
use gotthard::store::{Store, StoreError};
use gotthard::tokens::{OpaqueToken, SigningAlg, TokenDigest};
use time::Duration;
use uuid::Uuid;

use super::{add_grant, add_user, client, code, each_store, event, now, start};

#[tokio::test]
async fn clients_round_trip_are_listed_by_name_and_unique() {
    for (store, db) in each_store().await {
        let at = now();
        let full = gotthard::oidc::Client {
            secret_hash: None,
            auth_method: ClientAuthMethod::PrivateKeyJwt,
            jwks: Some(r#"{"keys":[]}"#.to_string()),
            redirect_uris: vec![
                "https://wiki.example/a".into(),
                "https://wiki.example/b".into(),
            ],
            post_logout_redirect_uris: vec!["https://wiki.example/bye".into()],
            first_party: true,
            require_pkce: false,
            id_token_alg: SigningAlg::Es256,
            admin_scope: true,
            introspect_for: vec!["api".into()],
            ..client("wiki", "Zed Wiki", Some("https://wiki.example/bc"), at)
        };
        store.insert_client(&full).await.unwrap();
        let read = store.client("wiki").await.unwrap().unwrap();
        assert_eq!(read.name, "Zed Wiki", "{}", db.backend);
        assert_eq!(read.secret_hash, None);
        assert_eq!(read.auth_method, ClientAuthMethod::PrivateKeyJwt);
        assert_eq!(read.jwks, full.jwks);
        assert_eq!(read.redirect_uris, full.redirect_uris);
        assert_eq!(
            read.post_logout_redirect_uris,
            full.post_logout_redirect_uris
        );
        assert_eq!(read.backchannel_logout_uri, full.backchannel_logout_uri);
        assert!(read.first_party && !read.require_pkce && read.admin_scope);
        assert_eq!(read.id_token_alg, SigningAlg::Es256);
        assert_eq!(read.introspect_for, ["api"]);
        assert_eq!(read.created_at, at);

        let plain = client("app", "Alpha", None, at);
        store.insert_client(&plain).await.unwrap();
        let read = store.client("app").await.unwrap().unwrap();
        assert_eq!(read.secret_hash, Some(TokenDigest::of("client-secret")));
        assert_eq!(read.auth_method, ClientAuthMethod::ClientSecretBasic);
        assert_eq!(read.backchannel_logout_uri, None, "{}", db.backend);
        assert!(store.client("nope").await.unwrap().is_none());

        let taken = store.insert_client(&client("app", "Other", None, at)).await;
        assert!(matches!(taken, Err(StoreError::Conflict)), "{}", db.backend);
        let ids: Vec<_> = store
            .list_clients()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["app", "wiki"], "{}: by name", db.backend);
    }
}

#[tokio::test]
async fn deleting_a_client_takes_its_grants_once() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let (session, _) = start(&*store, ada.id, None, at).await;
        store
            .insert_client(&client("app", "App", None, at))
            .await
            .unwrap();
        let grant = add_grant(&*store, "app", ada.id, session, at).await;
        let epoch = store.revocations().epoch();
        assert!(store.delete_client("app").await.unwrap(), "{}", db.backend);
        assert!(store.revocations().epoch() > epoch, "{}", db.backend);
        assert!(store.client("app").await.unwrap().is_none());
        assert!(
            store.grant(grant).await.unwrap().is_none(),
            "{}",
            db.backend
        );
        assert!(!store.delete_client("app").await.unwrap(), "{}", db.backend);
    }
}

#[tokio::test]
async fn a_code_is_redeemed_once_and_a_replay_revokes_its_grant() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let (session, _) = start(&*store, ada.id, None, at).await;
        store
            .insert_client(&client("app", "App", None, at))
            .await
            .unwrap();
        let (token, stored) = code("app", ada.id, session, at, Duration::minutes(1));
        store.insert_code(&stored).await.unwrap();

        let first = Uuid::now_v7();
        let later = at + Duration::seconds(5);
        let redeemed = store
            .redeem_code(&token.digest(), first, later)
            .await
            .unwrap();
        let CodeRedemption::Redeemed(redeemed) = redeemed else {
            panic!("{}: {redeemed:?}", db.backend)
        };
        assert_eq!(redeemed.digest, token.digest());
        assert_eq!(
            (
                redeemed.client_id.as_str(),
                redeemed.user_id,
                redeemed.session_id
            ),
            ("app", ada.id, session)
        );
        assert_eq!(redeemed.redirect_uri, stored.redirect_uri);
        assert_eq!(redeemed.scope, "openid email");
        assert_eq!(redeemed.nonce, stored.nonce);
        assert_eq!(redeemed.code_challenge, None);
        assert_eq!((redeemed.auth_time, redeemed.created_at), (at, at));
        assert_eq!(redeemed.expires_at, at + Duration::minutes(1));
        let grant = store.grant(first).await.unwrap().unwrap();
        assert_eq!(grant.client_id, "app", "{}", db.backend);
        assert_eq!(
            (grant.user_id, grant.session_id),
            (Some(ada.id), Some(session))
        );
        assert_eq!(
            (grant.scope.as_str(), grant.auth_time),
            ("openid email", Some(at))
        );
        assert!(!grant.revoked);
        let times = grant.session.unwrap();
        assert_eq!(times.method, SessionMethod::Password, "{}", db.backend);
        assert_eq!((times.created_at, times.last_seen_at), (at, at));

        // The second presentation is a replay: the grant the first one started is revoked.
        let second = Uuid::now_v7();
        let replayed = store
            .redeem_code(&token.digest(), second, later)
            .await
            .unwrap();
        assert!(
            matches!(replayed, CodeRedemption::Replayed(ref c) if c.digest == token.digest()),
            "{}: {replayed:?}",
            db.backend
        );
        assert!(store.grant(first).await.unwrap().unwrap().revoked);
        assert!(store.grant(second).await.unwrap().is_none());

        // Expired or unknown: unusable, and no grant.
        let (expired, stored) = code("app", ada.id, session, at, Duration::minutes(1));
        store.insert_code(&stored).await.unwrap();
        let late = at + Duration::minutes(2);
        let third = Uuid::now_v7();
        let refused = store
            .redeem_code(&expired.digest(), third, late)
            .await
            .unwrap();
        assert!(
            matches!(refused, CodeRedemption::Unusable),
            "{}",
            db.backend
        );
        assert!(store.grant(third).await.unwrap().is_none());
        let unknown = OpaqueToken::generate().digest();
        let refused = store.redeem_code(&unknown, third, at).await.unwrap();
        assert!(matches!(refused, CodeRedemption::Unusable));
    }
}

#[tokio::test]
async fn parallel_redemptions_of_one_code_start_one_grant() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let (session, _) = start(&*store, ada.id, None, at).await;
        store
            .insert_client(&client("app", "App", None, at))
            .await
            .unwrap();
        let (token, stored) = code("app", ada.id, session, at, Duration::minutes(1));
        store.insert_code(&stored).await.unwrap();
        let tries: Vec<_> = (0..8)
            .map(|_| {
                let store: Arc<dyn Store> = store.clone();
                let digest = token.digest();
                tokio::spawn(async move {
                    let grant = Uuid::now_v7();
                    (grant, store.redeem_code(&digest, grant, at).await.unwrap())
                })
            })
            .collect();
        let mut winners = Vec::new();
        for attempt in tries {
            let (grant, outcome) = attempt.await.unwrap();
            match outcome {
                CodeRedemption::Redeemed(_) => winners.push(grant),
                CodeRedemption::Replayed(_) => {}
                CodeRedemption::Unusable => panic!("{}: a known, fresh code", db.backend),
            }
        }
        assert_eq!(winners.len(), 1, "{}", db.backend);
        assert_eq!(db.count("oauth_grants").await, 1, "{}", db.backend);
        assert!(store.grant(winners[0]).await.unwrap().unwrap().revoked);
    }
}

#[tokio::test]
async fn grants_are_revoked_once_and_follow_their_session() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let (session, _) = start(&*store, ada.id, None, at).await;
        store
            .insert_client(&client("app", "App", None, at))
            .await
            .unwrap();
        let revoked = add_grant(&*store, "app", ada.id, session, at).await;
        let epoch = store.revocations().epoch();
        assert!(store.revoke_grant(revoked, "logout", at).await.unwrap());
        assert!(store.revocations().epoch() > epoch, "{}", db.backend);
        assert!(!store.revoke_grant(revoked, "logout", at).await.unwrap());
        assert!(store.grant(revoked).await.unwrap().unwrap().revoked);
        assert!(store.grant(Uuid::now_v7()).await.unwrap().is_none());

        // Its session ended: the grant is revoked and shows no session.
        let live = add_grant(&*store, "app", ada.id, session, at).await;
        let ended = event(ada.id, Action::Logout, at);
        store
            .end_session(ada.id, session, "logout", &ended)
            .await
            .unwrap();
        let grant = store.grant(live).await.unwrap().unwrap();
        assert!(grant.revoked, "{}", db.backend);
        assert!(grant.session.is_none(), "{}", db.backend);
        assert_eq!(
            db.count_where("oauth_grants", "revoked_reason = 'session_ended'")
                .await,
            1
        );
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_once_within_their_client_and_a_reuse_revokes() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let (session, _) = start(&*store, ada.id, None, at).await;
        for id in ["app", "other"] {
            let c = client(id, id, None, at);
            store.insert_client(&c).await.unwrap();
        }
        let grant = add_grant(&*store, "app", ada.id, session, at).await;
        let refresh = |grant_id| {
            let token = OpaqueToken::generate();
            let stored = NewRefreshToken {
                digest: token.digest(),
                grant_id,
                created_at: at,
                expires_at: at + Duration::days(1),
            };
            (token, stored)
        };
        let (first, stored) = refresh(grant);
        let issued = event(ada.id, Action::TokenIssued, at);
        let access_only = event(ada.id, Action::TokenIssued, at);
        store
            .record_issues(&[(Some(stored), issued), (None, access_only)])
            .await
            .unwrap();
        store.record_issues(&[]).await.unwrap();
        assert_eq!(store.recent_events(ada.id, 10).await.unwrap().len(), 3);
        let live = store
            .refresh_token_grant(&first.digest(), at)
            .await
            .unwrap();
        assert_eq!(live.map(|g| g.id), Some(grant), "{}", db.backend);

        // Another client's token is unusable, and stays as it was.
        let grace = Duration::seconds(30);
        let t = at + Duration::seconds(1);
        let foreign = store
            .use_refresh_token(&first.digest(), "other", t, grace)
            .await;
        assert!(
            matches!(foreign.unwrap(), RefreshUse::Unusable),
            "{}",
            db.backend
        );
        assert!(
            store
                .refresh_token_grant(&first.digest(), t)
                .await
                .unwrap()
                .is_some()
        );

        let rotated = store
            .use_refresh_token(&first.digest(), "app", t, grace)
            .await;
        assert!(
            matches!(rotated.unwrap(), RefreshUse::Rotated(ref g) if g.id == grant),
            "{}",
            db.backend
        );
        assert!(
            store
                .refresh_token_grant(&first.digest(), t)
                .await
                .unwrap()
                .is_none()
        );

        // A parallel rotation within the grace period works too; later it is a reuse.
        let within = t + Duration::seconds(10);
        let racing = store
            .use_refresh_token(&first.digest(), "app", within, grace)
            .await;
        assert!(
            matches!(racing.unwrap(), RefreshUse::Rotated(_)),
            "{}",
            db.backend
        );
        assert!(!store.grant(grant).await.unwrap().unwrap().revoked);
        let outside = t + Duration::minutes(2);
        let reused = store
            .use_refresh_token(&first.digest(), "app", outside, grace)
            .await;
        assert!(
            matches!(reused.unwrap(), RefreshUse::Reused(ref g) if g.revoked),
            "{}",
            db.backend
        );
        assert!(store.grant(grant).await.unwrap().unwrap().revoked);

        // Without a grace period a second use is a reuse at once.
        let other_grant = add_grant(&*store, "app", ada.id, session, at).await;
        let (second, stored) = refresh(other_grant);
        let issued = event(ada.id, Action::TokenIssued, at);
        store
            .record_issues(&[(Some(stored), issued)])
            .await
            .unwrap();
        let none = Duration::ZERO;
        let once = store
            .use_refresh_token(&second.digest(), "app", t, none)
            .await;
        assert!(matches!(once.unwrap(), RefreshUse::Rotated(_)));
        let twice = store
            .use_refresh_token(&second.digest(), "app", t, none)
            .await;
        assert!(
            matches!(twice.unwrap(), RefreshUse::Reused(_)),
            "{}",
            db.backend
        );

        // Expired or unknown: unusable.
        let fresh_grant = add_grant(&*store, "app", ada.id, session, at).await;
        let (third, stored) = refresh(fresh_grant);
        let issued = event(ada.id, Action::TokenIssued, at);
        store
            .record_issues(&[(Some(stored), issued)])
            .await
            .unwrap();
        let expired = at + Duration::days(2);
        assert!(
            store
                .refresh_token_grant(&third.digest(), expired)
                .await
                .unwrap()
                .is_none()
        );
        let late = store
            .use_refresh_token(&third.digest(), "app", expired, grace)
            .await;
        assert!(
            matches!(late.unwrap(), RefreshUse::Unusable),
            "{}",
            db.backend
        );
        assert!(!store.grant(fresh_grant).await.unwrap().unwrap().revoked);
        let unknown = OpaqueToken::generate().digest();
        let unknown = store.use_refresh_token(&unknown, "app", t, grace).await;
        assert!(matches!(unknown.unwrap(), RefreshUse::Unusable));
    }
}

#[tokio::test]
async fn an_access_tokens_state_comes_with_its_grant_user_and_revoked_jti() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let (session, _) = start(&*store, ada.id, None, at).await;
        store
            .insert_client(&client("app", "App", None, at))
            .await
            .unwrap();
        let grant = add_grant(&*store, "app", ada.id, session, at).await;

        let nothing = store.access_token_state("jti-0", None).await.unwrap();
        assert!(!nothing.jti_revoked, "{}", db.backend);
        assert!(nothing.grant.is_none() && nothing.user.is_none());
        let unknown = store
            .access_token_state("jti-0", Some(Uuid::now_v7()))
            .await
            .unwrap();
        assert!(
            unknown.grant.is_none() && unknown.user.is_none(),
            "{}",
            db.backend
        );

        let live = store
            .access_token_state("jti-1", Some(grant))
            .await
            .unwrap();
        assert!(!live.jti_revoked);
        let state = live.grant.unwrap();
        assert_eq!((state.id, state.revoked), (grant, false), "{}", db.backend);
        assert!(state.session.is_some());
        assert_eq!(
            live.user.map(|u| u.email).as_deref(),
            Some("ada@example.com")
        );

        let epoch = store.revocations().epoch();
        let expires = at + Duration::minutes(10);
        assert!(
            store.remember_jti("jti-1", expires).await.unwrap(),
            "{}",
            db.backend
        );
        assert!(store.revocations().epoch() > epoch);
        assert!(
            !store.remember_jti("jti-1", expires).await.unwrap(),
            "{}",
            db.backend
        );
        let revoked = store
            .access_token_state("jti-1", Some(grant))
            .await
            .unwrap();
        assert!(revoked.jti_revoked, "{}", db.backend);
        assert!(
            !store
                .access_token_state("jti-2", None)
                .await
                .unwrap()
                .jti_revoked
        );
    }
}

#[tokio::test]
async fn expired_codes_jtis_and_refresh_tokens_are_pruned() {
    for (store, db) in each_store().await {
        let at = now();
        let ada = add_user(&*store, "ada@example.com", at).await;
        let (session, _) = start(&*store, ada.id, None, at).await;
        store
            .insert_client(&client("app", "App", None, at))
            .await
            .unwrap();
        let grant = add_grant(&*store, "app", ada.id, session, at).await;
        for ttl in [Duration::seconds(-1), Duration::minutes(1)] {
            let (_, stored) = code("app", ada.id, session, at, ttl);
            store.insert_code(&stored).await.unwrap();
            let jti = format!("jti{ttl}");
            store.remember_jti(&jti, at + ttl).await.unwrap();
            let refresh = NewRefreshToken {
                digest: OpaqueToken::generate().digest(),
                grant_id: grant,
                created_at: at,
                expires_at: at + ttl,
            };
            let issued = event(ada.id, Action::TokenIssued, at);
            store
                .record_issues(&[(Some(refresh), issued)])
                .await
                .unwrap();
        }
        // The code `add_grant` redeemed expired at `at + 1 min` too.
        let pruned = store.prune_oidc(at + Duration::seconds(30)).await.unwrap();
        assert_eq!(pruned, 3, "{}", db.backend);
        assert_eq!(db.count("oauth_codes").await, 2, "{}", db.backend);
        assert_eq!(db.count("oauth_revoked_jti").await, 1);
        assert_eq!(db.count("oauth_refresh_tokens").await, 1);
        assert_eq!(
            store.prune_oidc(at + Duration::seconds(30)).await.unwrap(),
            0
        );
    }
}
