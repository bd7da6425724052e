//! `DomainStore`: an organization's domains, their challenge, their proof, re-checks.

use gotthard::audit::Action;
use gotthard::orgs::{DomainProof, OrgDomain};
use gotthard::store::{Store, StoreError};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{add_org, anonymous_event, each_store, now};

async fn claim(store: &dyn Store, org: Uuid, domain: &str, at: OffsetDateTime) -> bool {
    let claimed = anonymous_event(Action::DomainChanged, at);
    store.claim_domain(org, domain, &claimed).await.unwrap()
}

async fn mark(
    store: &dyn Store,
    org: Uuid,
    domain: &str,
    proof: DomainProof,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let verified = anonymous_event(Action::DomainChanged, at);
    store
        .mark_domain_verified(org, domain, proof, &verified)
        .await
}

async fn listed(store: &dyn Store, org: Uuid, domain: &str) -> OrgDomain {
    let domains = store.org_domains(org).await.unwrap();
    domains.into_iter().find(|d| d.domain == domain).unwrap()
}

#[tokio::test]
async fn an_organization_keeps_the_first_challenge_it_was_given() {
    for (store, db) in each_store().await {
        let at = now();
        let acme = add_org(&*store, "Acme", at).await;
        let beta = add_org(&*store, "Beta", at).await;
        let first = store
            .domain_challenge(acme.id, "token-1", at)
            .await
            .unwrap();
        assert_eq!(first, "token-1", "{}", db.backend);
        let again = store
            .domain_challenge(acme.id, "token-2", at)
            .await
            .unwrap();
        assert_eq!(again, "token-1", "{}", db.backend);
        let other = store
            .domain_challenge(beta.id, "token-3", at)
            .await
            .unwrap();
        assert_eq!(other, "token-3", "{}", db.backend);
        assert_eq!(db.count("org_domain_challenges").await, 2);
    }
}

#[tokio::test]
async fn domains_are_listed_once_by_name_and_removed_once() {
    for (store, db) in each_store().await {
        let at = now();
        let acme = add_org(&*store, "Acme", at).await;
        assert!(
            claim(&*store, acme.id, "contoso.com", at).await,
            "{}",
            db.backend
        );
        assert!(
            !claim(&*store, acme.id, "contoso.com", at).await,
            "{}",
            db.backend
        );
        assert!(claim(&*store, acme.id, "alpha.com", at).await);
        assert_eq!(
            db.count("activity_events").await,
            2,
            "{}: one per change",
            db.backend
        );
        let listed = store.org_domains(acme.id).await.unwrap();
        let names: Vec<_> = listed.iter().map(|d| d.domain.as_str()).collect();
        assert_eq!(names, ["alpha.com", "contoso.com"], "{}", db.backend);
        let contoso = &listed[1];
        assert_eq!(contoso.org_id, acme.id);
        assert!(contoso.verified.is_none() && contoso.last_checked_at.is_none());
        assert_eq!((contoso.missing_checks, contoso.created_at), (0, at));

        let removed = anonymous_event(Action::DomainChanged, at);
        let gone = store.remove_domain(acme.id, "alpha.com", &removed).await;
        assert!(gone.unwrap(), "{}", db.backend);
        let again = store.remove_domain(acme.id, "alpha.com", &removed).await;
        assert!(!again.unwrap(), "{}", db.backend);
        let unknown = store.remove_domain(acme.id, "nope.com", &removed).await;
        assert!(!unknown.unwrap());
        assert_eq!(db.count("activity_events").await, 3, "{}", db.backend);
        assert_eq!(store.org_domains(acme.id).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_domain_is_verified_by_one_organization_only() {
    for (store, db) in each_store().await {
        let at = now();
        let acme = add_org(&*store, "Acme", at).await;
        let beta = add_org(&*store, "Beta", at).await;
        let unlisted = mark(&*store, acme.id, "contoso.com", DomainProof::Dns, at).await;
        assert!(!unlisted.unwrap(), "{}: not listed", db.backend);
        assert_eq!(db.count("activity_events").await, 0);

        claim(&*store, acme.id, "contoso.com", at).await;
        assert!(
            mark(&*store, acme.id, "contoso.com", DomainProof::Dns, at)
                .await
                .unwrap()
        );
        let domain = &store.org_domains(acme.id).await.unwrap()[0];
        assert_eq!(
            domain.verified,
            Some((at, DomainProof::Dns)),
            "{}",
            db.backend
        );
        assert_eq!(domain.last_checked_at, Some(at));
        let owner = store.verified_domain_owner("contoso.com").await.unwrap();
        assert_eq!(owner, Some(acme.id), "{}", db.backend);
        assert!(
            store
                .verified_domain_owner("nope.com")
                .await
                .unwrap()
                .is_none()
        );

        // Another organization may list it but not verify it.
        assert!(
            claim(&*store, beta.id, "contoso.com", at).await,
            "{}",
            db.backend
        );
        let refused = mark(&*store, beta.id, "contoso.com", DomainProof::Dns, at).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict)),
            "{}",
            db.backend
        );
        assert!(
            store.org_domains(beta.id).await.unwrap()[0]
                .verified
                .is_none()
        );
        let owner = store.verified_domain_owner("contoso.com").await.unwrap();
        assert_eq!(owner, Some(acme.id), "{}", db.backend);

        // Proven again: the first verification time stays, the proof is the new one.
        let later = at + Duration::days(1);
        let again = mark(
            &*store,
            acme.id,
            "contoso.com",
            DomainProof::Operator,
            later,
        )
        .await;
        assert!(again.unwrap(), "{}", db.backend);
        let domain = &store.org_domains(acme.id).await.unwrap()[0];
        assert_eq!(
            domain.verified,
            Some((at, DomainProof::Operator)),
            "{}",
            db.backend
        );
        assert_eq!(domain.last_checked_at, Some(later));
    }
}

#[tokio::test]
async fn dns_proofs_are_rechecked_oldest_first_and_withdrawn_after_missing_answers() {
    for (store, db) in each_store().await {
        let at = now();
        let acme = add_org(&*store, "Acme", at).await;
        for (domain, proof, days) in [
            ("old.com", Some(DomainProof::Dns), 3),
            ("newer.com", Some(DomainProof::Dns), 2),
            ("vouched.com", Some(DomainProof::Operator), 5),
            ("fresh.com", Some(DomainProof::Dns), 0),
            ("listed.com", None, 9),
        ] {
            let t = at - Duration::days(days);
            claim(&*store, acme.id, domain, t).await;
            if let Some(proof) = proof {
                mark(&*store, acme.id, domain, proof, t).await.unwrap();
            }
        }
        let before = at - Duration::days(1);
        let due = |limit| {
            let store = store.clone();
            async move {
                let due = store.domains_due_for_recheck(before, limit).await.unwrap();
                due.into_iter().map(|d| d.domain).collect::<Vec<_>>()
            }
        };
        assert_eq!(due(10).await, ["old.com", "newer.com"], "{}", db.backend);
        assert_eq!(due(1).await, ["old.com"], "{}", db.backend);
        store
            .domain_record_found(acme.id, "old.com", at)
            .await
            .unwrap();
        assert_eq!(due(10).await, ["newer.com"], "{}", db.backend);

        // Missing answers are counted; a found record starts the count again.
        let missing = |t| anonymous_event(Action::DomainChanged, t);
        let check = |t| {
            let store = store.clone();
            async move {
                let missing = anonymous_event(Action::DomainChanged, t);
                let withdrawn = store.domain_record_missing(acme.id, "newer.com", 3, &missing);
                withdrawn.await.unwrap()
            }
        };
        assert!(!check(at).await, "{}", db.backend);
        assert!(!check(at).await, "{}", db.backend);
        store
            .domain_record_found(acme.id, "newer.com", at)
            .await
            .unwrap();
        let events = db.count("activity_events").await;
        assert!(!check(at).await, "{}", db.backend);
        assert!(!check(at).await);
        let checked = listed(&*store, acme.id, "newer.com").await;
        assert_eq!(
            (checked.missing_checks, checked.last_checked_at),
            (2, Some(at))
        );
        assert_eq!(db.count("activity_events").await, events, "{}", db.backend);
        // The third in a row withdraws the proof, with its event.
        assert!(check(at).await, "{}", db.backend);
        let withdrawn = listed(&*store, acme.id, "newer.com").await;
        assert!(withdrawn.verified.is_none(), "{}", db.backend);
        assert_eq!(withdrawn.missing_checks, 0);
        assert_eq!(
            db.count("activity_events").await,
            events + 1,
            "{}",
            db.backend
        );
        assert!(
            store
                .verified_domain_owner("newer.com")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(due(10).await, Vec::<String>::new(), "{}", db.backend);

        let unlisted = store
            .domain_record_missing(acme.id, "nope.com", 1, &missing(at))
            .await;
        assert!(!unlisted.unwrap(), "{}", db.backend);
    }
}
