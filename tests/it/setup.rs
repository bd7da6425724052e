//! The first-start setup link: creates the first administrator once, within its hour.

use reqwest::StatusCode;

use crate::support::{PASSWORD, TestApp, databases, hidden_field, text_of};

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_string()
}

#[tokio::test]
async fn the_setup_link_creates_the_first_admin_once() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let now = app.state.clock.now();
        let link = app
            .state
            .first_start
            .issue_link_if_empty(now)
            .await
            .unwrap()
            .unwrap();
        assert!(
            link.starts_with(&format!("{}/setup?token=", app.base)),
            "{link}"
        );
        let client = app.client();
        let form = client.get(&link).send().await.unwrap();
        assert_eq!(form.status(), StatusCode::OK, "{}", db.backend);
        let html = form.text().await.unwrap();
        let csrf = hidden_field(&html, "csrf");
        let token = hidden_field(&html, "token");
        assert_eq!(token, token_of(&link));

        let submit = |email: &'static str, password: &'static str, repeat: &'static str| {
            client
                .post(app.url("/setup"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("token", token.as_str()),
                    ("email", email),
                    ("name", "Root Admin"),
                    ("password", password),
                    ("password_repeat", repeat),
                ])
                .send()
        };
        // Rule violations re-render the form and keep the link usable.
        let weak = submit("root@example.com", "password123", "password123")
            .await
            .unwrap();
        assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            text_of(&weak.text().await.unwrap(), "#setup-error")
                .unwrap()
                .contains("too common")
        );
        let differ = submit("root@example.com", PASSWORD, "something-else-9")
            .await
            .unwrap();
        assert_eq!(differ.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let bad_email = submit("not-an-address", PASSWORD, PASSWORD).await.unwrap();
        assert_eq!(bad_email.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(db.count("users").await, 0);

        let done = submit("Root@Example.com", PASSWORD, PASSWORD)
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", db.backend);
        assert_eq!(done.headers()["location"], "/account");
        let account = client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            text_of(&account, "#account-email").unwrap(),
            "Root@example.com"
        );
        assert!(account.contains("Administrator of this Gotthard instance"));

        // The link is used up: both its page and its POST answer 410, and nothing is written.
        let reopened = app.client().get(&link).send().await.unwrap();
        assert_eq!(reopened.status(), StatusCode::GONE);
        assert!(
            text_of(&reopened.text().await.unwrap(), "#message")
                .unwrap()
                .contains("already used")
        );
        let reused = submit("second@example.com", PASSWORD, PASSWORD)
            .await
            .unwrap();
        assert_eq!(reused.status(), StatusCode::GONE);
        assert_eq!(db.count("users").await, 1);

        // The new administrator signs in with the chosen password.
        let login = app.login(&app.client(), "root@example.com", PASSWORD).await;
        assert_eq!(login.status(), StatusCode::SEE_OTHER);
        // No new link once an account exists.
        assert!(
            app.state
                .first_start
                .issue_link_if_empty(now)
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn an_expired_or_forged_setup_link_is_refused() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let link = app
            .state
            .first_start
            .issue_link_if_empty(app.state.clock.now())
            .await
            .unwrap()
            .unwrap();
        let client = app.client();
        let html = client
            .get(&link)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = hidden_field(&html, "csrf");

        app.state.clock.advance(time::Duration::minutes(61));
        let expired = client.get(&link).send().await.unwrap();
        assert_eq!(expired.status(), StatusCode::GONE, "{}", db.backend);
        let post = client
            .post(app.url("/setup"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("token", token_of(&link).as_str()),
                ("email", "root@example.com"),
                ("password", PASSWORD),
                ("password_repeat", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), StatusCode::GONE);
        for forged in ["", "abc", &"A".repeat(43), &"%00".repeat(20)] {
            let r = client
                .get(app.url(&format!("/setup?token={forged}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::GONE, "token {forged:?}");
        }
        assert_eq!(db.count("users").await, 0);
    }
}
