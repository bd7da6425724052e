//! Password login, sessions and logout over real HTTP, on every backend.

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::support::{PASSWORD, TestApp, databases, set_cookie, text_of};

#[tokio::test]
async fn right_password_signs_in_with_a_hardened_fresh_session() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("Ada@Example.COM", PASSWORD).await;
        let client = app.client();
        // A session id planted before login (fixation) must not survive it.
        let planted = "A".repeat(43);
        let _ = client
            .get(app.url("/login"))
            .header("cookie", format!("gotthard_session={planted}"))
            .send()
            .await
            .unwrap();

        let response = app.login(&client, " ada@EXAMPLE.com ", PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", db.backend);
        assert_eq!(response.headers()["location"], "/account");
        let cookie = set_cookie(&response, "gotthard_session")
            .unwrap()
            .to_string();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(cookie.contains("Path=/"), "{cookie}");
        assert!(!cookie.contains("Secure"), "http issuer: no Secure flag");
        let value = cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("gotthard_session=");
        assert_eq!(value.len(), 43, "256 random bits, base64url");
        assert_ne!(value, planted);

        // Only the SHA-256 digest of the cookie is stored.
        let digests = db.session_digests().await;
        assert_eq!(digests, vec![Sha256::digest(value.as_bytes()).to_vec()]);

        let account = client.get(app.url("/account")).send().await.unwrap();
        assert_eq!(account.status(), StatusCode::OK);
        let html = account.text().await.unwrap();
        assert_eq!(text_of(&html, "#account-email").unwrap(), "Ada@example.com");
        let activity = client
            .get(app.url("/account/activity"))
            .send()
            .await
            .unwrap();
        let html = activity.text().await.unwrap();
        assert!(
            html.contains(r#"data-action="login.succeeded""#),
            "activity shows the login"
        );

        // A second login gets a different session id.
        let second = app.login(&app.client(), "Ada@example.com", PASSWORD).await;
        let other = set_cookie(&second, "gotthard_session").unwrap();
        assert!(!other.contains(value));
        assert_eq!(db.count("sessions").await, 2);
    }
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let user = app.create_user("ada@example.com", PASSWORD).await;

        let wrong = app
            .login(&app.client(), "ada@example.com", "not-the-password")
            .await;
        let wrong_status = wrong.status();
        let wrong_html = wrong.text().await.unwrap();
        let unknown = app
            .login(&app.client(), "nobody@example.com", "not-the-password")
            .await;
        let unknown_status = unknown.status();
        let unknown_html = unknown.text().await.unwrap();

        assert_eq!(wrong_status, StatusCode::UNAUTHORIZED, "{}", db.backend);
        assert_eq!(unknown_status, wrong_status);
        let message = text_of(&wrong_html, "#login-error").unwrap();
        assert_eq!(message, "Wrong e-mail address or password.");
        assert_eq!(text_of(&unknown_html, "#login-error").unwrap(), message);

        assert_eq!(db.count("sessions").await, 0);
        let events = app.state.store.recent_events(user.id, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, "login.failed");
        assert!(events[0].details.contains("wrong_password"));
        assert!(
            !events[0].details.contains("not-the-password"),
            "no secrets in events"
        );
        // The unknown address's attempt is recorded too, without the address typed.
        assert_eq!(
            db.count(
                "activity_events WHERE user_id IS NULL AND details LIKE '%unknown_account%' \
                      AND details NOT LIKE '%nobody%'"
            )
            .await,
            1
        );
    }
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let user = app.create_user("ada@example.com", PASSWORD).await;
        let client = app.client();
        app.login(&client, "ada@example.com", PASSWORD).await;
        let stolen = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let session_cookie = db.session_digests().await;
        assert_eq!(session_cookie.len(), 1);

        // Logout without the CSRF token is refused and ends nothing.
        let refused = client
            .post(app.url("/logout"))
            .form(&[("csrf", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{}", db.backend);
        assert_eq!(
            client
                .get(app.url("/account"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );

        let csrf = app.csrf_from(&client, "/account").await;
        let out = client
            .post(app.url("/logout"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), StatusCode::SEE_OTHER);
        assert_eq!(out.headers()["location"], "/login");
        let after = client.get(app.url("/account")).send().await.unwrap();
        assert_eq!(after.status(), StatusCode::SEE_OTHER);
        assert_eq!(after.headers()["location"], "/login");
        let anonymous = stolen.get(app.url("/account")).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);

        let actions: Vec<_> = app
            .state
            .store
            .recent_events(user.id, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["logout", "login.succeeded"]);
    }
}

#[tokio::test]
async fn a_replayed_session_cookie_is_refused_after_logout() {
    let db = crate::support::sqlite_db();
    let app = TestApp::start(&db).await;
    app.create_user("ada@example.com", PASSWORD).await;
    let client = app.client();
    let response = app.login(&client, "ada@example.com", PASSWORD).await;
    let cookie = set_cookie(&response, "gotthard_session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = app.csrf_from(&client, "/account").await;
    client
        .post(app.url("/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/account"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_writes_nothing() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let client = app.client();
        let csrf = app.csrf_from(&client, "/login").await;
        let events_before = db.count("activity_events").await;

        let post = |body: Vec<u8>, content_type: &'static str| {
            client
                .post(app.url("/login"))
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        let form = "application/x-www-form-urlencoded";

        // Raw bytes that are not UTF-8.
        let mut body = format!("csrf={csrf}&email=ada%40example.com&password=").into_bytes();
        body.extend_from_slice(&[0xff, 0xfe, 0xfd]);
        let r = post(body, form).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{}", db.backend);
        assert_eq!(
            text_of(&r.text().await.unwrap(), "#message").unwrap(),
            "The form was not sent as valid UTF-8 text."
        );

        // Percent-encoded bytes that are not UTF-8.
        let body = format!("csrf={csrf}&email=ada%40example.com&password=%FF%FE");
        let r = post(body.into_bytes(), form).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        // A 2 MB body.
        let body = format!(
            "csrf={csrf}&email=ada%40example.com&password={}",
            "x".repeat(2 << 20)
        );
        let r = post(body.into_bytes(), form).await.unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            text_of(&r.text().await.unwrap(), "#message").unwrap(),
            "The request is too large."
        );

        // A missing field.
        let r = post(
            format!("csrf={csrf}&email=ada%40example.com").into_bytes(),
            form,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            text_of(&r.text().await.unwrap(), "#message")
                .unwrap()
                .contains("incomplete or malformed")
        );

        // A 10 000-character e-mail.
        let body = format!(
            "csrf={csrf}&email={}%40example.com&password=x",
            "a".repeat(10_000)
        );
        let r = post(body.into_bytes(), form).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            text_of(&r.text().await.unwrap(), "#login-error").unwrap(),
            "This e-mail address is too long."
        );

        // Not a form at all.
        let r = post(b"{\"email\":\"x\"}".to_vec(), "application/json")
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

        // A missing or forged CSRF token, even with the right password.
        let r = post(
            b"email=ada%40example.com&password=granite-otter-lantern".to_vec(),
            form,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(
            text_of(&r.text().await.unwrap(), "#message")
                .unwrap()
                .contains("form has expired")
        );
        let other = app.client();
        let foreign = app.csrf_from(&other, "/login").await;
        let body = format!("csrf={foreign}&email=ada%40example.com&password={PASSWORD}");
        let r = post(body.into_bytes(), form).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "a token of another browser"
        );

        assert_eq!(db.count("sessions").await, 0, "{}", db.backend);
        assert_eq!(db.count("activity_events").await, events_before);
    }
}

#[tokio::test]
async fn a_changed_argon2_parameter_rehashes_at_the_next_login() {
    for db in databases().await {
        let before = {
            let app = TestApp::start(&db).await;
            app.create_user("ada@example.com", PASSWORD).await;
            db.password_hash("ada@example.com").await
        };
        assert!(
            before.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{before}"
        );

        let app = TestApp::start_with(&db, &[("password.memory_kib", "24576")]).await;
        let wrong = app
            .login(&app.client(), "ada@example.com", "wrong-password!")
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            db.password_hash("ada@example.com").await,
            before,
            "no rehash on failure"
        );

        let ok = app.login(&app.client(), "ada@example.com", PASSWORD).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER, "{}", db.backend);
        let after = db.password_hash("ada@example.com").await;
        assert!(
            after.starts_with("$argon2id$v=19$m=24576,t=2,p=1$"),
            "{after}"
        );
        // And the new hash still verifies.
        let again = app.login(&app.client(), "ada@example.com", PASSWORD).await;
        assert_eq!(again.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn pages_speak_the_browsers_language() {
    let db = crate::support::sqlite_db();
    let app = TestApp::start(&db).await;
    app.create_user("ada@example.com", PASSWORD).await;
    for (lang, title, error) in [
        (
            "es-ES,es;q=0.9",
            "Iniciar sesión",
            "Correo electrónico o contraseña incorrectos.",
        ),
        (
            "fr-CH, fr;q=0.9",
            "Connexion",
            "Adresse e-mail ou mot de passe incorrect.",
        ),
        ("de-DE", "Sign in", "Wrong e-mail address or password."),
    ] {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(
                [(reqwest::header::ACCEPT_LANGUAGE, lang.parse().unwrap())]
                    .into_iter()
                    .collect(),
            )
            .build()
            .unwrap();
        let html = client
            .get(app.url("/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text_of(&html, "h1").unwrap(), title, "{lang}");
        let failed = app
            .login(&client, "ada@example.com", "wrong-password!")
            .await;
        let html = failed.text().await.unwrap();
        assert_eq!(text_of(&html, "#login-error").unwrap(), error, "{lang}");
    }
}

#[tokio::test]
async fn https_issuer_gets_host_prefixed_secure_cookies_and_hsts() {
    let db = crate::support::sqlite_db();
    let app = TestApp::start_with(&db, &[("issuer", "https://login.example.com")]).await;
    app.create_user("ada@example.com", PASSWORD).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(app.url("/login")).send().await.unwrap();
    assert!(
        page.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    let csrf_cookie = set_cookie(&page, "__Host-gotthard_csrf")
        .unwrap()
        .to_string();
    assert!(csrf_cookie.contains("Secure") && csrf_cookie.contains("Path=/"));
    let csrf = crate::support::hidden_field(&page.text().await.unwrap(), "csrf");
    // Over plain http a browser would not send a Secure cookie back; send it by hand.
    let jar_value = csrf_cookie.split(';').next().unwrap().to_string();
    let response = client
        .post(app.url("/login"))
        .header("cookie", jar_value)
        .form(&[
            ("email", "ada@example.com"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&response, "__Host-gotthard_session").unwrap();
    assert!(
        session.contains("Secure") && session.contains("HttpOnly"),
        "{session}"
    );
    assert!(
        !session.contains("Domain="),
        "__Host- cookies have no Domain"
    );
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_with_retry_after_not_a_pile_up() {
    let db = crate::support::sqlite_db();
    let app = TestApp::start_with(
        &db,
        &[
            ("password.hash_threads", "1"),
            ("password.queue_limit", "1"),
        ],
    )
    .await;
    app.create_user("ada@example.com", PASSWORD).await;
    let client = app.client();
    let csrf = app.csrf_from(&client, "/login").await;
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let request = client.post(app.url("/login")).form(&[
            ("email", "ada@example.com"),
            ("password", "wrong-password!"),
            ("csrf", &csrf),
        ]);
        attempts.spawn(request.send());
    }
    let mut refused = 0;
    let mut checked = 0;
    while let Some(response) = attempts.join_next().await {
        let response = response.unwrap().unwrap();
        match response.status() {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()["retry-after"], "2");
                refused += 1;
            }
            StatusCode::UNAUTHORIZED => checked += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 0, "a bounded queue refuses the excess");
    assert!(checked > 0, "and still checks what fits");
    let user = app
        .state
        .store
        .user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    let failures = app
        .state
        .store
        .recent_events(user.id, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "login.failed")
        .count();
    assert_eq!(failures, checked, "one event per checked attempt");
    // Refused attempts were not checked, so they do not count towards the lockout.
    assert!(
        user.failed_attempts as usize <= checked,
        "{} > {checked}",
        user.failed_attempts
    );
}

#[tokio::test]
async fn a_burst_over_the_limit_gets_429_and_other_clients_do_not() {
    let db = crate::support::sqlite_db();
    let limits = [
        ("rate_limit.sign_in_per_minute", "3"),
        ("rate_limit.sign_in_burst", "3"),
    ];
    let mut behind_proxy = limits.to_vec();
    behind_proxy.push(("http.trusted_proxies", "[\"127.0.0.1\"]"));
    let app = TestApp::start_with(&db, &behind_proxy).await;
    let user = app.create_user("ada@example.com", PASSWORD).await;
    let client = app.client();
    let csrf = app.csrf_from(&client, "/login").await;
    let attempt = |from: &'static str| {
        client
            .post(app.url("/login"))
            .header("x-forwarded-for", from)
            .form(&[
                ("email", "ada@example.com"),
                ("password", "wrong-password!"),
                ("csrf", &csrf),
            ])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("203.0.113.5").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = attempt("203.0.113.5").await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    assert!(
        text_of(&limited.text().await.unwrap(), "#message")
            .unwrap()
            .contains("Too many attempts")
    );
    assert_eq!(
        attempt("198.51.100.7").await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "another client is not limited"
    );
    let events = app.state.store.recent_events(user.id, 10).await.unwrap();
    assert_eq!(events.len(), 4, "the refused post checked nothing");
    assert!(
        events.iter().any(|e| e.ip == "203.0.113.5"),
        "the client's address, from the trusted proxy"
    );

    // Without a trusted proxy, X-Forwarded-For is the client's own claim and is ignored.
    let db = crate::support::sqlite_db();
    let app = TestApp::start_with(&db, &limits).await;
    app.create_user("ada@example.com", PASSWORD).await;
    let client = app.client();
    let csrf = app.csrf_from(&client, "/login").await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = client
            .post(app.url("/login"))
            .header("x-forwarded-for", format!("192.0.2.{i}"))
            .form(&[
                ("email", "ada@example.com"),
                ("password", "wrong-password!"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
}

#[tokio::test]
async fn ipv6_clients_count_per_64_and_another_64_is_not_limited() {
    for db in databases().await {
        let app = TestApp::start_with(
            &db,
            &[
                ("rate_limit.sign_in_per_minute", "3"),
                ("rate_limit.sign_in_burst", "3"),
                ("http.trusted_proxies", "[\"127.0.0.1\"]"),
            ],
        )
        .await;
        app.create_user("ada@example.com", PASSWORD).await;
        let client = app.client();
        let csrf = app.csrf_from(&client, "/login").await;
        let attempt = |from: String| {
            client
                .post(app.url("/login"))
                .header("x-forwarded-for", from)
                .form(&[
                    ("email", "ada@example.com"),
                    ("password", "wrong-password!"),
                    ("csrf", &csrf),
                ])
                .send()
        };
        // One host rotating through the addresses of its /64: one budget.
        let mut statuses = Vec::new();
        for low in [
            ":1",
            "dead:beef:0:1",
            "ffff:ffff:ffff:fffe",
            "abcd::42",
            ":7",
        ] {
            let from = format!("2001:db8:77:5:{low}");
            statuses.push(attempt(from).await.unwrap().status().as_u16());
        }
        assert_eq!(statuses, [401, 401, 401, 429, 429], "{}", db.backend);
        assert_eq!(
            attempt("2001:db8:77:6::1".to_string())
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED,
            "{}: another /64 is another client",
            db.backend
        );
    }
}

#[tokio::test]
async fn a_malformed_next_is_refused_before_anything_is_written() {
    const REDIRECT: &str = "http://127.0.0.1:9/callback";
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let (client, _) = app.register_client("Webmail", REDIRECT, |_| {}).await;
        let authorize = |state: &str| {
            format!(
                "/oauth2/authorize?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("response_type", "code")
                    .append_pair("client_id", &client.id)
                    .append_pair("redirect_uri", REDIRECT)
                    .append_pair("scope", "openid")
                    .finish()
            ) + "&state="
                + state
        };
        let malformed = [
            // A valid authorization request but for a raw control character (sent as %01 in
            // the form body): once the cause of a 500 after the session was created.
            authorize("a\u{1}b"),
            authorize("a\u{7f}b"),
            authorize("a b"),
            "//evil.example/oauth2/authorize".to_string(),
            "/\\evil.example/".to_string(),
            "/login\r\nSet-Cookie: x=1".to_string(),
            "https://evil.example/".to_string(),
            format!("/{}", "a".repeat(9000)),
        ];
        for next in &malformed {
            let browser = app.client();
            let csrf = app.csrf_from(&browser, "/login").await;
            let response = browser
                .post(app.url("/login"))
                .form(&[
                    ("email", "ada@example.com"),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("next", next),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{}: {next:?}",
                db.backend
            );
            assert!(set_cookie(&response, "gotthard_session").is_none());
            assert_eq!(db.count("sessions").await, 0, "{}: {next:?}", db.backend);
            // The forms' own links refuse it too.
            for page in ["/login", "/login/sso"] {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish();
                let shown = browser
                    .get(app.url(&format!("{page}?{query}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(shown.status(), StatusCode::BAD_REQUEST, "{page} {next:?}");
            }
        }
        // The same request without the control character resumes after signing in.
        let browser = app.client();
        let csrf = app.csrf_from(&browser, "/login").await;
        let next = authorize("ab");
        let response = browser
            .post(app.url("/login"))
            .form(&[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("next", &next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", db.backend);
        assert_eq!(response.headers()["location"], next.as_str());
        assert_eq!(db.count("sessions").await, 1);
    }
}
