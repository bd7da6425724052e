//! The `gotthard` binary: operator commands, configuration errors, serve and shutdown.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};

use crate::support::{PASSWORD, TestDb, databases};

pub fn gotthard(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    gotthard_with(db, args, stdin, &[])
}

/// `gotthard` with more environment (settings as `GOTTHARD_…` variables).
pub fn gotthard_with(
    db: &TestDb,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gotthard"))
        .args(args)
        .envs(env.iter().copied())
        .env("GOTTHARD_DATA_DIR", db.dir.path().join("data"))
        .env("GOTTHARD_KEYS__DIR", db.dir.path().join("keys"))
        .env("GOTTHARD_DATABASE__URL", &db.url)
        .env("GOTTHARD_PASSWORD__HASH_THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[tokio::test]
async fn operators_manage_users_and_organizations() {
    for db in databases().await {
        let created = gotthard(
            &db,
            &[
                "user",
                "create",
                "--email",
                "  Ada@Example.COM ",
                "--name",
                "Ada",
                "--password-stdin",
            ],
            Some(&format!("{PASSWORD}\n")),
        );
        assert!(
            created.status.success(),
            "{}: {}",
            db.backend,
            stderr(&created)
        );
        assert!(stdout(&created).contains("<Ada@example.com>"));

        let dup = gotthard(
            &db,
            &[
                "user",
                "create",
                "--email",
                "ada@example.com",
                "--password-stdin",
            ],
            Some(PASSWORD),
        );
        assert!(!dup.status.success());
        assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));
        let weak = gotthard(
            &db,
            &[
                "user",
                "create",
                "--email",
                "bob@example.com",
                "--password-stdin",
            ],
            Some("qwerty123\n"),
        );
        assert!(!weak.status.success());
        assert!(stderr(&weak).contains("too short") || stderr(&weak).contains("too common"));
        let no_flag = gotthard(&db, &["user", "create", "--email", "bob@example.com"], None);
        assert!(!no_flag.status.success());
        assert!(stderr(&no_flag).contains("--password-stdin"));

        let list = gotthard(&db, &["user", "list"], None);
        assert!(list.status.success());
        let listed = stdout(&list);
        assert_eq!(listed.lines().count(), 1, "{listed}");
        assert!(listed.contains("Ada@example.com\tAda"));

        let org = gotthard(&db, &["org", "create", "--name", "Acme"], None);
        assert!(org.status.success(), "{}", stderr(&org));
        let again = gotthard(&db, &["org", "create", "--name", "Acme"], None);
        assert!(stderr(&again).contains("already exists"));
        let add = gotthard(
            &db,
            &[
                "org",
                "add-member",
                "--org",
                "Acme",
                "--email",
                "ADA@example.com",
                "--role",
                "legal-representative",
            ],
            None,
        );
        // Addresses are matched without regard to case.
        assert!(add.status.success(), "{}", stderr(&add));
        let nobody = gotthard(
            &db,
            &[
                "org",
                "add-member",
                "--org",
                "Acme",
                "--email",
                "eve@example.com",
                "--role",
                "member",
            ],
            None,
        );
        assert!(!nobody.status.success());
        assert!(stderr(&nobody).contains("no user"), "{}", stderr(&nobody));
        let bad_role = gotthard(
            &db,
            &[
                "org",
                "add-member",
                "--org",
                "Acme",
                "--email",
                "Ada@example.com",
                "--role",
                "owner",
            ],
            None,
        );
        assert!(!bad_role.status.success());
        assert!(stderr(&bad_role).contains("unknown role"));

        // The server sees what the CLI wrote.
        let store = gotthard::store::connect(&db.url, 2).await.unwrap();
        let ada = store
            .user_by_email("Ada@example.com")
            .await
            .unwrap()
            .unwrap();
        let orgs = store.orgs_of_user(ada.id).await.unwrap();
        assert_eq!(orgs.len(), 1, "{}", db.backend);
        assert_eq!(orgs[0].1.as_str(), "legal-representative");
        assert!(ada.password_hash.unwrap().starts_with("$argon2id$"));
    }
}

#[test]
fn configuration_errors_name_the_key() {
    let db = crate::support::sqlite_db();
    let run = |key: &str, value: &str| {
        Command::new(env!("CARGO_BIN_EXE_gotthard"))
            .arg("migrate")
            .env("GOTTHARD_DATA_DIR", db.dir.path())
            .env("GOTTHARD_KEYS__DIR", db.dir.path().join("keys"))
            .env(key, value)
            .output()
            .unwrap()
    };
    let unknown = run("GOTTHARD_HTTP__BIDN", "127.0.0.1:1");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("bidn"), "{}", stderr(&unknown));
    let bad = run("GOTTHARD_HTTP__BIND", "not-an-address");
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("http.bind"), "{}", stderr(&bad));
    let weak = run("GOTTHARD_PASSWORD__MEMORY_KIB", "4096");
    assert!(
        stderr(&weak).contains("GOTTHARD_PASSWORD__MEMORY_KIB"),
        "{}",
        stderr(&weak)
    );
    let issuer = run("GOTTHARD_ISSUER", "ftp://x");
    assert!(stderr(&issuer).contains("issuer"), "{}", stderr(&issuer));
    let missing_file = Command::new(env!("CARGO_BIN_EXE_gotthard"))
        .args(["--config", "/nonexistent/gotthard.toml", "migrate"])
        .output()
        .unwrap();
    assert_eq!(missing_file.status.code(), Some(2));

    // A config file overrides defaults, and the environment overrides the file.
    let file = db.dir.path().join("gotthard.toml");
    std::fs::write(&file, "[password]\nmin_length = 12\n[http]\nbnd = 1\n").unwrap();
    let from_file = Command::new(env!("CARGO_BIN_EXE_gotthard"))
        .args(["--config", file.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(stderr(&from_file).contains("bnd"), "{}", stderr(&from_file));
}

#[tokio::test]
async fn serve_prints_the_setup_link_and_drains_on_sigterm() {
    let db = crate::support::sqlite_db();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let base = format!("http://{bind}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gotthard"))
        .args(["serve", "--log-format", "json"])
        .env("GOTTHARD_DATA_DIR", db.dir.path().join("data"))
        .env("GOTTHARD_KEYS__DIR", db.dir.path().join("keys"))
        .env("GOTTHARD_HTTP__BIND", &bind)
        .env("GOTTHARD_ISSUER", &base)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut printed = String::new();
    let mut buf = [0u8; 512];
    while !printed.contains("token=") || !printed.ends_with("\n\n") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "server exited early: {printed}");
        printed.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        printed.contains(&format!("{base}/setup?token=")),
        "{printed}"
    );

    // A login in flight (argon2 running) when SIGTERM arrives still gets its answer.
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let page = client.get(format!("{base}/login")).send().await.unwrap();
    let csrf = crate::support::hidden_field(&page.text().await.unwrap(), "csrf");
    let login = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/login");
        async move {
            client
                .post(url)
                .form(&[
                    ("email", "a@b.c"),
                    ("password", "whatever-it-is"),
                    ("csrf", &csrf),
                ])
                .send()
                .await
                .map(|r| r.status())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(
        login.await.unwrap().unwrap(),
        reqwest::StatusCode::UNAUTHORIZED
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let first = logs.lines().next().unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "JSON logs: {first}"
    );
    assert!(logs.contains("shutting down"), "{logs}");
}

/// Starts `gotthard serve` on a free port with `env`; returns the child once it answers
/// `/healthz`, or its exit status and logs if it exited first.
async fn serve_until_up(
    db: &TestDb,
    env: &[(&str, &str)],
) -> Result<std::process::Child, (Option<std::process::ExitStatus>, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gotthard"))
        .arg("serve")
        .envs(env.iter().copied())
        .env("GOTTHARD_DATA_DIR", db.dir.path().join("data"))
        .env("GOTTHARD_KEYS__DIR", db.dir.path().join("keys"))
        .env("GOTTHARD_DATABASE__URL", &db.url)
        .env("GOTTHARD_PASSWORD__HASH_THREADS", "1")
        .env("GOTTHARD_HTTP__BIND", &bind)
        .env("GOTTHARD_ISSUER", format!("http://{bind}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut printed = String::new();
    let mut buf = [0u8; 512];
    while !printed.contains("token=") {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            let mut logs = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut logs)
                .unwrap();
            return Err((Some(child.wait().unwrap()), logs));
        }
        printed.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Kept open: the server still writes to it.
    child.stdout = Some(out);
    // Serving (and so handling SIGTERM) once it answers.
    for _ in 0..100 {
        let health = reqwest::get(format!("http://{bind}/healthz")).await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return Ok(child);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    Err((None, "no answer on /healthz".to_string()))
}

#[tokio::test]
async fn smtp_credentials_without_tls_stop_start_up_unless_the_server_is_this_machine() {
    for db in databases().await {
        let refused = serve_until_up(
            &db,
            &[("GOTTHARD_SMTP__URL", "smtp://u:p@mail.example.com:25")],
        )
        .await;
        let (status, message) = match refused {
            Ok(mut started) => {
                let _ = started.kill();
                let _ = started.wait();
                panic!("{}: started with credentials in clear", db.backend);
            }
            Err(refusal) => refusal,
        };
        assert!(status.is_some_and(|s| !s.success()), "{status:?} {message}");
        assert!(
            message.contains("smtp.url") && message.contains("GOTTHARD_SMTP__URL"),
            "{}: {message}",
            db.backend
        );
        assert!(
            message.contains("tls=required"),
            "says what to do: {message}"
        );

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for url in [
            format!("smtp://u:p@127.0.0.1:{port}"),
            "smtp://u:p@mail.example.com:587?tls=required".to_string(),
        ] {
            let mut served = serve_until_up(&db, &[("GOTTHARD_SMTP__URL", &url)])
                .await
                .unwrap_or_else(|e| panic!("{}: {url} did not start: {e:?}", db.backend));
            let killed = Command::new("kill")
                .args(["-TERM", &served.id().to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
            let status = served.wait().unwrap();
            let mut logs = String::new();
            served
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut logs)
                .unwrap();
            assert!(status.success(), "{url}: {status:?} {logs}");
        }
    }
}
