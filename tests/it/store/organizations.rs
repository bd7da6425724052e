//! `OrganizationStore`: organizations, memberships, members.

use gotthard::orgs::{Membership, OrgRole, Organization};
use gotthard::store::StoreError;
use uuid::Uuid;

use super::{each_store, new_user, now};

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
