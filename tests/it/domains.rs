//! Organizations' e-mail domains: nothing routes or is blocked until a DNS TXT record proves
//! the domain (issue 14, item 1), against a DNS server on loopback, on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use uuid::Uuid;

use crate::dns::DnsDouble;
use crate::entra::Entra;
use crate::support::{PASSWORD, TestApp, databases};
use gotthard::orgs::{OrgRole, SsoSettings};

const RECORD: &str = "_gotthard-challenge.victim.test";

/// An organization with a signed-in legal representative (not an instance administrator).
async fn org_with_rep(app: &TestApp, name: &str, rep: &str) -> (Uuid, reqwest::Client, String) {
    let now = app.state.clock.now();
    let org = app.state.orgs.create(name, now).await.unwrap();
    app.create_user(rep, PASSWORD).await;
    app.state
        .orgs
        .add_member(name, rep, OrgRole::LegalRepresentative, now)
        .await
        .unwrap();
    let (client, csrf) = app.signed_in(rep).await;
    (org.id, client, csrf)
}

/// An operator points the organization at the Entra double for `domains`.
async fn connect(app: &TestApp, entra: &Entra, org: Uuid, domains: &[&str], enforce: bool) {
    let settings = SsoSettings {
        enforce_sso: enforce,
        ..entra.settings(domains)
    };
    app.set_sso(org, settings).await;
}

/// The status of "Sign in with SSO" for `email` (404: no organization's SSO takes it).
async fn sso_begin(app: &TestApp, email: &str) -> StatusCode {
    app.sso_begin(email).await.status()
}

async fn domains_of(client: &reqwest::Client, app: &TestApp, org: Uuid) -> serde_json::Value {
    let url = app.url(&format!("/api/v1/orgs/{org}/domains"));
    let list = client.get(url).send().await.unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    list.json().await.unwrap()
}

async fn verify(
    client: &reqwest::Client,
    csrf: &str,
    app: &TestApp,
    org: Uuid,
    domain: &str,
) -> reqwest::Response {
    client
        .post(app.url(&format!("/api/v1/orgs/{org}/domains/{domain}/verify")))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_domain_routes_and_blocks_nobody_until_its_txt_record_proves_it() {
    for db in databases().await {
        let dns = DnsDouble::start().await;
        let server = dns.addr.to_string();
        let extra = [
            ("sso.dns_server", server.as_str()),
            ("sso.dns_timeout_secs", "1"),
            ("sso.domain_withdraw_after", "2"),
        ];
        let app = TestApp::start_with(&db, &extra).await;
        let entra = Entra::start().await;
        let (mallory, m_client, m_csrf) = org_with_rep(&app, "Mallory", "rep@mallory.test").await;
        let (victim, v_client, v_csrf) = org_with_rep(&app, "Victim", "it@victim.test").await;
        let ceo = app.create_user("ceo@victim.test", PASSWORD).await;

        // Mallory lists victim.test with SSO enforced: accepted, and it does nothing.
        connect(&app, &entra, mallory, &["victim.test"], true).await;
        let client = app.client();
        let signed_in = app.login(&client, &ceo.email, PASSWORD).await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "{}", db.backend);
        assert_eq!(
            sso_begin(&app, "ceo@victim.test").await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            sso_begin(&app, "unused@victim.test").await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(db.count("sso_flows").await, 0);

        // Mallory cannot prove it: the record is not there, and the answer names it.
        let listed = domains_of(&m_client, &app, mallory).await;
        let mallory_value = listed["domains"][0]["record_value"].as_str().unwrap();
        assert_eq!(listed["domains"][0]["verified"], false);
        assert_eq!(listed["domains"][0]["record_name"], RECORD);
        let missing = verify(&m_client, &m_csrf, &app, mallory, "victim.test").await;
        assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: serde_json::Value = missing.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains(RECORD));

        // The real owner connects its own SSO with the domain: no 409 because of Mallory.
        let own = v_client
            .put(app.url(&format!("/api/v1/orgs/{victim}/sso")))
            .header("x-csrf-token", &v_csrf)
            .json(&serde_json::json!({
                "tenant_id": Uuid::new_v4(), "client_id": Uuid::new_v4(),
                "client_secret": "x", "domains": ["victim.test", "mail.victim.test"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(own.status(), StatusCode::OK, "{}", db.backend);
        let value = domains_of(&v_client, &app, victim).await["domains"][1]["record_value"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(value, mallory_value, "each organization has its own value");
        dns.add_txt(RECORD, "v=spf1 -all");
        dns.add_txt(RECORD, &value);
        let verified = verify(&v_client, &v_csrf, &app, victim, "victim.test").await;
        assert_eq!(verified.status(), StatusCode::OK, "{}", db.backend);
        let verified: serde_json::Value = verified.json().await.unwrap();
        assert_eq!(verified["verified"], true);
        assert_eq!(verified["proof"], "dns");

        // Verified by one organization, the domain is nobody else's.
        dns.add_txt(RECORD, mallory_value);
        let taken = verify(&m_client, &m_csrf, &app, mallory, "victim.test").await;
        assert_eq!(taken.status(), StatusCode::CONFLICT);
        let again = m_client
            .put(app.url(&format!("/api/v1/orgs/{mallory}/sso")))
            .header("x-csrf-token", &m_csrf)
            .json(&serde_json::json!({
                "tenant_id": Uuid::new_v4(), "client_id": Uuid::new_v4(),
                "client_secret": "x", "domains": ["victim.test"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::CONFLICT);
        // Public mail providers' domains are nobody's.
        for public in ["gmail.com", "eu.outlook.com"] {
            let refused = v_client
                .post(app.url(&format!("/api/v1/orgs/{victim}/domains")))
                .header("x-csrf-token", &v_csrf)
                .json(&serde_json::json!({ "domain": public }))
                .send()
                .await
                .unwrap();
            assert_eq!(
                refused.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{public}"
            );
        }

        // Now the domain routes to its owner's SSO.
        connect(
            &app,
            &entra,
            victim,
            &["victim.test", "mail.victim.test"],
            false,
        )
        .await;
        assert_eq!(sso_begin(&app, "ceo@victim.test").await, StatusCode::OK);

        // DNS down: a clear 503 within the bounded timeout, and nothing changes.
        dns.set_silent(true);
        let started = Instant::now();
        let down = verify(&v_client, &v_csrf, &app, victim, "mail.victim.test").await;
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(down.headers().contains_key("retry-after"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        // Re-checks: an outage never counts; the record gone twice in a row withdraws it.
        dns.remove(RECORD);
        let recheck = |hours| {
            app.state.clock.advance(time::Duration::hours(hours));
            app.state.domains.recheck_due(app.state.clock.now())
        };
        assert_eq!(recheck(25).await.unwrap(), 0);
        dns.set_silent(false);
        assert_eq!(recheck(25).await.unwrap(), 0);
        assert_eq!(sso_begin(&app, "ceo@victim.test").await, StatusCode::OK);
        assert_eq!(recheck(25).await.unwrap(), 1);
        assert_eq!(
            sso_begin(&app, "ceo@victim.test").await,
            StatusCode::NOT_FOUND
        );
        let listed = domains_of(&v_client, &app, victim).await;
        assert_eq!(listed["domains"][1]["domain"], "victim.test");
        assert_eq!(listed["domains"][1]["verified"], false);
    }
}
