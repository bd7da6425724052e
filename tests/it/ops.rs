//! Health, readiness, metrics, request ids and security headers.

use reqwest::StatusCode;

use crate::support::{PASSWORD, TestApp, databases, text_of};

#[tokio::test]
async fn health_metrics_and_headers() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let client = app.client();

        let health = client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        let ready = client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK, "{}", db.backend);

        // Every answer has a request id; a caller's id is kept.
        let traced = client
            .get(app.url("/login"))
            .header("x-request-id", "trace-me-42")
            .send()
            .await
            .unwrap();
        assert_eq!(traced.headers()["x-request-id"], "trace-me-42");
        let headers = traced.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "http issuer"
        );
        let html = traced.text().await.unwrap();
        assert!(!html.contains("<script"), "no script on the login page");

        let missing = client.get(app.url("/no/such/page")).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(missing.headers()["x-request-id"].to_str().unwrap().len() >= 32);
        assert!(
            missing.headers()["content-security-policy"]
                .to_str()
                .is_ok()
        );
        assert_eq!(
            text_of(&missing.text().await.unwrap(), "#message").unwrap(),
            "This page does not exist."
        );
        let wrong_method = client.delete(app.url("/login")).send().await.unwrap();
        assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);

        app.login(&client, "ada@example.com", "wrong-password!")
            .await;
        app.login(&client, "ada@example.com", PASSWORD).await;
        let metrics = client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), StatusCode::OK);
        let text = metrics.text().await.unwrap();
        assert!(
            text.contains("gotthard_logins_total{outcome=\"wrong_credentials\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gotthard_logins_total{outcome=\"success\"} 1"),
            "{text}"
        );
        assert!(text.contains("gotthard_argon2_queue_depth 0"), "{text}");
        assert!(
            text.contains(
                "gotthard_http_requests_total{route=\"/login\",method=\"POST\",status=\"401\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("route=\"unmatched\""), "{text}");
    }
}

#[tokio::test]
async fn readyz_answers_503_when_the_database_is_gone() {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        assert!(!crate::support::require_all(), "TEST_DATABASE_URL required");
        return;
    };
    let db = crate::support::postgres_db(&admin_url).await;
    let app = TestApp::start(&db).await;
    let client = app.client();
    assert_eq!(
        client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    let ready = client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "alive, only not ready"
    );
    // A page that needs the database fails cleanly: a page with a request id, no internals.
    let page = client
        .get(app.url("/account"))
        .header("cookie", format!("gotthard_session={}", "A".repeat(43)))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let html = page.text().await.unwrap();
    assert!(text_of(&html, "#request-id").is_some(), "{html}");
    assert!(!html.to_lowercase().contains("database"), "{html}");
}

/// The values of `label` in the series of `metric` (`name{…label="value"…} n` lines).
fn label_values(text: &str, metric: &str, label: &str) -> std::collections::BTreeSet<String> {
    let needle = format!("{label}=\"");
    text.lines()
        .filter_map(|line| line.strip_prefix(metric)?.strip_prefix('{'))
        .filter_map(|labels| {
            let start = labels.find(&needle)? + needle.len();
            let end = labels[start..].find('"')? + start;
            Some(labels[start..end].to_string())
        })
        .collect()
}

#[tokio::test]
async fn made_up_methods_and_paths_do_not_grow_the_metrics() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let client = app.client();
        let mut nonces = Vec::new();
        for i in 0..60 {
            let nonce = uuid::Uuid::now_v7().simple().to_string();
            nonces.push(nonce.clone());
            let method =
                reqwest::Method::from_bytes(format!("M{}", &nonce[20..]).as_bytes()).unwrap();
            let path = match i % 3 {
                0 => format!("/probe/{nonce}"),
                1 => "/login".to_string(),
                _ => format!("/api/v1/orgs/{nonce}/members"),
            };
            let answer = client.request(method, app.url(&path)).send().await.unwrap();
            assert_ne!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
            // Known methods on paths nobody routes.
            client
                .get(app.url(&format!("/nowhere/{nonce}")))
                .send()
                .await
                .unwrap();
        }
        let text = client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let methods = label_values(&text, "gotthard_http_requests_total", "method");
        let known = [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
        ];
        assert!(
            methods.iter().all(|m| known.contains(&m.as_str())),
            "{}: {methods:?}",
            db.backend
        );
        assert!(methods.contains("other"), "{methods:?}");
        for metric in [
            "gotthard_http_requests_total",
            "gotthard_http_request_duration_seconds_count",
        ] {
            let routes = label_values(&text, metric, "route");
            let expected = ["unmatched", "/login", "/api/v1/orgs/{org}/members"];
            assert!(
                routes.iter().all(|r| expected.contains(&r.as_str())),
                "{metric}: only templates and `unmatched`: {routes:?}"
            );
        }
        for nonce in &nonces {
            assert!(!text.contains(&nonce[20..]), "{nonce} in the metrics");
        }
        let series = text
            .lines()
            .filter(|l| l.starts_with("gotthard_http_requests_total{"))
            .count();
        assert!(series <= 12, "{series} series:\n{text}");
    }
}
