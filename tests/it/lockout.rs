//! Lockout after N failed attempts, unlock by link, by an admin, by an operator.

use std::process::{Command, Stdio};

use gotthard::orgs::OrgRole;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, TestDb, databases, hidden_field, text_of};

async fn set_threshold(app: &TestApp, email: &str, threshold: i32) {
    let user = app.state.store.user_by_email(email).await.unwrap().unwrap();
    let settings = gotthard::accounts::SecuritySettings {
        lockout_threshold: threshold,
        notify_on_success: false,
        notify_on_failure: false,
    };
    let client = gotthard::audit::ClientInfo::new("test", "test");
    app.state
        .accounts
        .update_security(&user, settings, &client, app.state.clock.now())
        .await
        .unwrap();
}

async fn actions(app: &TestApp, email: &str) -> Vec<(String, String)> {
    let user = app.state.store.user_by_email(email).await.unwrap().unwrap();
    app.state
        .store
        .recent_events(user.id, 500)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.details))
        .collect()
}

/// Delivers the outbox to `data/mail/` and returns the newest unlock link found there.
async fn unlock_link_from_mail(app: &TestApp, db: &TestDb) -> String {
    app.state
        .mailer
        .deliver_due(app.state.clock.now())
        .await
        .unwrap();
    let folder = db.dir.path().join("data").join("mail");
    let mut newest: Option<(std::time::SystemTime, String)> = None;
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        // Quoted-printable: join soft line breaks, decode "=".
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("=\r\n", "")
            .replace("=\n", "")
            .replace("=3D", "=");
        if let Some(start) = text.find(&format!("{}/unlock/confirm?token=", app.base)) {
            let link: String = text[start..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '<' && *c != '"')
                .collect();
            if newest.as_ref().is_none_or(|(t, _)| modified >= *t) {
                newest = Some((modified, link));
            }
        }
    }
    newest.expect("a mail with an unlock link").1
}

#[tokio::test]
async fn n_wrong_passwords_lock_until_the_mailed_link_is_confirmed() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        set_threshold(&app, "ada@example.com", 3).await;
        let signed_in = app.client();
        app.login(&signed_in, "ada@example.com", PASSWORD).await;

        let attacker = app.client();
        for _ in 0..3 {
            let r = app
                .login(&attacker, "ada@example.com", "wrong-password!")
                .await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{}", db.backend);
        }
        // Locked: the right password answers exactly like a wrong one.
        let wrong_body = app
            .login(&attacker, "ada@example.com", "wrong-password!")
            .await
            .text()
            .await
            .unwrap();
        let right = app.login(&attacker, "ada@example.com", PASSWORD).await;
        assert_eq!(right.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            right.text().await.unwrap(),
            wrong_body,
            "same answer, byte for byte"
        );
        // Sessions survive a lock.
        assert_eq!(
            signed_in
                .get(app.url("/account"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let log = actions(&app, "ada@example.com").await;
        let count = |action: &str, needle: &str| {
            log.iter()
                .filter(|(a, d)| a == action && d.contains(needle))
                .count()
        };
        assert_eq!(
            count("login.failed", "wrong_password"),
            3,
            "{}: {log:?}",
            db.backend
        );
        assert_eq!(count("login.failed", "locked"), 2);
        assert_eq!(count("account.locked", ""), 1);

        // The mailed link opens a confirmation page; only its POST unlocks.
        let link = unlock_link_from_mail(&app, &db).await;
        let browser = app.client();
        let page = browser.get(&link).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert_eq!(
            app.login(&app.client(), "ada@example.com", PASSWORD)
                .await
                .status(),
            StatusCode::UNAUTHORIZED,
            "opening the link unlocks nothing"
        );
        let form = [
            ("csrf", hidden_field(&html, "csrf")),
            ("token", hidden_field(&html, "token")),
        ];
        let done = browser
            .post(app.url("/unlock/confirm"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::OK);
        assert!(
            text_of(&done.text().await.unwrap(), "#message")
                .unwrap()
                .contains("unlocked")
        );
        assert_eq!(
            app.login(&app.client(), "ada@example.com", PASSWORD)
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        // The link a second time: refused, clearly.
        let again = browser
            .post(app.url("/unlock/confirm"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::GONE);
        assert_eq!(
            browser.get(&link).send().await.unwrap().status(),
            StatusCode::GONE
        );
        assert!(
            actions(&app, "ada@example.com")
                .await
                .iter()
                .any(|(a, d)| a == "account.unlocked" && d.contains("self"))
        );
    }
}

#[tokio::test]
async fn admins_unlock_their_members_and_nobody_else_can() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let now = app.state.clock.now();
        let acme = app.state.orgs.create("Acme", now).await.unwrap();
        let other = app.state.orgs.create("Other", now).await.unwrap();
        for (email, org, role) in [
            ("ada@example.com", "Acme", OrgRole::Member),
            ("alice@example.com", "Acme", OrgRole::Admin),
            ("bob@example.com", "Acme", OrgRole::Member),
            ("carol@example.com", "Other", OrgRole::LegalRepresentative),
        ] {
            app.create_user(email, PASSWORD).await;
            app.state
                .orgs
                .add_member(org, email, role, now)
                .await
                .unwrap();
        }
        set_threshold(&app, "ada@example.com", 3).await;
        for _ in 0..3 {
            app.login(&app.client(), "ada@example.com", "wrong-password!")
                .await;
        }
        let old_link = unlock_link_from_mail(&app, &db).await;
        let ada = app
            .state
            .store
            .user_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap();
        assert!(ada.locked_at.is_some(), "{}", db.backend);

        let (alice, alice_csrf) = app.signed_in("alice@example.com").await;
        let (bob, bob_csrf) = app.signed_in("bob@example.com").await;
        let (carol, carol_csrf) = app.signed_in("carol@example.com").await;

        let locked: Value = alice
            .get(app.url(&format!("/api/v1/orgs/{}/members?locked=true", acme.id)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let emails: Vec<_> = locked["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["email"].clone())
            .collect();
        assert_eq!(emails, [json!("ada@example.com")], "{}", db.backend);

        let unlock = |client: &reqwest::Client, org: uuid::Uuid, csrf: &str| {
            client
                .post(app.url(&format!("/api/v1/orgs/{org}/members/{}/unlock", ada.id)))
                .header("x-csrf-token", csrf)
                .send()
        };
        assert_eq!(
            unlock(&bob, acme.id, &bob_csrf).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            unlock(&carol, acme.id, &carol_csrf).await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            unlock(&carol, other.id, &carol_csrf)
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.login(&app.client(), "ada@example.com", PASSWORD)
                .await
                .status(),
            StatusCode::UNAUTHORIZED,
            "still locked"
        );
        // The admin page lists ada as locked; a plain member may not see it.
        let members_page = format!("/account/orgs/{}/members", acme.id);
        assert_eq!(
            bob.get(app.url(&members_page))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN
        );
        let html = alice
            .get(app.url(&members_page))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text_of(&html, &format!("#member-{} .locked", ada.id)).is_some(),
            "{html}"
        );
        let account = alice
            .get(app.url("/account/orgs"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            account.contains(&members_page),
            "the organizations page links the admin page"
        );
        assert_eq!(
            unlock(&alice, acme.id, &alice_csrf).await.unwrap().status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            app.login(&app.client(), "ada@example.com", PASSWORD)
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        // The page's button does the same (for the next lock).
        for _ in 0..3 {
            app.login(&app.client(), "ada@example.com", "wrong-password!")
                .await;
        }
        let html = alice
            .get(app.url(&members_page))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let form_csrf = hidden_field(&html, "csrf");
        let clicked = alice
            .post(app.url(&format!("{members_page}/{}/unlock", ada.id)))
            .form(&[("csrf", form_csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(clicked.status(), StatusCode::SEE_OTHER);
        let html = alice
            .get(app.url(clicked.headers()["location"].to_str().unwrap()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text_of(&html, "#members-notice").is_some());
        assert!(text_of(&html, &format!("#member-{} .locked", ada.id)).is_none());
        // The admin unlock voided the mailed link.
        assert_eq!(
            app.client().get(&old_link).send().await.unwrap().status(),
            StatusCode::GONE
        );
        let alice_id = app
            .state
            .store
            .user_by_email("alice@example.com")
            .await
            .unwrap()
            .unwrap()
            .id;
        let ada_id = ada.id;
        let events = app.state.store.recent_events(ada_id, 50).await.unwrap();
        let unlocked = events
            .iter()
            .find(|e| e.action == "account.unlocked")
            .unwrap();
        assert_eq!(unlocked.actor_id, Some(alice_id));
    }
}

#[tokio::test]
async fn operators_unlock_at_the_command_line() {
    let db = crate::support::sqlite_db();
    let app = TestApp::start(&db).await;
    app.create_user("ada@example.com", PASSWORD).await;
    set_threshold(&app, "ada@example.com", 3).await;
    for _ in 0..3 {
        app.login(&app.client(), "ada@example.com", "wrong-password!")
            .await;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_gotthard"))
        .args(["user", "unlock", "--email", "ada@example.com"])
        .env("GOTTHARD_DATA_DIR", db.dir.path().join("data"))
        .env("GOTTHARD_KEYS__DIR", db.dir.path().join("keys"))
        .env("GOTTHARD_DATABASE__URL", &db.url)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("unlocked ada@example.com"));
    assert_eq!(
        app.login(&app.client(), "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn unlock_requests_answer_the_same_and_are_limited_per_account() {
    let db = crate::support::sqlite_db();
    let app = TestApp::start(&db).await;
    app.create_user("ada@example.com", PASSWORD).await;
    app.create_user("bob@example.com", PASSWORD).await;
    set_threshold(&app, "ada@example.com", 3).await;
    for _ in 0..3 {
        app.login(&app.client(), "ada@example.com", "wrong-password!")
            .await;
    }
    let client = app.client();
    let csrf = app.csrf_from(&client, "/unlock").await;
    let mut bodies = Vec::new();
    for email in [
        "ada@example.com",
        "bob@example.com",
        "nobody@example.com",
        "ada@example.com",
    ] {
        let r = client
            .post(app.url("/unlock"))
            .form(&[("email", email), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        bodies.push(r.text().await.unwrap());
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one answer for all"
    );
    // The lock's own mail carries a fresh link: no new one within two minutes, none for bob
    // (not locked) or nobody (no account).
    assert_eq!(db.count("mail_outbox").await, 1);
    let lock_link = unlock_link_from_mail(&app, &db).await;
    app.state.clock.advance(time::Duration::minutes(3));
    for _ in 0..2 {
        client
            .post(app.url("/unlock"))
            .form(&[("email", "ada@example.com"), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        db.count("mail_outbox").await,
        2,
        "one new link, the repeat is limited"
    );
    // A new link voids the older one.
    assert_eq!(
        client.get(&lock_link).send().await.unwrap().status(),
        StatusCode::GONE
    );
    let new_link = unlock_link_from_mail(&app, &db).await;
    assert_ne!(new_link, lock_link);
    assert_eq!(
        client.get(&new_link).send().await.unwrap().status(),
        StatusCode::OK
    );
    let forged = client
        .get(app.url(&format!("/unlock/confirm?token={}", "A".repeat(43))))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::GONE);
}

#[tokio::test]
async fn the_threshold_is_the_users_within_bounds_and_reauthentication_counts() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let (client, csrf) = app.signed_in("ada@example.com").await;
        let shown: Value = client
            .get(app.url("/api/v1/me/security"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            shown,
            json!({"lockout_threshold": 10, "notify_on_success": false, "notify_on_failure": false})
        );
        for bad in [2, 51] {
            let r = client
                .put(app.url("/api/v1/me/security"))
                .header("x-csrf-token", &csrf)
                .json(&json!({"lockout_threshold": bad, "notify_on_success": false, "notify_on_failure": true}))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                db.backend
            );
            let problem: Value = r.json().await.unwrap();
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap()
                    .contains("between 3 and 50"),
                "{problem}"
            );
        }
        let r = client
            .put(app.url("/api/v1/me/security"))
            .header("x-csrf-token", &csrf)
            .json(&json!({"lockout_threshold": 3, "notify_on_success": true, "notify_on_failure": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // The page shows the same, under the same names.
        let html = client
            .get(app.url("/account/security"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let doc = scraper::Html::parse_document(&html);
        let value = |css: &str, attr: &str| {
            doc.select(&scraper::Selector::parse(css).unwrap())
                .next()
                .and_then(|e| e.value().attr(attr).map(str::to_string))
        };
        assert_eq!(
            value("input[name=lockout_threshold]", "value").as_deref(),
            Some("3")
        );
        assert!(value("input[name=notify_on_success]", "checked").is_some());
        let page_csrf = hidden_field(&html, "csrf");
        let out_of_range = client
            .post(app.url("/account/security"))
            .form(&[("csrf", page_csrf.as_str()), ("lockout_threshold", "99")])
            .send()
            .await
            .unwrap();
        assert_eq!(out_of_range.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            text_of(&out_of_range.text().await.unwrap(), "#security-error")
                .unwrap()
                .contains("3 and 50")
        );

        // Three wrong current passwords at a password change lock the account too.
        for _ in 0..3 {
            let r = client
                .post(app.url("/api/v1/me/password"))
                .header("x-csrf-token", &csrf)
                .json(&json!({"current_password": "wrong-one!", "new_password": "basalt-heron-meadow"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
        }
        assert_eq!(
            app.login(&app.client(), "ada@example.com", PASSWORD)
                .await
                .status(),
            StatusCode::UNAUTHORIZED,
            "{}: locked through re-authentication",
            db.backend
        );
    }
}

/// Starts `gotthard serve` on the database of `db` (sharing its keys), on a free port.
fn serve_process(db: &TestDb) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_gotthard"))
        .arg("serve")
        .env("GOTTHARD_DATA_DIR", db.dir.path().join("data"))
        .env("GOTTHARD_KEYS__DIR", db.dir.path().join("keys"))
        .env("GOTTHARD_DATABASE__URL", &db.url)
        .env("GOTTHARD_HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("GOTTHARD_ISSUER", &base)
        .env("GOTTHARD_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, base)
}

#[tokio::test]
async fn parallel_wrong_passwords_on_two_instances_lock_at_exactly_n() {
    for db in databases().await {
        // The account exists before the servers start (they would print a setup link).
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        set_threshold(&app, "ada@example.com", 5).await;
        let (mut one, base_one) = serve_process(&db);
        let (mut two, base_two) = serve_process(&db);
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let mut csrf = String::new();
        for base in [&base_one, &base_two] {
            for _ in 0..100 {
                if let Ok(r) = client.get(format!("{base}/login")).send().await {
                    csrf = hidden_field(&r.text().await.unwrap(), "csrf");
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        // 4·N attempts at once, half on each instance (same keys, so one CSRF token works).
        let mut attempts = tokio::task::JoinSet::new();
        for i in 0..20 {
            let base = if i % 2 == 0 { &base_one } else { &base_two };
            let request = client.post(format!("{base}/login")).form(&[
                ("email", "ada@example.com"),
                ("password", "wrong-password!"),
                ("csrf", &csrf),
            ]);
            attempts.spawn(request.send());
        }
        while let Some(r) = attempts.join_next().await {
            assert_eq!(r.unwrap().unwrap().status(), StatusCode::UNAUTHORIZED);
        }
        let _ = one.kill();
        let _ = two.kill();
        let _ = one.wait();
        let _ = two.wait();

        let log = actions(&app, "ada@example.com").await;
        let checked = log
            .iter()
            .filter(|(a, d)| a == "login.failed" && d.contains("wrong_password"))
            .count();
        let refused = log
            .iter()
            .filter(|(a, d)| a == "login.failed" && d.contains("\"locked\""))
            .count();
        let locks = log.iter().filter(|(a, _)| a == "account.locked").count();
        assert_eq!((checked, refused, locks), (5, 15, 1), "{}", db.backend);
        let ada = app
            .state
            .store
            .user_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ada.failed_attempts, 5);
        assert!(ada.locked_at.is_some());
    }
}

/// Three wrong passwords in a row lock `email`.
async fn lock(app: &TestApp, email: &str) {
    set_threshold(app, email, 3).await;
    for _ in 0..3 {
        app.login(&app.client(), email, "wrong-password!").await;
    }
}

/// The mails delivered to `recipient` whose text contains `needle`.
async fn mails_to(app: &TestApp, db: &TestDb, recipient: &str, needle: &str) -> usize {
    app.state
        .mailer
        .deliver_due(app.state.clock.now())
        .await
        .unwrap();
    let folder = db.dir.path().join("data").join("mail");
    std::fs::read_dir(folder)
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.unwrap().path()).ok())
        .map(|text| text.replace("=\r\n", "").replace("=\n", ""))
        .filter(|text| text.contains(&format!("To: {recipient}")) && text.contains(needle))
        .count()
}

/// Issue 14: an organization's administrators act on members of their rank or below, never
/// on this instance's administrators, and every unlock they make reaches the owner.
#[tokio::test]
async fn admins_unlock_only_members_of_their_rank_and_the_owner_hears_of_each_unlock() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let now = app.state.clock.now();
        let acme = app.state.orgs.create("Acme", now).await.unwrap();
        let mut ids = std::collections::HashMap::new();
        for (email, role) in [
            ("rep@example.com", OrgRole::LegalRepresentative),
            ("rep2@example.com", OrgRole::LegalRepresentative),
            ("admin@example.com", OrgRole::Admin),
            ("admin2@example.com", OrgRole::Admin),
            ("ada@example.com", OrgRole::Member),
            ("root@example.com", OrgRole::Member),
        ] {
            let admin = email.starts_with("root");
            let user = app
                .state
                .accounts
                .create_user(email, "", PASSWORD, admin, now)
                .await
                .unwrap();
            app.state
                .orgs
                .add_member("Acme", email, role, now)
                .await
                .unwrap();
            ids.insert(email, user.id);
        }
        let (admin, admin_csrf) = app.signed_in("admin@example.com").await;
        let (rep, rep_csrf) = app.signed_in("rep@example.com").await;
        let unlock = |client: &reqwest::Client, csrf: &str, email: &str| {
            let url = format!("/api/v1/orgs/{}/members/{}/unlock", acme.id, ids[email]);
            client
                .post(app.url(&url))
                .header("x-csrf-token", csrf)
                .send()
        };
        for above in ["rep2@example.com", "root@example.com"] {
            lock(&app, above).await;
            let refused = unlock(&admin, &admin_csrf, above).await.unwrap();
            assert_eq!(
                refused.status(),
                StatusCode::FORBIDDEN,
                "{above} {}",
                db.backend
            );
        }
        // Legal representatives may act on each other; an admin on admins and members.
        let ok = unlock(&rep, &rep_csrf, "rep2@example.com").await.unwrap();
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        lock(&app, "admin2@example.com").await;
        let ok = unlock(&admin, &admin_csrf, "admin2@example.com")
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        // Nobody but an instance administrator acts on one.
        let refused = unlock(&rep, &rep_csrf, "root@example.com").await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let sessions = format!(
            "/api/v1/orgs/{}/members/{}/sessions",
            acme.id, ids["rep@example.com"]
        );
        let refused = admin.get(app.url(&sessions)).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);

        // Unlocked again and again: the owner is told each time, and so is the log.
        let needle = "unlocked your account";
        for round in 1..=2 {
            lock(&app, "ada@example.com").await;
            let ok = unlock(&admin, &admin_csrf, "ada@example.com")
                .await
                .unwrap();
            assert_eq!(ok.status(), StatusCode::NO_CONTENT);
            assert_eq!(
                mails_to(&app, &db, "ada@example.com", needle).await,
                round,
                "{}",
                db.backend
            );
        }
        let unlocks: Vec<_> = actions(&app, "ada@example.com")
            .await
            .into_iter()
            .filter(|(action, _)| action == "account.unlocked")
            .collect();
        assert_eq!(unlocks.len(), 2);
        assert!(unlocks[0].1.contains(&acme.id.to_string()), "{:?}", unlocks);
    }
}

/// `gotthard_password_hashes_total` from `/metrics`: argon2 computations run so far.
async fn password_hashes(app: &TestApp) -> u64 {
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("gotthard_password_hashes_total "))
        .unwrap_or_else(|| panic!("no password hash counter in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn reauthentication_floods_get_429_and_a_locked_account_costs_no_hash() {
    for db in databases().await {
        // Behind a trusted proxy, so that the test can speak from several addresses.
        let app = TestApp::start_with(
            &db,
            &[
                ("rate_limit.reauth_per_minute", "1"),
                ("rate_limit.reauth_burst", "5"),
                ("http.trusted_proxies", "[\"127.0.0.1\"]"),
            ],
        )
        .await;
        for email in ["ada@example.com", "bob@example.com", "eve@example.com"] {
            app.create_user(email, PASSWORD).await;
        }
        set_threshold(&app, "ada@example.com", 3).await;
        let (ada, csrf) = app.signed_in("ada@example.com").await;
        let wrong_change = |from: &'static str| {
            ada.post(app.url("/api/v1/me/password"))
                .header("x-csrf-token", &csrf)
                .header("x-forwarded-for", from)
                .json(&json!({"current_password": "wrong-one!", "new_password": "basalt-heron-meadow"}))
                .send()
        };
        let before = password_hashes(&app).await;

        // Ten wrong current passwords at once from one session, while Bob signs in.
        let flood = futures_util::future::join_all((0..10).map(|_| wrong_change("203.0.113.7")));
        let bob = app.client();
        let (answers, bob_login) =
            tokio::join!(flood, app.login(&bob, "bob@example.com", PASSWORD));
        assert_eq!(
            bob_login.status(),
            StatusCode::SEE_OTHER,
            "{}: another user signs in meanwhile",
            db.backend
        );
        let mut statuses: Vec<u16> = answers
            .iter()
            .map(|r| r.as_ref().unwrap().status().as_u16())
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [403, 403, 403, 403, 403, 429, 429, 429, 429, 429],
            "{}: the burst of five is checked, the rest refused",
            db.backend
        );
        // The five checked: three counted (the third locked), two refused by the lock
        // without a hash. Bob's sign-in is the fourth hash.
        assert_eq!(
            password_hashes(&app).await - before,
            4,
            "{}: a locked account's re-checks cost no hash",
            db.backend
        );
        let reasons: Vec<String> = actions(&app, "ada@example.com")
            .await
            .into_iter()
            .filter(|(action, _)| action == "reauthentication.failed")
            .map(|(_, details)| {
                serde_json::from_str::<Value>(&details).unwrap()["reason"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(reasons.iter().filter(|r| *r == "wrong_password").count(), 3);
        assert_eq!(reasons.iter().filter(|r| *r == "locked").count(), 2);

        // 429 is a problem document with Retry-After, for all three re-checking calls.
        let limited = wrong_change("203.0.113.7").await.unwrap();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(
            limited.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(limited.json::<Value>().await.unwrap()["status"], 429);
        // The account's allowance is spent from any address ...
        for request in [
            ada.post(app.url("/api/v1/me/email"))
                .json(&json!({"new_email": "ada@new.example", "current_password": "wrong-one!"})),
            ada.delete(app.url("/api/v1/me"))
                .json(&json!({"password": "wrong-one!"})),
            ada.post(app.url("/api/v1/me/password")).json(
                &json!({"current_password": "wrong-one!", "new_password": "basalt-heron-meadow"}),
            ),
        ] {
            let response = request
                .header("x-csrf-token", &csrf)
                .header("x-forwarded-for", "198.51.100.1")
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::TOO_MANY_REQUESTS,
                "{}",
                db.backend
            );
        }
        // ... and the flooding address's too, for another account; Eve elsewhere is checked.
        let (eve, eve_csrf) = app.signed_in("eve@example.com").await;
        for (from, status) in [
            ("203.0.113.7", StatusCode::TOO_MANY_REQUESTS),
            ("198.51.100.2", StatusCode::FORBIDDEN),
        ] {
            let response = eve
                .post(app.url("/api/v1/me/password"))
                .header("x-csrf-token", &eve_csrf)
                .header("x-forwarded-for", from)
                .json(&json!({"current_password": "wrong-one!", "new_password": "basalt-heron-meadow"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{}: Eve from {from}", db.backend);
        }
    }
}
