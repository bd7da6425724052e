//! The login pages in a real browser: headless Chromium driven through chromedriver.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};

use crate::support::{PASSWORD, TestApp, require_all, sqlite_db};

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
}

async fn start_driver() -> Option<Driver> {
    let driver = std::env::var("CHROMEDRIVER")
        .ok()
        .or_else(|| find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]));
    let Some(driver) = driver else {
        assert!(
            !require_all(),
            "GOTTHARD_TEST_REQUIRE_ALL=1 but chromedriver is missing"
        );
        eprintln!("note: chromedriver not found, browser test skipped");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Driver { child, url });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("chromedriver did not start");
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> fantoccini::Client {
    let chromium = std::env::var("CHROMIUM")
        .ok()
        .or_else(|| find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]))
        .expect("chromium binary");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--lang=en-US",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

#[tokio::test]
async fn first_admin_signs_up_signs_out_and_signs_in_in_chromium() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let db = sqlite_db();
    let app = TestApp::start(&db).await;
    let link = app
        .state
        .first_start
        .issue_link_if_empty(app.state.clock.now())
        .await
        .unwrap()
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let b = browser(&driver, profile.path()).await;

    // The setup link: choose e-mail and password.
    b.goto(&link).await.unwrap();
    b.find(Locator::Id("email"))
        .await
        .unwrap()
        .send_keys("root@example.com")
        .await
        .unwrap();
    b.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys("Root")
        .await
        .unwrap();
    b.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    b.find(Locator::Id("password_repeat"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    b.find(Locator::Id("setup-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Id("account-email"))
        .await
        .unwrap();
    assert_eq!(b.current_url().await.unwrap().path(), "/account");
    let email = b
        .find(Locator::Id("account-email"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(email, "root@example.com");

    // Sign out, then a wrong password, then the right one.
    b.find(Locator::Id("logout-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Id("login-submit"))
        .await
        .unwrap();
    assert_eq!(b.current_url().await.unwrap().path(), "/login");
    b.find(Locator::Id("email"))
        .await
        .unwrap()
        .send_keys("root@example.com")
        .await
        .unwrap();
    b.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("not-my-password")
        .await
        .unwrap();
    b.find(Locator::Id("login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = b
        .wait()
        .for_element(Locator::Id("login-error"))
        .await
        .unwrap();
    assert_eq!(
        error.text().await.unwrap(),
        "Wrong e-mail address or password."
    );
    // The address is kept; the password is not.
    let kept = b
        .find(Locator::Id("email"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("root@example.com"));
    b.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    b.find(Locator::Id("login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Id("account-email"))
        .await
        .unwrap();
    assert_eq!(b.current_url().await.unwrap().path(), "/account");

    // The strict CSP did not block the page's own stylesheet.
    let styled = b
        .execute(
            "return getComputedStyle(document.querySelector('main')).borderRadius",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(styled.as_str(), Some("12px"));
    // The session cookie is invisible to scripts (HttpOnly).
    let cookies = b.execute("return document.cookie", vec![]).await.unwrap();
    assert!(!cookies.as_str().unwrap_or("").contains("gotthard_session"));
    b.close().await.unwrap();
}
