//! The test harness: databases per test on each backend, and a `TestApp` that runs the real
//! server on an ephemeral loopback port.

use std::sync::Arc;

use gotthard::AppState;
use gotthard::config::Config;
use gotthard::store::Store;
use reqwest::redirect::Policy;
use tokio::sync::oneshot;

/// Whether a missing backend or tool must fail the run instead of being skipped.
pub fn require_all() -> bool {
    std::env::var("GOTTHARD_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// A fresh, empty database on one backend; SQLite files live in the test's temp folder.
pub struct TestDb {
    pub backend: &'static str,
    pub url: String,
    pub dir: tempfile::TempDir,
}

/// One fresh database per available backend: SQLite always, PostgreSQL when
/// `TEST_DATABASE_URL` is set (or required by `GOTTHARD_TEST_REQUIRE_ALL=1`).
pub async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![sqlite_db()];
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => dbs.push(postgres_db(&admin_url).await),
        _ if require_all() => {
            panic!("GOTTHARD_TEST_REQUIRE_ALL=1 but TEST_DATABASE_URL is not set")
        }
        _ => eprintln!("note: TEST_DATABASE_URL unset, PostgreSQL tests skipped"),
    }
    dbs
}

pub fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("gotthard.db").display());
    TestDb {
        backend: "sqlite",
        url,
        dir,
    }
}

/// Creates `gotthard_test_<uuid>` on the server of `admin_url` and returns its URL.
pub async fn postgres_db(admin_url: &str) -> TestDb {
    use sqlx::Connection;
    let name = format!("gotthard_test_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at TEST_DATABASE_URL: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    TestDb {
        backend: "postgres",
        url: url.to_string(),
        dir: tempfile::tempdir().unwrap(),
    }
}

impl TestDb {
    /// Counts rows of a table directly in SQL, to prove that nothing was written.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        if self.backend == "sqlite" {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let (n,): (i64,) = sqlx::query_as(&sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            let (n,): (i64,) = sqlx::query_as(&sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
    }

    /// Counts the rows of a table that meet an SQL condition, read directly.
    pub async fn count_where(&self, table: &str, condition: &str) -> i64 {
        self.count(&format!("{table} WHERE {condition}")).await
    }

    /// The stored password hash of a user, read directly.
    pub async fn password_hash(&self, email: &str) -> String {
        let sql = "SELECT password_hash FROM users WHERE email = $1";
        let (hash,): (String,) = if self.backend == "sqlite" {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            sqlx::query_as(sql)
                .bind(email)
                .fetch_one(&pool)
                .await
                .unwrap()
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            sqlx::query_as(sql)
                .bind(email)
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        hash
    }

    /// The stored session digests, read directly.
    pub async fn session_digests(&self) -> Vec<Vec<u8>> {
        let sql = "SELECT token_hash FROM sessions";
        let rows: Vec<(Vec<u8>,)> = if self.backend == "sqlite" {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
        };
        rows.into_iter().map(|(d,)| d).collect()
    }
}

/// Test configuration for `db`: its URL, folders under its temp dir, and extra overrides.
pub fn test_config(db: &TestDb, issuer: &str, extra: &[(&str, &str)]) -> Config {
    let data = db.dir.path().join("data");
    let keys = db.dir.path().join("keys");
    let data = data.to_str().unwrap();
    let keys = keys.to_str().unwrap();
    let mut pairs = vec![
        ("issuer", issuer),
        ("data_dir", data),
        ("keys.dir", keys),
        ("database.url", db.url.as_str()),
        ("database.max_connections", "5"),
        ("password.hash_threads", "2"),
        // Tests deliver mail themselves (Mailer::deliver_due), never racing the sender task.
        ("smtp.poll_interval_secs", "3600"),
        // Tests sign in far more often than people; the limit has a test of its own.
        ("rate_limit.sign_in_per_minute", "100000"),
        ("rate_limit.sign_in_burst", "100000"),
        ("rate_limit.reauth_per_minute", "100000"),
        ("rate_limit.reauth_burst", "100000"),
        // The Entra ID double listens on loopback, which SSO authorities may reach only
        // when an operator allows the host (the guard has a test of its own).
        ("sso.authority_allow_hosts", "[\"127.0.0.1\"]"),
    ];
    pairs.extend_from_slice(extra);
    Config::from_overrides(&pairs).unwrap()
}

/// The real server on `127.0.0.1:<ephemeral>`, stopped when dropped.
pub struct TestApp {
    pub base: String,
    pub state: TestState,
    shutdown: Option<oneshot::Sender<()>>,
}

/// The server's services, and beside them its store, which tests use to set up and inspect
/// rows directly (the crate's own handlers reach it only through the services).
pub struct TestState {
    pub store: Arc<dyn Store>,
    services: AppState,
}

impl std::ops::Deref for TestState {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.services
    }
}

impl TestApp {
    pub async fn start(db: &TestDb) -> TestApp {
        Self::start_with(db, &[]).await
    }

    pub async fn start_with(db: &TestDb, extra: &[(&str, &str)]) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let issuer = extra
            .iter()
            .find(|(k, _)| *k == "issuer")
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| base.clone());
        let config = test_config(db, &issuer, extra);
        let (state, store) = AppState::open_with_store(config, 2).await.unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            gotthard::serve(served, listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestApp {
            base,
            state: TestState {
                store,
                services: state,
            },
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A browser-like client: keeps cookies, does not follow redirects.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .unwrap()
    }

    pub async fn create_user(&self, email: &str, password: &str) -> gotthard::accounts::User {
        self.state
            .accounts
            .create_user(email, "Test User", password, false, self.state.clock.now())
            .await
            .unwrap()
    }

    /// Registers a client with the provider: confidential (`client_secret_basic`), first
    /// party, RS256 ID tokens, redirecting to `redirect`, as `adjust` leaves the spec. The
    /// client and its secret (public clients have none).
    pub async fn register_client(
        &self,
        name: &str,
        redirect: &str,
        adjust: impl FnOnce(&mut gotthard::oidc::ClientSpec),
    ) -> (gotthard::oidc::Client, Option<String>) {
        let mut spec = gotthard::oidc::ClientSpec {
            name: name.to_string(),
            auth_method: gotthard::oidc::ClientAuthMethod::ClientSecretBasic,
            jwks: None,
            redirect_uris: vec![redirect.to_string()],
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
            first_party: true,
            require_pkce: false,
            id_token_alg: gotthard::tokens::SigningAlg::Rs256,
            admin_scope: false,
            introspect_for: vec![],
        };
        adjust(&mut spec);
        self.state
            .provider
            .create_client(spec, self.state.clock.now())
            .await
            .unwrap()
    }

    /// "Sign in with SSO" for `email` from a fresh browser: the answer to the form's post
    /// (404 when no organization's SSO takes the address).
    pub async fn sso_begin(&self, email: &str) -> reqwest::Response {
        let client = self.client();
        let csrf = self.csrf_from(&client, "/login/sso").await;
        client
            .post(self.url("/login/sso"))
            .form(&[("email", email), ("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap()
    }

    /// An operator sets `org`'s SSO connection (as `gotthard org sso set` does).
    pub async fn set_sso(&self, org: uuid::Uuid, settings: gotthard::orgs::SsoSettings) {
        let cli = gotthard::audit::ClientInfo::new("test", "");
        let now = self.state.clock.now();
        let operator = gotthard::orgs::SsoEditor::Operator;
        let set = self.state.sso.set(org, settings, operator, &cli, now);
        set.await.unwrap();
    }

    /// An operator vouches for `domain` of `org` (as `gotthard org domain verify
    /// --without-dns` does), so that it routes to the organization's SSO.
    pub async fn verify_domain(&self, org: uuid::Uuid, domain: &str) {
        let cli = gotthard::audit::ClientInfo::new("test", "");
        let now = self.state.clock.now();
        self.state
            .domains
            .vouch(org, domain, &cli, now)
            .await
            .unwrap();
    }

    /// The CSRF token of the client's session for API calls (`X-CSRF-Token`).
    pub async fn api_csrf(&self, client: &reqwest::Client) -> String {
        let body: serde_json::Value = client
            .get(self.url("/api/v1/csrf"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["csrf_token"].as_str().unwrap().to_string()
    }

    /// A new browser signed in as `email` (with [`PASSWORD`]) and its API CSRF token.
    pub async fn signed_in(&self, email: &str) -> (reqwest::Client, String) {
        let client = self.client();
        let response = self.login(&client, email, PASSWORD).await;
        assert_eq!(
            response.status(),
            reqwest::StatusCode::SEE_OTHER,
            "sign-in of {email}"
        );
        let csrf = self.api_csrf(&client).await;
        (client, csrf)
    }

    /// GETs a page and returns its HTML.
    pub async fn page(&self, client: &reqwest::Client, path: &str) -> String {
        client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// GETs a page and returns the value of its hidden `csrf` field.
    pub async fn csrf_from(&self, client: &reqwest::Client, path: &str) -> String {
        hidden_field(&self.page(client, path).await, "csrf")
    }

    /// Signs in through the login form; returns the response to the POST.
    pub async fn login(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        let csrf = self.csrf_from(client, "/login").await;
        client
            .post(self.url("/login"))
            .form(&[("email", email), ("password", password), ("csrf", &csrf)])
            .send()
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn hidden_field(html: &str, name: &str) -> String {
    let doc = scraper::Html::parse_document(html);
    let selector = scraper::Selector::parse(&format!("input[name=\"{name}\"]")).unwrap();
    doc.select(&selector)
        .next()
        .and_then(|e| e.value().attr("value"))
        .unwrap_or_else(|| panic!("no field {name} in page:\n{html}"))
        .to_string()
}

/// The text of the first element matching `css`, if any.
pub fn text_of(html: &str, css: &str) -> Option<String> {
    let doc = scraper::Html::parse_document(html);
    let selector = scraper::Selector::parse(css).unwrap();
    doc.select(&selector)
        .next()
        .map(|e| e.text().collect::<String>().trim().to_string())
}

/// The `Set-Cookie` header that sets cookie `name`.
pub fn set_cookie<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

pub const PASSWORD: &str = "granite-otter-lantern";
