//! Avatars over HTTP, on SQLite and PostgreSQL: the upload API and its refusals (format by
//! the bytes, decompression bombs, size), the served images (headers, no metadata, exact
//! sizes), the initials image, the profile page's forms and the OIDC `picture` claim.

use std::time::{Duration, Instant};

use base64::Engine;
use image::ImageFormat;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{PASSWORD, TestApp, databases};

mod fixtures;

use fixtures::{
    BLUE, MARKER, RED, contains, encode, encode_gif, gradient, jpeg_bomb, jpeg_markers,
    jpeg_with_exif, multipart, near, png_bomb,
};

const SIZES: [u32; 4] = [64, 128, 256, 512];

async fn put_avatar(
    app: &TestApp,
    client: &reqwest::Client,
    csrf: &str,
    body: Vec<u8>,
    content_type: &str,
) -> (StatusCode, Value) {
    let response = client
        .put(app.url("/api/v1/me/avatar"))
        .header("x-csrf-token", csrf)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn picture_of_me(app: &TestApp, client: &reqwest::Client) -> String {
    let me: Value = client
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["picture"].as_str().unwrap().to_string()
}

/// Fetches a served picture without cookies; checks the headers every one carries.
async fn fetch_picture(url: &str, media_type: &str) -> Vec<u8> {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(header("content-type").as_deref(), Some(media_type));
    assert_eq!(
        header("cache-control").as_deref(),
        Some("public, max-age=31536000, immutable"),
        "the immutable caching wins over the global no-store"
    );
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(
        header("content-security-policy").as_deref(),
        Some("default-src 'none'")
    );
    assert_eq!(
        header("cross-origin-resource-policy").as_deref(),
        Some("cross-origin")
    );
    assert!(header("etag").is_some());
    assert!(header("set-cookie").is_none());
    response.bytes().await.unwrap().to_vec()
}

fn decoded_side(bytes: &[u8], format: ImageFormat) -> (u32, u32) {
    let picture = image::load_from_memory_with_format(bytes, format).unwrap();
    (picture.width(), picture.height())
}

async fn actions(app: &TestApp, email: &str) -> Vec<Value> {
    let user = app.state.store.user_by_email(email).await.unwrap().unwrap();
    app.state
        .store
        .recent_events(user.id, 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "profile.changed")
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect()
}

#[tokio::test]
async fn an_uploaded_jpeg_loses_its_exif_and_gps_and_is_served_at_every_size() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let (client, csrf) = app.signed_in("ada@example.com").await;
        let initials = picture_of_me(&app, &client).await;
        assert!(
            initials.starts_with(&app.url("/avatars/initials/TU/")),
            "{initials} ({})",
            db.backend
        );

        let original = jpeg_with_exif();
        assert!(contains(&original, MARKER) && contains(&original, b"Exif\0\0"));
        // The declared type is ignored: the bytes decide.
        let (status, body) = put_avatar(&app, &client, &csrf, original, "text/plain").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let picture = body["picture"].as_str().unwrap().to_string();
        assert!(picture.starts_with(&app.url("/avatars/")), "{picture}");
        assert!(picture.ends_with("/256") && !picture.contains("/initials/"));
        // 200 pixels high: kept, with the warning.
        assert!(body["warning"].as_str().unwrap().contains("210"));
        assert_eq!(picture_of_me(&app, &client).await, picture);

        for size in SIZES {
            let url = picture.replace("/256", &format!("/{size}"));
            let served = fetch_picture(&url, "image/jpeg").await;
            assert!(!contains(&served, MARKER), "{size}: the marker is gone");
            assert!(!contains(&served, b"Exif"), "{size}: no EXIF");
            assert!(
                !jpeg_markers(&served).contains(&0xE1),
                "{size}: no APP1 segment: {:x?}",
                jpeg_markers(&served)
            );
            assert_eq!(decoded_side(&served, ImageFormat::Jpeg), (size, size));
            // Turned upright before the EXIF went: the left (red) half is now on top.
            let upright = image::load_from_memory(&served).unwrap().to_rgb8();
            let (top, bottom) = (
                upright.get_pixel(size / 2, size / 8),
                upright.get_pixel(size / 2, size * 7 / 8),
            );
            assert!(
                near(top.0, RED) && near(bottom.0, BLUE),
                "{size}: {top:?} {bottom:?}"
            );
        }
        // Cookies of a signed-in browser change nothing: none is set.
        let with_cookies = client.get(&picture).send().await.unwrap();
        assert_eq!(with_cookies.status(), StatusCode::OK);
        assert!(with_cookies.headers().get("set-cookie").is_none());
        // A cached copy is confirmed without a body.
        let etag = with_cookies.headers()["etag"].clone();
        let again = reqwest::Client::new()
            .get(&picture)
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        // A new upload has a new URL; the old one is gone.
        let (status, body) = put_avatar(
            &app,
            &client,
            &csrf,
            encode(gradient(400, 300), ImageFormat::WebP),
            "image/webp",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("warning").is_none(), "{body}");
        let second = body["picture"].as_str().unwrap().to_string();
        assert_ne!(second, picture);
        let old = reqwest::get(&picture).await.unwrap();
        assert_eq!(old.status(), StatusCode::NOT_FOUND);
        fetch_picture(&second, "image/jpeg").await;

        // Removing it brings the initials back, served as an image too.
        let removed = client
            .delete(app.url("/api/v1/me/avatar"))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        assert_eq!(picture_of_me(&app, &client).await, initials);
        let png = fetch_picture(&initials, "image/png").await;
        assert_eq!(decoded_side(&png, ImageFormat::Png), (256, 256));
        assert_eq!(
            reqwest::get(&second).await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        let events = actions(&app, "ada@example.com").await;
        let how: Vec<&str> = events
            .iter()
            .map(|e| e["avatar"].as_str().unwrap())
            .collect();
        assert_eq!(how, ["removed", "uploaded", "uploaded"], "{events:?}");
        assert!(
            events
                .iter()
                .all(|e| e["fields"] == serde_json::json!(["avatar"]))
        );
    }
}

#[tokio::test]
async fn a_header_claiming_a_huge_image_is_refused_fast_and_the_server_keeps_serving() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let (client, csrf) = app.signed_in("ada@example.com").await;
        for (bomb, what) in [(png_bomb(), "png"), (jpeg_bomb(), "jpeg")] {
            assert!(bomb.len() < 1024, "{what}: a tiny file");
            let started = Instant::now();
            let (status, body) = put_avatar(&app, &client, &csrf, bomb, "image/png").await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {body}");
            assert!(body["detail"].as_str().unwrap().contains("8192"), "{body}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{what}: answered in {:?}",
                started.elapsed()
            );
            // The server still answers, right away.
            let health = reqwest::get(app.url("/healthz")).await.unwrap();
            assert_eq!(health.status(), StatusCode::OK);
            assert!(picture_of_me(&app, &client).await.contains("/initials/"));
        }
        // And still takes a real picture.
        let (status, body) = put_avatar(
            &app,
            &client,
            &csrf,
            encode(gradient(100, 100), ImageFormat::Png),
            "image/png",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["warning"].is_string(), "100 px is small: {body}");
        let picture = body["picture"].as_str().unwrap().replace("/256", "/512");
        let served = fetch_picture(&picture, "image/jpeg").await;
        assert_eq!(decoded_side(&served, ImageFormat::Jpeg), (512, 512));
        assert_eq!(db.count("avatars").await, 1, "{}", db.backend);
    }
}

#[tokio::test]
async fn what_is_not_a_png_jpeg_or_webp_is_refused() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let (client, csrf) = app.signed_in("ada@example.com").await;
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>"#;
        let html = b"<!doctype html><html><script>alert(document.cookie)</script></html>";
        let gif = encode_gif();
        let png = encode(gradient(300, 300), ImageFormat::Png);
        let truncated = png[..png.len() / 2].to_vec();
        let cases: [(Vec<u8>, &str, StatusCode); 6] = [
            (
                svg.to_vec(),
                "image/svg+xml",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                html.to_vec(),
                "image/png",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (gif, "image/gif", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (Vec::new(), "image/png", StatusCode::UNPROCESSABLE_ENTITY),
            (truncated, "image/png", StatusCode::UNPROCESSABLE_ENTITY),
            (
                vec![0xFF; 6 * 1024 * 1024],
                "image/jpeg",
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
        ];
        for (body, content_type, expected) in cases {
            let len = body.len();
            let (status, problem) = put_avatar(&app, &client, &csrf, body, content_type).await;
            assert_eq!(status, expected, "{content_type} of {len} bytes: {problem}");
            assert_eq!(problem["status"], expected.as_u16(), "a problem document");
        }
        // Cookie-authenticated writes need the CSRF token; anonymous ones a session.
        let png = encode(gradient(300, 300), ImageFormat::Png);
        let (status, _) = put_avatar(&app, &client, "forged", png.clone(), "image/png").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let anonymous = reqwest::Client::new();
        let (status, _) = put_avatar(&app, &anonymous, &csrf, png, "image/png").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let removed = client
            .delete(app.url("/api/v1/me/avatar"))
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), StatusCode::FORBIDDEN);
        assert_eq!(db.count("avatars").await, 0, "{}", db.backend);
        assert!(actions(&app, "ada@example.com").await.is_empty());
        assert!(picture_of_me(&app, &client).await.contains("/initials/"));
    }
}

#[tokio::test]
async fn served_urls_outside_what_exists_are_not_found() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        for path in [
            "/avatars/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/256",
            "/avatars/short/256",
            "/avatars/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/100",
            "/avatars/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/x",
            "/avatars/initials/abc/0/64",
            "/avatars/initials/ABC/0/64",
            "/avatars/initials/a/0/64",
            "/avatars/initials/A/12/64",
            "/avatars/initials/A/0/100",
            "/avatars/initials/%3Cb%3E/0/64",
            "/avatars/initials/%E5%B1%B1/0/64",
            "/avatars/initials/A/-1/64",
        ] {
            let response = reqwest::get(app.url(path)).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        }
        for (path, side) in [
            ("/avatars/initials/A/0/64", 64),
            ("/avatars/initials/%C3%89%C5%BB/11/512", 512),
            ("/avatars/initials/%3F/5/128", 128),
        ] {
            let png = fetch_picture(&app.url(path), "image/png").await;
            assert_eq!(decoded_side(&png, ImageFormat::Png), (side, side), "{path}");
        }
    }
}

async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    csrf: &str,
    filename: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let (content_type, body) = multipart(&[("csrf", csrf)], ("avatar", filename, bytes));
    client
        .post(app.url("/account/avatar"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn location(response: &reqwest::Response) -> &str {
    response.headers()["location"].to_str().unwrap()
}

#[tokio::test]
async fn the_profile_forms_upload_and_remove_the_avatar() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let browser = app.client();
        let signed_in = app.login(&browser, "ada@example.com", PASSWORD).await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        let csrf = app.csrf_from(&browser, "/account/security").await;
        let png = encode(gradient(320, 240), ImageFormat::Png);

        let forged = post_form(&app, &browser, "forged", "me.png", &png).await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "{}", db.backend);
        let html = b"<html><body onload=alert(1)></body></html>";
        let refused = post_form(&app, &browser, &csrf, "avatar.png", html).await;
        assert_eq!(refused.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            location(&refused),
            "/account/profile?avatar_error=unsupported"
        );
        let empty = post_form(&app, &browser, &csrf, "", b"").await;
        assert_eq!(location(&empty), "/account/profile?avatar_error=empty");
        let bomb = post_form(&app, &browser, &csrf, "bomb.png", &png_bomb()).await;
        assert_eq!(
            location(&bomb),
            "/account/profile?avatar_error=too_many_pixels"
        );
        let big = post_form(&app, &browser, &csrf, "big.png", &vec![0; 6 << 20]).await;
        assert_eq!(
            location(&big),
            "/account/profile?avatar_error=file_too_large"
        );
        assert!(picture_of_me(&app, &browser).await.contains("/initials/"));

        let uploaded = post_form(&app, &browser, &csrf, "me.png", &png).await;
        assert_eq!(uploaded.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&uploaded), "/account/profile?avatar=uploaded");
        let picture = picture_of_me(&app, &browser).await;
        assert!(!picture.contains("/initials/"), "{picture}");
        let served = fetch_picture(&picture, "image/jpeg").await;
        assert_eq!(decoded_side(&served, ImageFormat::Jpeg), (256, 256));
        let small = encode(gradient(150, 150), ImageFormat::Png);
        let uploaded = post_form(&app, &browser, &csrf, "small.png", &small).await;
        assert_eq!(location(&uploaded), "/account/profile?avatar=small");

        let forged = browser
            .post(app.url("/account/avatar/delete"))
            .form(&[("csrf", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        let removed = browser
            .post(app.url("/account/avatar/delete"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&removed), "/account/profile?avatar=removed");
        assert!(picture_of_me(&app, &browser).await.contains("/initials/"));
        assert_eq!(db.count("avatars").await, 0);

        // Deleting the account deletes its avatar.
        let uploaded = post_form(&app, &browser, &csrf, "me.png", &png).await;
        assert_eq!(location(&uploaded), "/account/profile?avatar=uploaded");
        let picture = picture_of_me(&app, &browser).await;
        let api_csrf = app.api_csrf(&browser).await;
        let deleted = browser
            .delete(app.url("/api/v1/me"))
            .header("x-csrf-token", api_csrf)
            .json(&serde_json::json!({ "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        assert_eq!(db.count("avatars").await, 0, "{}", db.backend);
        assert_eq!(
            reqwest::get(&picture).await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }
}

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// Tokens of a first-party client for the signed-in `browser`, by the code flow.
async fn tokens(app: &TestApp, browser: &reqwest::Client, scope: &str) -> Value {
    let (client, secret) = app.register_client("Webmail", REDIRECT, |_| {}).await;
    let mut authorize = url::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "s1")
        .append_pair("nonce", "n1");
    let back = browser.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let back = url::Url::parse(location(&back)).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let response = reqwest::Client::new()
        .post(app.url("/oauth2/token"))
        .basic_auth(&client.id, secret)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn userinfo(app: &TestApp, token: &str) -> Value {
    reqwest::Client::new()
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_picture_claim_follows_the_avatar_and_bearer_writes_need_account_write() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let (browser, _) = app.signed_in("ada@example.com").await;
        let granted = tokens(&app, &browser, "openid profile account:write").await;
        let access = granted["access_token"].as_str().unwrap();
        let claims = userinfo(&app, access).await;
        let initials = claims["picture"].as_str().unwrap().to_string();
        assert!(
            initials.starts_with(&format!("{}/avatars/initials/", app.base)),
            "{claims} ({})",
            db.backend
        );
        // The ID token carries it too.
        let id_token = granted["id_token"].as_str().unwrap();
        let payload = id_token.split('.').nth(1).unwrap();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let id: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(id["picture"], initials.as_str());

        let set = reqwest::Client::new()
            .put(app.url("/api/v1/me/avatar"))
            .bearer_auth(access)
            .body(encode(gradient(256, 256), ImageFormat::Png))
            .send()
            .await
            .unwrap();
        assert_eq!(set.status(), StatusCode::OK);
        let picture = set.json::<Value>().await.unwrap()["picture"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(userinfo(&app, access).await["picture"], picture.as_str());
        fetch_picture(&picture, "image/jpeg").await;

        // Without `profile`, no picture; with `account:read` only, no change.
        let reader = tokens(&app, &browser, "openid account:read").await;
        let reader = reader["access_token"].as_str().unwrap();
        assert!(userinfo(&app, reader).await.get("picture").is_none());
        let refused = reqwest::Client::new()
            .delete(app.url("/api/v1/me/avatar"))
            .bearer_auth(reader)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let removed = reqwest::Client::new()
            .delete(app.url("/api/v1/me/avatar"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        assert_eq!(userinfo(&app, access).await["picture"], initials.as_str());
    }
}

/// Decoding never takes more threads than allowed: past them an upload is answered busy
/// (which the API maps to 503 with `Retry-After`) instead of queueing without bound.
#[tokio::test]
async fn uploads_beyond_the_decoding_threads_are_refused_as_busy() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let user = app.create_user("ada@example.com", PASSWORD).await;
        let avatars = gotthard::avatars::Avatars::new(app.state.store.clone(), &app.base, 1)
            .unwrap()
            .with_decode_wait(Duration::ZERO);
        let big: bytes::Bytes = encode(gradient(1100, 1100), ImageFormat::Png).into();
        assert!(big.len() < gotthard::avatars::MAX_UPLOAD_BYTES);
        let cli = gotthard::audit::ClientInfo::new("127.0.0.1", "test");
        let now = app.state.clock.now();
        let (first, second) = tokio::join!(
            avatars.upload(&user, big.clone(), &cli, now),
            avatars.upload(&user, big.clone(), &cli, now),
        );
        let busy = [&first, &second]
            .iter()
            .filter(|r| matches!(r, Err(gotthard::avatars::AvatarError::Busy)))
            .count();
        assert_eq!(busy, 1, "{first:?} {second:?} ({})", db.backend);
        assert!(first.is_ok() || second.is_ok());
        // Once the thread is free, the next upload goes through.
        assert!(avatars.upload(&user, big, &cli, now).await.is_ok());
    }
}
