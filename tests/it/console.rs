//! The account console in headless Chromium (issue 17): the header's menu, the tabs of
//! account access and activity, times in the reader's zone, an accessibility pass with
//! axe-core on every account page, and screenshots of the Spanish pages.

use std::path::PathBuf;

use fantoccini::{Client, Locator};
use gotthard::orgs::OrgRole;

use crate::browser::{browser, start_driver, submit_and_wait, text, type_into};
use crate::support::{PASSWORD, TestApp, require_all, sqlite_db};

/// axe-core's script, installed by `scripts/test` with npm in tests/axe.
fn axe_source() -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/axe/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(_) => {
            assert!(
                !require_all(),
                "GOTTHARD_TEST_REQUIRE_ALL=1 but {} is missing (npm ci in tests/axe)",
                path.display()
            );
            eprintln!("note: axe-core not installed, accessibility pass skipped");
            None
        }
    }
}

/// Runs axe-core on the page and returns its serious and critical violations.
async fn serious_violations(b: &Client, axe: &str) -> Vec<serde_json::Value> {
    b.execute(&format!("{axe}\nreturn true;"), vec![])
        .await
        .unwrap();
    let found = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then(r => done(
               r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.map(n => n.target.join(' ')) }))));",
            vec![],
        )
        .await
        .unwrap();
    found.as_array().cloned().unwrap_or_default()
}

/// Where the test run leaves its screenshots (target/screenshots).
fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(b: &Client, name: &str) {
    let png = b.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(screenshot_dir().join(name), png).unwrap();
}

#[tokio::test]
async fn every_account_page_passes_the_accessibility_check_and_reads_in_spanish() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let axe = axe_source();
    let db = sqlite_db();
    let app = TestApp::start(&db).await;
    let ada = app.create_user("ada@example.com", PASSWORD).await;
    let now = app.state.clock.now();
    let org = app
        .state
        .orgs
        .create("Gotthard Tunnel AG", now)
        .await
        .unwrap();
    app.state
        .orgs
        .add_member(&org.name, &ada.email, OrgRole::LegalRepresentative, now)
        .await
        .unwrap();
    let profile_dir = tempfile::tempdir().unwrap();
    let b = browser(&driver, profile_dir.path()).await;
    b.set_window_size(1280, 900).await.unwrap();

    b.goto(&app.url("/login")).await.unwrap();
    type_into(&b, "email", "ada@example.com").await;
    type_into(&b, "password", PASSWORD).await;
    submit_and_wait(&b, "login-submit", "account-email").await;

    // First and last name, the language and the zone through the profile form.
    b.goto(&app.url("/account/profile")).await.unwrap();
    for (id, value) in [("given_name", "Ada"), ("family_name", "Lovelace")] {
        b.find(Locator::Id(id))
            .await
            .unwrap()
            .clear()
            .await
            .unwrap();
        type_into(&b, id, value).await;
    }
    b.find(Locator::Css("#locale option[value='es']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    submit_and_wait(&b, "profile-submit", "profile-notice").await;
    assert_eq!(
        text(&b, "profile-notice").await,
        "Su perfil se ha guardado."
    );
    assert_eq!(text(&b, "account-name").await, "Ada Lovelace");
    // The header's pill shows the initials' image until a picture is uploaded.
    assert!(pill_src(&b).await.contains("/avatars/initials/AL/"));
    let photo = profile_dir.path().join("portrait.png");
    image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    })
    .save(&photo)
    .unwrap();
    b.find(Locator::Id("avatar"))
        .await
        .unwrap()
        .send_keys(photo.to_str().unwrap())
        .await
        .unwrap();
    submit_and_wait(&b, "avatar-submit", "profile-notice").await;
    let pill = pill_src(&b).await;
    assert!(
        pill.contains("/avatars/") && !pill.contains("/initials/"),
        "{pill}"
    );
    let loaded = b
        .execute(
            "const i = document.getElementById('header-pill'); return i.complete && i.naturalWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        loaded.as_u64(),
        Some(64),
        "the header shows the 64 px picture"
    );
    // Its menu opens on a click.
    b.find(Locator::Css("#user-menu summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(
        b.find(Locator::Id("menu-security"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    // The browser's zone (UTC in this headless Chromium, or the machine's) is named.
    let note = b
        .find(Locator::Css(".zone-note"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(note.starts_with("Horas en "), "{note}");

    // Account access and account activity are two tabs of one page.
    b.goto(&app.url("/account/sessions")).await.unwrap();
    assert_eq!(current_tab(&b).await, "tab-access");
    submit_and_wait(&b, "tab-activity", "activity-table").await;
    assert_eq!(b.current_url().await.unwrap().path(), "/account/activity");
    assert_eq!(current_tab(&b).await, "tab-activity");
    // Recent events read relative, the exact time on hover.
    let first = b.find(Locator::Css("#activity-table time")).await.unwrap();
    let shown = first.text().await.unwrap();
    assert!(
        shown.starts_with("hace ") || shown == "ahora mismo",
        "{shown}"
    );
    let exact = first.attr("title").await.unwrap().unwrap_or_default();
    assert!(exact.contains(&now.year().to_string()), "{exact}");
    screenshot(&b, "activity-es.png").await;
    submit_and_wait(&b, "tab-access", "this-device").await;
    assert_eq!(current_tab(&b).await, "tab-access");

    b.goto(&app.url("/account/profile")).await.unwrap();
    screenshot(&b, "profile-es.png").await;

    // The accessibility pass, on every account page.
    let pages = [
        "/account/profile".to_string(),
        "/account/security".to_string(),
        "/account/security/password".to_string(),
        "/account/sessions".to_string(),
        "/account/activity".to_string(),
        "/account/orgs".to_string(),
        "/account/apps".to_string(),
        format!("/account/orgs/{}/members", org.id),
        format!("/account/orgs/{}/sso", org.id),
    ];
    if let Some(axe) = axe {
        for path in &pages {
            b.goto(&app.url(path)).await.unwrap();
            let found = serious_violations(&b, &axe).await;
            assert!(found.is_empty(), "{path}: {found:#?}");
        }
    }
    b.close().await.unwrap();

    // Every page is small: one stylesheet, no framework.
    let (client, _) = app.signed_in("ada@example.com").await;
    for path in &pages {
        let body = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(body.status(), 200, "{path}");
        let size = body.bytes().await.unwrap().len();
        assert!(size < 100 * 1024, "{path} is {size} bytes");
    }
}

async fn pill_src(b: &Client) -> String {
    b.find(Locator::Id("header-pill"))
        .await
        .unwrap()
        .attr("src")
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn current_tab(b: &Client) -> String {
    b.find(Locator::Css(".tabs a[aria-current='page']"))
        .await
        .unwrap()
        .attr("id")
        .await
        .unwrap()
        .unwrap_or_default()
}
