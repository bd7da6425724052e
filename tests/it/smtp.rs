//! Mail over a real SMTP conversation on loopback: a small SMTP receiver (the test's mail
//! server) and the outbox's behaviour when that server is down, then up again.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::support::{PASSWORD, TestApp, databases};

/// A message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// An SMTP server (RFC 5321's minimal command set) that keeps what it acknowledged.
/// Dropping it is a crash: the port refuses connections and conversations in progress are
/// cut wherever they are.
pub struct SmtpSink {
    pub received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
    conversations: Arc<Mutex<tokio::task::JoinSet<()>>>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
        self.conversations.lock().unwrap().abort_all();
    }
}

impl SmtpSink {
    pub async fn start_on(port: u16) -> SmtpSink {
        Self::keeping(port, Arc::new(Mutex::new(Vec::new()))).await
    }

    /// A server on `port` adding to `received`: the same mailbox across a restart.
    pub async fn keeping(port: u16, received: Arc<Mutex<Vec<Received>>>) -> SmtpSink {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let store = received.clone();
        let conversations = Arc::new(Mutex::new(tokio::task::JoinSet::new()));
        let running = conversations.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let mut running = running.lock().unwrap();
                while running.try_join_next().is_some() {}
                running.spawn(converse(conn, store.clone()));
            }
        });
        SmtpSink {
            received,
            task,
            conversations,
        }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn converse(conn: tokio::net::TcpStream, store: Arc<Mutex<Vec<Received>>>) {
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 sink.test ESMTP ready\r\n").await;
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-sink.test\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().trim_matches(['<', '>']).to_string();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().trim_matches(['<', '>']).to_string());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            let _ = write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
            let mut data = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "." {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                data.push('\n');
            }
            let received = Received {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
            };
            // Kept once acknowledged, as the sender sees it.
            if write.write_all(b"250 OK queued\r\n").await.is_ok() {
                store.lock().unwrap().push(received);
            }
            continue;
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 not implemented\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Signs in and changes the password, which queues the alert mail.
async fn change_password(app: &TestApp) {
    let (client, csrf) = app.signed_in("ada@example.com").await;
    let response = client
        .post(app.url("/api/v1/me/password"))
        .header("x-csrf-token", csrf)
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0",
        )
        .json(&json!({"current_password": PASSWORD, "new_password": "basalt-heron-meadow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn alerts_go_out_over_smtp_and_wait_in_the_outbox_while_it_is_down() {
    for db in databases().await {
        let port = free_port();
        let smtp_url = format!("smtp://127.0.0.1:{port}");
        let app = TestApp::start_with(
            &db,
            &[
                ("smtp.url", smtp_url.as_str()),
                ("smtp.from", "Gotthard <login@example.com>"),
            ],
        )
        .await;
        app.create_user("ada@example.com", PASSWORD).await;
        change_password(&app).await;

        // The server is down: nothing is lost, the mail waits with its error.
        assert_eq!(
            app.state
                .mailer
                .deliver_due(app.state.clock.now())
                .await
                .unwrap(),
            0
        );
        assert_eq!(db.count("mail_outbox").await, 1, "{}", db.backend);
        // Not due again before its backoff.
        let sink = SmtpSink::start_on(port).await;
        assert_eq!(
            app.state
                .mailer
                .deliver_due(app.state.clock.now())
                .await
                .unwrap(),
            0
        );
        assert!(sink.messages().is_empty());

        // Up again and due: delivered once, and only once.
        app.state.clock.advance(time::Duration::seconds(61));
        assert_eq!(
            app.state
                .mailer
                .deliver_due(app.state.clock.now())
                .await
                .unwrap(),
            1
        );
        app.state.clock.advance(time::Duration::hours(2));
        assert_eq!(
            app.state
                .mailer
                .deliver_due(app.state.clock.now())
                .await
                .unwrap(),
            0
        );
        let messages = sink.messages();
        assert_eq!(messages.len(), 1, "{}", db.backend);
        let mail = &messages[0];
        assert_eq!(mail.from, "login@example.com");
        assert_eq!(mail.to, ["ada@example.com"]);
        assert!(
            mail.data
                .contains("Subject: Your Gotthard password was changed"),
            "{}",
            mail.data
        );
        assert!(mail.data.contains("multipart/alternative"), "text and HTML");
        let unfolded = mail.data.replace("=\n", "");
        assert!(
            unfolded.contains(&format!("{}/account/sessions", app.base)),
            "{unfolded}"
        );
        assert!(unfolded.contains("Firefox 121"), "{unfolded}");
    }
}

#[tokio::test]
async fn without_smtp_mail_is_written_to_the_data_folder() {
    let db = crate::support::sqlite_db();
    let app = TestApp::start(&db).await;
    app.create_user("ada@example.com", PASSWORD).await;
    change_password(&app).await;
    assert_eq!(
        app.state
            .mailer
            .deliver_due(app.state.clock.now())
            .await
            .unwrap(),
        1
    );
    let folder = db.dir.path().join("data").join("mail");
    let files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().unwrap(), "eml");
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.contains("To: ada@example.com"), "{eml}");
    assert!(
        eml.contains("Subject: Your Gotthard password was changed"),
        "{eml}"
    );
    assert_eq!(
        app.state
            .mailer
            .deliver_due(app.state.clock.now())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn login_alerts_follow_the_owners_choice_and_failures_are_coalesced() {
    for db in databases().await {
        let port = free_port();
        let smtp_url = format!("smtp://127.0.0.1:{port}");
        let sink = SmtpSink::start_on(port).await;
        let app = TestApp::start_with(&db, &[("smtp.url", smtp_url.as_str())]).await;
        let ada = app.create_user("ada@example.com", PASSWORD).await;
        app.create_user("bob@example.com", PASSWORD).await;
        let client = gotthard::audit::ClientInfo::new("test", "test");
        app.state
            .accounts
            .update_security(
                &ada,
                gotthard::accounts::SecuritySettings {
                    lockout_threshold: 10,
                    notify_on_success: true,
                    notify_on_failure: true,
                },
                &client,
                app.state.clock.now(),
            )
            .await
            .unwrap();

        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .user_agent(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
            )
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        assert_eq!(
            app.login(&browser, "ada@example.com", PASSWORD)
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        for _ in 0..4 {
            app.login(&browser, "ada@example.com", "wrong-password!")
                .await;
        }
        // bob asked for nothing.
        app.login(&app.client(), "bob@example.com", PASSWORD).await;
        app.login(&app.client(), "bob@example.com", "wrong-password!")
            .await;
        app.state
            .mailer
            .deliver_due(app.state.clock.now())
            .await
            .unwrap();
        let subjects = |sink: &SmtpSink| -> Vec<String> {
            sink.messages()
                .iter()
                .map(|m| {
                    m.data
                        .lines()
                        .find_map(|l| l.strip_prefix("Subject: "))
                        .unwrap()
                        .to_string()
                })
                .collect()
        };
        assert_eq!(
            subjects(&sink),
            [
                "New sign-in to your Gotthard account",
                "A sign-in to your Gotthard account failed"
            ],
            "{}: four failures, one alert",
            db.backend
        );
        let success = sink.messages()[0].data.replace("=\n", "");
        assert!(
            success.contains("127.0.0.1") && success.contains("Firefox 121"),
            "{success}"
        );
        assert!(success.contains(&format!("{}/account/sessions", app.base)));
        assert!(sink.messages().iter().all(|m| m.to == ["ada@example.com"]));

        let sent: Vec<_> = app
            .state
            .store
            .recent_events(ada.id, 50)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "alert.sent")
            .map(|e| e.details)
            .collect();
        assert_eq!(sent.len(), 2, "{sent:?}");
        // After the coalescing period, the next failure is mailed again.
        app.state.clock.advance(time::Duration::minutes(16));
        app.login(&browser, "ada@example.com", "wrong-password!")
            .await;
        app.state
            .mailer
            .deliver_due(app.state.clock.now())
            .await
            .unwrap();
        assert_eq!(sink.messages().len(), 3);
    }
}
