//! With Redis, instances share the sign-in rate limit; without it, they fall back.

use reqwest::StatusCode;

use crate::support::{PASSWORD, TestApp, require_all, sqlite_db};

fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                !require_all(),
                "GOTTHARD_TEST_REQUIRE_ALL=1 but TEST_REDIS_URL is not set"
            );
            eprintln!("note: TEST_REDIS_URL unset, Redis tests skipped");
            None
        }
    }
}

/// A wrong-password post to `app`; returns its status.
async fn attempt(app: &TestApp, client: &reqwest::Client, csrf: &str) -> u16 {
    client
        .post(app.url("/login"))
        .form(&[
            ("email", "ada@example.com"),
            ("password", "wrong-password!"),
            ("csrf", csrf),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until the app's background connection to Redis is up (it never blocks start-up).
async fn until_connected(app: &TestApp) {
    for _ in 0..50 {
        let ip = "192.0.2.250".parse().unwrap();
        // A probe key of its own: an answer from Redis, not the local fallback, is the sign.
        if app.state.rate_limits.uses_shared_counters() {
            let _ = app.state.rate_limits.check_sign_in(ip).await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no connection to Redis");
}

#[tokio::test]
async fn two_instances_share_the_sign_in_limit_through_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("gotthard-test-{}:", uuid::Uuid::now_v7().simple());
    let settings = [
        ("redis.url", url.as_str()),
        ("redis.prefix", prefix.as_str()),
        ("rate_limit.sign_in_per_minute", "3"),
        ("rate_limit.sign_in_burst", "3"),
    ];
    let (db_a, db_b) = (sqlite_db(), sqlite_db());
    let a = TestApp::start_with(&db_a, &settings).await;
    let b = TestApp::start_with(&db_b, &settings).await;
    for app in [&a, &b] {
        app.create_user("ada@example.com", PASSWORD).await;
        until_connected(app).await;
    }
    let (client_a, client_b) = (a.client(), b.client());
    let csrf_a = a.csrf_from(&client_a, "/login").await;
    let csrf_b = b.csrf_from(&client_b, "/login").await;
    let statuses = [
        attempt(&a, &client_a, &csrf_a).await,
        attempt(&a, &client_a, &csrf_a).await,
        attempt(&b, &client_b, &csrf_b).await,
        attempt(&b, &client_b, &csrf_b).await,
        attempt(&a, &client_a, &csrf_a).await,
    ];
    assert_eq!(
        statuses,
        [401, 401, 401, 429, 429],
        "one budget for both instances"
    );
}

#[tokio::test]
async fn without_redis_each_instance_counts_for_itself_and_nothing_fails() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{closed}");
    let db = sqlite_db();
    let app = TestApp::start_with(
        &db,
        &[
            ("redis.url", url.as_str()),
            ("rate_limit.sign_in_per_minute", "3"),
            ("rate_limit.sign_in_burst", "3"),
        ],
    )
    .await;
    app.create_user("ada@example.com", PASSWORD).await;
    let client = app.client();
    let csrf = app.csrf_from(&client, "/login").await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(attempt(&app, &client, &csrf).await);
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    assert_eq!(
        app.login(&reqwest::Client::new(), "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the local limit still holds for this address"
    );
    assert_eq!(
        app.client()
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "Redis is optional: ready without it"
    );
}

/// A client-credentials token and the credentials of the client it was issued to.
pub(crate) struct MachineToken {
    pub client_id: String,
    pub secret: String,
    pub token: String,
}

/// A client-credentials token of a new client of `app`.
pub(crate) async fn machine_token(app: &TestApp) -> MachineToken {
    let (client, secret) = app
        .register_client("Billing", "http://127.0.0.1:9/callback", |_| {})
        .await;
    let secret = secret.unwrap();
    let body: serde_json::Value = reqwest::Client::new()
        .post(app.url("/oauth2/token"))
        .basic_auth(&client.id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();
    MachineToken {
        client_id: client.id,
        secret,
        token,
    }
}

/// `POST path` with the client's Basic credentials and `token=…`: the status, and whether
/// the answer says `"active": true` (introspection).
pub(crate) async fn with_token(app: &TestApp, path: &str, machine: &MachineToken) -> (u16, bool) {
    let response = reqwest::Client::new()
        .post(app.url(path))
        .basic_auth(&machine.client_id, Some(&machine.secret))
        .form(&[("token", &machine.token)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let active =
        serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v["active"] == true);
    (status, active)
}

#[tokio::test]
async fn a_revocation_on_one_instance_reaches_what_another_remembers() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("gotthard-test-{}:", uuid::Uuid::now_v7().simple());
    // One issuer for both, as behind one load balancer.
    let settings = [
        ("redis.url", url.as_str()),
        ("redis.prefix", prefix.as_str()),
        ("issuer", "http://gotthard.test"),
    ];
    for db in crate::support::databases().await {
        let a = TestApp::start_with(&db, &settings).await;
        let b = TestApp::start_with(&db, &settings).await;
        for app in [&a, &b] {
            for _ in 0..50 {
                if app.state.provider.remembers_token_checks() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert!(
                app.state.provider.remembers_token_checks(),
                "{}: feed up",
                db.backend
            );
        }
        let token = machine_token(&a).await;
        // B checks the token twice: the second answer comes from what B remembers.
        for _ in 0..2 {
            assert_eq!(
                with_token(&b, "/oauth2/introspect", &token).await,
                (200, true)
            );
        }
        assert_eq!(with_token(&a, "/oauth2/revoke", &token).await.0, 200);
        // B remembers for up to 5 s without news; the announcement must come well before.
        let started = std::time::Instant::now();
        while with_token(&b, "/oauth2/introspect", &token).await.1 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "{}: B still says active 1 s after A revoked",
                db.backend
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn while_redis_is_unreachable_no_instance_remembers_token_checks() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{closed}");
    let db = sqlite_db();
    let settings = [
        ("redis.url", url.as_str()),
        ("issuer", "http://gotthard.test"),
    ];
    let a = TestApp::start_with(&db, &settings).await;
    let b = TestApp::start_with(&db, &settings).await;
    assert!(!b.state.provider.remembers_token_checks());
    let token = machine_token(&a).await;
    for _ in 0..2 {
        assert_eq!(
            with_token(&b, "/oauth2/introspect", &token).await,
            (200, true)
        );
    }
    assert_eq!(with_token(&a, "/oauth2/revoke", &token).await.0, 200);
    assert_eq!(
        with_token(&b, "/oauth2/introspect", &token).await,
        (200, false),
        "B read the revocation at once"
    );
}

/// A TCP relay to Redis that the test can cut (every connection dropped, new ones refused)
/// and restore: a Redis outage seen by one instance only.
struct Relay {
    url: String,
    up: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn to(redis_url: &str) -> Relay {
        let target = redis_url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*watch.borrow() {
                    continue; // dropped: refused while cut
                }
                let mut cut = watch.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|up| !up) => {}
                    }
                });
            }
        });
        Relay { url, up }
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

async fn metrics(app: &TestApp) -> String {
    let response = reqwest::get(app.url("/metrics")).await.unwrap();
    response.text().await.unwrap()
}

/// Polls `check` every 50 ms for up to `secs`; whether it held.
pub(crate) async fn within(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if check() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check()
}

#[tokio::test]
async fn an_instance_cut_off_from_redis_stops_remembering_and_resumes_when_it_is_back() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("gotthard-test-{}:", uuid::Uuid::now_v7().simple());
    let relay = Relay::to(&url).await;
    let db = sqlite_db();
    let issuer = ("issuer", "http://gotthard.test");
    // A reaches Redis through the relay, B directly.
    let a_settings = [
        ("redis.url", relay.url.as_str()),
        ("redis.prefix", prefix.as_str()),
        issuer,
    ];
    let b_settings = [
        ("redis.url", url.as_str()),
        ("redis.prefix", prefix.as_str()),
        issuer,
    ];
    let a = TestApp::start_with(&db, &a_settings).await;
    let b = TestApp::start_with(&db, &b_settings).await;
    assert!(
        within(5, || a.state.provider.remembers_token_checks()).await,
        "A's feed up"
    );
    assert!(
        within(5, || b.state.provider.remembers_token_checks()).await,
        "B's feed up"
    );
    let token = machine_token(&a).await;
    for _ in 0..2 {
        assert_eq!(
            with_token(&a, "/oauth2/introspect", &token).await,
            (200, true)
        );
    }

    relay.set(false);
    assert!(
        within(5, || !a.state.provider.remembers_token_checks()).await,
        "A notices it no longer hears the feed"
    );
    assert!(
        metrics(&a)
            .await
            .contains("gotthard_token_checks_remembered 0"),
        "operators see it in /metrics"
    );
    // B's announcement cannot reach A now; A must not answer from memory.
    assert_eq!(with_token(&b, "/oauth2/revoke", &token).await.0, 200);
    assert_eq!(
        with_token(&a, "/oauth2/introspect", &token).await,
        (200, false),
        "A reads the revocation from the database while deaf"
    );

    relay.set(true);
    assert!(
        within(15, || a.state.provider.remembers_token_checks()).await,
        "A listens again once Redis is back"
    );
    assert!(
        metrics(&a)
            .await
            .contains("gotthard_token_checks_remembered 1")
    );
    let fresh = machine_token(&a).await;
    assert_eq!(
        with_token(&a, "/oauth2/introspect", &fresh).await,
        (200, true)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_deleted_from_the_command_line_is_refused_at_once_by_running_instances() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("gotthard-test-{}:", uuid::Uuid::now_v7().simple());
    let db = sqlite_db();
    let settings = [
        ("redis.url", url.as_str()),
        ("redis.prefix", prefix.as_str()),
    ];
    let app = TestApp::start_with(&db, &settings).await;
    assert!(within(5, || app.state.provider.remembers_token_checks()).await);
    let token = machine_token(&app).await;
    for _ in 0..2 {
        assert_eq!(
            with_token(&app, "/oauth2/introspect", &token).await,
            (200, true)
        );
    }
    // The command runs in a process of its own and exits at once.
    let env = [
        ("GOTTHARD_REDIS__URL", url.as_str()),
        ("GOTTHARD_REDIS__PREFIX", prefix.as_str()),
    ];
    let args = ["client", "delete", "--id", token.client_id.as_str()];
    let deleted = tokio::task::block_in_place(|| crate::cli::gotthard_with(&db, &args, None, &env));
    assert!(deleted.status.success(), "{}", crate::cli::stderr(&deleted));
    // The app remembered the client for up to 5 s; the command's announcement voids that.
    let started = std::time::Instant::now();
    while with_token(&app, "/oauth2/introspect", &token).await.0 != 401 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the deleted client still authenticates 1 s after the command"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shared_counters_also_count_ipv6_clients_per_64() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("gotthard-test-{}:", uuid::Uuid::now_v7().simple());
    let db = sqlite_db();
    let app = TestApp::start_with(
        &db,
        &[
            ("redis.url", url.as_str()),
            ("redis.prefix", prefix.as_str()),
            ("rate_limit.sign_in_per_minute", "3"),
            ("rate_limit.sign_in_burst", "3"),
            ("http.trusted_proxies", "[\"127.0.0.1\"]"),
        ],
    )
    .await;
    app.create_user("ada@example.com", PASSWORD).await;
    until_connected(&app).await;
    let client = app.client();
    let csrf = app.csrf_from(&client, "/login").await;
    let mut statuses = Vec::new();
    for from in [
        "2001:db8:9::1",
        "2001:db8:9::2",
        "2001:db8:9:0:ffff::3",
        "2001:db8:9::4",
        "2001:db8:a::1",
    ] {
        let status = client
            .post(app.url("/login"))
            .header("x-forwarded-for", from)
            .form(&[
                ("email", "ada@example.com"),
                ("password", "wrong-password!"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap()
            .status();
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 401], "one budget per /64");
}
