//! `SsoStore`: connections and their domains, flow state, linked identities, provisioning,
//! pending links, memberships removed with their SSO sessions.

use gotthard::accounts::NewUser;
use gotthard::audit::Action;
use gotthard::federation::{FederatedIdentity, PendingLink, Reauthentication, SsoFlow};
use gotthard::orgs::{DomainProof, Membership, OrgRole, SsoConnection};
use gotthard::store::{Store, StoreError};
use gotthard::tokens::OpaqueToken;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{add_org, add_user, anonymous_event, each_store, event, new_user, now, start};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn connection(org: Uuid, domains: &[&str], at: OffsetDateTime) -> SsoConnection {
    SsoConnection {
        org_id: org,
        tenant_id: TENANT.to_string(),
        client_id: "client-1".to_string(),
        client_secret_enc: vec![1, 2, 3],
        authority: "https://login.microsoftonline.com".to_string(),
        provision: false,
        default_role: OrgRole::Member,
        enforce_sso: false,
        domains: domains.iter().map(|d| d.to_string()).collect(),
        verified_domains: vec![],
        created_at: at,
        updated_at: at,
    }
}

fn identity(object_id: &str, user: Uuid, org: Uuid, at: OffsetDateTime) -> FederatedIdentity {
    FederatedIdentity {
        tenant_id: TENANT.to_string(),
        object_id: object_id.to_string(),
        user_id: user,
        org_id: org,
        created_at: at,
    }
}

fn membership(org: Uuid, user: Uuid, role: OrgRole, at: OffsetDateTime) -> Membership {
    Membership {
        org_id: org,
        user_id: user,
        role,
        created_at: at,
    }
}

async fn verify(store: &dyn Store, org: Uuid, domain: &str, at: OffsetDateTime) {
    let verified = anonymous_event(Action::DomainChanged, at);
    let proof = DomainProof::Operator;
    let marked = store
        .mark_domain_verified(org, domain, proof, &verified)
        .await;
    assert!(marked.unwrap());
}

#[tokio::test]
async fn a_connection_round_trips_and_routes_only_verified_domains() {
    for (store, db) in each_store().await {
        let at = now();
        let org = add_org(&*store, "Acme", at).await;
        assert_eq!(store.org_by_id(org.id).await.unwrap().unwrap().name, "Acme");
        assert!(store.org_by_id(Uuid::now_v7()).await.unwrap().is_none());

        let first = connection(org.id, &["contoso.com", "fabrikam.com"], at);
        store.put_sso_connection(&first).await.unwrap();
        let read = store.sso_connection(org.id).await.unwrap().unwrap();
        assert_eq!(read.tenant_id, TENANT, "{}", db.backend);
        assert_eq!(read.client_id, "client-1");
        assert_eq!(read.client_secret_enc, [1, 2, 3]);
        assert_eq!(read.authority, "https://login.microsoftonline.com");
        assert_eq!(read.default_role, OrgRole::Member);
        assert!(!read.provision && !read.enforce_sso);
        assert_eq!(read.domains, ["contoso.com", "fabrikam.com"]);
        assert!(read.verified_domains.is_empty());
        assert_eq!((read.created_at, read.updated_at), (at, at));
        let routed = store
            .sso_connection_for_domain("contoso.com")
            .await
            .unwrap();
        assert!(routed.is_none(), "{}: unverified routes nobody", db.backend);

        verify(&*store, org.id, "contoso.com", at).await;
        let routed = store
            .sso_connection_for_domain("contoso.com")
            .await
            .unwrap();
        assert_eq!(routed.map(|c| c.org_id), Some(org.id), "{}", db.backend);
        assert!(
            store
                .sso_connection_for_domain("nope.com")
                .await
                .unwrap()
                .is_none()
        );

        // Replaced: new settings and domains; a domain that stays keeps its proof.
        let later = at + Duration::minutes(1);
        let second = SsoConnection {
            client_id: "client-2".to_string(),
            provision: true,
            default_role: OrgRole::Admin,
            enforce_sso: true,
            created_at: later,
            updated_at: later,
            ..connection(org.id, &["contoso.com", "northwind.com"], at)
        };
        store.put_sso_connection(&second).await.unwrap();
        let read = store.sso_connection(org.id).await.unwrap().unwrap();
        assert_eq!(read.client_id, "client-2", "{}", db.backend);
        assert!(read.provision && read.enforce_sso);
        assert_eq!(read.default_role, OrgRole::Admin);
        assert_eq!(
            read.domains,
            ["contoso.com", "northwind.com"],
            "{}",
            db.backend
        );
        assert_eq!(read.verified_domains, ["contoso.com"], "{}", db.backend);
        assert_eq!(
            (read.created_at, read.updated_at),
            (at, later),
            "{}",
            db.backend
        );

        // Removed: the organization keeps its domains and their proof.
        assert!(
            store.delete_sso_connection(org.id).await.unwrap(),
            "{}",
            db.backend
        );
        assert!(store.sso_connection(org.id).await.unwrap().is_none());
        assert!(
            store
                .sso_connection_for_domain("contoso.com")
                .await
                .unwrap()
                .is_none()
        );
        let domains = store.org_domains(org.id).await.unwrap();
        assert_eq!(domains.len(), 2, "{}", db.backend);
        assert!(domains[0].is_verified());
        assert!(
            !store.delete_sso_connection(org.id).await.unwrap(),
            "{}",
            db.backend
        );
    }
}

#[tokio::test]
async fn a_flow_is_taken_once_and_expired_state_is_pruned() {
    for (store, db) in each_store().await {
        let at = now();
        let org = add_org(&*store, "Acme", at).await;
        let ada = add_user(&*store, "ada@example.com", at).await;
        let flow = |expires_at| SsoFlow {
            state: OpaqueToken::generate().digest(),
            org_id: org.id,
            browser: OpaqueToken::generate().digest(),
            nonce: "nonce-1".to_string(),
            next: Some("/authorize?client_id=app".to_string()),
            reauth: Reauthentication {
                prompt_login: true,
                max_age: Some(300),
            },
            created_at: at,
            expires_at,
        };
        let live = flow(at + Duration::minutes(10));
        store.insert_sso_flow(&live).await.unwrap();
        let taken = store.take_sso_flow(&live.state).await.unwrap().unwrap();
        assert_eq!(taken.state, live.state, "{}", db.backend);
        assert_eq!((taken.org_id, taken.browser), (org.id, live.browser));
        assert_eq!(taken.nonce, "nonce-1");
        assert_eq!(taken.next, live.next);
        assert_eq!(taken.reauth, live.reauth, "{}", db.backend);
        assert_eq!((taken.created_at, taken.expires_at), (at, live.expires_at));
        assert!(
            store.take_sso_flow(&live.state).await.unwrap().is_none(),
            "{}: a state works once",
            db.backend
        );

        let link = |expires_at| PendingLink {
            token: OpaqueToken::generate().digest(),
            browser: OpaqueToken::generate().digest(),
            tenant_id: TENANT.to_string(),
            object_id: "oid-1".to_string(),
            user_id: ada.id,
            org_id: org.id,
            next: None,
            created_at: at,
            expires_at,
        };
        let (kept_flow, old_flow) = (flow(at + Duration::minutes(10)), flow(at));
        let (kept_link, old_link) = (link(at + Duration::minutes(10)), link(at));
        for f in [&kept_flow, &old_flow] {
            store.insert_sso_flow(f).await.unwrap();
        }
        for l in [&kept_link, &old_link] {
            store.insert_pending_link(l).await.unwrap();
        }
        let pruned = store
            .prune_sso_state(at + Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(pruned, 2, "{}", db.backend);
        assert!(
            store
                .take_sso_flow(&old_flow.state)
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.pending_link(&old_link.token).await.unwrap().is_none());
        assert!(
            store
                .take_sso_flow(&kept_flow.state)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .pending_link(&kept_link.token)
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test]
async fn provisioning_writes_account_identity_membership_and_event_or_nothing() {
    for (store, db) in each_store().await {
        let at = now();
        let org = add_org(&*store, "Acme", at).await;
        let user = NewUser {
            password_hash: None,
            ..new_user("ada@contoso.com", at)
        };
        let linked = identity("oid-1", user.id, org.id, at);
        let member = membership(org.id, user.id, OrgRole::Member, at);
        let signed_in = event(user.id, Action::SsoLinked, at);
        let created = store
            .provision_sso_user(&user, &linked, &member, &signed_in)
            .await
            .unwrap();
        assert_eq!(created.email, "ada@contoso.com", "{}", db.backend);
        assert!(created.password_hash.is_none());
        let found = store
            .federated_identity(TENANT, "oid-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.user_id, found.org_id),
            (user.id, org.id),
            "{}",
            db.backend
        );
        assert_eq!((found.tenant_id.as_str(), found.created_at), (TENANT, at));
        let role = store.membership_role(org.id, user.id).await.unwrap();
        assert_eq!(role, Some(OrgRole::Member), "{}", db.backend);
        assert_eq!(store.recent_events(user.id, 10).await.unwrap().len(), 1);
        assert!(
            store
                .federated_identity(TENANT, "oid-2")
                .await
                .unwrap()
                .is_none()
        );

        // The address is taken: nothing of the second identity is written.
        let twin = NewUser {
            password_hash: None,
            ..new_user("ADA@contoso.com", at)
        };
        let other = identity("oid-2", twin.id, org.id, at);
        let member = membership(org.id, twin.id, OrgRole::Member, at);
        let signed_in = event(twin.id, Action::SsoLinked, at);
        let taken = store
            .provision_sso_user(&twin, &other, &member, &signed_in)
            .await;
        assert!(matches!(taken, Err(StoreError::Conflict)), "{}", db.backend);
        assert!(
            store
                .federated_identity(TENANT, "oid-2")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(db.count("memberships").await, 1, "{}", db.backend);
    }
}

#[tokio::test]
async fn a_pending_link_completes_once_and_keeps_an_existing_role() {
    for (store, db) in each_store().await {
        let at = now();
        let org = add_org(&*store, "Acme", at).await;
        let ada = add_user(&*store, "ada@contoso.com", at).await;
        let bob = add_user(&*store, "bob@contoso.com", at).await;
        let token = OpaqueToken::generate();
        let link = PendingLink {
            token: token.digest(),
            browser: OpaqueToken::generate().digest(),
            tenant_id: TENANT.to_string(),
            object_id: "oid-ada".to_string(),
            user_id: ada.id,
            org_id: org.id,
            next: Some("/authorize?client_id=app".to_string()),
            created_at: at,
            expires_at: at + Duration::minutes(10),
        };
        store.insert_pending_link(&link).await.unwrap();
        let read = store.pending_link(&token.digest()).await.unwrap().unwrap();
        assert_eq!(
            (read.token, read.browser),
            (link.token, link.browser),
            "{}",
            db.backend
        );
        assert_eq!(
            (read.tenant_id.as_str(), read.object_id.as_str()),
            (TENANT, "oid-ada")
        );
        assert_eq!((read.user_id, read.org_id), (ada.id, org.id));
        assert_eq!(read.next, link.next);
        assert_eq!((read.created_at, read.expires_at), (at, link.expires_at));

        let linked = identity("oid-ada", ada.id, org.id, at);
        let member = membership(org.id, ada.id, OrgRole::Admin, at);
        let done = event(ada.id, Action::SsoLinked, at);
        let completed = store
            .complete_link(&token.digest(), &linked, Some(&member), &done)
            .await;
        assert!(completed.unwrap(), "{}", db.backend);
        assert!(store.pending_link(&token.digest()).await.unwrap().is_none());
        let found = store.federated_identity(TENANT, "oid-ada").await.unwrap();
        assert_eq!(found.map(|i| i.user_id), Some(ada.id), "{}", db.backend);
        let role = store.membership_role(org.id, ada.id).await.unwrap();
        assert_eq!(role, Some(OrgRole::Admin), "{}", db.backend);
        let again = store
            .complete_link(&token.digest(), &linked, Some(&member), &done)
            .await;
        assert!(!again.unwrap(), "{}: a link works once", db.backend);

        // A member already: the link does not change their role.
        let member = membership(org.id, bob.id, OrgRole::LegalRepresentative, at);
        store.put_membership(&member).await.unwrap();
        let token = OpaqueToken::generate();
        let link = PendingLink {
            token: token.digest(),
            object_id: "oid-bob".to_string(),
            user_id: bob.id,
            ..link
        };
        store.insert_pending_link(&link).await.unwrap();
        let linked = identity("oid-bob", bob.id, org.id, at);
        let member = membership(org.id, bob.id, OrgRole::Member, at);
        let done = event(bob.id, Action::SsoLinked, at);
        let completed = store
            .complete_link(&token.digest(), &linked, Some(&member), &done)
            .await;
        assert!(completed.unwrap(), "{}", db.backend);
        let role = store.membership_role(org.id, bob.id).await.unwrap();
        assert_eq!(role, Some(OrgRole::LegalRepresentative), "{}", db.backend);
    }
}

#[tokio::test]
async fn an_identity_is_linked_to_one_account() {
    for (store, db) in each_store().await {
        let at = now();
        let org = add_org(&*store, "Acme", at).await;
        let ada = add_user(&*store, "ada@contoso.com", at).await;
        let bob = add_user(&*store, "bob@contoso.com", at).await;
        let linked = identity("oid-1", ada.id, org.id, at);
        let by_operator = event(ada.id, Action::SsoLinked, at);
        store
            .insert_federated_identity(&linked, &by_operator)
            .await
            .unwrap();
        assert_eq!(store.recent_events(ada.id, 10).await.unwrap().len(), 1);
        let again = identity("oid-1", bob.id, org.id, at);
        let by_operator = event(bob.id, Action::SsoLinked, at);
        let taken = store.insert_federated_identity(&again, &by_operator).await;
        assert!(matches!(taken, Err(StoreError::Conflict)), "{}", db.backend);
        assert!(store.recent_events(bob.id, 10).await.unwrap().is_empty());
        let found = store.federated_identity(TENANT, "oid-1").await.unwrap();
        assert_eq!(found.map(|i| i.user_id), Some(ada.id), "{}", db.backend);
    }
}

#[tokio::test]
async fn removing_a_member_ends_their_sessions_through_that_organization_only() {
    for (store, db) in each_store().await {
        let at = now();
        let acme = add_org(&*store, "Acme", at).await;
        let beta = add_org(&*store, "Beta", at).await;
        let ada = add_user(&*store, "ada@example.com", at).await;
        for org in [acme.id, beta.id] {
            let member = membership(org, ada.id, OrgRole::Member, at);
            store.put_membership(&member).await.unwrap();
        }
        let (acme_sso, _) = start(&*store, ada.id, Some(acme.id), at).await;
        let (beta_sso, _) = start(&*store, ada.id, Some(beta.id), at).await;
        let (password, _) = start(&*store, ada.id, None, at).await;

        let epoch = store.revocations().epoch();
        let removed = event(ada.id, Action::SessionEnded, at + Duration::seconds(1));
        let ended = store.delete_membership(acme.id, ada.id, &removed).await;
        assert_eq!(ended.unwrap(), Some(1), "{}", db.backend);
        assert!(store.revocations().epoch() > epoch);
        assert_eq!(store.membership_role(acme.id, ada.id).await.unwrap(), None);
        let mut left: Vec<_> = store
            .sessions_of_user(ada.id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        left.sort();
        let mut expected = vec![beta_sso, password];
        expected.sort();
        assert_eq!(left, expected, "{}", db.backend);
        assert!(!left.contains(&acme_sso));
        assert_eq!(
            db.count_where("sessions", "ended_reason = 'membership_removed'")
                .await,
            1
        );
        assert_eq!(
            store.recent_events(ada.id, 1).await.unwrap()[0].id,
            removed.id
        );

        // No membership: `None`. A membership without SSO sessions: none ended, no event.
        let removed_again = event(ada.id, Action::SessionEnded, at);
        let none = store
            .delete_membership(acme.id, ada.id, &removed_again)
            .await;
        assert_eq!(none.unwrap(), None, "{}", db.backend);
        let bob = add_user(&*store, "bob@example.com", at).await;
        let member = membership(beta.id, bob.id, OrgRole::Member, at);
        store.put_membership(&member).await.unwrap();
        let removed = event(bob.id, Action::SessionEnded, at);
        let ended = store.delete_membership(beta.id, bob.id, &removed).await;
        assert_eq!(ended.unwrap(), Some(0), "{}", db.backend);
        assert!(store.recent_events(bob.id, 10).await.unwrap().is_empty());
    }
}
