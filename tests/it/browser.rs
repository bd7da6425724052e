//! The login pages in a real browser: headless Chromium driven through chromedriver.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};

use crate::support::{PASSWORD, TestApp, require_all, sqlite_db};

/// chromedriver on a free port, killed when dropped.
pub(crate) struct Driver {
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

pub(crate) async fn start_driver() -> Option<Driver> {
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

pub(crate) async fn browser(driver: &Driver, profile: &std::path::Path) -> fantoccini::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
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
    type_into(&b, "email", "root@example.com").await;
    type_into(&b, "name", "Root").await;
    type_into(&b, "password", PASSWORD).await;
    type_into(&b, "password_repeat", PASSWORD).await;
    submit_and_wait(&b, "setup-submit", "account-email").await;
    assert_eq!(b.current_url().await.unwrap().path(), "/account");
    assert_eq!(text(&b, "account-email").await, "root@example.com");

    // Sign out from the header's menu, then a wrong password, then the right one.
    b.find(Locator::Css("#user-menu summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    submit_and_wait(&b, "logout-submit", "login-submit").await;
    assert_eq!(b.current_url().await.unwrap().path(), "/login");
    type_into(&b, "email", "root@example.com").await;
    type_into(&b, "password", "not-my-password").await;
    submit_and_wait(&b, "login-submit", "login-error").await;
    assert_eq!(
        text(&b, "login-error").await,
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
    type_into(&b, "password", PASSWORD).await;
    submit_and_wait(&b, "login-submit", "account-email").await;
    assert_eq!(b.current_url().await.unwrap().path(), "/account");

    // The strict CSP did not block the page's own stylesheet, nor its script (which sent
    // the browser's time zone).
    let styled = b
        .execute(
            "return getComputedStyle(document.querySelector('.panel')).borderRadius",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(styled.as_str(), Some("12px"));
    // The session cookie is invisible to scripts (HttpOnly).
    let cookies = b.execute("return document.cookie", vec![]).await.unwrap();
    assert!(!cookies.as_str().unwrap_or("").contains("gotthard_session"));
    assert!(
        cookies.as_str().unwrap_or("").contains("gotthard_tz="),
        "{cookies:?}"
    );
    b.close().await.unwrap();
}

pub(crate) async fn type_into(b: &fantoccini::Client, id: &str, keys: &str) {
    let field = b.find(Locator::Id(id)).await.unwrap();
    field.send_keys(keys).await.unwrap();
}

/// Clicks the button `id` and waits for the element `then` of the next page.
pub(crate) async fn submit_and_wait(b: &fantoccini::Client, id: &str, then: &str) {
    b.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait().for_element(Locator::Id(then)).await.unwrap();
}

pub(crate) async fn text(b: &fantoccini::Client, id: &str) -> String {
    b.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn a_device_signed_out_from_another_is_signed_out_on_reload() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let db = sqlite_db();
    let app = TestApp::start(&db).await;
    app.create_user("ada@example.com", PASSWORD).await;
    let (profile_a, profile_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = browser(&driver, profile_a.path()).await;
    let b = browser(&driver, profile_b.path()).await;
    for device in [&a, &b] {
        device.goto(&app.url("/login")).await.unwrap();
        type_into(device, "email", "ada@example.com").await;
        type_into(device, "password", PASSWORD).await;
        submit_and_wait(device, "login-submit", "account-email").await;
    }

    // From A's "Account access" page, sign B out.
    a.goto(&app.url("/account/sessions")).await.unwrap();
    let others = a
        .find_all(Locator::Css("li.session form button"))
        .await
        .unwrap();
    assert_eq!(others.len(), 1, "one other device listed");
    others[0].clone().click().await.unwrap();
    a.wait()
        .for_element(Locator::Id("sessions-notice"))
        .await
        .unwrap();
    assert_eq!(
        a.find_all(Locator::Css("li.session")).await.unwrap().len(),
        1
    );

    // B reloads: it is at the login form. A is still signed in.
    b.refresh().await.unwrap();
    b.wait()
        .for_element(Locator::Id("login-submit"))
        .await
        .unwrap();
    assert_eq!(b.current_url().await.unwrap().path(), "/login");
    a.goto(&app.url("/account")).await.unwrap();
    assert_eq!(text(&a, "account-email").await, "ada@example.com");
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn sign_in_with_sso_through_the_entra_double_in_chromium() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let db = sqlite_db();
    let entra = crate::entra::Entra::start().await;
    let app = TestApp::start(&db).await;
    let now = app.state.clock.now();
    let org = app.state.orgs.create("Contoso", now).await.unwrap();
    let settings = entra.settings(&["contoso.example"]);
    app.set_sso(org.id, settings).await;
    app.verify_domain(org.id, "contoso.example").await;
    entra.add_user("ada@contoso.example", Some("ada@contoso.example"), "Ada");
    let profile = tempfile::tempdir().unwrap();
    let b = browser(&driver, profile.path()).await;

    b.goto(&app.url("/login")).await.unwrap();
    submit_and_wait(&b, "sso-button", "sso-email").await;
    type_into(&b, "sso-email", "ada@contoso.example").await;
    // The hop page refreshes to the tenant's sign-in page by itself.
    submit_and_wait(&b, "sso-submit", "entra-submit").await;
    let at_entra = b.current_url().await.unwrap();
    assert_eq!(
        at_entra.path(),
        format!("/{}/oauth2/v2.0/authorize", entra.tenant)
    );
    let hinted = b
        .find(Locator::Id("entra-username"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(hinted.as_deref(), Some("ada@contoso.example"));
    submit_and_wait(&b, "entra-submit", "account-email").await;
    assert_eq!(b.current_url().await.unwrap().path(), "/account");
    assert_eq!(text(&b, "account-email").await, "ada@contoso.example");
    b.close().await.unwrap();
}
