//! Deleting the account (issue 17): refused while an organization needs the user, allowed
//! once another legal representative is appointed; two deletions at once never leave an
//! organization without one; the account's data can be downloaded first.

use gotthard::orgs::OrgRole;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, databases, hidden_field, text_of};

async fn delete_by_api(client: &reqwest::Client, app: &TestApp, csrf: &str) -> reqwest::Response {
    client
        .delete(app.url("/api/v1/me"))
        .header("x-csrf-token", csrf)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn deletion_is_refused_for_the_only_legal_representative_then_allowed() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let ada = app.create_user("ada@example.com", PASSWORD).await;
        app.create_user("bob@example.com", PASSWORD).await;
        let now = app.state.clock.now();
        app.state.orgs.create("Acme", now).await.unwrap();
        let orgs = &app.state.orgs;
        orgs.add_member("Acme", "ada@example.com", OrgRole::LegalRepresentative, now)
            .await
            .unwrap();
        orgs.add_member("Acme", "bob@example.com", OrgRole::Member, now)
            .await
            .unwrap();
        let (client, csrf) = app.signed_in("ada@example.com").await;

        // The data first: one JSON file.
        let export = client
            .get(app.url("/api/v1/me/export"))
            .send()
            .await
            .unwrap();
        assert_eq!(export.status(), StatusCode::OK, "{}", db.backend);
        assert!(
            export.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment; filename=\"gotthard-data-")
        );
        let data: Value = export.json().await.unwrap();
        assert_eq!(data["profile"]["email"], "ada@example.com");
        assert_eq!(data["profile"]["organizations"][0]["name"], "Acme");
        assert_eq!(data["sessions"].as_array().unwrap().len(), 1);
        assert!(!data["activity"].as_array().unwrap().is_empty());

        // Refused, naming the organization, by the API and the page.
        let refused = delete_by_api(&client, &app, &csrf).await;
        assert_eq!(refused.status(), StatusCode::CONFLICT, "{}", db.backend);
        let problem: Value = refused.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains("Acme"),
            "{problem}"
        );
        let page = app.page(&client, "/account/profile").await;
        // The page says so before the password is typed.
        assert!(
            text_of(&page, "#delete-blocked").unwrap().contains("Acme"),
            "{}",
            db.backend
        );
        let form_csrf = hidden_field(&page, "csrf");
        let refused = client
            .post(app.url("/account/delete"))
            .form(&[("csrf", form_csrf.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::CONFLICT);
        let html = refused.text().await.unwrap();
        assert!(
            text_of(&html, "#profile-error").unwrap().contains("Acme"),
            "{html}"
        );

        // Bob is appointed legal representative: now the page deletes the account.
        orgs.add_member("Acme", "bob@example.com", OrgRole::LegalRepresentative, now)
            .await
            .unwrap();
        let wrong = client
            .post(app.url("/account/delete"))
            .form(&[("csrf", form_csrf.as_str()), ("password", "wrong-one!")])
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let deleted = client
            .post(app.url("/account/delete"))
            .form(&[("csrf", form_csrf.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::OK, "{}", db.backend);
        let cleared = deleted.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(cleared.contains("gotthard_session=;"), "{cleared}");
        let me = client.get(app.url("/api/v1/me")).send().await.unwrap();
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
        let login = app.login(&app.client(), "ada@example.com", PASSWORD).await;
        assert_ne!(login.status(), StatusCode::SEE_OTHER, "no sign-in any more");

        // The row stays as a tombstone; the activity stays without addresses or devices.
        let id = ada.id.to_string();
        let tomb = app.state.store.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(tomb.email, "");
        assert_eq!(db.count_where("phone_numbers", "1 = 1").await, 0);
        let kept = app.state.store.recent_events(ada.id, 50).await.unwrap();
        assert_eq!(kept[0].action, "account.deleted", "{}", db.backend);
        assert!(
            kept.len() > 2 && kept.iter().all(|e| e.ip.is_empty()),
            "{id}"
        );
        assert_eq!(
            db.count_where("mail_outbox", "recipient = 'ada@example.com'")
                .await,
            1,
            "the confirmation"
        );
        // The address may open a new account, which gets a new `sub`.
        let again = app.create_user("ada@example.com", PASSWORD).await;
        assert_ne!(again.id, ada.id);
    }
}

#[tokio::test]
async fn two_legal_representatives_deleting_at_once_leave_one() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let now = app.state.clock.now();
        let org = app.state.orgs.create("Acme", now).await.unwrap();
        let mut browsers = Vec::new();
        for email in ["ada@example.com", "bob@example.com"] {
            app.create_user(email, PASSWORD).await;
            app.state
                .orgs
                .add_member("Acme", email, OrgRole::LegalRepresentative, now)
                .await
                .unwrap();
            browsers.push(app.signed_in(email).await);
        }
        let (a, b) = tokio::join!(
            delete_by_api(&browsers[0].0, &app, &browsers[0].1),
            delete_by_api(&browsers[1].0, &app, &browsers[1].1),
        );
        let mut statuses = [a.status(), b.status()];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::NO_CONTENT, StatusCode::CONFLICT],
            "{}",
            db.backend
        );
        let members = app.state.orgs.members_by_id(org.id).await.unwrap();
        assert_eq!(members.len(), 1, "{}", db.backend);
        assert_eq!(members[0].role, OrgRole::LegalRepresentative);
    }
}
