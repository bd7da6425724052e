//! Account access: listing and ending sessions over the API and the pages; lifetimes.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{PASSWORD, TestApp, databases, hidden_field, text_of};

const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";

fn browser_with(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .user_agent(user_agent)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn signed_in(app: &TestApp, email: &str, user_agent: &str) -> reqwest::Client {
    let client = browser_with(user_agent);
    let response = app.login(&client, email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    client
}

async fn sessions_of(app: &TestApp, client: &reqwest::Client) -> Vec<Value> {
    let response = client
        .get(app.url("/api/v1/me/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["sessions"].as_array().unwrap().clone()
}

/// A browser holding a session that `org`'s SSO started for `email` (as its callback does).
async fn sso_signed_in(
    app: &TestApp,
    email: &str,
    org: uuid::Uuid,
    user_agent: &str,
) -> reqwest::Client {
    let user = app.state.store.user_by_email(email).await.unwrap().unwrap();
    let client_info = gotthard::audit::ClientInfo::new("127.0.0.1", user_agent);
    let (token, _) = app
        .state
        .sessions
        .start_sso(&user, org, &client_info, app.state.clock.now())
        .await
        .unwrap();
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let cookie = format!("gotthard_session={}; Path=/", token.as_str());
    jar.add_cookie_str(&cookie, &app.base.parse().unwrap());
    reqwest::Client::builder()
        .cookie_provider(jar)
        .user_agent(user_agent)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn is_signed_in(app: &TestApp, client: &reqwest::Client) -> bool {
    let page = client.get(app.url("/account")).send().await.unwrap();
    match page.status() {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => {
            assert_eq!(page.headers()["location"], "/login");
            false
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn owners_list_and_end_their_sessions_and_nobody_elses() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        app.create_user("eve@example.com", PASSWORD).await;
        let laptop = signed_in(&app, "ada@example.com", FIREFOX).await;
        let phone = signed_in(&app, "ada@example.com", IPHONE).await;
        let tablet = signed_in(&app, "ada@example.com", IPHONE).await;
        let eve = signed_in(&app, "eve@example.com", FIREFOX).await;

        let listed = sessions_of(&app, &laptop).await;
        assert_eq!(listed.len(), 3, "{}", db.backend);
        let current: Vec<_> = listed.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["device"]["browser"], "Firefox 121");
        assert_eq!(current[0]["device"]["os"], "Windows 10");
        assert_eq!(current[0]["signed_in_with"], "password");
        assert_eq!(current[0]["ip"], "127.0.0.1");
        let phone_id = sessions_of(&app, &phone)
            .await
            .into_iter()
            .find(|s| s["current"] == true)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let eve_id = sessions_of(&app, &eve).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();

        // Ending needs the CSRF header.
        let forged = laptop
            .delete(app.url(&format!("/api/v1/me/sessions/{phone_id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert_eq!(forged.headers()["content-type"], "application/problem+json");
        assert!(is_signed_in(&app, &phone).await);

        let csrf = app.api_csrf(&laptop).await;
        let ended = laptop
            .delete(app.url(&format!("/api/v1/me/sessions/{phone_id}")))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(ended.status(), StatusCode::NO_CONTENT, "{}", db.backend);
        // At once: the page sends the phone to /login, the API answers 401.
        assert!(!is_signed_in(&app, &phone).await);
        let api = phone
            .get(app.url("/api/v1/me/sessions"))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
        let problem: Value = api.json().await.unwrap();
        assert_eq!(problem["status"], 401);
        assert_eq!(problem["type"], "about:blank");

        // Another user's session id, an unknown one, garbage: 404, and eve stays signed in.
        for id in [eve_id.as_str(), &phone_id, "not-a-uuid"] {
            let r = laptop
                .delete(app.url(&format!("/api/v1/me/sessions/{id}")))
                .header("x-csrf-token", &csrf)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{id}");
        }
        assert!(is_signed_in(&app, &eve).await);

        // The page: end every other device.
        let page = laptop
            .get(app.url("/account/sessions"))
            .send()
            .await
            .unwrap();
        let html = page.text().await.unwrap();
        assert!(text_of(&html, "#this-device").is_some());
        assert!(html.contains("Safari"), "the tablet is listed: {html}");
        let form_csrf = hidden_field(&html, "csrf");
        let out = laptop
            .post(app.url("/account/sessions/end-others"))
            .form(&[("csrf", form_csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), StatusCode::SEE_OTHER);
        let after = laptop
            .get(app.url(out.headers()["location"].to_str().unwrap()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            text_of(&after, "#sessions-notice").unwrap(),
            "1 other devices were signed out."
        );
        assert!(!is_signed_in(&app, &tablet).await);
        assert!(is_signed_in(&app, &laptop).await);
        assert!(is_signed_in(&app, &eve).await);
        assert_eq!(sessions_of(&app, &laptop).await.len(), 1);
        let ada = app
            .state
            .store
            .user_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap();
        let ended_events = app
            .state
            .store
            .recent_events(ada.id, 20)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "session.ended")
            .count();
        assert_eq!(ended_events, 2, "{}", db.backend);
    }
}

#[tokio::test]
async fn sessions_expire_when_idle_or_too_old_and_last_seen_is_written_sparingly() {
    for db in databases().await {
        let app = TestApp::start_with(
            &db,
            &[
                ("sessions.idle_timeout_minutes", "60"),
                ("sessions.absolute_lifetime_hours", "2"),
            ],
        )
        .await;
        app.create_user("ada@example.com", PASSWORD).await;
        let clock = &app.state.clock;

        // Idle: nothing for an hour.
        let idle = signed_in(&app, "ada@example.com", FIREFOX).await;
        clock.advance(time::Duration::minutes(61));
        assert!(!is_signed_in(&app, &idle).await, "{}", db.backend);

        // "Last seen" moves only after the touch interval.
        let active = signed_in(&app, "ada@example.com", FIREFOX).await;
        let first = sessions_of(&app, &active).await[0]["last_seen_at"].clone();
        clock.advance(time::Duration::seconds(30));
        assert_eq!(sessions_of(&app, &active).await[0]["last_seen_at"], first);
        clock.advance(time::Duration::seconds(31));
        assert_ne!(sessions_of(&app, &active).await[0]["last_seen_at"], first);

        // Absolute: used every 50 minutes, still over after two hours.
        for _ in 0..2 {
            clock.advance(time::Duration::minutes(50));
            assert!(is_signed_in(&app, &active).await);
        }
        clock.advance(time::Duration::minutes(25));
        assert!(!is_signed_in(&app, &active).await);

        // Expired and ended sessions are pruned.
        let pruned = app.state.sessions.prune(clock.now()).await.unwrap();
        assert_eq!(pruned, 2, "{}", db.backend);
        assert_eq!(db.count("sessions").await, 0);
    }
}

#[tokio::test]
async fn the_api_is_described_and_answers_problems() {
    let db = crate::support::sqlite_db();
    let app = TestApp::start(&db).await;
    let client = app.client();
    let doc: Value = client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/me/sessions",
        "/api/v1/me/sessions/{id}",
        "/api/v1/me/sessions/revoke-others",
        "/api/v1/csrf",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    let anonymous = client
        .get(app.url("/api/v1/me/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
    let missing = client
        .get(app.url("/api/v1/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = missing.json().await.unwrap();
    assert_eq!(problem["status"], 404);
    let wrong_method = client
        .put(app.url("/api/v1/me/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        wrong_method.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn organization_admins_see_and_end_only_the_sessions_their_sso_started() {
    use gotthard::orgs::OrgRole;
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let now = app.state.clock.now();
        let acme = app.state.orgs.create("Acme", now).await.unwrap();
        let other = app.state.orgs.create("Other", now).await.unwrap();
        let mut ids = std::collections::HashMap::new();
        for (email, org, role) in [
            ("alice@example.com", "Acme", OrgRole::Admin),
            ("bob@example.com", "Acme", OrgRole::Member),
            ("dave@example.com", "Acme", OrgRole::Member),
            ("carol@example.com", "Other", OrgRole::Member),
        ] {
            let user = app.create_user(email, PASSWORD).await;
            app.state
                .orgs
                .add_member(org, email, role, now)
                .await
                .unwrap();
            ids.insert(email, user.id);
        }
        let alice = signed_in(&app, "alice@example.com", FIREFOX).await;
        // Bob signs in with his password at home, and through Acme's SSO on his phone: only
        // the second is Acme's business.
        let bob_home = signed_in(&app, "bob@example.com", FIREFOX).await;
        let bob_home_session = sessions_of(&app, &bob_home).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let bob = sso_signed_in(&app, "bob@example.com", acme.id, IPHONE).await;
        let dave = signed_in(&app, "dave@example.com", FIREFOX).await;
        let carol = signed_in(&app, "carol@example.com", FIREFOX).await;
        let members = |org: uuid::Uuid, user: &str| {
            app.url(&format!(
                "/api/v1/orgs/{org}/members/{}/sessions",
                ids[user]
            ))
        };

        let listed = alice
            .get(members(acme.id, "bob@example.com"))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), StatusCode::OK, "{}", db.backend);
        let body: Value = listed.json().await.unwrap();
        let bob_session = body["sessions"][0]["id"].as_str().unwrap().to_string();
        assert_eq!(body["sessions"].as_array().unwrap().len(), 1);
        assert_eq!(body["sessions"][0]["device"]["os"], "iPhone");

        // A plain member may not; an outsider's organization and a non-member are not found.
        let plain = dave
            .get(members(acme.id, "bob@example.com"))
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), StatusCode::FORBIDDEN);
        let outside = alice
            .get(members(other.id, "carol@example.com"))
            .send()
            .await
            .unwrap();
        assert_eq!(outside.status(), StatusCode::NOT_FOUND);
        let not_member = alice
            .get(members(acme.id, "carol@example.com"))
            .send()
            .await
            .unwrap();
        assert_eq!(not_member.status(), StatusCode::NOT_FOUND);

        let csrf = app.api_csrf(&alice).await;
        let carol_session = sessions_of(&app, &carol).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let wrong = alice
            .delete(format!(
                "{}/{carol_session}",
                members(acme.id, "bob@example.com")
            ))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(
            wrong.status(),
            StatusCode::NOT_FOUND,
            "carol's session is not bob's"
        );
        assert!(is_signed_in(&app, &carol).await);
        let private = alice
            .delete(format!(
                "{}/{bob_home_session}",
                members(acme.id, "bob@example.com")
            ))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(
            private.status(),
            StatusCode::NOT_FOUND,
            "bob's password session is not Acme's"
        );
        assert!(is_signed_in(&app, &bob_home).await);

        let ended = alice
            .delete(format!(
                "{}/{bob_session}",
                members(acme.id, "bob@example.com")
            ))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(ended.status(), StatusCode::NO_CONTENT, "{}", db.backend);
        assert!(!is_signed_in(&app, &bob).await);
        assert!(is_signed_in(&app, &bob_home).await);
        let event = app
            .state
            .store
            .recent_events(ids["bob@example.com"], 10)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.action == "session.ended")
            .unwrap();
        assert_eq!(event.actor_id, Some(ids["alice@example.com"]));
        assert!(
            event.details.contains("\"by\":\"admin\""),
            "{}",
            event.details
        );
    }
}
