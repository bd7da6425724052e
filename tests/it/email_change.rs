//! The change of the login e-mail address over HTTP, on SQLite and PostgreSQL: asked with the
//! password, made only by the link mailed to the new address, undone by the link mailed to
//! the old one; the `email` and `email_verified` claims follow.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::recovery::{
    account_status, actions, href_of, mailbox, mails_to, newest_link, register, tokens,
};
use crate::support::{PASSWORD, TestApp, TestDb, hidden_field, text_of};

/// `POST /api/v1/me/email` as the signed-in `client`.
async fn ask(
    app: &TestApp,
    (client, csrf): &(reqwest::Client, String),
    new_email: &str,
    password: &str,
) -> (StatusCode, Value) {
    let response = client
        .post(app.url("/api/v1/me/email"))
        .header("x-csrf-token", csrf)
        .json(&json!({ "new_email": new_email, "current_password": password }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Opens `link` in a fresh browser and presses its button: the answer's status and page.
async fn press(app: &TestApp, link: &str, action: &str) -> (StatusCode, String) {
    let browser = app.client();
    let page = browser.get(link).send().await.unwrap();
    let status = page.status();
    let html = page.text().await.unwrap();
    if status != StatusCode::OK {
        return (status, html);
    }
    let form = [
        ("csrf", hidden_field(&html, "csrf")),
        ("token", hidden_field(&html, "token")),
    ];
    let response = browser
        .post(app.url(action))
        .form(&form)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The link mailed to `to` last, under `path`.
async fn link_to(app: &TestApp, db: &TestDb, to: &str, path: &str) -> String {
    let mails = mailbox(app, db).await;
    let prefix = format!("{}{path}?token=", app.base);
    newest_link(&mails, to, &prefix).unwrap_or_else(|| panic!("no {path} link to {to}"))
}

async fn signs_in(app: &TestApp, email: &str) -> bool {
    let response = app.login(&app.client(), email, PASSWORD).await;
    response.status() == StatusCode::SEE_OTHER
}

/// `email` and `email_verified` of the userinfo answer, for a new sign-in as `email`.
async fn claims(app: &TestApp, webmail: &(String, String), email: &str) -> (String, bool) {
    let (browser, _) = app.signed_in(email).await;
    let issued = tokens(app, &browser, webmail, "openid email").await;
    let access = issued["access_token"].as_str().unwrap();
    let info: Value = reqwest::Client::new()
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let email = info["email"].as_str().unwrap().to_string();
    (email, info["email_verified"].as_bool().unwrap())
}

#[tokio::test]
async fn a_new_address_counts_once_confirmed_and_the_old_one_can_undo_it() {
    for db in crate::support::databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let webmail = register(&app).await;
        let ada = app.signed_in("ada@example.com").await;
        let (laptop, _) = app.signed_in("ada@example.com").await;
        assert_eq!(
            claims(&app, &webmail, "ada@example.com").await,
            ("ada@example.com".to_string(), false),
            "{}: an address never checked is not claimed verified",
            db.backend
        );

        // A wrong password: the re-authentication failure of the API, counted.
        let (status, _) = ask(&app, &ada, "ada@new.example", "wrong-password!").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let user = app.state.store.user_by_email("ada@example.com").await;
        assert_eq!(user.unwrap().unwrap().failed_attempts, 1);
        assert!(
            actions(&app, "ada@example.com")
                .await
                .iter()
                .any(|(a, d)| a == "reauthentication.failed" && d.contains("email_change"))
        );

        let (status, body) = ask(&app, &ada, "ada@new.example", PASSWORD).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["pending"], "ada@new.example");
        assert!(body["expires_at"].is_string());
        // Until the link is opened, the old address signs in and the new one does not.
        assert!(signs_in(&app, "ada@example.com").await);
        assert!(!signs_in(&app, "ada@new.example").await);
        let confirm = link_to(&app, &db, "ada@new.example", "/account/email/confirm").await;
        let mails = mailbox(&app, &db).await;
        assert!(mails_to(&mails, "ada@example.com").is_empty(), "{mails:?}");
        let opened = app.client().get(&confirm).send().await.unwrap();
        assert_eq!(opened.status(), StatusCode::OK);
        assert!(
            !signs_in(&app, "ada@new.example").await,
            "opening changes nothing"
        );

        let (status, html) = press(&app, &confirm, "/account/email/confirm").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(
            text_of(&html, "#message")
                .unwrap()
                .contains("ada@new.example")
        );
        assert!(signs_in(&app, "ada@new.example").await);
        assert!(!signs_in(&app, "ada@example.com").await);
        assert_eq!(
            claims(&app, &webmail, "ada@new.example").await,
            ("ada@new.example".to_string(), true)
        );
        let (status, html) = press(&app, &confirm, "/account/email/confirm").await;
        assert_eq!(status, StatusCode::GONE, "the link works once");
        assert!(text_of(&html, "#message").unwrap().contains("already used"));

        // The old address is told, with the link that undoes it all.
        let undo = link_to(&app, &db, "ada@example.com", "/account/email/undo").await;
        let (status, html) = press(&app, &undo, "/account/email/undo").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(
            text_of(&html, "#message")
                .unwrap()
                .contains("ada@example.com")
        );
        let next = href_of(&html, "#next-link");
        assert_eq!(
            next.as_deref(),
            Some("/password/forgot"),
            "a new password next"
        );
        assert!(signs_in(&app, "ada@example.com").await);
        assert!(!signs_in(&app, "ada@new.example").await);
        // Every session ended: the API session, the laptop.
        let me = ada.0.get(app.url("/api/v1/me")).send().await.unwrap();
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(account_status(&app, &laptop).await, StatusCode::SEE_OTHER);
        let (status, _) = press(&app, &undo, "/account/email/undo").await;
        assert_eq!(status, StatusCode::GONE);

        let log: Vec<String> = actions(&app, "ada@example.com")
            .await
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        for action in [
            "email.change_requested",
            "email.changed",
            "email.change_undone",
        ] {
            assert!(log.iter().any(|a| a == action), "{action}: {log:?}");
        }
    }
}

#[tokio::test]
async fn taken_and_malformed_addresses_are_refused_also_when_taken_meanwhile() {
    for db in crate::support::databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        app.create_user("bob@example.com", PASSWORD).await;
        let ada = app.signed_in("ada@example.com").await;
        let (status, _) = ask(&app, &ada, "BOB@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::CONFLICT, "{}", db.backend);
        let no_csrf = ada
            .0
            .post(app.url("/api/v1/me/email"))
            .json(&json!({ "new_email": "carol@example.com", "current_password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            no_csrf.status(),
            StatusCode::FORBIDDEN,
            "cookie callers need CSRF"
        );
        let doc: Value = reqwest::get(app.url("/api/v1/openapi.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["paths"]["/api/v1/me/email"]["post"].is_object());
        for bad in ["not an address", "ada@example.com", "Ada@EXAMPLE.com"] {
            let (status, _) = ask(&app, &ada, bad, PASSWORD).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }

        // The profile page's form comes back to the profile with what happened.
        let post = |new_email: &'static str, password: &'static str| {
            let browser = ada.0.clone();
            let app = &app;
            async move {
                let csrf = app.csrf_from(&browser, "/account/security/password").await;
                let response = browser
                    .post(app.url("/account/email"))
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("new_email", new_email),
                        ("current_password", password),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::SEE_OTHER);
                response.headers()["location"].to_str().unwrap().to_string()
            }
        };
        for (new_email, password, to) in [
            (
                "carol@example.com",
                "wrong-password!",
                "email_error=wrong_password",
            ),
            ("bob@example.com", PASSWORD, "email_error=taken"),
            ("carol@", PASSWORD, "email_error=invalid"),
            ("carol@example.com", PASSWORD, "email=pending"),
        ] {
            assert_eq!(
                post(new_email, password).await,
                format!("/account/profile?{to}")
            );
        }
        // Carol signs up before Ada confirms: refused, and nothing changed.
        let confirm = link_to(&app, &db, "carol@example.com", "/account/email/confirm").await;
        app.create_user("Carol@example.com", PASSWORD).await;
        let (status, html) = press(&app, &confirm, "/account/email/confirm").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            text_of(&html, "#message")
                .unwrap()
                .contains("Another account")
        );
        assert!(signs_in(&app, "ada@example.com").await);

        // Ada moves to dave@; someone takes her old address; the undo cannot give it back.
        let (status, _) = ask(&app, &ada, "dave@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let confirm = link_to(&app, &db, "dave@example.com", "/account/email/confirm").await;
        assert_eq!(
            press(&app, &confirm, "/account/email/confirm").await.0,
            StatusCode::OK
        );
        let undo = link_to(&app, &db, "ada@example.com", "/account/email/undo").await;
        app.create_user("ada@example.com", PASSWORD).await;
        let (status, html) = press(&app, &undo, "/account/email/undo").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            text_of(&html, "#message")
                .unwrap()
                .contains("old e-mail address")
        );
        assert!(
            app.state
                .store
                .user_by_email("dave@example.com")
                .await
                .unwrap()
                .is_some(),
            "Ada keeps the new address"
        );
    }
}
