//! Account activity: filters, stable keyset pages, CSV, retention — API and page.

use std::collections::HashSet;

use gotthard::audit::{Action, ActivityEvent, ClientInfo};
use reqwest::StatusCode;
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::support::{PASSWORD, TestApp, databases, text_of};

const ACTIONS: [Action; 3] = [Action::LoginSucceeded, Action::LoginFailed, Action::Logout];
const PRODUCTS: [&str; 2] = ["account", "webmail"];

/// `n` events for `user`, one every 3 hours going back from `newest`.
async fn seed(app: &TestApp, user: Uuid, newest: OffsetDateTime, n: usize) -> Vec<ActivityEvent> {
    let mut events = Vec::new();
    for i in 0..n {
        let mut event = ActivityEvent::new(
            Some(user),
            ACTIONS[i % 3],
            &ClientInfo::new(
                format!("203.0.113.{}", i % 250),
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
            ),
            serde_json::json!({ "n": i }),
            newest - Duration::hours(3 * i as i64),
        );
        event.product = PRODUCTS[i % 2].to_string();
        app.state.store.record_event(&event).await.unwrap();
        events.push(event);
    }
    events
}

async fn get_json(client: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Every event id the API lists for `query`, following the cursors.
async fn all_ids(app: &TestApp, client: &reqwest::Client, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = app.url(&format!("/api/v1/me/activity?limit=7&{query}"));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = get_json(client, &url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.extend(
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match body.get("next_cursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_string()),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn pages_return_every_event_once_while_new_ones_arrive() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let ada = app.create_user("ada@example.com", PASSWORD).await;
        let eve = app.create_user("eve@example.com", PASSWORD).await;
        let client = app.client();
        app.login(&client, "ada@example.com", PASSWORD).await;
        let now = app.state.clock.now();
        seed(&app, ada.id, now - Duration::minutes(5), 60).await;
        seed(&app, eve.id, now - Duration::minutes(5), 10).await;
        let expected: Vec<String> = app
            .state
            .store
            .recent_events(ada.id, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id.to_string())
            .collect();
        assert_eq!(expected.len(), 61, "{}: 60 seeded + the login", db.backend);

        // Page through, adding events (some in the very second of the cursor) between pages.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = app.url("/api/v1/me/activity?limit=10");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = get_json(&client, &url).await;
            assert_eq!(status, StatusCode::OK);
            for e in body["events"].as_array().unwrap() {
                seen.push(e["id"].as_str().unwrap().to_string());
            }
            let newcomer = ActivityEvent::new(
                Some(ada.id),
                Action::LoginFailed,
                &ClientInfo::new("198.51.100.9", "curl/8"),
                serde_json::json!({}),
                app.state.clock.now(),
            );
            app.state.store.record_event(&newcomer).await.unwrap();
            match body.get("next_cursor").and_then(Value::as_str) {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        assert_eq!(
            seen, expected,
            "{}: each exactly once, newest first",
            db.backend
        );
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    }
}

#[tokio::test]
async fn filters_narrow_and_combine_and_csv_matches_json() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let ada = app.create_user("ada@example.com", PASSWORD).await;
        let client = app.client();
        app.login(&client, "ada@example.com", PASSWORD).await;
        let newest = OffsetDateTime::parse(
            "2026-11-20T12:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let seeded = seed(&app, ada.id, newest, 48).await; // six days, back to 2026-11-14 15:00

        let expect = |keep: &dyn Fn(&ActivityEvent) -> bool| -> Vec<String> {
            seeded
                .iter()
                .filter(|e| keep(e))
                .map(|e| e.id.to_string())
                .collect()
        };
        let day = |d: u8| {
            OffsetDateTime::parse(
                &format!("2026-11-{d:02}T00:00:00Z"),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        };
        let cases: Vec<(&str, Vec<String>)> = vec![
            (
                "action=login.failed",
                expect(&|e| e.action == "login.failed"),
            ),
            ("product=webmail", expect(&|e| e.product == "webmail")),
            (
                "from=2026-11-18&to=2026-11-19",
                expect(&|e| e.created_at >= day(18) && e.created_at < day(20)),
            ),
            (
                "from=2026-11-16T06:00:00Z&to=2026-11-19T00:00:00Z&action=logout&product=account",
                expect(&|e| {
                    e.created_at >= day(16) + Duration::hours(6)
                        && e.created_at < day(19)
                        && e.action == "logout"
                        && e.product == "account"
                }),
            ),
            ("to=2026-11-01", vec![]),
        ];
        for (query, wanted) in &cases {
            assert!(wanted.len() < 48, "a filter that narrows: {query}");
            let got = all_ids(&app, &client, query).await;
            assert_eq!(&got, wanted, "{}: {query}", db.backend);

            // The CSV of the same filters lists the same events in the same order.
            let csv = client
                .get(app.url(&format!("/api/v1/me/activity.csv?{query}")))
                .send()
                .await
                .unwrap();
            assert_eq!(csv.status(), StatusCode::OK);
            assert!(
                csv.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/csv")
            );
            let text = csv.text().await.unwrap();
            let mut lines = text.lines();
            assert_eq!(lines.next(), Some("time,action,product,ip,device,details"));
            let rows: Vec<_> = lines.collect();
            assert_eq!(rows.len(), wanted.len(), "{query}");
            for (row, id) in rows.iter().zip(wanted) {
                let event = seeded.iter().find(|e| e.id.to_string() == *id).unwrap();
                let time = event
                    .created_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap();
                assert!(
                    row.starts_with(&format!(
                        "\"{time}\",\"{}\",\"{}\",\"{}\"",
                        event.action, event.product, event.ip
                    )),
                    "{row}"
                );
            }
        }
    }
}

#[tokio::test]
async fn bad_filters_are_named_and_other_users_events_never_show() {
    let db = crate::support::sqlite_db();
    let app = TestApp::start(&db).await;
    app.create_user("ada@example.com", PASSWORD).await;
    let eve = app.create_user("eve@example.com", PASSWORD).await;
    seed(&app, eve.id, app.state.clock.now(), 5).await;
    let client = app.client();
    app.login(&client, "ada@example.com", PASSWORD).await;
    for (query, name) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("limit=0", "limit"),
        ("limit=500", "limit"),
        ("cursor=xyz", "cursor"),
    ] {
        let response = client
            .get(app.url(&format!("/api/v1/me/activity?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("`{name}`")),
            "{problem}"
        );
        let page = client
            .get(app.url(&format!("/account/activity?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        let html = page.text().await.unwrap();
        assert!(
            text_of(&html, "#activity-error").unwrap().contains(name),
            "{html}"
        );
    }
    let (_, mine) = get_json(&client, &app.url("/api/v1/me/activity")).await;
    let events = mine["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "only ada's own login");
    assert_eq!(events[0]["action"], "login.succeeded");
    assert_eq!(events[0]["device"]["category"], "unknown");
    let anonymous = app
        .client()
        .get(app.url("/api/v1/me/activity"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_activity_page_filters_pages_and_links_the_csv() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let ada = app.create_user("ada@example.com", PASSWORD).await;
        let client = app.client();
        app.login(&client, "ada@example.com", PASSWORD).await;
        seed(
            &app,
            ada.id,
            app.state.clock.now() - Duration::minutes(1),
            30,
        )
        .await;
        let html = client
            .get(app.url("/account/activity?action=login.failed&limit=4"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let doc = scraper::Html::parse_document(&html);
        let rows: Vec<_> = doc
            .select(&scraper::Selector::parse("#activity-table tbody tr").unwrap())
            .map(|r| r.value().attr("data-action").unwrap().to_string())
            .collect();
        assert_eq!(rows, vec!["login.failed"; 4], "{}", db.backend);
        assert!(html.contains("Failed sign-in"), "localized action label");
        let selected = doc
            .select(&scraper::Selector::parse("#action option[selected]").unwrap())
            .next()
            .unwrap();
        assert_eq!(selected.value().attr("value"), Some("login.failed"));
        let older = doc
            .select(&scraper::Selector::parse("#activity-older").unwrap())
            .next()
            .unwrap()
            .value()
            .attr("href")
            .unwrap()
            .to_string();
        assert!(
            older.contains("action=login.failed") && older.contains("cursor="),
            "{older}"
        );
        let csv = doc
            .select(&scraper::Selector::parse("#activity-csv").unwrap())
            .next()
            .unwrap()
            .value()
            .attr("href")
            .unwrap()
            .to_string();
        assert_eq!(csv, "/api/v1/me/activity.csv?action=login.failed&limit=4");
        // The second page continues where the first stopped: 10 failures in all.
        let mut pages = 1;
        let mut next = Some(older);
        let mut total = 4;
        while let Some(link) = next.take() {
            let html = client
                .get(app.url(&link))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let doc = scraper::Html::parse_document(&html);
            total += doc
                .select(&scraper::Selector::parse("#activity-table tbody tr").unwrap())
                .count();
            next = doc
                .select(&scraper::Selector::parse("#activity-older").unwrap())
                .next()
                .and_then(|a| a.value().attr("href").map(str::to_string));
            pages += 1;
        }
        assert_eq!((total, pages), (10, 3));
    }
}

#[tokio::test]
async fn activity_past_its_retention_is_pruned_in_batches() {
    for db in databases().await {
        let app = TestApp::start_with(&db, &[("activity.retention_days", "30")]).await;
        let ada = app.create_user("ada@example.com", PASSWORD).await;
        let now = app.state.clock.now();
        // 40 days of events, one every 3 hours from an hour ago: 320; after 20 days, those
        // of the last 10 days stay (80), wherever the seconds of the run fall.
        seed(&app, ada.id, now - Duration::hours(1), 320).await;
        app.state.clock.advance(Duration::days(20));
        let pruned = app
            .state
            .activity
            .prune(app.state.clock.now())
            .await
            .unwrap();
        let kept = db.count("activity_events").await;
        assert_eq!(kept, 80, "{}", db.backend);
        assert_eq!(pruned, 240);
    }
}

#[tokio::test]
async fn machine_tokens_are_kept_90_days_and_account_events_two_years_by_default() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let ada = app.create_user("ada@example.com", PASSWORD).await;
        let (client, secret) = app
            .register_client("Billing", "http://127.0.0.1:9/callback", |_| {})
            .await;
        for _ in 0..3 {
            let response = reqwest::Client::new()
                .post(app.url("/oauth2/token"))
                .basic_auth(&client.id, secret.as_deref())
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        seed(&app, ada.id, app.state.clock.now(), 4).await;
        let machine = "user_id IS NULL AND action = 'token.issued'";
        assert_eq!(db.count_where("activity_events", machine).await, 3);

        // 89 days on, the maintenance tick keeps everything; at 91 days the machine tokens go.
        app.state.clock.advance(Duration::days(89));
        gotthard::maintain(&app.state).await;
        assert_eq!(db.count("activity_events").await, 7, "{}", db.backend);
        app.state.clock.advance(Duration::days(2));
        gotthard::maintain(&app.state).await;
        assert_eq!(db.count_where("activity_events", machine).await, 0);
        assert_eq!(db.count("activity_events").await, 4, "{}", db.backend);

        // The account's events stay until two years have passed.
        app.state.clock.advance(Duration::days(730 - 91 - 1));
        gotthard::maintain(&app.state).await;
        assert_eq!(db.count("activity_events").await, 4, "{}", db.backend);
        app.state.clock.advance(Duration::days(2));
        gotthard::maintain(&app.state).await;
        assert_eq!(db.count("activity_events").await, 0, "{}", db.backend);
    }
}
