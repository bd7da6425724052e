//! The forgotten password over HTTP, on SQLite and PostgreSQL: the same answer for every
//! address, the mailed link (single use, expiring) and what setting the password ends; and
//! the password change page of the security settings. The mailed links are read from the
//! delivered mail, as a user reads them.

use gotthard::accounts::{NewUser, SecuritySettings};
use gotthard::audit::{Action, ActivityEvent, ClientInfo};
use gotthard::federation::FederatedIdentity;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{PASSWORD, TestApp, TestDb, databases, hidden_field, text_of};

const NEW_PASSWORD: &str = "velvet-harbor-compass";
pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A delivered mail: its recipient and its text (quoted-printable undone).
#[derive(Debug)]
pub(crate) struct Mail {
    pub to: String,
    pub text: String,
}

/// Delivers the outbox to `data/mail/` and returns every mail there, oldest first.
pub(crate) async fn mailbox(app: &TestApp, db: &TestDb) -> Vec<Mail> {
    app.state
        .mailer
        .deliver_due(app.state.clock.now())
        .await
        .unwrap();
    let folder = db.dir.path().join("data").join("mail");
    let mut paths: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    // Named by their UUIDv7: the names sort in the order the mails were queued.
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=");
            let to = text
                .lines()
                .find_map(|line| line.strip_prefix("To: "))
                .unwrap_or_default()
                .trim()
                .trim_matches(['<', '>'])
                .to_string();
            Mail { to, text }
        })
        .collect()
}

/// The mails to `to`.
pub(crate) fn mails_to<'a>(mails: &'a [Mail], to: &str) -> Vec<&'a Mail> {
    mails.iter().filter(|m| m.to == to).collect()
}

/// The newest link starting with `prefix` in the mails to `to`.
pub(crate) fn newest_link(mails: &[Mail], to: &str, prefix: &str) -> Option<String> {
    mails_to(mails, to).iter().rev().find_map(|mail| {
        let start = mail.text.find(prefix)?;
        Some(
            mail.text[start..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '<' && *c != '"')
                .collect(),
        )
    })
}

/// The reset link last mailed to `to`.
async fn reset_link(app: &TestApp, db: &TestDb, to: &str) -> String {
    let mails = mailbox(app, db).await;
    let prefix = format!("{}/password/reset?token=", app.base);
    newest_link(&mails, to, &prefix).unwrap_or_else(|| panic!("no reset link to {to}: {mails:?}"))
}

/// The forgotten-password form posted from a fresh browser: status and page.
async fn forgot(app: &TestApp, email: &str) -> (StatusCode, String) {
    let browser = app.client();
    let csrf = app.csrf_from(&browser, "/password/forgot").await;
    let response = browser
        .post(app.url("/password/forgot"))
        .form(&[("email", email), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// Posts the reset form that `link` opens; status and page.
async fn reset_with(app: &TestApp, link: &str, new: &str, again: &str) -> (StatusCode, String) {
    let browser = app.client();
    let page = browser.get(link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "the link's form");
    let html = page.text().await.unwrap();
    let form = [
        ("csrf", hidden_field(&html, "csrf")),
        ("token", hidden_field(&html, "token")),
        ("new_password", new.to_string()),
        ("confirm_password", again.to_string()),
    ];
    let response = browser
        .post(app.url("/password/reset"))
        .form(&form)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The query parameter `name` of `link`.
pub(crate) fn param(link: &str, name: &str) -> String {
    url::Url::parse(link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in {link}"))
        .1
        .into_owned()
}

/// The token of a mailed link.
pub(crate) fn token_of(link: &str) -> String {
    param(link, "token")
}

/// An account without a password, linked to `org`'s Entra ID (as SSO provisioning leaves it).
async fn sso_only_user(app: &TestApp, email: &str, org: &str) {
    let now = app.state.clock.now();
    let org = app.state.orgs.create(org, now).await.unwrap();
    let user = NewUser {
        id: Uuid::now_v7(),
        email: email.to_string(),
        name: "Sam".to_string(),
        given_name: "Sam".to_string(),
        family_name: String::new(),
        password_hash: None,
        is_admin: false,
        lockout_threshold: 10,
        created_at: now,
    };
    let user = app.state.store.insert_user(&user).await.unwrap();
    let identity = FederatedIdentity {
        tenant_id: "tenant".into(),
        object_id: "object".into(),
        user_id: user.id,
        org_id: org.id,
        created_at: now,
    };
    let cli = ClientInfo::new("test", "");
    let linked = ActivityEvent::new(Some(user.id), Action::SsoLinked, &cli, json!({}), now);
    app.state
        .store
        .insert_federated_identity(&identity, &linked)
        .await
        .unwrap();
}

pub(crate) async fn actions(app: &TestApp, email: &str) -> Vec<(String, String)> {
    let user = app.state.store.user_by_email(email).await.unwrap().unwrap();
    let events = app.state.store.recent_events(user.id, 500).await.unwrap();
    events.into_iter().map(|e| (e.action, e.details)).collect()
}

/// A registered first-party client (back-channel logout to a closed port): id and secret.
pub(crate) async fn register(app: &TestApp) -> (String, String) {
    let (client, secret) = app
        .register_client("Webmail", REDIRECT, |spec| {
            spec.backchannel_logout_uri = Some("http://127.0.0.1:9/backchannel".into());
        })
        .await;
    (client.id, secret.unwrap())
}

/// The code flow in a signed-in `browser`: the token endpoint's answer.
pub(crate) async fn tokens(
    app: &TestApp,
    browser: &reqwest::Client,
    (id, secret): &(String, String),
    scope: &str,
) -> Value {
    let mut authorize = url::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "state-1")
        .append_pair("nonce", "nonce-1");
    let back = browser.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let location = back.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(REDIRECT), "{location}");
    let code = param(&location, "code");
    reqwest::Client::new()
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The token endpoint's status for a refresh.
pub(crate) async fn refresh(app: &TestApp, (id, secret): &(String, String), token: &str) -> u16 {
    reqwest::Client::new()
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The `href` of the first element matching `css`.
pub(crate) fn href_of(html: &str, css: &str) -> Option<String> {
    let doc = scraper::Html::parse_document(html);
    let selector = scraper::Selector::parse(css).unwrap();
    let found = doc.select(&selector).next()?;
    found.value().attr("href").map(str::to_string)
}

/// The status of a signed-in page for `browser` (303 to the sign-in once signed out).
pub(crate) async fn account_status(app: &TestApp, browser: &reqwest::Client) -> StatusCode {
    browser
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn forgotten_password_answers_alike_for_every_address_and_mails_only_accounts() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        sso_only_user(&app, "sam@acme.example", "Acme Corp").await;
        let login = app.client().get(app.url("/login")).send().await.unwrap();
        let login = login.text().await.unwrap();
        let forgot_link = href_of(&login, "#forgot-link");
        assert_eq!(
            forgot_link.as_deref(),
            Some("/password/forgot"),
            "linked from sign-in"
        );

        let addresses = [
            "ada@example.com",
            "nobody@example.com",
            "sam@acme.example",
            "not an address",
        ];
        let mut answers = Vec::new();
        for email in addresses {
            answers.push(forgot(&app, email).await);
        }
        let (status, page) = &answers[0];
        assert_eq!(*status, StatusCode::OK, "{}", db.backend);
        let sent = text_of(page, "#forgot-sent").unwrap();
        assert!(
            sent.starts_with("If an account exists for this address"),
            "{sent}"
        );
        for (email, answer) in addresses.iter().zip(&answers) {
            assert_eq!(answer, &answers[0], "{email}: the same status and page");
        }
        let mut api_answers = Vec::new();
        for email in addresses {
            let response = reqwest::Client::new()
                .post(app.url("/api/v1/password/forgot"))
                .json(&json!({ "email": email }))
                .send()
                .await
                .unwrap();
            api_answers.push((response.status(), response.text().await.unwrap()));
        }
        assert_eq!(api_answers[0].0, StatusCode::ACCEPTED);
        for (email, answer) in addresses.iter().zip(&api_answers) {
            assert_eq!(answer, &api_answers[0], "{email}: the same API answer");
        }

        // One mail each to the two accounts (the API's request came too soon after the
        // page's), none to the unknown address.
        let mails = mailbox(&app, &db).await;
        assert_eq!(mails.len(), 2, "{}: {mails:?}", db.backend);
        let prefix = format!("{}/password/reset?token=", app.base);
        let first = newest_link(&mails, "ada@example.com", &prefix).expect("a link to Ada");
        let sam = mails_to(&mails, "sam@acme.example");
        assert_eq!(sam.len(), 1);
        assert!(sam[0].text.contains("Acme Corp"), "{}", sam[0].text);
        assert!(sam[0].text.contains("Sign in with SSO"));
        assert!(sam[0].text.contains(&format!("{}/login/sso", app.base)));
        assert!(
            !sam[0].text.contains("/password/reset"),
            "no link to a password"
        );
        assert!(mails_to(&mails, "nobody@example.com").is_empty());

        // After the period, a new link; it voids the older one.
        app.state.clock.advance(time::Duration::minutes(3));
        forgot(&app, "ada@example.com").await;
        let second = reset_link(&app, &db, "ada@example.com").await;
        assert_ne!(first, second);
        let old = app.client().get(&first).send().await.unwrap();
        assert_eq!(old.status(), StatusCode::GONE);
        let message = text_of(&old.text().await.unwrap(), "#message").unwrap();
        assert!(message.contains("replaced by a newer one"), "{message}");
        let requested = actions(&app, "ada@example.com")
            .await
            .into_iter()
            .filter(|(a, _)| a == "password.reset_requested")
            .count();
        assert_eq!(requested, 2);
    }
}

#[tokio::test]
async fn a_reset_link_works_once_and_ends_every_session_refresh_token_and_lock() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let ada = app.create_user("ada@example.com", PASSWORD).await;
        let cli = ClientInfo::new("test", "");
        let settings = SecuritySettings {
            lockout_threshold: 3,
            notify_on_success: false,
            notify_on_failure: false,
        };
        let now = app.state.clock.now();
        app.state
            .accounts
            .update_security(&ada, settings, &cli, now)
            .await
            .unwrap();
        let webmail = register(&app).await;
        let (other, _) = app.signed_in("ada@example.com").await;
        let issued = tokens(&app, &other, &webmail, "openid email").await;
        let refresh_token = issued["refresh_token"].as_str().unwrap().to_string();
        for _ in 0..3 {
            app.login(&app.client(), "ada@example.com", "wrong-password!")
                .await;
        }
        let locked = app.login(&app.client(), "ada@example.com", PASSWORD).await;
        assert_eq!(locked.status(), StatusCode::UNAUTHORIZED, "{}", db.backend);

        forgot(&app, "ada@example.com").await;
        let link = reset_link(&app, &db, "ada@example.com").await;
        // Opening the link (twice, as a mail scanner and then the owner) uses nothing.
        for _ in 0..2 {
            let page = app.client().get(&link).send().await.unwrap();
            assert_eq!(page.status(), StatusCode::OK);
            let html = page.text().await.unwrap();
            assert!(text_of(&html, "#reset-submit").is_some());
        }
        for (new, again, reason) in [
            (NEW_PASSWORD, "velvet-harbor-compasses", "differ"),
            ("ada@example.com", "ada@example.com", "e-mail address"),
            ("short", "short", "at least"),
        ] {
            let (status, html) = reset_with(&app, &link, new, again).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{new}");
            let error = text_of(&html, "#reset-error").unwrap();
            assert!(error.contains(reason), "{new}: {error}");
        }
        assert_eq!(account_status(&app, &other).await, StatusCode::OK);

        let (status, html) = reset_with(&app, &link, NEW_PASSWORD, NEW_PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{}: {html}", db.backend);
        assert!(text_of(&html, "#message").unwrap().contains("is set"));
        assert_eq!(href_of(&html, "#next-link").as_deref(), Some("/login"));

        // Every other session is signed out, its refresh token dead, relying apps told.
        assert_eq!(account_status(&app, &other).await, StatusCode::SEE_OTHER);
        assert_eq!(refresh(&app, &webmail, &refresh_token).await, 400);
        assert!(db.count("backchannel_outbox").await >= 1);
        // The new password signs in: the account is unlocked; the old one does not.
        let old = app.login(&app.client(), "ada@example.com", PASSWORD).await;
        assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
        let new = app
            .login(&app.client(), "ada@example.com", NEW_PASSWORD)
            .await;
        assert_eq!(new.status(), StatusCode::SEE_OTHER);

        // The link a second time: refused, on the form and on its page.
        let token = token_of(&link);
        let browser = app.client();
        let csrf = app.csrf_from(&browser, "/password/forgot").await;
        let again = browser
            .post(app.url("/password/reset"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("token", token.as_str()),
                ("new_password", "another-fine-passphrase"),
                ("confirm_password", "another-fine-passphrase"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::GONE);
        let page = app.client().get(&link).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::GONE);
        let html = page.text().await.unwrap();
        assert!(text_of(&html, "#message").unwrap().contains("already used"));
        let new_link = href_of(&html, "#next-link");
        assert_eq!(
            new_link.as_deref(),
            Some("/password/forgot"),
            "a way to a new link"
        );

        let mails = mailbox(&app, &db).await;
        assert!(
            mails_to(&mails, "ada@example.com")
                .iter()
                .any(|m| m.text.contains("Subject: Your Gotthard password was reset")),
            "{mails:?}"
        );
        let log = actions(&app, "ada@example.com").await;
        assert!(
            log.iter()
                .any(|(a, d)| a == "password.reset" && d.contains("\"unlocked\":true"))
        );
        assert!(
            log.iter()
                .any(|(a, d)| a == "account.unlocked" && d.contains("password_reset"))
        );
    }
}

#[tokio::test]
async fn an_expired_link_is_refused_and_the_api_resets_once() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        forgot(&app, "ada@example.com").await;
        let link = reset_link(&app, &db, "ada@example.com").await;
        app.state.clock.advance(time::Duration::minutes(31));
        let page = app.client().get(&link).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::GONE, "{}", db.backend);
        assert!(page.text().await.unwrap().contains("has expired"));
        let api_reset = |token: String, password: &'static str| {
            reqwest::Client::new()
                .post(app.url("/api/v1/password/reset"))
                .json(&json!({ "token": token, "new_password": password }))
                .send()
        };
        let expired = api_reset(token_of(&link), NEW_PASSWORD).await.unwrap();
        assert_eq!(expired.status(), StatusCode::GONE);
        let ok = app.login(&app.client(), "ada@example.com", PASSWORD).await;
        assert_eq!(
            ok.status(),
            StatusCode::SEE_OTHER,
            "the password is unchanged"
        );

        let asked = reqwest::Client::new()
            .post(app.url("/api/v1/password/forgot"))
            .json(&json!({ "email": "ada@example.com" }))
            .send()
            .await
            .unwrap();
        assert_eq!(asked.status(), StatusCode::ACCEPTED);
        let token = token_of(&reset_link(&app, &db, "ada@example.com").await);
        let weak = api_reset(token.clone(), "password123").await.unwrap();
        assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let done = api_reset(token.clone(), NEW_PASSWORD).await.unwrap();
        assert_eq!(done.status(), StatusCode::NO_CONTENT);
        let twice = api_reset(token, "another-fine-passphrase").await.unwrap();
        assert_eq!(twice.status(), StatusCode::GONE);
        let new = app
            .login(&app.client(), "ada@example.com", NEW_PASSWORD)
            .await;
        assert_eq!(new.status(), StatusCode::SEE_OTHER);

        let doc: Value = reqwest::get(app.url("/api/v1/openapi.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for path in ["/api/v1/password/forgot", "/api/v1/password/reset"] {
            assert!(doc["paths"][path]["post"].is_object(), "{path} documented");
        }
    }
}

#[tokio::test]
async fn requests_are_limited_per_network_on_the_pages_and_the_api() {
    for db in databases().await {
        let app = TestApp::start_with(
            &db,
            &[
                ("rate_limit.sign_in_per_minute", "1"),
                ("rate_limit.sign_in_burst", "3"),
            ],
        )
        .await;
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(forgot(&app, "nobody@example.com").await.0.as_u16());
        }
        let api = reqwest::Client::new()
            .post(app.url("/api/v1/password/forgot"))
            .json(&json!({ "email": "nobody@example.com" }))
            .send()
            .await
            .unwrap();
        statuses.push(api.status().as_u16());
        assert!(api.headers().contains_key("retry-after"));
        assert_eq!(statuses, [200, 200, 200, 429], "{}", db.backend);
        let reset = reqwest::Client::new()
            .post(app.url("/api/v1/password/reset"))
            .json(&json!({ "token": "x", "new_password": NEW_PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(reset.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test]
async fn the_security_page_changes_the_password_with_the_current_one() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let webmail = register(&app).await;
        let (this, _) = app.signed_in("ada@example.com").await;
        let (other, _) = app.signed_in("ada@example.com").await;
        let issued = tokens(&app, &other, &webmail, "openid").await;
        let refresh_token = issued["refresh_token"].as_str().unwrap().to_string();
        let security = this.get(app.url("/account/security")).send().await.unwrap();
        let security = security.text().await.unwrap();
        let link = href_of(&security, "#password-change-link");
        assert_eq!(link.as_deref(), Some("/account/security/password"));

        let change = |current: &'static str, new: &'static str, again: &'static str| {
            let this = this.clone();
            let app = &app;
            async move {
                let csrf = app.csrf_from(&this, "/account/security/password").await;
                let response = this
                    .post(app.url("/account/security/password"))
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("current_password", current),
                        ("new_password", new),
                        ("confirm_password", again),
                    ])
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let location = response
                    .headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_string());
                (status, location, response.text().await.unwrap())
            }
        };
        let (status, _, html) = change("wrong-password!", NEW_PASSWORD, NEW_PASSWORD).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{}", db.backend);
        assert!(text_of(&html, "#password-error").unwrap().contains("wrong"));
        let ada = app.state.store.user_by_email("ada@example.com").await;
        assert_eq!(ada.unwrap().unwrap().failed_attempts, 1, "counted");
        let (status, _, _) = change(PASSWORD, NEW_PASSWORD, "something-else-entirely").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let (status, location, _) = change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = location.unwrap();
        assert_eq!(location, "/account/security?password=changed");
        let notice = this.get(app.url(&location)).send().await.unwrap();
        let notice = text_of(&notice.text().await.unwrap(), "#security-notice").unwrap();
        assert!(notice.contains("password was changed"), "{notice}");
        assert_eq!(account_status(&app, &this).await, StatusCode::OK);
        assert_eq!(account_status(&app, &other).await, StatusCode::SEE_OTHER);
        assert_eq!(refresh(&app, &webmail, &refresh_token).await, 400);
        let new = app
            .login(&app.client(), "ada@example.com", NEW_PASSWORD)
            .await;
        assert_eq!(new.status(), StatusCode::SEE_OTHER);
    }
}
