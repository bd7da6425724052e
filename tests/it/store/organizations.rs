//! `OrganizationStore`: organizations, memberships, members.

use gotthard::accounts::{NewUser, UnlockToken};
use gotthard::audit::Action;
use gotthard::orgs::{Membership, OrgRole, Organization};
use gotthard::store::StoreError;
use gotthard::tokens::OpaqueToken;
use time::Duration;
use uuid::Uuid;

use super::{add_org, add_user, each_store, event, mail, new_user, now};

#[tokio::test]
async fn memberships_carry_roles_and_can_change() {
    for (store, db) in each_store().await {
        let at = now();
        let user = store
            .insert_user(&new_user("ada@example.com", at))
            .await
            .unwrap();
        let org = Organization {
            id: Uuid::now_v7(),
            name: "Acme".into(),
            created_at: at,
        };
        store.insert_org(&org).await.unwrap();
        let dup = Organization {
            id: Uuid::now_v7(),
            ..org.clone()
        };
        assert!(matches!(
            store.insert_org(&dup).await,
            Err(StoreError::Conflict)
        ));

        let mut membership = Membership {
            org_id: org.id,
            user_id: user.id,
            role: OrgRole::Member,
            created_at: at,
        };
        store.put_membership(&membership).await.unwrap();
        membership.role = OrgRole::LegalRepresentative;
        store.put_membership(&membership).await.unwrap();

        let members = store.members_of_org(org.id).await.unwrap();
        assert_eq!(members.len(), 1, "{}", db.backend);
        assert_eq!(members[0].role, OrgRole::LegalRepresentative);
        let orgs = store.orgs_of_user(user.id).await.unwrap();
        assert_eq!(orgs.len(), 1);
        assert_eq!(orgs[0].0.name, "Acme");
        assert_eq!(store.org_by_name("Acme").await.unwrap().unwrap().id, org.id);
        assert_eq!(store.list_orgs().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn roles_members_and_organizations_are_read_back_in_order() {
    for (store, db) in each_store().await {
        let at = now();
        let carol = add_user(&*store, "carol@example.com", at).await;
        let ada = store
            .insert_user(&NewUser {
                lockout_threshold: 1,
                ..new_user("ada@example.com", at)
            })
            .await
            .unwrap();
        let bob = add_user(&*store, "bob@example.com", at).await;
        // Ada is locked.
        store.count_attempt(ada.id).await.unwrap();
        let link = UnlockToken {
            digest: OpaqueToken::generate().digest(),
            user_id: ada.id,
            created_at: at,
            expires_at: at + Duration::hours(1),
            used_at: None,
        };
        let locked = event(ada.id, Action::AccountLocked, at);
        let alert = mail(&ada.email, at);
        assert!(
            store
                .lock_account(ada.id, &link, &locked, &alert)
                .await
                .unwrap()
        );

        let beta = add_org(&*store, "Beta", at).await;
        let acme = add_org(&*store, "Acme", at).await;
        for (org, user, role) in [
            (acme.id, carol.id, OrgRole::Member),
            (acme.id, ada.id, OrgRole::Admin),
            (beta.id, ada.id, OrgRole::Member),
        ] {
            let member = Membership {
                org_id: org,
                user_id: user,
                role,
                created_at: at,
            };
            store.put_membership(&member).await.unwrap();
        }
        let role = store.membership_role(acme.id, ada.id).await.unwrap();
        assert_eq!(role, Some(OrgRole::Admin), "{}", db.backend);
        assert_eq!(store.membership_role(acme.id, bob.id).await.unwrap(), None);
        assert_eq!(
            store.membership_role(beta.id, carol.id).await.unwrap(),
            None
        );

        let members: Vec<_> = store
            .members_of_org(acme.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.email, m.role, m.locked))
            .collect();
        assert_eq!(
            members,
            [
                ("ada@example.com".to_string(), OrgRole::Admin, true),
                ("carol@example.com".to_string(), OrgRole::Member, false),
            ],
            "{}: by address, with the lock",
            db.backend
        );
        let orgs: Vec<_> = store
            .orgs_of_user(ada.id)
            .await
            .unwrap()
            .into_iter()
            .map(|(o, role)| (o.name, role))
            .collect();
        assert_eq!(
            orgs,
            [
                ("Acme".to_string(), OrgRole::Admin),
                ("Beta".to_string(), OrgRole::Member)
            ],
            "{}",
            db.backend
        );
        assert!(store.orgs_of_user(bob.id).await.unwrap().is_empty());
        let names: Vec<_> = store
            .list_orgs()
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, ["Acme", "Beta"], "{}", db.backend);
        let found = store.org_by_name("Beta").await.unwrap().unwrap();
        assert_eq!(
            (found.id, found.created_at),
            (beta.id, at),
            "{}",
            db.backend
        );
        assert!(store.org_by_name("Gamma").await.unwrap().is_none());
    }
}
