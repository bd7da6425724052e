//! Hostile input at volume over HTTP (issue 16): proptest-generated form bodies, cookies,
//! CSRF tokens, activity filters and cursors, bearer tokens, client assertions and
//! authorization requests sent to the real endpoints of a real server, on SQLite and
//! PostgreSQL. Every answer is one the endpoint documents — never a 5xx, never a dropped
//! connection:
//!
//! | endpoint | documented answers |
//! | --- | --- |
//! | browser forms | 200 or 303 when done; 400 (not UTF-8, malformed `next`), 401 (wrong credentials), 403 (CSRF), 404 (no SSO for the domain), 410 (link unusable), 413 (too large), 415 (not a form), 422 (missing or mistyped field): pages |
//! | pages with cookies of any shape | 200 for the session's own cookie, 303 to `/login` otherwise |
//! | `/api/v1/me` with cookies or a bearer token of any shape | 200 for the session's own cookie; 401 problem document; 403 for a token without an account scope |
//! | `PATCH /api/v1/me`, `PUT /api/v1/me/security`, `POST /api/v1/me/password` with JSON of any shape | 200; 400, 401, 403 (CSRF, wrong password), 409, 413, 415, 422 (a string holding a NUL among them), 429: problem documents |
//! | `/login/sso/callback` with any query and cookies | 400 page (the sign-in state is unusable) |
//! | `/api/v1/me/activity(.csv)`, `/account/activity` with any filters and `cursor` | 200, or 400 naming the parameter (a problem document from the API) |
//! | `/oauth2/userinfo` with any `Authorization` header or body | 400 `invalid_request`, 401 `invalid_token`, 403 `insufficient_scope`, each with `WWW-Authenticate: Bearer …` |
//! | `/oauth2/introspect` with any `token` | 200 `{"active": false}` to the authenticated client (true for its own live token) |
//! | `/oauth2/token` with any `client_assertion` | 400 `invalid_request` (or another RFC 6749 §5.2 error of the grant), 401 `invalid_client` with `WWW-Authenticate`, 200 for a good one |
//! | `/oauth2/authorize` with any query or body | 400 page, 415 (a POST that is not a form), 303 to the sign-in page or to the client's registered redirect URI, 200 consent page |
//!
//! Each test starts one server per backend and runs `GOTTHARD_HOSTILE_CASES` cases (64 by
//! default) against it; a failing case is shrunk to the smallest input that still fails.

use std::future::Future;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, WWW_AUTHENTICATE};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, TestDb, databases, hidden_field, set_cookie};

fn cases() -> u32 {
    std::env::var("GOTTHARD_HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// Runs `property` for `cases()` inputs from `strategy` against the fixture `setup` makes
/// on each backend (one server per backend, not per case).
fn against_each_backend<S, T, F, Fut, P, PFut>(strategy: S, setup: F, property: P)
where
    S: Strategy,
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = T>,
    P: Fn(&T, S::Value) -> PFut,
    PFut: Future<Output = Result<(), TestCaseError>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for db in rt.block_on(databases()) {
        let backend = db.backend;
        let fixture = rt.block_on(setup(db));
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        });
        let outcome = runner.run(&strategy, |input| rt.block_on(property(&fixture, input)));
        if let Err(failure) = outcome {
            panic!("{backend}: {failure}");
        }
        drop(fixture);
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    content_type: String,
    body: String,
}

async fn send(request: reqwest::RequestBuilder) -> Result<Answer, TestCaseError> {
    let (client, request) = request.build_split();
    // A header no client can send (a control character) never reaches a server.
    let request = request.map_err(|_| TestCaseError::reject("not sendable"))?;
    // A dropped connection (a panic in a handler) fails the case like a 5xx.
    let response = client
        .execute(request)
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
    let status = response.status();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let challenge = header(WWW_AUTHENTICATE);
    let content_type = header(CONTENT_TYPE).unwrap_or_default();
    let body = response
        .text()
        .await
        .map_err(|e| TestCaseError::fail(format!("body cut off: {e}")))?;
    Ok(Answer {
        status,
        challenge,
        content_type,
        body,
    })
}

fn expect(answer: &Answer, documented: &[u16], what: &str) -> Result<(), TestCaseError> {
    if documented.contains(&answer.status.as_u16()) {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "{what}: {} (documented: {documented:?}): {}",
            answer.status,
            answer.body.chars().take(300).collect::<String>()
        )))
    }
}

/// A client that keeps no cookies (each case sends its own) and follows no redirect.
fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value a `Set-Cookie` of the answer gives to `name`.
fn cookie_value(response: &reqwest::Response, name: &str) -> String {
    let header = set_cookie(response, name).unwrap_or_else(|| panic!("no {name} cookie"));
    let pair = header.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_string()
}

/// A fresh browser's CSRF cookie and the form token of the sign-in page.
async fn anonymous_csrf(app: &TestApp) -> (String, String) {
    let response = bare_client().get(app.url("/login")).send().await.unwrap();
    let cookie = cookie_value(&response, "gotthard_csrf");
    let token = hidden_field(&response.text().await.unwrap(), "csrf");
    (cookie, token)
}

/// A signed-in browser: its cookies (`name=value`) and the CSRF token its forms carry.
struct Browser {
    session: String,
    csrf_cookie: String,
    csrf: String,
}

async fn sign_in(app: &TestApp, email: &str) -> Browser {
    app.create_user(email, PASSWORD).await;
    let (csrf_cookie, token) = anonymous_csrf(app).await;
    let csrf_cookie = format!("gotthard_csrf={csrf_cookie}");
    let response = bare_client()
        .post(app.url("/login"))
        .header(COOKIE, &csrf_cookie)
        .form(&[("email", email), ("password", PASSWORD), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let session = format!(
        "gotthard_session={}",
        cookie_value(&response, "gotthard_session")
    );
    let page = bare_client()
        .get(app.url("/account/security"))
        .header(COOKIE, format!("{session}; {csrf_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = hidden_field(&page.text().await.unwrap(), "csrf");
    Browser {
        session,
        csrf_cookie,
        csrf,
    }
}

// ----- what the strategies draw from ------------------------------------------------------

/// Text of every kind: short, long, not ASCII, percent escapes of any byte, and the
/// characters that break stores and parsers (NUL, a lone BOM, right-to-left override).
fn text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        6 => ".{0,30}",
        2 => "(%[0-9A-Fa-f]{2}|[a-z0-9+=&;/?#]){0,40}",
        1 => "[A-Za-z0-9_-]{43}",
        1 => (100usize..9_000).prop_map(|n| "x".repeat(n)),
        1 => (
            ".{0,8}",
            prop::sample::select(vec!["\0", "\u{feff}", "\u{202e}", "\r\n", "\\", "%00"]),
            ".{0,8}",
        )
            .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
    ]
}

/// One value: one of the good ones the server gave out (picked when the case runs), any
/// text, or nothing.
#[derive(Debug, Clone)]
enum Piece {
    Good(Index),
    Any(String),
    Absent,
}

impl Piece {
    fn pick(&self, good: &[String]) -> Option<String> {
        match self {
            Piece::Good(i) if !good.is_empty() => Some(good[i.index(good.len())].clone()),
            Piece::Good(_) | Piece::Absent => None,
            Piece::Any(text) => Some(text.clone()),
        }
    }
}

fn piece() -> impl Strategy<Value = Piece> + Clone {
    prop_oneof![
        3 => any::<Index>().prop_map(Piece::Good),
        2 => text().prop_map(Piece::Any),
        1 => Just(Piece::Absent),
    ]
}

/// A form body: each of the endpoint's fields good, hostile or absent, plus extra pairs;
/// or raw bytes; or a body past the 64 KiB limit.
#[derive(Debug, Clone)]
enum Body {
    Fields(Vec<Piece>, Vec<(String, String)>),
    Raw(Vec<u8>),
    TooLarge,
}

impl Body {
    fn bytes(&self, fields: &[(&str, Vec<String>)]) -> Vec<u8> {
        match self {
            Body::Fields(pieces, extra) => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                for ((name, good), piece) in fields.iter().zip(pieces) {
                    if let Some(value) = piece.pick(good) {
                        form.append_pair(name, &value);
                    }
                }
                for (name, value) in extra {
                    form.append_pair(name, value);
                }
                form.finish().into_bytes()
            }
            Body::Raw(bytes) => bytes.clone(),
            Body::TooLarge => vec![b'a'; 70_000],
        }
    }
}

fn body() -> impl Strategy<Value = Body> + Clone {
    prop_oneof![
        12 => (
            prop::collection::vec(piece(), 8),
            prop::collection::vec((".{0,6}", text()), 0..3),
        )
            .prop_map(|(pieces, extra)| Body::Fields(pieces, extra)),
        2 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Body::Raw),
        2 => "(%[0-9A-Fa-f]{2}|[a-z=&+]){0,80}".prop_map(|s| Body::Raw(s.into_bytes())),
        1 => Just(Body::TooLarge),
    ]
}

/// The `Content-Type` of a form post, right or wrong.
fn content_type() -> impl Strategy<Value = Option<String>> + Clone {
    prop::option::weighted(
        0.9,
        prop_oneof![
            6 => Just("application/x-www-form-urlencoded".to_string()),
            1 => Just("Application/X-WWW-Form-Urlencoded; charset=UTF-8".to_string()),
            1 => Just("application/json".to_string()),
            1 => Just("multipart/form-data; boundary=x".to_string()),
            1 => "[ -~]{0,30}",
        ],
    )
}

/// One cookie of a `Cookie` header: one the server set, one of those with a character
/// changed, or any `name=value`.
#[derive(Debug, Clone)]
enum CookiePiece {
    Real(Index),
    Mangled(Index, Index, char),
    Any(String),
}

fn cookies() -> impl Strategy<Value = Option<Vec<CookiePiece>>> + Clone {
    let one = prop_oneof![
        3 => any::<Index>().prop_map(CookiePiece::Real),
        2 => (any::<Index>(), any::<Index>(), proptest::char::range(' ', '~'))
            .prop_map(|(c, at, ch)| CookiePiece::Mangled(c, at, ch)),
        1 => ("[a-z_-]{1,16}", "[ -:<-~]{0,50}").prop_map(|(n, v)| CookiePiece::Any(format!("{n}={v}"))),
        1 => "(gotthard_session|gotthard_csrf|__Host-gotthard_session)=[A-Za-z0-9_%-]{0,50}"
            .prop_map(CookiePiece::Any),
    ];
    prop::option::weighted(0.9, prop::collection::vec(one, 0..4))
}

/// The `Cookie` header of `pieces`, given the real cookies (`name=value`).
fn cookie_header(pieces: &Option<Vec<CookiePiece>>, real: &[String]) -> Option<String> {
    let pieces = pieces.as_ref()?;
    let cookies: Vec<String> = pieces
        .iter()
        .map(|piece| match piece {
            CookiePiece::Real(i) => real[i.index(real.len())].clone(),
            CookiePiece::Mangled(i, at, ch) => {
                let mut chars: Vec<char> = real[i.index(real.len())].chars().collect();
                let at = at.index(chars.len());
                chars[at] = *ch;
                chars.into_iter().collect()
            }
            CookiePiece::Any(cookie) => cookie.clone(),
        })
        .collect();
    Some(cookies.join("; "))
}

fn post(
    app: &TestApp,
    path: &str,
    cookies: Option<String>,
    content_type: &Option<String>,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let mut request = bare_client().post(app.url(path)).body(body);
    if let Some(cookies) = cookies {
        request = request.header(COOKIE, cookies);
    }
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    request
}

// ----- forms, cookies and CSRF tokens ------------------------------------------------------

/// The forms anyone can post: fields of any kind (with the good CSRF token, a known
/// address and its password now and then), cookies of any shape, any media type.
#[test]
fn hostile_anonymous_forms() {
    struct Fixture {
        app: TestApp,
        csrf_cookie: String,
        csrf: String,
        _db: TestDb,
    }
    let forms: Vec<(&str, &[u16])> = vec![
        ("/login", &[303, 400, 401, 403, 413, 415, 422]),
        ("/unlock", &[200, 400, 403, 413, 415, 422]),
        ("/login/sso", &[400, 403, 404, 413, 415, 422]),
        ("/setup", &[400, 403, 410, 413, 415, 422]),
        ("/unlock/confirm", &[400, 403, 410, 413, 415, 422]),
        ("/logout", &[303, 400, 403, 413, 415, 422]),
    ];
    against_each_backend(
        (
            prop::sample::select(forms),
            body(),
            cookies(),
            content_type(),
        ),
        |db| async move {
            let app = TestApp::start(&db).await;
            app.create_user("known@example.com", PASSWORD).await;
            let (csrf_cookie, csrf) = anonymous_csrf(&app).await;
            Fixture {
                app,
                csrf_cookie: format!("gotthard_csrf={csrf_cookie}"),
                csrf,
                _db: db,
            }
        },
        |fx, ((path, documented), body, cookies, content_type)| {
            let fields = [
                ("csrf", vec![fx.csrf.clone()]),
                (
                    "email",
                    vec!["known@example.com".into(), "someone@example.org".into()],
                ),
                ("password", vec![PASSWORD.into(), "not-the-password".into()]),
                (
                    "next",
                    vec![
                        "/oauth2/authorize?client_id=x&response_type=code".into(),
                        "//evil.example/".into(),
                        "/\\evil.example".into(),
                    ],
                ),
                ("token", vec!["A".repeat(43)]),
                ("name", vec!["Ada".into()]),
                ("password_confirm", vec![PASSWORD.into()]),
            ];
            let cookies = cookie_header(&cookies, std::slice::from_ref(&fx.csrf_cookie));
            let request = post(&fx.app, path, cookies, &content_type, body.bytes(&fields));
            async move { expect(&send(request).await?, documented, path) }
        },
    );
}

/// A signed-in browser's forms and pages with its cookies kept, mangled or replaced, and
/// form fields of any kind (the good CSRF token now and then).
#[test]
fn hostile_signed_in_forms_and_cookies() {
    struct Fixture {
        app: TestApp,
        browser: Browser,
        _db: TestDb,
    }
    #[derive(Debug, Clone)]
    enum Call {
        Form(&'static str, &'static [u16], Body, Option<String>),
        Page(&'static str, &'static [u16]),
    }
    let forms: Vec<(&'static str, &'static [u16])> = vec![
        ("/account/security", &[200, 303, 400, 403, 413, 415, 422]),
        (
            "/account/sessions/end-others",
            &[303, 400, 403, 413, 415, 422],
        ),
        ("/oauth2/consent", &[303, 400, 403, 413, 415, 422]),
    ];
    let pages: Vec<(&'static str, &'static [u16])> = vec![
        ("/account", &[200, 303]),
        ("/account/sessions", &[200, 303]),
        ("/api/v1/me", &[200, 401]),
        ("/api/v1/me/sessions", &[200, 401]),
    ];
    let call = prop_oneof![
        3 => (prop::sample::select(forms), body(), content_type())
            .prop_map(|((path, documented), body, ct)| Call::Form(path, documented, body, ct)),
        1 => prop::sample::select(pages).prop_map(|(path, documented)| Call::Page(path, documented)),
    ];
    against_each_backend(
        (call, cookies()),
        |db| async move {
            let app = TestApp::start(&db).await;
            let browser = sign_in(&app, "ada@example.com").await;
            Fixture {
                app,
                browser,
                _db: db,
            }
        },
        |fx, (call, cookies)| {
            let real = [fx.browser.session.clone(), fx.browser.csrf_cookie.clone()];
            let cookies = cookie_header(&cookies, &real);
            let fields = [
                ("csrf", vec![fx.browser.csrf.clone()]),
                (
                    "threshold",
                    vec!["5".into(), "3".into(), "51".into(), "-1".into()],
                ),
                (
                    "alerts",
                    vec!["both".into(), "none".into(), "failures".into()],
                ),
                ("decision", vec!["allow".into(), "deny".into()]),
                (
                    "request",
                    vec!["client_id=x&response_type=code&redirect_uri=https%3A%2F%2Fa".into()],
                ),
            ];
            let (request, path, documented) = match &call {
                Call::Form(path, documented, body, content_type) => (
                    post(&fx.app, path, cookies, content_type, body.bytes(&fields)),
                    *path,
                    *documented,
                ),
                Call::Page(path, documented) => {
                    let mut request = bare_client().get(fx.app.url(path));
                    if let Some(cookies) = cookies {
                        request = request.header(COOKIE, cookies);
                    }
                    (request, *path, *documented)
                }
            };
            async move {
                let answer = send(request).await?;
                expect(&answer, documented, path)?;
                if path.starts_with("/api/") && answer.status == StatusCode::UNAUTHORIZED {
                    prop_assert!(answer.content_type.starts_with("application/problem+json"));
                }
                Ok(())
            }
        },
    );
}

/// JSON bodies of any shape to the account API's changes, with the session's cookies and
/// its CSRF header kept, mangled or left out: the change, or its problem document.
#[test]
fn hostile_api_json_bodies() {
    struct Fixture {
        app: TestApp,
        browser: Browser,
        api_csrf: String,
        _db: TestDb,
    }
    #[derive(Debug, Clone)]
    enum Json {
        Fields(Vec<Option<Piece>>, Vec<(String, Value)>),
        Any(Value),
        Text(String),
    }
    let json = prop_oneof![
        6 => (
            prop::collection::vec(prop::option::weighted(0.7, prop_oneof![
                3 => piece(),
                1 => json_value().prop_map(|v| Piece::Any(format!("json:{v}"))),
            ]), 8),
            prop::collection::vec((".{0,8}", json_value()), 0..2),
        )
            .prop_map(|(fields, extra)| Json::Fields(fields, extra)),
        1 => json_value().prop_map(Json::Any),
        1 => prop_oneof![
            ".{0,40}",
            (1usize..3_000).prop_map(|n| "[".repeat(n)),
            Just("{\"name\": \"a\\u0000b\"}".to_string()),
        ]
        .prop_map(Json::Text),
    ];
    let calls: Vec<(reqwest::Method, &'static str)> = vec![
        (reqwest::Method::PATCH, "/api/v1/me"),
        (reqwest::Method::PUT, "/api/v1/me/security"),
        (reqwest::Method::POST, "/api/v1/me/password"),
    ];
    against_each_backend(
        (
            prop::sample::select(calls),
            json,
            prop::option::weighted(0.9, piece()),
            prop::option::weighted(
                0.9,
                prop_oneof![
                    Just("application/json".to_string()),
                    Just("text/plain".to_string()),
                    "[ -~]{0,20}",
                ],
            ),
        ),
        |db| async move {
            let app = TestApp::start(&db).await;
            let browser = sign_in(&app, "ada@example.com").await;
            let csrf: Value = bare_client()
                .get(app.url("/api/v1/csrf"))
                .header(
                    COOKIE,
                    format!("{}; {}", browser.session, browser.csrf_cookie),
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let api_csrf = csrf["csrf_token"].as_str().unwrap().to_string();
            Fixture {
                app,
                browser,
                api_csrf,
                _db: db,
            }
        },
        |fx, ((method, path), json, csrf, content_type)| {
            let names = [
                ("name", vec!["Ada".to_string()]),
                ("locale", vec!["fr".to_string(), "xx".to_string()]),
                (
                    "email",
                    vec![
                        "ada@example.com".to_string(),
                        "ada2@example.com".to_string(),
                    ],
                ),
                (
                    "current_password",
                    vec![PASSWORD.to_string(), "wrong".to_string()],
                ),
                ("new_password", vec!["another-long-passphrase".to_string()]),
                ("notify_on_success", vec!["json:true".to_string()]),
                ("notify_on_failure", vec!["json:false".to_string()]),
                (
                    "lockout_threshold",
                    vec![
                        "json:5".to_string(),
                        "json:2".to_string(),
                        "json:51".to_string(),
                    ],
                ),
            ];
            let body = match json {
                Json::Fields(fields, extra) => {
                    let mut object = serde_json::Map::new();
                    for ((name, good), piece) in names.iter().zip(&fields) {
                        if let Some(value) = piece.as_ref().and_then(|p| p.pick(good)) {
                            // `json:` marks a value that is JSON of its own, not a string.
                            let value = match value.strip_prefix("json:") {
                                Some(json) => serde_json::from_str(json).unwrap_or(Value::Null),
                                None => Value::from(value),
                            };
                            object.insert(name.to_string(), value);
                        }
                    }
                    for (name, value) in extra {
                        object.insert(name, value);
                    }
                    Value::Object(object).to_string()
                }
                Json::Any(value) => value.to_string(),
                Json::Text(text) => text,
            };
            let mut request = bare_client()
                .request(method, fx.app.url(path))
                .header(
                    COOKIE,
                    format!("{}; {}", fx.browser.session, fx.browser.csrf_cookie),
                )
                .body(body);
            if let Some(token) = csrf.and_then(|c| c.pick(std::slice::from_ref(&fx.api_csrf))) {
                request = request.header("x-csrf-token", token);
            }
            if let Some(content_type) = content_type {
                request = request.header(CONTENT_TYPE, content_type);
            }
            async move {
                let answer = send(request).await?;
                expect(
                    &answer,
                    &[200, 400, 401, 403, 409, 413, 415, 422, 429],
                    path,
                )?;
                if answer.status != StatusCode::OK {
                    prop_assert!(
                        answer.content_type.starts_with("application/problem+json"),
                        "{answer:?}"
                    );
                }
                Ok(())
            }
        },
    );
}

/// Entra ID's way back with any `state`, `code`, `error` and cookies: no sign-in was begun,
/// so every one is refused as unusable (and recorded as a failed sign-in).
#[test]
fn hostile_sso_callbacks() {
    struct Fixture {
        app: TestApp,
        csrf_cookie: String,
        _db: TestDb,
    }
    let names = [
        "state",
        "code",
        "error",
        "error_description",
        "session_state",
    ];
    against_each_backend(
        (
            prop::collection::vec(prop::option::weighted(0.7, piece()), names.len()),
            prop::option::weighted(0.2, "[ -~]{0,80}"),
            cookies(),
        ),
        |db| async move {
            let app = TestApp::start(&db).await;
            let (csrf_cookie, _) = anonymous_csrf(&app).await;
            Fixture {
                app,
                csrf_cookie: format!("gotthard_csrf={csrf_cookie}"),
                _db: db,
            }
        },
        |fx, (values, raw, cookies)| {
            let good = [
                vec!["A".repeat(43), "state".into()],
                vec!["0.AXkA".into()],
                vec!["access_denied".into(), "invalid_request".into()],
                vec!["AADSTS50105: not assigned".into()],
                vec!["b1f2".into()],
            ];
            let query = match raw {
                Some(raw) => raw,
                None => {
                    let mut query = form_urlencoded::Serializer::new(String::new());
                    for ((name, good), value) in names.iter().zip(&good).zip(&values) {
                        if let Some(value) = value.as_ref().and_then(|v| v.pick(good)) {
                            query.append_pair(name, &value);
                        }
                    }
                    query.finish()
                }
            };
            let mut request =
                bare_client().get(format!("{}?{query}", fx.app.url("/login/sso/callback")));
            if let Some(cookies) = cookie_header(&cookies, std::slice::from_ref(&fx.csrf_cookie)) {
                request = request.header(COOKIE, cookies);
            }
            async move { expect(&send(request).await?, &[400], "/login/sso/callback") }
        },
    );
}

// ----- the activity log's filters and cursor ----------------------------------------------

/// A value of an activity filter: dates and times at and past the calendar's edges,
/// cursors from a real page or of `<seconds>.<uuid>` with any seconds, and any text.
fn filter_value() -> impl Strategy<Value = Piece> + Clone {
    let crafted = prop_oneof![
        prop::sample::select(vec![
            "9999-12-31",
            "0000-01-01",
            "-9999-01-01",
            "+10000-01-01",
            "2026-02-30",
            "2026-11-25T10:00:00Z",
            "0000-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-23:59",
            "1",
            "200",
            "201",
            "0",
            "-1",
            "99999999999999999999",
            "login.failed",
            "account",
        ])
        .prop_map(str::to_string),
        (
            prop_oneof![
                any::<i64>(),
                Just(-377_705_116_800i64),
                Just(253_402_300_800i64),
                0i64..4_000_000_000
            ],
            any::<u128>()
        )
            .prop_map(|(secs, id)| {
                URL_SAFE_NO_PAD.encode(format!("{secs}.{}", uuid::Uuid::from_u128(id).simple()))
            }),
    ];
    prop_oneof![
        2 => any::<Index>().prop_map(Piece::Good),
        3 => crafted.prop_map(Piece::Any),
        2 => text().prop_map(Piece::Any),
    ]
}

/// Any filters and `cursor` on the activity API, its CSV and the activity page: 200, or
/// 400 naming the parameter.
#[test]
fn hostile_activity_filters_and_cursors() {
    struct Fixture {
        app: TestApp,
        browser: Browser,
        cursor: String,
        _db: TestDb,
    }
    let paths = vec![
        "/api/v1/me/activity",
        "/api/v1/me/activity.csv",
        "/account/activity",
    ];
    let names = ["from", "to", "product", "action", "cursor", "limit"];
    against_each_backend(
        (
            prop::sample::select(paths),
            prop::collection::vec(prop::option::weighted(0.6, filter_value()), names.len()),
            prop::option::weighted(0.2, "[ -~]{0,60}"),
        ),
        |db| async move {
            let app = TestApp::start(&db).await;
            let browser = sign_in(&app, "ada@example.com").await;
            // A second sign-in, so that a page of one event has a next one.
            let (client, _) = app.signed_in("ada@example.com").await;
            let page: Value = client
                .get(app.url("/api/v1/me/activity?limit=1"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let cursor = page["next_cursor"].as_str().unwrap().to_string();
            Fixture {
                app,
                browser,
                cursor,
                _db: db,
            }
        },
        |fx, (path, values, raw)| {
            let good = [
                vec!["2026-01-01".to_string()],
                vec!["2100-01-01".to_string()],
                vec!["account".to_string()],
                vec!["login.succeeded".to_string()],
                vec![fx.cursor.clone()],
                vec!["1".to_string(), "200".to_string()],
            ];
            let query = match raw {
                // A query string of any bytes, as a browser's address bar sends them.
                Some(raw) => raw,
                None => {
                    let mut query = form_urlencoded::Serializer::new(String::new());
                    for ((name, good), value) in names.iter().zip(&good).zip(&values) {
                        if let Some(value) = value.as_ref().and_then(|v| v.pick(good)) {
                            query.append_pair(name, &value);
                        }
                    }
                    query.finish()
                }
            };
            let request = bare_client()
                .get(format!("{}?{query}", fx.app.url(path)))
                .header(COOKIE, &fx.browser.session);
            async move {
                let answer = send(request).await?;
                expect(&answer, &[200, 400], path)?;
                if path.starts_with("/api/") && answer.status == StatusCode::BAD_REQUEST {
                    prop_assert!(answer.content_type.starts_with("application/problem+json"));
                    prop_assert!(answer.body.contains("parameter"), "{}", answer.body);
                }
                Ok(())
            }
        },
    );
}

// ----- bearer tokens and client assertions -------------------------------------------------

/// A JWT-shaped string: any text, segments of base64url (of JSON or not), a JWS with a
/// random header (one of the server's `kid`s or any, any `alg`) and claims (the server's
/// issuer or any), or a real token changed.
#[derive(Debug, Clone)]
enum Token {
    Any(String),
    Segments(Vec<String>),
    Jws(Value, Piece, Value, Piece, Vec<u8>),
    Mutated(Index, char),
    Real,
}

fn json_value() -> impl Strategy<Value = Value> + Clone {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(json!(1.0e300)),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with some of `names`, each from `good` or of any type.
fn object(
    names: &'static [&'static str],
    good: Vec<Value>,
) -> impl Strategy<Value = Value> + Clone {
    prop::collection::vec(
        (
            prop::sample::select(names),
            prop_oneof![2 => prop::sample::select(good), 1 => json_value()],
        ),
        0..names.len() + 1,
    )
    .prop_map(|members| {
        Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    })
}

fn token() -> impl Strategy<Value = Token> + Clone {
    let header = object(
        &["alg", "typ", "jku", "crit"],
        vec![
            json!("none"),
            json!("HS256"),
            json!("RS256"),
            json!("ES256"),
            json!("EdDSA"),
            json!("at+jwt"),
            json!("JWT"),
        ],
    );
    let claims = object(
        &[
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "client_id",
            "scope",
            "sid",
            "gid",
        ],
        vec![
            json!(4_000_000_000i64),
            json!("openid account:read"),
            json!(uuid::Uuid::now_v7().to_string()),
        ],
    );
    prop_oneof![
        2 => text().prop_map(Token::Any),
        2 => prop::collection::vec(
            prop_oneof![
                "[A-Za-z0-9_-]{0,60}",
                json_value().prop_map(|v| URL_SAFE_NO_PAD.encode(v.to_string())),
            ],
            0..5,
        )
        .prop_map(Token::Segments),
        4 => (header, piece(), claims, piece(), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(h, kid, c, iss, s)| Token::Jws(h, kid, c, iss, s)),
        2 => (any::<Index>(), proptest::char::range('!', '~'))
            .prop_map(|(i, c)| Token::Mutated(i, c)),
        1 => Just(Token::Real),
    ]
}

impl Token {
    /// The token's text, given a real token and the server's key ids and issuer.
    fn text(&self, real: &str, kids: &[String], issuer: &str) -> String {
        match self {
            Token::Any(text) => text.clone(),
            Token::Segments(parts) => parts.join("."),
            Token::Jws(header, kid, claims, iss, signature) => {
                let mut header = header.clone();
                if let (Some(kid), Some(h)) = (kid.pick(kids), header.as_object_mut()) {
                    h.insert("kid".into(), json!(kid));
                }
                let mut claims = claims.clone();
                if let (Some(iss), Some(c)) =
                    (iss.pick(&[issuer.to_string()]), claims.as_object_mut())
                {
                    c.insert("iss".into(), json!(iss));
                }
                format!(
                    "{}.{}.{}",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string()),
                    URL_SAFE_NO_PAD.encode(signature)
                )
            }
            Token::Mutated(at, c) => {
                let mut chars: Vec<char> = real.chars().collect();
                let at = at.index(chars.len());
                chars[at] = *c;
                chars.into_iter().collect()
            }
            Token::Real => real.to_string(),
        }
    }
}

/// The server's signing key ids, from its JWK Set.
async fn kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = reqwest::get(app.url("/oauth2/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// Bearer tokens of every shape at userinfo (header or body), introspection and the
/// account API.
#[test]
fn hostile_bearer_tokens() {
    struct Fixture {
        app: TestApp,
        basic: String,
        real: String,
        kids: Vec<String>,
        _db: TestDb,
    }
    #[derive(Debug, Clone, Copy)]
    enum Where {
        UserinfoHeader,
        UserinfoBody,
        OtherScheme,
        Introspect,
        AccountApi,
    }
    against_each_backend(
        (
            prop::sample::select(vec![
                Where::UserinfoHeader,
                Where::UserinfoBody,
                Where::OtherScheme,
                Where::Introspect,
                Where::AccountApi,
            ]),
            token(),
            "[A-Za-z]{0,8}",
        ),
        |db| async move {
            let app = TestApp::start(&db).await;
            let (client, secret) = app
                .register_client("Machine", "https://app.example.com/cb", |_| {})
                .await;
            let basic = format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", client.id, secret.unwrap()))
            );
            let issued: Value = bare_client()
                .post(app.url("/oauth2/token"))
                .header(AUTHORIZATION, &basic)
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let real = issued["access_token"].as_str().unwrap().to_string();
            let kids = kids(&app).await;
            Fixture {
                app,
                basic,
                real,
                kids,
                _db: db,
            }
        },
        |fx, (place, token, scheme)| {
            let token = token.text(&fx.real, &fx.kids, &fx.app.base);
            let is_real = token == fx.real;
            let client = bare_client();
            let userinfo = fx.app.url("/oauth2/userinfo");
            let request = match place {
                Where::UserinfoHeader => client
                    .get(&userinfo)
                    .header(AUTHORIZATION, format!("Bearer {token}")),
                Where::UserinfoBody => client
                    .post(&userinfo)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(
                        form_urlencoded::Serializer::new(String::new())
                            .append_pair("access_token", &token)
                            .finish(),
                    ),
                Where::OtherScheme => client
                    .get(&userinfo)
                    .header(AUTHORIZATION, format!("{scheme} {token}")),
                Where::Introspect => client
                    .post(fx.app.url("/oauth2/introspect"))
                    .header(AUTHORIZATION, &fx.basic)
                    .form(&[("token", token.as_str())]),
                Where::AccountApi => client
                    .get(fx.app.url("/api/v1/me"))
                    .header(AUTHORIZATION, format!("Bearer {token}")),
            };
            async move {
                let answer = send(request).await?;
                match place {
                    Where::UserinfoHeader | Where::UserinfoBody | Where::OtherScheme => {
                        expect(&answer, &[400, 401, 403], "userinfo")?;
                        let challenge = answer.challenge.clone().unwrap_or_default();
                        prop_assert!(challenge.starts_with("Bearer"), "{answer:?}");
                        if answer.status == StatusCode::UNAUTHORIZED
                            && !token.trim().is_empty()
                            && !matches!(place, Where::OtherScheme)
                        {
                            prop_assert!(
                                challenge.contains("invalid_token") || !challenge.contains("error"),
                                "{challenge}"
                            );
                        }
                    }
                    Where::Introspect => {
                        expect(&answer, &[200, 400], "introspect")?;
                        if answer.status == StatusCode::OK {
                            let body: Value = serde_json::from_str(&answer.body).unwrap();
                            prop_assert_eq!(body["active"].as_bool(), Some(is_real), "{}", token);
                        }
                    }
                    Where::AccountApi => {
                        expect(&answer, &[401, 403], "/api/v1/me")?;
                        prop_assert!(answer.content_type.starts_with("application/problem+json"));
                    }
                }
                Ok(())
            }
        },
    );
}

/// A key the test holds, registered as a `private_key_jwt` client's only key.
struct ClientKey {
    pair: EcdsaKeyPair,
    kid: String,
}

impl ClientKey {
    fn generate() -> Self {
        let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .unwrap()
            .to_pkcs8v1()
            .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        Self {
            pair,
            kid: "test-key-1".into(),
        }
    }

    fn jwks(&self) -> String {
        let point = self.pair.public_key().as_ref();
        json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }]})
        .to_string()
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// `client_assertion` of every shape at the token endpoint: forgeries, and assertions
/// signed with the client's own key whose claims are of any shape (a `jti` of any length,
/// an `exp` of any time, the wrong audience, another client's id).
#[test]
fn hostile_client_assertions() {
    struct Fixture {
        app: TestApp,
        client_id: String,
        key: ClientKey,
        _db: TestDb,
    }
    #[derive(Debug, Clone)]
    enum Assertion {
        Forged(Token),
        Signed(Vec<(String, Piece)>, i64),
    }
    let claim_names = ["iss", "sub", "aud", "exp", "jti", "iat", "nbf"];
    let assertion = prop_oneof![
        1 => token().prop_map(Assertion::Forged),
        2 => (
            prop::collection::vec(
                (prop::sample::select(claim_names.to_vec()).prop_map(str::to_string), prop_oneof![
                    3 => any::<Index>().prop_map(Piece::Good),
                    1 => text().prop_map(Piece::Any),
                    1 => (0usize..4_000).prop_map(|n| Piece::Any("j".repeat(n))),
                ]),
                3..10,
            ),
            prop_oneof![-100_000i64..100_000, any::<i64>()],
        )
            .prop_map(|(claims, exp)| Assertion::Signed(claims, exp)),
    ];
    let assertion_type = prop_oneof![
        4 => Just(Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string())),
        1 => Just(None),
        1 => prop::option::of(text()),
    ];
    let grant = prop_oneof![
        4 => Just("client_credentials".to_string()),
        1 => text(),
    ];
    against_each_backend(
        (assertion, assertion_type, grant, prop::option::of(text())),
        |db| async move {
            let app = TestApp::start(&db).await;
            let key = ClientKey::generate();
            let jwks = key.jwks();
            let (client, _) = app
                .register_client("Signed machine", "https://app.example.com/cb", |spec| {
                    spec.auth_method = gotthard::oidc::ClientAuthMethod::PrivateKeyJwt;
                    spec.jwks = Some(jwks);
                })
                .await;
            Fixture {
                app,
                client_id: client.id,
                key,
                _db: db,
            }
        },
        |fx, (assertion, assertion_type, grant, client_id)| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let assertion = match &assertion {
                Assertion::Forged(token) => {
                    token.text("a.b.c", std::slice::from_ref(&fx.key.kid), &fx.client_id)
                }
                Assertion::Signed(claims, exp) => {
                    let audience = format!("{}/oauth2/token", fx.app.base);
                    let mut body = serde_json::Map::new();
                    for (name, piece) in claims {
                        let good: Vec<String> = match name.as_str() {
                            "iss" | "sub" => vec![fx.client_id.clone()],
                            "aud" => vec![audience.clone(), fx.app.base.clone()],
                            "exp" | "iat" | "nbf" => vec![(now + exp).to_string()],
                            _ => vec![uuid::Uuid::now_v7().to_string()],
                        };
                        let value = piece.pick(&good).unwrap_or_default();
                        let value = match value.parse::<i64>() {
                            Ok(n) if matches!(name.as_str(), "exp" | "iat" | "nbf") => json!(n),
                            _ => json!(value),
                        };
                        body.insert(name.clone(), value);
                    }
                    let header = json!({ "alg": "ES256", "kid": fx.key.kid, "typ": "JWT" });
                    fx.key.sign(&header, &Value::Object(body))
                }
            };
            let mut form = vec![
                ("grant_type".to_string(), grant),
                ("client_assertion".to_string(), assertion),
            ];
            if let Some(kind) = assertion_type {
                form.push(("client_assertion_type".into(), kind));
            }
            if let Some(id) = client_id {
                form.push(("client_id".into(), id));
            }
            let request = bare_client().post(fx.app.url("/oauth2/token")).form(&form);
            async move {
                let answer = send(request).await?;
                expect(&answer, &[200, 400, 401], "/oauth2/token")?;
                if answer.status == StatusCode::UNAUTHORIZED {
                    prop_assert!(answer.challenge.is_some());
                    prop_assert!(answer.body.contains("invalid_client"), "{}", answer.body);
                }
                if answer.status == StatusCode::BAD_REQUEST {
                    let body: Value = serde_json::from_str(&answer.body).unwrap();
                    prop_assert!(body["error"].is_string());
                }
                Ok(())
            }
        },
    );
}

// ----- authorization requests -------------------------------------------------------------

/// Authorization requests of every shape, signed in or not, as a query or a form post.
#[test]
fn hostile_authorization_requests() {
    struct Fixture {
        app: TestApp,
        browser: Browser,
        client_id: String,
        _db: TestDb,
    }
    let names = [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "prompt",
        "max_age",
        "login_hint",
        "ui_locales",
        "id_token_hint",
        "request",
        "response_mode",
    ];
    against_each_backend(
        (
            prop::collection::vec(prop::option::weighted(0.5, piece()), names.len()),
            prop::option::weighted(0.2, "[ -~]{0,80}"),
            any::<bool>(),
            prop::option::weighted(0.2, content_type()),
            prop::option::weighted(0.5, cookies()),
        ),
        |db| async move {
            let app = TestApp::start(&db).await;
            let browser = sign_in(&app, "ada@example.com").await;
            let (client, _) = app
                .register_client("App", "https://app.example.com/cb", |spec| {
                    spec.first_party = false;
                })
                .await;
            Fixture {
                app,
                browser,
                client_id: client.id,
                _db: db,
            }
        },
        |fx, (values, raw, as_post, content_type, cookies)| {
            let good: Vec<Vec<String>> = vec![
                vec![fx.client_id.clone()],
                vec![
                    "https://app.example.com/cb".into(),
                    "https://evil.example/cb".into(),
                ],
                vec!["code".into(), "token".into(), "code id_token".into()],
                vec![
                    "openid".into(),
                    "openid profile email account:read".into(),
                    "admin".into(),
                ],
                vec!["xyz".into()],
                vec!["n-0S6".into()],
                vec!["E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()],
                vec!["S256".into(), "plain".into()],
                vec![
                    "none".into(),
                    "login".into(),
                    "consent".into(),
                    "none login".into(),
                ],
                vec!["0".into(), "-1".into(), "99999999999999999999".into()],
                vec!["ada@example.com".into()],
                vec!["fr es".into(), "xx".into()],
                vec!["a.b.c".into()],
                vec!["eyJhbGciOiJub25lIn0.e30.".into()],
                vec!["form_post".into(), "fragment".into()],
            ];
            let query = match raw {
                Some(raw) => raw,
                None => {
                    let mut query = form_urlencoded::Serializer::new(String::new());
                    for ((name, good), value) in names.iter().zip(&good).zip(&values) {
                        if let Some(value) = value.as_ref().and_then(|v| v.pick(good)) {
                            query.append_pair(name, &value);
                        }
                    }
                    query.finish()
                }
            };
            let real = [fx.browser.session.clone(), fx.browser.csrf_cookie.clone()];
            let cookies = cookies.and_then(|c| cookie_header(&c, &real));
            let url = fx.app.url("/oauth2/authorize");
            let request = if as_post {
                let content_type =
                    content_type.unwrap_or(Some("application/x-www-form-urlencoded".into()));
                post(
                    &fx.app,
                    "/oauth2/authorize",
                    cookies,
                    &content_type,
                    query.into_bytes(),
                )
            } else {
                let mut request = bare_client().get(format!("{url}?{query}"));
                if let Some(cookies) = cookies {
                    request = request.header(COOKIE, cookies);
                }
                request
            };
            async move {
                let answer = send(request).await?;
                expect(&answer, &[200, 303, 400, 415], "/oauth2/authorize")
            }
        },
    );
}

// ----- what the properties found --------------------------------------------------------

/// The inputs the properties above found answered with a 500 or 503 (or a panic), each
/// now with its documented 4xx, on both backends.
#[tokio::test]
async fn inputs_the_properties_found_get_their_documented_answer() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let (browser, api_csrf) = app.signed_in("ada@example.com").await;
        // A name holding a NUL reached PostgreSQL, which refused it (500).
        let response = browser
            .patch(app.url("/api/v1/me"))
            .header("x-csrf-token", &api_csrf)
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"given_name": "a\u0000b"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            db.backend
        );
        let far_cursor =
            URL_SAFE_NO_PAD.encode(format!("-377705116800.{}", uuid::Uuid::now_v7().simple()));
        for (query, status) in [
            // The end of the calendar's last day overflowed (a panic, answered 500).
            ("to=9999-12-31", 200),
            // A time past the calendar in UTC panicked in the PostgreSQL encoding.
            ("to=9999-12-31T23:59:59-23:59", 400),
            ("from=0000-01-01T00:00:00%2B23:59", 400),
            // A cursor before 4713 BC failed PostgreSQL's query (500).
            (&format!("cursor={far_cursor}"), 400),
            // PostgreSQL refuses to compare text holding a NUL.
            ("product=a%00b", 400),
        ] {
            for path in ["/api/v1/me/activity", "/account/activity"] {
                let response = browser
                    .get(format!("{}?{query}", app.url(path)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    response.status().as_u16(),
                    status,
                    "{} {path}?{query}",
                    db.backend
                );
            }
        }

        let key = ClientKey::generate();
        let jwks = key.jwks();
        let (client, _) = app
            .register_client("Signed machine", "https://app.example.com/cb", |spec| {
                spec.auth_method = gotthard::oidc::ClientAuthMethod::PrivateKeyJwt;
                spec.jwks = Some(jwks);
            })
            .await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let header = json!({ "alg": "ES256", "kid": key.kid, "typ": "JWT" });
        let audience = app.url("/oauth2/token");
        for claims in [
            // A NUL in `sub` reached the client lookup, which PostgreSQL refused (503).
            json!({ "iss": client.id, "sub": "\0", "aud": audience, "exp": now + 60, "jti": "a" }),
            // A `jti` past PostgreSQL's index size failed its insert (503).
            json!({
                "iss": client.id, "sub": client.id, "aud": audience, "exp": now + 60,
                "jti": "j".repeat(3_000),
            }),
        ] {
            let response = bare_client()
                .post(app.url("/oauth2/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &key.sign(&header, &claims)),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{}",
                db.backend
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_client");
        }
        // The same NUL as a `client_id` of a public client's request.
        let response = bare_client()
            .post(app.url("/oauth2/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", "a\0b")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{}", db.backend);
    }
}
