//! The operator's view of machine clients: tokens and failed client authentications filed
//! under the client's id, read back through the admin API, its CSV, the admin page and
//! `gotthard client activity`, on SQLite and PostgreSQL.

use reqwest::StatusCode;
use serde_json::Value;
use time::OffsetDateTime;

use crate::cli::{gotthard, stderr, stdout};
use crate::support::{PASSWORD, TestApp, databases, text_of};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const BOT: &str = "report-bot/1.0";

/// An app with an instance administrator (`root@`), a member (`ada@`) and two confidential
/// clients that share the name "Reports": their ids and secrets.
async fn with_twins(app: &TestApp) -> [(String, String); 2] {
    app.state
        .accounts
        .create_user(
            "root@example.com",
            "Root",
            PASSWORD,
            true,
            app.state.clock.now(),
        )
        .await
        .unwrap();
    app.create_user("ada@example.com", PASSWORD).await;
    let mut twins = Vec::new();
    for _ in 0..2 {
        let (client, secret) = app.register_client("Reports", REDIRECT, |_| {}).await;
        twins.push((client.id, secret.unwrap()));
    }
    twins.try_into().unwrap()
}

/// A client-credentials request with these credentials; the status.
async fn token(app: &TestApp, id: &str, secret: &str, agent: &str) -> StatusCode {
    reqwest::Client::new()
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .header("user-agent", agent)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
}

async fn get_json(client: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn today() -> String {
    OffsetDateTime::now_utc().date().to_string()
}

fn day(offset: i64) -> String {
    (OffsetDateTime::now_utc().date() + time::Duration::days(offset)).to_string()
}

#[tokio::test]
async fn machine_tokens_and_failed_authentications_are_read_by_client_id() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let [(a, a_secret), (b, b_secret)] = with_twins(&app).await;
        for _ in 0..3 {
            assert_eq!(token(&app, &a, &a_secret, BOT).await, StatusCode::OK);
        }
        assert_eq!(token(&app, &b, &b_secret, BOT).await, StatusCode::OK);
        // A wrong secret for a registered client is recorded under it ...
        let refused = token(&app, &a, "wrong-secret", "intruder/0.1").await;
        assert_eq!(refused, StatusCode::UNAUTHORIZED, "{}", db.backend);
        // ... a made-up client id is not (anyone could fill the log with them).
        let unknown = token(&app, "made-up-client", "whatever", "intruder/0.1").await;
        assert_eq!(unknown, StatusCode::UNAUTHORIZED);
        assert_eq!(
            db.count_where("activity_events", "action = 'client.auth_failed'")
                .await,
            1,
            "{}",
            db.backend
        );
        assert_eq!(
            db.count_where("activity_events", "user_id IS NULL AND client_id IS NULL")
                .await,
            0,
            "{}: every machine event names its client",
            db.backend
        );

        let (admin, _) = app.signed_in("root@example.com").await;
        let url = |id: &str, query: &str| app.url(&format!("/api/v1/clients/{id}/activity{query}"));
        let (status, body) = get_json(&admin, url(&a, "")).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.backend);
        assert_eq!(body["client_id"], a.as_str());
        assert_eq!(body["name"], "Reports");
        let summary = &body["summary"];
        assert_eq!(summary["tokens_issued"], 3, "{}: {summary}", db.backend);
        assert_eq!(summary["auth_failures"], 1, "{}", db.backend);
        assert!(summary["last_used"].is_string(), "{summary}");
        let per_hour: i64 = summary["per_hour"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["tokens_issued"].as_i64().unwrap())
            .sum();
        assert_eq!(per_hour, 3, "{}: {summary}", db.backend);
        assert_eq!(summary["addresses"][0]["ip"], "127.0.0.1");
        assert_eq!(summary["addresses"][0]["tokens_issued"], 3);
        assert_eq!(summary["addresses"][0]["auth_failures"], 1);
        let events = body["events"].as_array().unwrap();
        assert_eq!(
            events.len(),
            4,
            "{}: the twin's token is not here",
            db.backend
        );
        let failed = &events[0];
        assert_eq!(failed["action"], "client.auth_failed", "{}", db.backend);
        assert_eq!(failed["details"]["reason"], "wrong_secret");
        assert_eq!(failed["details"]["client_id"], a.as_str());
        assert_eq!(failed["ip"], "127.0.0.1");
        assert!(
            events[1..].iter().all(|e| e["action"] == "token.issued"
                && e["details"]["grant_type"] == "client_credentials")
        );
        let (_, twin) = get_json(&admin, url(&b, "")).await;
        assert_eq!(twin["summary"]["tokens_issued"], 1, "{}", db.backend);
        assert_eq!(twin["summary"]["auth_failures"], 0);
        assert_eq!(twin["events"].as_array().unwrap().len(), 1);

        // The filters of the user's activity: action, from/to (dates or RFC 3339).
        let (_, only) = get_json(&admin, url(&a, "?action=client.auth_failed")).await;
        assert_eq!(
            only["events"].as_array().unwrap().len(),
            1,
            "{}",
            db.backend
        );
        let (_, from_today) = get_json(&admin, url(&a, &format!("?from={}", today()))).await;
        assert_eq!(from_today["events"].as_array().unwrap().len(), 4);
        assert_eq!(from_today["summary"]["tokens_issued"], 3);
        let (_, tomorrow) = get_json(&admin, url(&a, &format!("?from={}", day(1)))).await;
        assert_eq!(tomorrow["events"].as_array().unwrap().len(), 0);
        assert_eq!(tomorrow["summary"]["tokens_issued"], 0, "{}", db.backend);
        assert!(
            tomorrow["summary"]["last_used"].is_string(),
            "the last use is not windowed"
        );
        let (_, before) = get_json(&admin, url(&a, &format!("?to={}", day(-1)))).await;
        assert_eq!(
            before["events"].as_array().unwrap().len(),
            0,
            "{}",
            db.backend
        );
        assert_eq!(before["summary"]["tokens_issued"], 0);

        // Cursor paging: every event once; the summary on the first page only.
        let mut seen = Vec::new();
        let mut query = "?limit=3".to_string();
        let mut pages = 0;
        loop {
            let (status, page) = get_json(&admin, url(&a, &query)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(page["summary"].is_object(), pages == 0, "{page}");
            pages += 1;
            seen.extend(
                page["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["id"].as_str().unwrap().to_string()),
            );
            match page["next_cursor"].as_str() {
                Some(next) => query = format!("?limit=3&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(pages, 2, "{}", db.backend);
        let all: Vec<_> = events
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(seen, all, "{}", db.backend);

        // Bad input: a precise 400 naming the parameter.
        for bad in ["?from=yesterday", "?cursor=garbage", "?limit=0"] {
            let (status, problem) = get_json(&admin, url(&a, bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
            let name = bad[1..].split('=').next().unwrap();
            assert!(
                problem["detail"].as_str().unwrap().contains(name),
                "{problem}"
            );
        }

        // The CSV: the columns of the user's export, every filtered event.
        let response = admin.get(url(&a, ".csv")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        assert!(
            response.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("gotthard-client-activity.csv")
        );
        let csv = response.text().await.unwrap();
        let lines: Vec<_> = csv.lines().collect();
        assert_eq!(lines[0], "time,action,product,ip,device,details");
        assert_eq!(lines.len(), 5, "{}: {csv}", db.backend);
        assert!(lines[1].contains("\"client.auth_failed\",\"Reports\",\"127.0.0.1\""));
        assert!(lines[1].contains("wrong_secret"), "{csv}");
        let failures = admin
            .get(url(&a, ".csv?action=client.auth_failed"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(failures.lines().count(), 2, "{failures}");

        // Instance administrators only; unknown clients 404.
        let (member, _) = app.signed_in("ada@example.com").await;
        for path in [url(&a, ""), url(&a, ".csv")] {
            let status = member.get(path.clone()).send().await.unwrap().status();
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
            let status = reqwest::get(path.clone()).await.unwrap().status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        }
        let long = "x".repeat(300);
        for id in ["made-up-client", long.as_str()] {
            for suffix in ["", ".csv"] {
                let (status, problem) = get_json(&admin, url(id, suffix)).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{id}{suffix}: {problem}");
            }
        }

        // A deleted client's history stays readable (what an incident needs).
        let csrf = app.api_csrf(&admin).await;
        let deleted = admin
            .delete(app.url(&format!("/api/v1/clients/{a}")))
            .header("x-csrf-token", csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        let (status, after) = get_json(&admin, url(&a, "")).await;
        assert_eq!(status, StatusCode::OK, "{}", db.backend);
        assert!(after.get("name").is_none(), "{after}");
        assert_eq!(after["events"].as_array().unwrap().len(), 4);
    }
}

#[tokio::test]
async fn failed_client_assertions_are_recorded_with_their_reason() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
            "x": b64.encode(&point[1..33]), "y": b64.encode(&point[33..]),
        }]});
        let (client, _) = app
            .register_client("Backend", REDIRECT, |spec| {
                spec.auth_method = gotthard::oidc::ClientAuthMethod::PrivateKeyJwt;
                spec.jwks = Some(jwks.to_string());
            })
            .await;
        let now = app.state.clock.now().unix_timestamp();
        let sign = |exp: i64, jti: &str| {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            header.kid = Some("k1".into());
            jsonwebtoken::encode(
                &header,
                &serde_json::json!({"iss": client.id, "sub": client.id,
                    "aud": app.url("/oauth2/token"), "exp": exp, "iat": now, "jti": jti}),
                &jsonwebtoken::EncodingKey::from_ec_der(der.as_ref()),
            )
            .unwrap()
        };
        let send = |assertion: String| {
            let url = app.url("/oauth2/token");
            async move {
                reqwest::Client::new()
                    .post(url)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        (
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        ),
                        ("client_assertion", assertion.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        let good = sign(now + 60, "a-1");
        assert_eq!(send(good.clone()).await, StatusCode::OK, "{}", db.backend);
        assert_eq!(send(good).await, StatusCode::UNAUTHORIZED);
        assert_eq!(send(sign(now - 600, "a-2")).await, StatusCode::UNAUTHORIZED);
        let mut forged = sign(now + 60, "a-3");
        forged.truncate(forged.len() - 4);
        forged.push_str("AAAA");
        assert_eq!(send(forged).await, StatusCode::UNAUTHORIZED);

        let (events, _) = app
            .state
            .activity
            .page(
                gotthard::audit::EventOwner::Client(&client.id),
                &gotthard::audit::ActivityFilter {
                    action: Some("client.auth_failed".into()),
                    ..Default::default()
                },
                None,
                10,
            )
            .await
            .map(|p| (p.events, p.next))
            .unwrap();
        let reasons: Vec<_> = events
            .iter()
            .map(|e| serde_json::from_str::<Value>(&e.details).unwrap()["reason"].clone())
            .collect();
        assert_eq!(
            reasons,
            ["bad_assertion", "expired_assertion", "replayed_assertion"],
            "{}",
            db.backend
        );
        assert!(events.iter().all(|e| e.user_id.is_none()));
    }
}

#[tokio::test]
async fn administrators_read_a_clients_activity_page_in_their_language() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let [(a, a_secret), _] = with_twins(&app).await;
        for _ in 0..3 {
            token(&app, &a, &a_secret, BOT).await;
        }
        token(&app, &a, "wrong-secret", "intruder/0.1").await;
        let (admin, _) = app.signed_in("root@example.com").await;
        let path = format!("/admin/clients/{a}/activity");
        let page = admin
            .get(app.url(&format!("{path}?limit=2")))
            .header("accept-language", "fr")
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{}", db.backend);
        let html = page.text().await.unwrap();
        assert_eq!(
            text_of(&html, "h1").unwrap(),
            "Activité du client : Reports"
        );
        assert_eq!(text_of(&html, "#summary-tokens").unwrap(), "3");
        assert_eq!(text_of(&html, "#summary-failures").unwrap(), "1");
        assert!(
            text_of(&html, "#summary-addresses tbody")
                .unwrap()
                .contains("127.0.0.1")
        );
        let doc = scraper::Html::parse_document(&html);
        let rows = scraper::Selector::parse("#activity-table tbody tr").unwrap();
        let actions: Vec<_> = doc
            .select(&rows)
            .map(|r| r.value().attr("data-action").unwrap().to_string())
            .collect();
        assert_eq!(
            actions,
            ["client.auth_failed", "token.issued"],
            "{}",
            db.backend
        );
        assert!(html.contains("Échec de l’authentification du client"));
        assert!(html.contains("reason: wrong_secret"), "the details shown");
        // Every field labelled; the tables have headers; the filters are a GET form.
        let labelled = scraper::Selector::parse("form.filters input, form.filters select").unwrap();
        for field in doc.select(&labelled) {
            let id = field.value().attr("id").unwrap();
            assert!(html.contains(&format!("<label for=\"{id}\"")), "{id}");
        }
        assert!(html.contains("<form method=\"get\""));
        let older = scraper::Selector::parse("#activity-older").unwrap();
        let older = doc
            .select(&older)
            .next()
            .unwrap()
            .value()
            .attr("href")
            .unwrap();
        let next = admin.get(app.url(older)).send().await.unwrap();
        assert_eq!(next.status(), StatusCode::OK);
        let html = next.text().await.unwrap();
        assert_eq!(
            html.matches("data-action=\"token.issued\"").count(),
            2,
            "{}",
            db.backend
        );
        let csv = scraper::Selector::parse("#activity-csv").unwrap();
        let doc = scraper::Html::parse_document(&html);
        let csv = doc
            .select(&csv)
            .next()
            .unwrap()
            .value()
            .attr("href")
            .unwrap();
        assert!(csv.starts_with(&format!("/api/v1/clients/{a}/activity.csv")));
        let response = admin.get(app.url(csv)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        // A filter that cannot be understood: 400, said on the page.
        let bad = admin
            .get(app.url(&format!("{path}?from=soon")))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let html = bad.text().await.unwrap();
        assert!(text_of(&html, "#activity-error").unwrap().contains("from"));

        let (member, _) = app.signed_in("ada@example.com").await;
        let status = member.get(app.url(&path)).send().await.unwrap().status();
        assert_eq!(status, StatusCode::FORBIDDEN, "{}", db.backend);
        let anonymous = app.client().get(app.url(&path)).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
        let unknown = admin
            .get(app.url("/admin/clients/made-up/activity"))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn operators_read_a_clients_activity_on_the_command_line() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let [(a, a_secret), (b, b_secret)] = with_twins(&app).await;
        for _ in 0..2 {
            token(&app, &a, &a_secret, BOT).await;
        }
        token(&app, &b, &b_secret, BOT).await;
        token(&app, &a, "wrong-secret", "intruder/0.1").await;

        let shown = gotthard(&db, &["client", "activity", "--id", &a], None);
        assert!(shown.status.success(), "{}: {}", db.backend, stderr(&shown));
        let out = stdout(&shown);
        assert!(out.contains(&format!("client\t{a}\tReports")), "{out}");
        assert!(out.contains("tokens issued\t2"), "{}: {out}", db.backend);
        assert!(out.contains("auth failures\t1"), "{out}");
        assert!(out.contains("\n127.0.0.1\t2\t1\t"), "{out}");
        assert_eq!(out.matches("\ttoken.issued\t").count(), 2, "{out}");
        assert_eq!(out.matches("\tclient.auth_failed\t").count(), 1, "{out}");
        assert!(!out.contains("last used\tnever"));

        let csv = gotthard(
            &db,
            &[
                "client",
                "activity",
                "--id",
                &a,
                "--from",
                &today(),
                "--csv",
            ],
            None,
        );
        assert!(csv.status.success(), "{}", stderr(&csv));
        let csv = stdout(&csv);
        assert!(
            csv.starts_with("time,action,product,ip,device,details\r\n"),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 4, "{}: {csv}", db.backend);
        let tomorrow = gotthard(
            &db,
            &["client", "activity", "--id", &a, "--from", &day(1)],
            None,
        );
        let tomorrow = stdout(&tomorrow);
        assert!(tomorrow.contains("tokens issued\t0"), "{tomorrow}");
        assert_eq!(tomorrow.matches("\ttoken.issued\t").count(), 0);

        let bad = gotthard(
            &db,
            &["client", "activity", "--id", &a, "--to", "later"],
            None,
        );
        assert!(!bad.status.success());
        assert!(stderr(&bad).contains("--to"), "{}", stderr(&bad));
        let unknown = gotthard(&db, &["client", "activity", "--id", "made-up"], None);
        assert!(!unknown.status.success());
        assert!(
            stderr(&unknown).contains("no client made-up"),
            "{}",
            stderr(&unknown)
        );
    }
}
