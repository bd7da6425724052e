//! `/api/v1/me`: profile, password change, account deletion.

use gotthard::orgs::OrgRole;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, databases};

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    csrf: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = client
        .request(method, url)
        .header("x-csrf-token", csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn actions(app: &TestApp, email: &str) -> Vec<String> {
    let user = app.state.store.user_by_email(email).await.unwrap().unwrap();
    app.state
        .store
        .recent_events(user.id, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test]
async fn the_profile_changes_and_the_email_only_with_the_password() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        app.create_user("eve@example.com", PASSWORD).await;
        let (client, csrf) = app.signed_in("ada@example.com").await;
        let me = app.url("/api/v1/me");

        let shown: Value = client.get(&me).send().await.unwrap().json().await.unwrap();
        assert_eq!(shown["email"], "ada@example.com", "{}", db.backend);
        assert_eq!(shown["locale"], Value::Null);

        let (status, _) = send(
            &client,
            reqwest::Method::PATCH,
            me.clone(),
            "forged",
            json!({"given_name": "X"}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, body) = send(
            &client,
            reqwest::Method::PATCH,
            me.clone(),
            &csrf,
            json!({"given_name": " Ada ", "family_name": "Lovelace", "locale": "fr"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["name"], "Ada Lovelace");
        assert_eq!(body["given_name"], "Ada");
        assert_eq!(body["family_name"], "Lovelace");
        assert_eq!(body["locale"], "fr");
        // The chosen language wins over the browser's on the account pages.
        let page = client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            crate::support::text_of(&page, "h1").unwrap(),
            "Gérer mon profil"
        );
        let (status, body) = send(
            &client,
            reqwest::Method::PATCH,
            me.clone(),
            &csrf,
            json!({"locale": null}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["locale"], Value::Null);
        assert_eq!(body["name"], "Ada Lovelace", "fields left out stay");

        for (patch, expected, needle) in [
            (
                json!({"locale": "de"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "locale",
            ),
            // The login e-mail changes only through its confirmed path.
            (
                json!({"email": "ada@new.example", "current_password": PASSWORD}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "POST /api/v1/me/email",
            ),
            (
                json!({"time_zone": "Mars/Olympus_Mons"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "time_zone",
            ),
            (
                json!({"family_name": "x".repeat(101)}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "family_name",
            ),
            // The one name field is gone: first and last name replace it.
            (
                json!({"name": "Ada Lovelace"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "name",
            ),
            (
                json!({"nmae": "typo"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "nmae",
            ),
        ] {
            let (status, body) = send(
                &client,
                reqwest::Method::PATCH,
                me.clone(),
                &csrf,
                patch.clone(),
            )
            .await;
            assert_eq!(status, expected, "{}: {patch} -> {body}", db.backend);
            assert!(
                body["detail"].as_str().unwrap().contains(needle),
                "{patch} -> {body}"
            );
        }
        let raw = client
            .patch(&me)
            .header("x-csrf-token", &csrf)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
        assert_eq!(raw.headers()["content-type"], "application/problem+json");

        let log = actions(&app, "ada@example.com").await;
        assert_eq!(
            log.iter().filter(|a| *a == "profile.changed").count(),
            2,
            "{log:?}"
        );
        let unchanged: Value = client.get(&me).send().await.unwrap().json().await.unwrap();
        assert_eq!(unchanged["email"], "ada@example.com");
    }
}

/// The e-mail change rule holds for any caller of the service, not only the API: a wrong
/// password is counted and recorded like the API's; the re-checks are limited per account.
#[tokio::test]
async fn the_email_change_needs_the_password_through_the_service_too() {
    use gotthard::accounts::{EmailChangeError, LoginError, ReauthError};
    for db in databases().await {
        let app = TestApp::start_with(
            &db,
            &[
                ("rate_limit.reauth_burst", "2"),
                ("rate_limit.reauth_per_minute", "1"),
            ],
        )
        .await;
        let ada = app.create_user("ada@example.com", PASSWORD).await;
        let accounts = &app.state.accounts;
        let cli = gotthard::audit::ClientInfo::new("192.0.2.7", "test");
        let now = app.state.clock.now();

        let wrong = accounts
            .request_email_change(&ada, "ada@new.example", "wrong-one!", &cli, now)
            .await;
        assert!(
            matches!(
                wrong,
                Err(EmailChangeError::Reauth(ReauthError::Login(
                    LoginError::WrongCredentials
                )))
            ),
            "{wrong:?}"
        );
        let counted = app.state.store.user_by_email("ada@example.com").await;
        assert_eq!(counted.unwrap().unwrap().failed_attempts, 1);
        assert!(
            actions(&app, "ada@example.com")
                .await
                .contains(&"reauthentication.failed".to_string())
        );

        let pending = accounts
            .request_email_change(&ada, "ada@new.example", PASSWORD, &cli, now)
            .await
            .unwrap();
        assert_eq!(pending.new_email, "ada@new.example", "{}", db.backend);
        let again = accounts
            .request_email_change(&ada, "ada@third.example", PASSWORD, &cli, now)
            .await;
        assert!(
            matches!(
                again,
                Err(EmailChangeError::Reauth(ReauthError::TooMany(_)))
            ),
            "{again:?}"
        );
    }
}

#[tokio::test]
async fn a_password_change_signs_out_the_other_devices() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let (laptop, csrf) = app.signed_in("ada@example.com").await;
        let (phone, _) = app.signed_in("ada@example.com").await;
        let url = app.url("/api/v1/me/password");
        let new = "basalt-heron-meadow";

        let (status, _) = send(
            &laptop,
            reqwest::Method::POST,
            url.clone(),
            &csrf,
            json!({"current_password": "wrong-one!", "new_password": new}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}", db.backend);
        let (status, body) = send(
            &laptop,
            reqwest::Method::POST,
            url.clone(),
            &csrf,
            json!({"current_password": PASSWORD, "new_password": "password123"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["detail"].as_str().unwrap().contains("new_password"),
            "{body}"
        );
        assert_eq!(
            phone
                .get(app.url("/account"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );

        let (status, body) = send(
            &laptop,
            reqwest::Method::POST,
            url.clone(),
            &csrf,
            json!({"current_password": PASSWORD, "new_password": new}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["other_sessions_ended"], 1);
        assert_eq!(
            phone
                .get(app.url("/account"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::SEE_OTHER
        );
        assert_eq!(
            laptop
                .get(app.url("/account"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            app.login(&app.client(), "ada@example.com", PASSWORD)
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.login(&app.client(), "ada@example.com", new)
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        assert!(
            actions(&app, "ada@example.com")
                .await
                .contains(&"password.changed".to_string())
        );
    }
}

#[tokio::test]
async fn the_last_legal_representative_cannot_delete_the_account() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        app.create_user("bob@example.com", PASSWORD).await;
        let now = app.state.clock.now();
        app.state.orgs.create("Acme", now).await.unwrap();
        app.state
            .orgs
            .add_member("Acme", "ada@example.com", OrgRole::LegalRepresentative, now)
            .await
            .unwrap();
        app.state
            .orgs
            .add_member("Acme", "bob@example.com", OrgRole::Admin, now)
            .await
            .unwrap();
        let (client, csrf) = app.signed_in("ada@example.com").await;
        let me = app.url("/api/v1/me");

        let (status, _) = send(
            &client,
            reqwest::Method::DELETE,
            me.clone(),
            &csrf,
            json!({"password": "wrong-one!"}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}", db.backend);
        let (status, body) = send(
            &client,
            reqwest::Method::DELETE,
            me.clone(),
            &csrf,
            json!({"password": PASSWORD}),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("Acme"), "{body}");
        assert_eq!(db.count("users").await, 2);

        app.state
            .orgs
            .add_member("Acme", "bob@example.com", OrgRole::LegalRepresentative, now)
            .await
            .unwrap();
        let response = client
            .delete(&me)
            .header("x-csrf-token", &csrf)
            .json(&json!({"password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(
            crate::support::set_cookie(&response, "gotthard_session")
                .unwrap()
                .contains("Max-Age=0")
        );
        // The row stays as a tombstone (the `sub` is never reused), emptied.
        assert_eq!(db.count("users").await, 2);
        assert_eq!(
            db.count_where("users", "deleted_at IS NOT NULL AND email = ''")
                .await,
            1
        );
        assert_eq!(
            app.login(&app.client(), "ada@example.com", PASSWORD)
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
        let gone = client.get(&me).send().await.unwrap();
        assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);
    }
}
