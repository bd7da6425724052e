//! Outages of the dependencies, for real: a private PostgreSQL cluster (`initdb` + `pg_ctl`
//! on a free port in a temporary folder, never the machine's shared server), a private
//! `redis-server` and the test's SMTP server, each stopped and started again by the test
//! while two instances serve. Only 2xx, 3xx, 4xx and 503 with `Retry-After` may come back;
//! every write acknowledged before the stop is there after it, every mail goes out once; the
//! instances are whole again by themselves within seconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::smtp::free_port;
use crate::support::{PASSWORD, TestApp, TestDb, require_all};

/// A program of PostgreSQL's: on the PATH, else in Debian's versioned folder.
fn postgres_tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin").join(name))
            .filter(|p| p.is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL cluster of the test's own. PostgreSQL refuses to run as root, so as root
/// its programs run as the `postgres` user (`runuser`).
struct PrivatePostgres {
    _dir: tempfile::TempDir,
    data: PathBuf,
    pg_ctl: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Creates and starts the cluster; `None` (a skip) when PostgreSQL is not installed.
    fn start() -> Option<Self> {
        let (Some(initdb), Some(pg_ctl)) = (postgres_tool("initdb"), postgres_tool("pg_ctl"))
        else {
            assert!(
                !require_all(),
                "GOTTHARD_TEST_REQUIRE_ALL=1 but initdb/pg_ctl are not installed"
            );
            eprintln!("note: initdb not found, PostgreSQL outage test skipped");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("pgdata");
        let as_postgres = is_root();
        if as_postgres {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::create_dir(&data).unwrap();
            let chown = Command::new("chown")
                .arg("postgres:")
                .arg(&data)
                .status()
                .unwrap();
            assert!(chown.success(), "chown of the cluster folder failed");
        }
        let cluster = Self {
            _dir: dir,
            data,
            pg_ctl,
            port: free_port(),
            as_postgres,
        };
        cluster.run(
            &initdb,
            &[
                "-D",
                cluster.data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.up();
        Some(cluster)
    }

    fn run(&self, program: &Path, args: &[&str]) {
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the server and waits until it accepts connections.
    fn up(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off",
            self.port
        );
        let log = self.data.join("server.log");
        self.run(
            &self.pg_ctl,
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server the way an operator's restart does: sessions are terminated
    /// (57P01), new connections refused.
    fn down(&self) {
        self.run(
            &self.pg_ctl,
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&self.pg_ctl);
            c
        } else {
            Command::new(&self.pg_ctl)
        };
        let _ = command
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

/// What came back, by status; and the answers that break the rules.
#[derive(Default)]
struct Tally {
    by_status: BTreeMap<u16, u64>,
    breaches: Vec<String>,
}

impl Tally {
    fn count(&mut self, what: &str, response: &reqwest::Response) {
        let status = response.status().as_u16();
        *self.by_status.entry(status).or_default() += 1;
        let allowed = (200..500).contains(&status) || status == 503;
        if !allowed {
            self.breaches.push(format!("{what}: {status}"));
        } else if status == 503 && !response.headers().contains_key("retry-after") {
            self.breaches
                .push(format!("{what}: 503 without Retry-After"));
        }
    }
}

/// One signed-in browser on one instance, renaming its account again and again.
struct Worker {
    app: Arc<TestApp>,
    client: reqwest::Client,
    csrf: String,
    email: String,
    /// The last rename the server acknowledged (2xx), and the last one tried.
    acknowledged: Option<u64>,
    tried: u64,
}

impl Worker {
    /// One round of what a signed-in browser and a machine client do.
    async fn round(&mut self, tally: &Mutex<Tally>, machine: &(String, String)) {
        let app = self.app.clone();
        self.tried += 1;
        let rename = self
            .client
            .patch(app.url("/api/v1/me"))
            .header("x-csrf-token", &self.csrf)
            .json(&serde_json::json!({ "given_name": format!("n-{}", self.tried) }))
            .send()
            .await;
        if let Ok(response) = rename {
            if response.status().is_success() {
                self.acknowledged = Some(self.tried);
            }
            tally.lock().unwrap().count("PATCH /api/v1/me", &response);
        }
        for path in ["/api/v1/me", "/account", "/api/v1/me/sessions"] {
            if let Ok(response) = self.client.get(app.url(path)).send().await {
                tally.lock().unwrap().count(path, &response);
            }
        }
        let token = reqwest::Client::new()
            .post(app.url("/oauth2/token"))
            .basic_auth(&machine.0, Some(&machine.1))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        if let Ok(response) = token {
            let unavailable = response.status() == 503;
            tally.lock().unwrap().count("POST /oauth2/token", &response);
            if unavailable {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                if body["error"] != "temporarily_unavailable" {
                    tally
                        .lock()
                        .unwrap()
                        .breaches
                        .push(format!("token endpoint 503 said {body}"));
                }
            }
        }
    }
}

/// Waits until `/readyz` of `app` says 200; how long that took.
async fn ready_within(app: &TestApp, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(r) = reqwest::get(app.url("/readyz")).await
            && r.status() == 200
        {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_restart_under_load_is_answered_503_and_loses_no_acknowledged_write() {
    let Some(cluster) = PrivatePostgres::start() else {
        return;
    };
    let db = TestDb {
        backend: "postgres",
        url: cluster.url(),
        dir: tempfile::tempdir().unwrap(),
    };
    // A request waits at most 1 s for a connection before its 503.
    let settings = [("database.acquire_timeout_secs", "1")];
    let a = Arc::new(TestApp::start_with(&db, &settings).await);
    let b = Arc::new(TestApp::start_with(&db, &settings).await);
    let (client, secret) = a
        .register_client("Billing", "http://127.0.0.1:9/callback", |_| {})
        .await;
    let machine = Arc::new((client.id, secret.unwrap()));
    let mut workers = Vec::new();
    for n in 0..4 {
        let app = if n % 2 == 0 { a.clone() } else { b.clone() };
        let email = format!("worker{n}@example.com");
        app.create_user(&email, PASSWORD).await;
        let (client, csrf) = app.signed_in(&email).await;
        workers.push(Worker {
            app,
            client,
            csrf,
            email,
            acknowledged: None,
            tried: 0,
        });
    }

    let tally = Arc::new(Mutex::new(Tally::default()));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut tasks = Vec::new();
    for mut worker in workers {
        let (tally, running, machine) = (tally.clone(), running.clone(), machine.clone());
        tasks.push(tokio::spawn(async move {
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                worker.round(&tally, &machine).await;
            }
            worker
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_stop: u64 = tally.lock().unwrap().by_status.values().sum();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.down();
        cluster
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for app in [&a, &b] {
        let status = reqwest::get(app.url("/readyz")).await.unwrap().status();
        assert_eq!(status, 503, "/readyz while PostgreSQL is down");
    }
    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.up();
        cluster
    })
    .await
    .unwrap();
    let mut recovery = Vec::new();
    for app in [&a, &b] {
        let took = ready_within(app, Duration::from_secs(15)).await;
        assert!(
            took.is_some(),
            "an instance was not ready again within 15 s"
        );
        recovery.extend(took);
    }
    let after_restart: u64 = tally.lock().unwrap().by_status.values().sum();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut workers = Vec::new();
    for task in tasks {
        workers.push(task.await.unwrap());
    }

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    eprintln!(
        "PostgreSQL restart under load: answers by status {:?}; {} before the stop, {} by the \
         restart; ready again after {:?}",
        tally.by_status, before_stop, after_restart, recovery
    );
    assert!(
        tally.breaches.is_empty(),
        "answers outside 2xx/3xx/4xx/503+Retry-After:\n{}",
        tally.breaches.join("\n")
    );
    assert!(
        tally.by_status.get(&503).is_some_and(|n| *n > 0),
        "the outage was never seen: {:?}",
        tally.by_status
    );
    assert!(before_stop > 0, "no load before the stop");

    // Every acknowledged rename is there (or a later one that was tried).
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for worker in &workers {
        let (name,): (String,) = sqlx::query_as("SELECT given_name FROM users WHERE email = $1")
            .bind(&worker.email)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let stored: u64 = name.trim_start_matches("n-").parse().unwrap_or(0);
        let acknowledged = worker.acknowledged.unwrap_or(0);
        assert!(
            stored >= acknowledged && stored <= worker.tried,
            "{}: rename {acknowledged} was acknowledged, {stored} is stored",
            worker.email
        );
        assert!(acknowledged > 0, "{}: no rename went through", worker.email);
    }
    // And both instances serve again without a restart.
    for worker in &mut workers {
        let response = worker
            .client
            .get(worker.app.url("/api/v1/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// A `redis-server` of the test's own on a free port, keeping nothing on disk; killed and
/// started again on the same port, as a crashed Redis comes back.
struct PrivateRedis {
    port: u16,
    process: Option<std::process::Child>,
}

impl PrivateRedis {
    /// `None` (a skip) when `redis-server` is not installed.
    fn start() -> Option<Self> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            assert!(
                !require_all(),
                "GOTTHARD_TEST_REQUIRE_ALL=1 but redis-server is not installed"
            );
            eprintln!("note: redis-server not found, Redis outage test skipped");
            return None;
        }
        let mut redis = Self {
            port: free_port(),
            process: None,
        };
        redis.up();
        Some(redis)
    }

    fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.process = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < until, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: connections cut mid-command, new ones refused, everything in it forgotten.
    fn crash(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.crash();
    }
}

/// Both instances remember token checks (their revocation feed hears itself) and count
/// sign-ins in Redis.
fn whole_again(apps: &[&Arc<TestApp>]) -> bool {
    apps.iter().all(|app| {
        app.state.provider.remembers_token_checks() && app.state.rate_limits.uses_shared_counters()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_crash_under_load_degrades_correctly_and_both_instances_recover_by_themselves() {
    use crate::redis::{machine_token, with_token, within};
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    let db = crate::support::sqlite_db();
    let (url, prefix) = (redis.url(), "gotthard-outage:".to_string());
    let settings = [
        ("redis.url", url.as_str()),
        ("redis.prefix", prefix.as_str()),
        ("issuer", "http://gotthard.test"),
    ];
    let a = Arc::new(TestApp::start_with(&db, &settings).await);
    let b = Arc::new(TestApp::start_with(&db, &settings).await);
    assert!(
        within(10, || whole_again(&[&a, &b])).await,
        "both instances on Redis at start"
    );
    let machine = Arc::new(machine_token(&a).await);

    // Load: introspection and client-credentials on both instances, a wrong password now
    // and then (the shared sign-in limit).
    let tally = Arc::new(Mutex::new(Tally::default()));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut tasks = Vec::new();
    for app in [a.clone(), b.clone()] {
        let (tally, running, machine) = (tally.clone(), running.clone(), machine.clone());
        tasks.push(tokio::spawn(async move {
            let client = app.client();
            let csrf = app.csrf_from(&client, "/login").await;
            let mut round = 0u64;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                let introspect = reqwest::Client::new()
                    .post(app.url("/oauth2/introspect"))
                    .basic_auth(&machine.client_id, Some(&machine.secret))
                    .form(&[("token", &machine.token)])
                    .send()
                    .await;
                if let Ok(response) = introspect {
                    tally
                        .lock()
                        .unwrap()
                        .count("POST /oauth2/introspect", &response);
                }
                if round.is_multiple_of(20) {
                    let login = client
                        .post(app.url("/login"))
                        .form(&[
                            ("email", "nobody@example.com"),
                            ("password", "wrong-password!"),
                            ("csrf", csrf.as_str()),
                        ])
                        .send()
                        .await;
                    if let Ok(response) = login {
                        tally.lock().unwrap().count("POST /login", &response);
                    }
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(1000)).await;
    redis.crash();
    assert!(
        within(5, || !a.state.provider.remembers_token_checks()
            && !b.state.provider.remembers_token_checks())
        .await,
        "both instances notice the feed is gone"
    );
    // A revocation while Redis is down reaches the other instance through the database.
    let doomed = machine_token(&a).await;
    assert_eq!(
        with_token(&b, "/oauth2/introspect", &doomed).await,
        (200, true)
    );
    assert_eq!(with_token(&a, "/oauth2/revoke", &doomed).await.0, 200);
    assert_eq!(
        with_token(&b, "/oauth2/introspect", &doomed).await,
        (200, false),
        "B reads the revocation from the database while Redis is down"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    redis.up();
    let back = Instant::now();
    let recovered = within(15, || whole_again(&[&a, &b])).await;
    let took = back.elapsed();
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    eprintln!(
        "Redis crash under load: answers by status {:?}; whole again after {took:?}",
        tally.by_status
    );
    assert!(
        recovered,
        "not whole again 15 s after Redis came back: A feed {} counters {}, B feed {} counters {}",
        a.state.provider.remembers_token_checks(),
        a.state.rate_limits.uses_shared_counters(),
        b.state.provider.remembers_token_checks(),
        b.state.rate_limits.uses_shared_counters(),
    );
    assert!(
        tally.breaches.is_empty(),
        "answers outside 2xx/3xx/4xx/503+Retry-After:\n{}",
        tally.breaches.join("\n")
    );
    // Whole again means correct again: a revocation on A reaches what B remembers.
    let fresh = machine_token(&a).await;
    for _ in 0..2 {
        assert_eq!(
            with_token(&b, "/oauth2/introspect", &fresh).await,
            (200, true)
        );
    }
    assert_eq!(with_token(&a, "/oauth2/revoke", &fresh).await.0, 200);
    let mut revoked_seen = false;
    for _ in 0..20 {
        if with_token(&b, "/oauth2/introspect", &fresh).await == (200, false) {
            revoked_seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        revoked_seen,
        "B still answers active from memory after A revoked"
    );
}

/// Signs `email` in on `app` and changes its password, which queues an alert mail; the
/// answer's status goes in the tally.
async fn change_password(app: &TestApp, email: &str, tally: &Mutex<Tally>) {
    let (client, csrf) = app.signed_in(email).await;
    let response = client
        .post(app.url("/api/v1/me/password"))
        .header("x-csrf-token", csrf)
        .json(&serde_json::json!({
            "current_password": PASSWORD,
            "new_password": "basalt-heron-meadow"
        }))
        .send()
        .await
        .unwrap();
    tally
        .lock()
        .unwrap()
        .count("POST /api/v1/me/password", &response);
    assert_eq!(
        response.status(),
        200,
        "the change is made, its mail queued"
    );
}

/// Waits until the sink holds `n` messages.
async fn received_within(received: &Mutex<Vec<crate::smtp::Received>>, n: usize, secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    while received.lock().unwrap().len() < n && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_smtp_outage_delays_mail_of_two_instances_and_none_is_lost_or_sent_twice() {
    use crate::smtp::SmtpSink;
    let db = crate::support::databases().await.pop().unwrap();
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let settings = [
        ("smtp.url", smtp_url.as_str()),
        ("smtp.from", "Gotthard <login@example.com>"),
        // Both instances' senders poll every second, competing for the same outbox.
        ("smtp.poll_interval_secs", "1"),
    ];
    let a = Arc::new(TestApp::start_with(&db, &settings).await);
    let b = Arc::new(TestApp::start_with(&db, &settings).await);
    let emails: Vec<String> = (0..12).map(|n| format!("mail{n}@example.com")).collect();
    for email in &emails {
        a.create_user(email, PASSWORD).await;
    }
    let received = Arc::new(Mutex::new(Vec::new()));
    let tally = Mutex::new(Tally::default());
    let on = |n: usize| if n.is_multiple_of(2) { &a } else { &b };

    let sink = SmtpSink::keeping(port, received.clone()).await;
    for (n, email) in emails[..4].iter().enumerate() {
        change_password(on(n), email, &tally).await;
    }
    received_within(&received, 4, 10).await;
    assert_eq!(received.lock().unwrap().len(), 4, "delivered while up");

    // The mail server crashes; changes go on, their mail waits in the outbox.
    drop(sink);
    for (n, email) in emails[4..8].iter().enumerate() {
        change_password(on(n), email, &tally).await;
    }
    // Both senders try (and fail) at least once.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(received.lock().unwrap().len(), 4);
    let failed = db
        .count_where("mail_outbox", "sent_at IS NULL AND attempts > 0")
        .await;
    assert!(failed > 0, "the failures are recorded on the waiting mail");

    // Back on the same port; the retry is due once its backoff has passed.
    let _sink = SmtpSink::keeping(port, received.clone()).await;
    for app in [&a, &b] {
        app.state.clock.advance(time::Duration::hours(2));
    }
    received_within(&received, 8, 15).await;
    for (n, email) in emails[8..].iter().enumerate() {
        change_password(on(n), email, &tally).await;
    }
    received_within(&received, 12, 15).await;
    // A few more polls of both senders: nothing is sent again.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let messages = received.lock().unwrap().clone();
    eprintln!(
        "SMTP outage with two instances: answers by status {:?}; {} mails received, {} failed \
         attempts recorded during the outage",
        tally.by_status,
        messages.len(),
        failed
    );
    assert!(tally.breaches.is_empty(), "{}", tally.breaches.join("\n"));
    let mut ids: Vec<&str> = messages
        .iter()
        .filter_map(|m| {
            m.data
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .map(str::trim)
        })
        .collect();
    assert_eq!(ids.len(), messages.len(), "every mail has its Message-ID");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12, "each mail once: {messages:?}");
    let mut recipients: Vec<String> = messages.iter().flat_map(|m| m.to.clone()).collect();
    recipients.sort();
    let mut expected = emails.clone();
    expected.sort();
    assert_eq!(recipients, expected, "one alert per change, none lost");
    assert_eq!(db.count_where("mail_outbox", "sent_at IS NULL").await, 0);
}
