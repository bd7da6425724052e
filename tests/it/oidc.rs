//! The OpenID Connect provider driven over HTTP by the `openidconnect` crate (a relying-party
//! library no one here wrote), on SQLite and PostgreSQL.

use std::sync::{Arc, Mutex};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope,
    TokenResponse,
};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::Value;

use crate::support::{PASSWORD, TestApp, databases, hidden_field};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A registered client: id and secret (none for public clients).
pub(crate) struct Registered {
    id: String,
    secret: Option<String>,
}

pub(crate) async fn register(
    app: &TestApp,
    name: &str,
    public: bool,
    first_party: bool,
    backchannel: Option<String>,
) -> Registered {
    let (client, secret) = app
        .register_client(name, REDIRECT, |spec| {
            if public {
                spec.auth_method = gotthard::oidc::ClientAuthMethod::None;
            }
            spec.post_logout_redirect_uris = vec!["http://127.0.0.1:9/bye".to_string()];
            spec.backchannel_logout_uri = backchannel;
            spec.first_party = first_party;
        })
        .await;
    Registered {
        id: client.id,
        secret,
    }
}

fn http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub(crate) type Rp = openidconnect::core::CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

pub(crate) async fn relying_party(app: &TestApp, registered: &Registered) -> Rp {
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http())
            .await
            .unwrap();
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(registered.id.clone()),
        registered.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_string()).unwrap())
}

/// Follows an authorization URL in a browser-like client, signing in when asked and
/// allowing consent; returns the final redirect to the client.
async fn follow(app: &TestApp, browser: &reqwest::Client, url: &str, email: &str) -> url::Url {
    let mut next = url.to_string();
    for _ in 0..6 {
        if next.starts_with(REDIRECT) {
            return url::Url::parse(&next).unwrap();
        }
        let response = browser.get(&next).send().await.unwrap();
        if response.status() == StatusCode::OK {
            let html = response.text().await.unwrap();
            if html.contains("action=\"/oauth2/consent\"") {
                let response = browser
                    .post(app.url("/oauth2/consent"))
                    .form(&[
                        ("csrf", hidden_field(&html, "csrf")),
                        ("request", hidden_field(&html, "request")),
                        ("decision", "allow".to_string()),
                    ])
                    .send()
                    .await
                    .unwrap();
                next = absolute(app, location(&response));
                continue;
            }
            // The login form of this request.
            let response = browser
                .post(app.url("/login"))
                .form(&[
                    ("email", email.to_string()),
                    ("password", PASSWORD.to_string()),
                    ("csrf", hidden_field(&html, "csrf")),
                    ("next", hidden_field(&html, "next")),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
            next = absolute(app, location(&response));
            continue;
        }
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "at {next}");
        let to = location(&response);
        if to.starts_with(REDIRECT) {
            return url::Url::parse(&to).unwrap();
        }
        next = absolute(app, to);
    }
    panic!("no redirect to the client");
}

fn absolute(app: &TestApp, to: String) -> String {
    if to.starts_with('/') {
        app.url(&to)
    } else {
        to
    }
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// Runs the code flow with PKCE; returns the code, the verifier and the nonce.
pub(crate) async fn authorize(
    app: &TestApp,
    rp: &Rp,
    browser: &reqwest::Client,
    email: &str,
    scopes: &[&str],
) -> (String, PkceCodeVerifier, Nonce) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new(scope.to_string()));
    }
    let (url, state, nonce) = request.url();
    let back = follow(app, browser, url.as_str(), email).await;
    assert_eq!(
        param(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(param(&back, "iss").as_deref(), Some(app.base.as_str()));
    (param(&back, "code").expect("a code"), verifier, nonce)
}

pub(crate) async fn exchange(
    rp: &Rp,
    code: String,
    verifier: PkceCodeVerifier,
) -> openidconnect::core::CoreTokenResponse {
    rp.exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .unwrap()
}

async fn post_form(
    app: &TestApp,
    path: &str,
    auth: &Registered,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(app.url(path))
        .basic_auth(&auth.id, auth.secret.as_deref())
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn userinfo_status(app: &TestApp, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn code_flow_with_pkce_refresh_rotation_reuse_detection_and_userinfo() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let user = app.create_user("ada@example.com", PASSWORD).await;
        let registered = register(&app, "Webmail", false, true, None).await;
        let rp = relying_party(&app, &registered).await;
        let browser = app.client();
        let (code, verifier, nonce) = authorize(
            &app,
            &rp,
            &browser,
            "ada@example.com",
            &["email", "profile"],
        )
        .await;

        let tokens = rp
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&http())
            .await
            .unwrap_or_else(|e| panic!("{}: exchange failed: {e:?}", db.backend));
        let id_token = tokens.id_token().expect("an ID token");
        let verifier = rp.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &nonce)
            .expect("a valid ID token");
        assert_eq!(
            claims.subject().as_str(),
            user.id.to_string(),
            "sub is the stable id, never the e-mail"
        );
        assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.com"));
        assert!(claims.auth_time().is_some());
        let amr: Vec<String> = claims
            .auth_method_refs()
            .unwrap()
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(amr, vec!["pwd"]);
        let expected_hash = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(claims.access_token_hash(), Some(&expected_hash));

        // The access token is an RFC 9068 JWT.
        let header = jsonwebtoken::decode_header(tokens.access_token().secret()).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);

        let info: CoreUserInfoClaims = rp
            .user_info(tokens.access_token().clone(), None)
            .unwrap()
            .request_async(&http())
            .await
            .unwrap();
        assert_eq!(info.subject().as_str(), user.id.to_string());

        // Refresh: a new refresh token each time; the old one is dead.
        let first_refresh = tokens.refresh_token().unwrap().clone();
        let refreshed = rp
            .exchange_refresh_token(&first_refresh)
            .unwrap()
            .request_async(&http())
            .await
            .unwrap();
        let second_refresh = refreshed.refresh_token().unwrap().clone();
        assert_ne!(first_refresh.secret(), second_refresh.secret());
        assert_eq!(
            userinfo_status(&app, refreshed.access_token().secret()).await,
            StatusCode::OK
        );

        // Reusing the rotated token revokes the whole family, and says so in the log.
        let reuse = rp
            .exchange_refresh_token(&first_refresh)
            .unwrap()
            .request_async(&http())
            .await;
        assert!(
            reuse.is_err(),
            "{}: a rotated refresh token must fail",
            db.backend
        );
        let again = rp
            .exchange_refresh_token(&second_refresh)
            .unwrap()
            .request_async(&http())
            .await;
        assert!(again.is_err(), "{}: the family is revoked", db.backend);
        assert_eq!(
            userinfo_status(&app, refreshed.access_token().secret()).await,
            StatusCode::UNAUTHORIZED,
            "access tokens of a revoked family stop working at once"
        );
        let events = app.state.store.recent_events(user.id, 50).await.unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.action == "token.reuse_detected" && e.product == "Webmail")
        );
        assert!(
            events
                .iter()
                .any(|e| e.action == "token.issued" && e.product == "Webmail")
        );
        // Every event of the app's tokens is filed under its id (the operator's view).
        let grants: Vec<_> = events
            .iter()
            .filter(|e| e.action.starts_with("token."))
            .map(|e| (e.client_id.as_deref(), e.details.contains("refresh_token")))
            .collect();
        assert!(
            grants
                .iter()
                .all(|(id, _)| *id == Some(registered.id.as_str())),
            "{}: {grants:?}",
            db.backend
        );
        assert!(grants.iter().any(|(_, refresh)| *refresh), "{grants:?}");
    }
}

#[tokio::test]
async fn a_code_is_single_use_and_a_replay_revokes_what_it_issued() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let registered = register(&app, "Files", false, true, None).await;
        let rp = relying_party(&app, &registered).await;
        let browser = app.client();
        let (code, verifier, _) = authorize(&app, &rp, &browser, "ada@example.com", &[]).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.secret().as_str()),
        ];
        // Two redemptions at once: exactly one wins.
        let (a, b) = tokio::join!(
            post_form(&app, "/oauth2/token", &registered, &form),
            post_form(&app, "/oauth2/token", &registered, &form)
        );
        let wins: Vec<&(StatusCode, Value)> = [&a, &b]
            .into_iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .collect();
        assert_eq!(wins.len(), 1, "{}: {a:?} {b:?}", db.backend);
        let loser = if a.0 == StatusCode::OK { &b } else { &a };
        assert_eq!(loser.1["error"], "invalid_grant");
        // The replay revoked the winner's tokens.
        let access = wins[0].1["access_token"].as_str().unwrap();
        assert_eq!(
            userinfo_status(&app, access).await,
            StatusCode::UNAUTHORIZED
        );
        let (status, body) = post_form(
            &app,
            "/oauth2/introspect",
            &registered,
            &[("token", access)],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["active"], false);
        let refresh = wins[0].1["refresh_token"].as_str().unwrap();
        let (status, body) = post_form(
            &app,
            "/oauth2/token",
            &registered,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
    }
}

#[tokio::test]
async fn pkce_failures_burn_the_code_and_requests_are_checked_before_redirecting() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let public = register(&app, "Mobile", true, true, None).await;
        let rp = relying_party(&app, &public).await;
        let browser = app.client();
        let (code, verifier, _) = authorize(&app, &rp, &browser, "ada@example.com", &[]).await;
        let wrong = "x".repeat(43);
        let form = |v: &str| {
            vec![
                ("grant_type", "authorization_code".to_string()),
                ("code", code.clone()),
                ("redirect_uri", REDIRECT.to_string()),
                ("code_verifier", v.to_string()),
                ("client_id", public.id.clone()),
            ]
        };
        let plain = reqwest::Client::new();
        let response = plain
            .post(app.url("/oauth2/token"))
            .form(&form(&wrong))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant");
        let response = plain
            .post(app.url("/oauth2/token"))
            .form(&form(verifier.secret()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{}: a PKCE failure burns the code",
            db.backend
        );

        let authorize_url = |extra: &str| {
            format!(
                "{}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s1{extra}",
                app.base,
                public.id,
                url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
            )
        };
        // A public client without PKCE: the error goes back to the verified redirect URI.
        let response = browser.get(authorize_url("")).send().await.unwrap();
        let back = url::Url::parse(&location(&response)).unwrap();
        assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
        assert_eq!(param(&back, "state").as_deref(), Some("s1"));
        // `plain` is refused.
        let response = browser
            .get(authorize_url(&format!(
                "&code_challenge={}&code_challenge_method=plain",
                "a".repeat(43)
            )))
            .send()
            .await
            .unwrap();
        let back = url::Url::parse(&location(&response)).unwrap();
        assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
        // Unknown client, unregistered redirect URI: a page, never a redirect.
        for bad in [
            format!(
                "{}/oauth2/authorize?response_type=code&client_id=nobody&redirect_uri={REDIRECT}&scope=openid",
                app.base
            ),
            format!(
                "{}/oauth2/authorize?response_type=code&client_id={}&redirect_uri=https://evil.example/cb&scope=openid",
                app.base, public.id
            ),
        ] {
            let response = browser.get(&bad).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert!(response.headers().get("location").is_none());
        }
        // prompt=none without a session: login_required at the client.
        let fresh = app.client();
        let response = fresh
            .get(authorize_url(&format!(
                "&prompt=none&code_challenge={}&code_challenge_method=S256",
                "a".repeat(43)
            )))
            .send()
            .await
            .unwrap();
        let back = url::Url::parse(&location(&response)).unwrap();
        assert_eq!(param(&back, "error").as_deref(), Some("login_required"));
    }
}

#[tokio::test]
async fn client_credentials_introspection_revocation_and_client_authentication() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let service = register(&app, "Billing", false, true, None).await;
        let (status, body) = post_form(
            &app,
            "/oauth2/token",
            &service,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "invoices:read"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.backend);
        let token = body["access_token"].as_str().unwrap().to_string();
        assert_eq!(body["scope"], "invoices:read");
        let (_, info) = post_form(&app, "/oauth2/introspect", &service, &[("token", &token)]).await;
        assert_eq!(info["active"], true);
        assert_eq!(info["client_id"], service.id.as_str());
        let response = reqwest::Client::new()
            .post(app.url("/oauth2/revoke"))
            .basic_auth(&service.id, service.secret.as_deref())
            .form(&[("token", &token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let (_, info) = post_form(&app, "/oauth2/introspect", &service, &[("token", &token)]).await;
        assert_eq!(info["active"], false, "{}: revoked", db.backend);

        // Browser apps may call the token endpoint from their origin (no cookies involved).
        let preflight = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, app.url("/oauth2/token"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success());
        assert_eq!(preflight.headers()["access-control-allow-origin"], "*");

        // A wrong secret: 401 invalid_client with a challenge.
        let wrong = Registered {
            id: service.id.clone(),
            secret: Some("nope".into()),
        };
        let response = reqwest::Client::new()
            .post(app.url("/oauth2/token"))
            .basic_auth(&wrong.id, wrong.secret.as_deref())
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key("www-authenticate"));
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "invalid_client"
        );
        // client_secret_post is not this client's registered method.
        let response = reqwest::Client::new()
            .post(app.url("/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &service.id),
                ("client_secret", service.secret.as_deref().unwrap()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn bad_input_gets_its_oauth_error_never_a_500() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let service = register(&app, "Billing", false, true, None).await;
        let other = register(&app, "Other", false, true, None).await;
        let plain = reqwest::Client::new();
        // JSON instead of a form.
        let response = plain
            .post(app.url("/oauth2/token"))
            .basic_auth(&service.id, service.secret.as_deref())
            .json(&serde_json::json!({"grant_type": "client_credentials"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "invalid_request"
        );
        // A repeated parameter, an oversized one, an unknown grant, a malformed code.
        for (body, error) in [
            (
                "grant_type=client_credentials&grant_type=client_credentials".to_string(),
                "invalid_request",
            ),
            (
                format!("grant_type=client_credentials&scope={}", "a".repeat(9000)),
                "invalid_request",
            ),
            ("grant_type=password".to_string(), "unsupported_grant_type"),
            (
                "grant_type=authorization_code&code=%FF%FE&redirect_uri=x".to_string(),
                "invalid_request",
            ),
            (
                "grant_type=authorization_code&code=garbage&redirect_uri=x".to_string(),
                "invalid_grant",
            ),
        ] {
            let response = plain
                .post(app.url("/oauth2/token"))
                .basic_auth(&service.id, service.secret.as_deref())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(
                response.json::<Value>().await.unwrap()["error"],
                error,
                "{body}"
            );
        }
        // Tokens: alg none, another key, garbage, expired.
        let (_, body) = post_form(
            &app,
            "/oauth2/token",
            &service,
            &[("grant_type", "client_credentials")],
        )
        .await;
        let good = body["access_token"].as_str().unwrap().to_string();
        let parts: Vec<&str> = good.split('.').collect();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none_header = b64.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
        let alg_none = format!("{none_header}.{}.", parts[1]);
        let foreign = {
            let dir = tempfile::tempdir().unwrap();
            let keys = gotthard::tokens::SigningKeys::load_or_create(
                dir.path(),
                time::Duration::hours(1),
                app.state.clock.now(),
            )
            .unwrap();
            let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
            keys.active(gotthard::tokens::SigningAlg::Es256)
                .unwrap()
                .sign_jwt("at+jwt", &claims)
                .unwrap()
        };
        for token in [alg_none.as_str(), foreign.as_str(), "not.a.jwt", "x"] {
            let (_, info) =
                post_form(&app, "/oauth2/introspect", &service, &[("token", token)]).await;
            assert_eq!(info["active"], false, "{token}");
            let response = plain
                .get(app.url("/oauth2/userinfo"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert!(
                response.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .contains("invalid_token")
            );
        }
        // Expired: the clock moves past the token's life.
        app.state.clock.advance(time::Duration::minutes(6));
        let (_, info) = post_form(&app, "/oauth2/introspect", &service, &[("token", &good)]).await;
        assert_eq!(info["active"], false, "{}: expired", db.backend);
        // A refresh token of another client.
        app.create_user("ada@example.com", PASSWORD).await;
        let rp = relying_party(&app, &other).await;
        let browser = app.client();
        let (code, verifier, _) = authorize(&app, &rp, &browser, "ada@example.com", &[]).await;
        let tokens = exchange(&rp, code, verifier).await;
        let refresh = tokens.refresh_token().unwrap().secret().clone();
        let (status, body) = post_form(
            &app,
            "/oauth2/token",
            &service,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
        // ... which still works for its own client (it was not touched).
        let again = rp
            .exchange_refresh_token(&RefreshToken::new(refresh))
            .unwrap()
            .request_async(&http())
            .await;
        assert!(
            again.is_ok(),
            "{}: the owner's token survives a foreign attempt",
            db.backend
        );
    }
}

#[tokio::test]
async fn ending_the_session_makes_tokens_inactive_and_sends_a_backchannel_logout() {
    for db in databases().await {
        // A relying app's back-channel logout endpoint.
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = received.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = format!("http://{}/backchannel", listener.local_addr().unwrap());
        let router = axum::Router::new().route(
            "/backchannel",
            axum::routing::post(
                move |axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
                    let sink = sink.clone();
                    async move {
                        sink.lock()
                            .unwrap()
                            .push(form.get("logout_token").cloned().unwrap_or_default());
                        "ok"
                    }
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

        let app = TestApp::start_with(&db, &[("oidc.backchannel_poll_interval_secs", "1")]).await;
        let user = app.create_user("ada@example.com", PASSWORD).await;
        let registered = register(&app, "Webmail", false, true, Some(receiver)).await;
        let rp = relying_party(&app, &registered).await;
        let browser = app.client();
        let (code, verifier, _) = authorize(&app, &rp, &browser, "ada@example.com", &[]).await;
        let tokens = exchange(&rp, code, verifier).await;
        let access = tokens.access_token().secret().clone();
        let (_, info) = post_form(
            &app,
            "/oauth2/introspect",
            &registered,
            &[("token", &access)],
        )
        .await;
        assert_eq!(info["active"], true);
        let sid = info["sid"].as_str().unwrap().to_string();

        // The user signs that device out from another one.
        let (other, csrf) = app.signed_in("ada@example.com").await;
        let response = other
            .delete(app.url(&format!("/api/v1/me/sessions/{sid}")))
            .header("x-csrf-token", csrf)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());

        let (_, info) = post_form(
            &app,
            "/oauth2/introspect",
            &registered,
            &[("token", &access)],
        )
        .await;
        assert_eq!(info["active"], false, "{}: the session ended", db.backend);
        let refresh = tokens.refresh_token().unwrap().secret().clone();
        let (_, info) = post_form(
            &app,
            "/oauth2/introspect",
            &registered,
            &[("token", &refresh)],
        )
        .await;
        assert_eq!(info["active"], false);

        // The logout token arrives, signed by a published key, with the spec's claims.
        let mut token = None;
        for _ in 0..50 {
            if let Some(t) = received.lock().unwrap().first().cloned() {
                token = Some(t);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let token = token.unwrap_or_else(|| panic!("{}: no back-channel logout", db.backend));
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
        let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(app.url("/oauth2/jwks"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_audience(&[&registered.id]);
        validation.set_issuer(&[&app.base]);
        let claims = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["sub"], user.id.to_string());
        assert_eq!(claims["sid"], sid);
        assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
        assert!(claims.get("nonce").is_none());
        assert!(claims["jti"].is_string());

        // A password change ends the other sessions: their apps hear of it too.
        let again = app.client();
        let (code, verifier, _) = authorize(&app, &rp, &again, "ada@example.com", &[]).await;
        exchange(&rp, code, verifier).await;
        let response = other
            .post(app.url("/api/v1/me/password"))
            .header("x-csrf-token", app.api_csrf(&other).await)
            .json(&serde_json::json!({"current_password": PASSWORD, "new_password": "a-brand-new-passphrase"}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        for _ in 0..50 {
            if received.lock().unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            received.lock().unwrap().len(),
            2,
            "{}: a logout token per ended session",
            db.backend
        );
    }
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_and_returns_to_the_client() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let registered = register(&app, "Webmail", false, true, None).await;
        let rp = relying_party(&app, &registered).await;
        let browser = app.client();
        let (code, verifier, _) = authorize(&app, &rp, &browser, "ada@example.com", &[]).await;
        let tokens = exchange(&rp, code, verifier).await;
        let id_token = tokens.id_token().unwrap().to_string();
        // An unregistered return address is refused with a page.
        let response = browser
            .get(app.url("/oauth2/logout"))
            .query(&[
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = browser
            .get(app.url("/oauth2/logout"))
            .query(&[
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
                ("state", "st"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", db.backend);
        assert_eq!(location(&response), "http://127.0.0.1:9/bye?state=st");
        let account = browser.get(app.url("/account")).send().await.unwrap();
        assert_eq!(location(&account), "/login", "the session is over");
        assert_eq!(
            userinfo_status(&app, tokens.access_token().secret()).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn third_party_clients_ask_for_consent_once_and_bearer_tokens_reach_the_account_api() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let registered = register(&app, "Photo app", false, false, None).await;
        let rp = relying_party(&app, &registered).await;
        let browser = app.client();
        // First time: the consent page (follow() allows it); the activity says so.
        let (code, verifier, _) =
            authorize(&app, &rp, &browser, "ada@example.com", &["account:read"]).await;
        let tokens = exchange(&rp, code, verifier).await;
        // Second time: straight back, the consent is remembered.
        let (challenge, _) = PkceCodeChallenge::new_random_sha256();
        let (url, _, _) = rp
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("account:read".into()))
            .set_pkce_challenge(challenge)
            .url();
        let response = browser.get(url.as_str()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert!(location(&response).starts_with(REDIRECT));

        // The account API accepts the bearer token for reads, not for changes.
        let api = reqwest::Client::new();
        let me = api
            .get(app.url("/api/v1/me"))
            .bearer_auth(tokens.access_token().secret())
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK, "{}", db.backend);
        assert_eq!(
            me.json::<Value>().await.unwrap()["email"],
            "ada@example.com"
        );
        let change = api
            .patch(app.url("/api/v1/me"))
            .bearer_auth(tokens.access_token().secret())
            .json(&serde_json::json!({"given_name": "Ada"}))
            .send()
            .await
            .unwrap();
        assert_eq!(change.status(), StatusCode::FORBIDDEN);
        let forged = api
            .get(app.url("/api/v1/me"))
            .bearer_auth("forged.token.here")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn administrators_register_clients_and_users_withdraw_consent() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.state
            .accounts
            .create_user(
                "root@example.com",
                "Root",
                PASSWORD,
                true,
                app.state.clock.now(),
            )
            .await
            .unwrap();
        app.create_user("ada@example.com", PASSWORD).await;
        let (admin, csrf) = app.signed_in("root@example.com").await;
        let response = admin
            .post(app.url("/api/v1/clients"))
            .header("x-csrf-token", &csrf)
            .json(&serde_json::json!({
                "name": "Calendar",
                "redirect_uris": [REDIRECT],
                "id_token_signed_response_alg": "ES256"
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{}", db.backend);
        let created: Value = response.json().await.unwrap();
        let secret = created["client_secret"].as_str().unwrap().to_string();
        let id = created["client_id"].as_str().unwrap().to_string();
        let listed: Value = admin
            .get(app.url("/api/v1/clients"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            listed["clients"][0].get("client_secret").is_none(),
            "the secret is shown once"
        );
        // Not for members; bad URIs refused.
        let (member, member_csrf) = app.signed_in("ada@example.com").await;
        let response = member.get(app.url("/api/v1/clients")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let response = admin
            .post(app.url("/api/v1/clients"))
            .header("x-csrf-token", &csrf)
            .json(&serde_json::json!({"name": "Bad", "redirect_uris": ["javascript:alert(1)"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

        // The third-party client gets consent, ES256 ID tokens as registered.
        let registered = Registered {
            id: id.clone(),
            secret: Some(secret),
        };
        let rp = relying_party(&app, &registered).await;
        let browser = app.client();
        let (code, verifier, nonce) =
            authorize(&app, &rp, &browser, "ada@example.com", &["account:read"]).await;
        let tokens = exchange(&rp, code, verifier).await;
        let id_token = tokens.id_token().unwrap();
        let verifier = rp.id_token_verifier().set_allowed_algs(vec![
            openidconnect::core::CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        ]);
        id_token
            .claims(&verifier, &nonce)
            .expect("an ES256 ID token");
        assert_eq!(
            *id_token.signing_alg().unwrap(),
            openidconnect::core::CoreJwsSigningAlgorithm::EcdsaP256Sha256
        );

        let consents: Value = member
            .get(app.url("/api/v1/me/consents"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(consents["consents"][0]["client_name"], "Calendar");
        // The page of allowed apps lists it with a button that withdraws it.
        let page = member
            .get(app.url("/account/apps"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("Calendar"));
        let response = member
            .post(app.url(&format!("/account/apps/{id}/revoke")))
            .form(&[("csrf", hidden_field(&page, "csrf"))])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let consents: Value = member
            .get(app.url("/api/v1/me/consents"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(consents["consents"].as_array().unwrap().len(), 0);
        let response = member
            .delete(app.url(&format!("/api/v1/me/consents/{id}")))
            .header("x-csrf-token", &member_csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "already withdrawn"
        );
        assert_eq!(
            userinfo_status(&app, tokens.access_token().secret()).await,
            StatusCode::UNAUTHORIZED
        );
        let response = browser
            .get(app.url("/oauth2/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", id.as_str()),
                ("redirect_uri", REDIRECT),
                ("scope", "openid"),
                ("prompt", "none"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        let back = url::Url::parse(&location(&response)).unwrap();
        assert_eq!(param(&back, "error").as_deref(), Some("consent_required"));

        // Deleting the client stops it at once.
        let response = admin
            .delete(app.url(&format!("/api/v1/clients/{id}")))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let (status, _) = post_form(
            &app,
            "/oauth2/token",
            &registered,
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn private_key_jwt_clients_authenticate_with_a_single_use_assertion() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
            "x": b64.encode(&point[1..33]), "y": b64.encode(&point[33..]),
        }]});
        let (client, _) = app
            .register_client("Backend", REDIRECT, |spec| {
                spec.auth_method = gotthard::oidc::ClientAuthMethod::PrivateKeyJwt;
                spec.jwks = Some(jwks.to_string());
            })
            .await;
        let now = app.state.clock.now().unix_timestamp();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k1".into());
        let assertion = jsonwebtoken::encode(
            &header,
            &serde_json::json!({"iss": client.id, "sub": client.id, "aud": app.url("/oauth2/token"),
                "exp": now + 60, "iat": now, "jti": "a-1"}),
            &jsonwebtoken::EncodingKey::from_ec_der(der.as_ref()),
        )
        .unwrap();
        let form = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ];
        let plain = reqwest::Client::new();
        let first = plain
            .post(app.url("/oauth2/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), StatusCode::OK, "{}", db.backend);
        let replay = plain
            .post(app.url("/oauth2/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            replay.status(),
            StatusCode::UNAUTHORIZED,
            "{}: an assertion is single use",
            db.backend
        );
    }
}

#[tokio::test]
async fn rotated_keys_are_published_and_old_tokens_still_verify() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let service = register(&app, "Billing", false, true, None).await;
        let (_, body) = post_form(
            &app,
            "/oauth2/token",
            &service,
            &[("grant_type", "client_credentials")],
        )
        .await;
        let old = body["access_token"].as_str().unwrap().to_string();
        let old_kid = jsonwebtoken::decode_header(&old).unwrap().kid.unwrap();
        let keys_dir = db.dir.path().join("keys");
        let later = app.state.clock.now() + time::Duration::seconds(5);
        gotthard::tokens::signing::rotate(&keys_dir, app.state.config.oidc.key_retention(), later)
            .unwrap();
        app.state.provider.keys().reload(later).unwrap();
        let (_, body) = post_form(
            &app,
            "/oauth2/token",
            &service,
            &[("grant_type", "client_credentials")],
        )
        .await;
        let new = body["access_token"].as_str().unwrap().to_string();
        let new_kid = jsonwebtoken::decode_header(&new).unwrap().kid.unwrap();
        assert_ne!(old_kid, new_kid, "the new key signs");
        let jwks: Value = reqwest::get(app.url("/oauth2/jwks"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()));
        let (_, info) = post_form(&app, "/oauth2/introspect", &service, &[("token", &old)]).await;
        assert_eq!(
            info["active"], true,
            "{}: a token of the old key is still good",
            db.backend
        );
    }
}

/// Issue 14, item 2: script in a first-party app can silently get an `account:write` token
/// for a signed-in administrator; that token must not administer anything.
#[tokio::test]
async fn administration_needs_the_admin_scope_which_is_asked_every_time() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let now = app.state.clock.now();
        let root = "root@example.com";
        app.state
            .accounts
            .create_user(root, "Root", PASSWORD, true, now)
            .await
            .unwrap();
        let org = app.state.orgs.create("Contoso", now).await.unwrap();
        app.state
            .orgs
            .add_member(
                "Contoso",
                root,
                gotthard::orgs::OrgRole::LegalRepresentative,
                now,
            )
            .await
            .unwrap();
        let browser = app.client();
        let api = reqwest::Client::new();
        let new_client = serde_json::json!({
            "name": "Evil", "redirect_uris": ["https://evil.example/cb"]
        });

        // A first-party app without the admin registration: account:write, no consent.
        let portal = register(&app, "Portal", false, true, None).await;
        let portal_rp = relying_party(&app, &portal).await;
        let (code, verifier, _) = authorize(
            &app,
            &portal_rp,
            &browser,
            root,
            &["openid", "account:write"],
        )
        .await;
        let silent = exchange(&portal_rp, code, verifier).await;
        let silent = silent.access_token().secret();
        let register_evil = api
            .post(app.url("/api/v1/clients"))
            .bearer_auth(silent)
            .json(&new_client)
            .send()
            .await
            .unwrap();
        assert_eq!(
            register_evil.status(),
            StatusCode::FORBIDDEN,
            "{}",
            db.backend
        );
        let challenge = register_evil.headers()["www-authenticate"]
            .to_str()
            .unwrap();
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
        let sso = api
            .put(app.url(&format!("/api/v1/orgs/{}/sso", org.id)))
            .bearer_auth(silent)
            .json(&serde_json::json!({
                "tenant_id": uuid::Uuid::new_v4(), "client_id": uuid::Uuid::new_v4(),
                "client_secret": "x", "domains": ["contoso.example"],
                "authority": "https://evil.example",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(sso.status(), StatusCode::FORBIDDEN);
        let members = api
            .get(app.url(&format!("/api/v1/orgs/{}/members", org.id)))
            .bearer_auth(silent)
            .send()
            .await
            .unwrap();
        assert_eq!(members.status(), StatusCode::FORBIDDEN);
        assert_eq!(db.count("oauth_clients").await, 1);
        // The user's own account stays within account:write's reach.
        let own = api
            .patch(app.url("/api/v1/me"))
            .bearer_auth(silent)
            .json(&serde_json::json!({"given_name": "Root"}))
            .send()
            .await
            .unwrap();
        assert_eq!(own.status(), StatusCode::OK);
        // Nor may that app ask for the admin scope.
        let (url, _, _) = portal_rp
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("admin".into()))
            .url();
        let refused = browser.get(url.as_str()).send().await.unwrap();
        let back = url::Url::parse(&location(&refused)).unwrap();
        assert_eq!(param(&back, "error").as_deref(), Some("invalid_scope"));

        // A console registered for it: asked every time, even first-party, never silently.
        let (console, secret) = app
            .register_client("Console", REDIRECT, |spec| spec.admin_scope = true)
            .await;
        let console = Registered {
            id: console.id,
            secret,
        };
        let console_rp = relying_party(&app, &console).await;
        let admin_url = |prompt: Option<&str>| {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            let mut request = console_rp
                .authorize_url(
                    CoreAuthenticationFlow::AuthorizationCode,
                    CsrfToken::new_random,
                    Nonce::new_random,
                )
                .add_scope(Scope::new("admin".into()))
                .set_pkce_challenge(challenge);
            if let Some(prompt) = prompt {
                request = request.add_extra_param("prompt", prompt);
            }
            (request.url().0, verifier)
        };
        let (url, _) = admin_url(Some("none"));
        let refused = browser.get(url.as_str()).send().await.unwrap();
        let back = url::Url::parse(&location(&refused)).unwrap();
        assert_eq!(param(&back, "error").as_deref(), Some("consent_required"));
        for _ in 0..2 {
            let (url, verifier) = admin_url(None);
            let page = browser.get(url.as_str()).send().await.unwrap();
            assert_eq!(page.status(), StatusCode::OK, "the consent page, each time");
            let html = page.text().await.unwrap();
            assert!(html.contains("administer for you"), "{html}");
            let back = follow(&app, &browser, url.as_str(), root).await;
            let tokens = exchange(&console_rp, param(&back, "code").unwrap(), verifier).await;
            let created = api
                .post(app.url("/api/v1/clients"))
                .bearer_auth(tokens.access_token().secret())
                .json(&new_client)
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), StatusCode::CREATED);
            // The admin scope is no account scope: the profile stays out of its reach.
            let me = api
                .get(app.url("/api/v1/me"))
                .bearer_auth(tokens.access_token().secret())
                .send()
                .await
                .unwrap();
            assert_eq!(me.status(), StatusCode::FORBIDDEN);
        }
    }
}

#[tokio::test]
async fn introspection_answers_only_the_tokens_client_and_its_resource_servers() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.state
            .accounts
            .create_user(
                "root@example.com",
                "Root",
                PASSWORD,
                true,
                app.state.clock.now(),
            )
            .await
            .unwrap();
        app.create_user("ada@example.com", PASSWORD).await;
        let webmail = register(&app, "Webmail", false, true, None).await;
        let other = register(&app, "Other app", false, true, None).await;
        let rp = relying_party(&app, &webmail).await;
        let (code, verifier, _) = authorize(&app, &rp, &app.client(), "ada@example.com", &[]).await;
        let tokens = exchange(&rp, code, verifier).await;
        let access = tokens.access_token().secret().clone();
        let refresh = tokens.refresh_token().unwrap().secret().clone();

        // Another client learns nothing: not the subject, the session or the scopes.
        for token in [&access, &refresh] {
            let (status, info) =
                post_form(&app, "/oauth2/introspect", &other, &[("token", token)]).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(info, serde_json::json!({"active": false}), "{}", db.backend);
        }
        // The token's own client sees it.
        let (_, info) =
            post_form(&app, "/oauth2/introspect", &webmail, &[("token", &access)]).await;
        assert_eq!(info["active"], true, "{}", db.backend);
        assert_eq!(info["client_id"], webmail.id.as_str());
        assert!(info["sid"].is_string());

        // A resource server registered for Webmail at the command line ...
        let created = crate::cli::gotthard(
            &db,
            &[
                "client",
                "create",
                "--name",
                "Mail API",
                "--redirect-uri",
                REDIRECT,
                "--introspect-for",
                &webmail.id,
            ],
            None,
        );
        assert!(
            created.status.success(),
            "{}: {}",
            db.backend,
            crate::cli::stderr(&created)
        );
        let created: Value = serde_json::from_str(&crate::cli::stdout(&created)).unwrap();
        let mail_api = Registered {
            id: created["client_id"].as_str().unwrap().to_string(),
            secret: created["client_secret"].as_str().map(str::to_string),
        };
        // ... and one through the API.
        let (admin, csrf) = app.signed_in("root@example.com").await;
        let response = admin
            .post(app.url("/api/v1/clients"))
            .header("x-csrf-token", &csrf)
            .json(&serde_json::json!({
                "name": "Archive",
                "redirect_uris": [REDIRECT],
                "introspect_for": [webmail.id],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{}", db.backend);
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["introspect_for"], serde_json::json!([webmail.id]));
        let archive = Registered {
            id: created["client_id"].as_str().unwrap().to_string(),
            secret: created["client_secret"].as_str().map(str::to_string),
        };
        for server in [&mail_api, &archive] {
            let (_, info) =
                post_form(&app, "/oauth2/introspect", server, &[("token", &access)]).await;
            assert_eq!(info["active"], true, "{}: {}", db.backend, server.id);
            assert_eq!(info["sub"], tokens_subject(&app, "ada@example.com").await);
            // A refresh token stays its own client's business.
            let (_, info) =
                post_form(&app, "/oauth2/introspect", server, &[("token", &refresh)]).await;
            assert_eq!(info, serde_json::json!({"active": false}));
        }
        // Being Webmail's resource server says nothing about the other client's tokens.
        let (_, body) = post_form(
            &app,
            "/oauth2/token",
            &other,
            &[("grant_type", "client_credentials")],
        )
        .await;
        let machine = body["access_token"].as_str().unwrap();
        let (_, info) =
            post_form(&app, "/oauth2/introspect", &mail_api, &[("token", machine)]).await;
        assert_eq!(info, serde_json::json!({"active": false}));
        let (_, info) = post_form(&app, "/oauth2/introspect", &other, &[("token", machine)]).await;
        assert_eq!(info["active"], true);

        // Only registered clients can be named.
        let response = admin
            .post(app.url("/api/v1/clients"))
            .header("x-csrf-token", &csrf)
            .json(&serde_json::json!({
                "name": "Nobody's",
                "redirect_uris": [REDIRECT],
                "introspect_for": ["no-such-client"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}

/// The `sub` of a user's tokens (the account's id).
async fn tokens_subject(app: &TestApp, email: &str) -> String {
    let user = app.state.store.user_by_email(email).await.unwrap().unwrap();
    user.id.to_string()
}

#[tokio::test]
async fn backchannel_logout_uris_must_be_https_or_loopback_http() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.state
            .accounts
            .create_user(
                "root@example.com",
                "Root",
                PASSWORD,
                true,
                app.state.clock.now(),
            )
            .await
            .unwrap();
        let (admin, csrf) = app.signed_in("root@example.com").await;
        for (uri, status) in [
            ("gopher://x", StatusCode::UNPROCESSABLE_ENTITY),
            ("http://app.example/bc", StatusCode::UNPROCESSABLE_ENTITY),
            ("https://app.example/bc#x", StatusCode::UNPROCESSABLE_ENTITY),
            ("https://app.example/bc", StatusCode::CREATED),
            ("http://127.0.0.1:9/bc", StatusCode::CREATED),
        ] {
            let response = admin
                .post(app.url("/api/v1/clients"))
                .header("x-csrf-token", &csrf)
                .json(&serde_json::json!({
                    "name": "App",
                    "redirect_uris": [REDIRECT],
                    "backchannel_logout_uri": uri,
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{}: {uri}", db.backend);
            if status != StatusCode::CREATED {
                let problem: Value = response.json().await.unwrap();
                assert!(
                    problem["detail"]
                        .as_str()
                        .unwrap()
                        .contains("backchannel_logout_uri"),
                    "{problem}"
                );
            }
        }
        let refused = crate::cli::gotthard(
            &db,
            &[
                "client",
                "create",
                "--name",
                "Gopher",
                "--redirect-uri",
                REDIRECT,
                "--backchannel-logout-uri",
                "gopher://x",
            ],
            None,
        );
        assert!(!refused.status.success(), "{}", db.backend);
        assert!(
            crate::cli::stderr(&refused).contains("backchannel_logout_uri"),
            "{}",
            crate::cli::stderr(&refused)
        );
        let listed = crate::cli::gotthard(&db, &["client", "list"], None);
        assert!(!crate::cli::stdout(&listed).contains("Gopher"));
        assert_eq!(
            app.state.store.list_clients().await.unwrap().len(),
            2,
            "{}: only the two acceptable ones were stored",
            db.backend
        );
    }
}

/// A back-channel logout receiver that records the logout tokens it gets.
async fn logout_receiver(answer: StatusCode) -> (String, Arc<Mutex<Vec<String>>>) {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = received.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/backchannel",
        axum::routing::post(
            move |axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
                let sink = sink.clone();
                async move {
                    sink.lock()
                        .unwrap()
                        .push(form.get("logout_token").cloned().unwrap_or_default());
                    answer
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, received)
}

/// Signs a new browser in to `registered` (code flow) and returns the session id of its
/// tokens.
async fn session_with_tokens(app: &TestApp, registered: &Registered) -> String {
    let rp = relying_party(app, registered).await;
    let (code, verifier, _) = authorize(app, &rp, &app.client(), "ada@example.com", &[]).await;
    let tokens = exchange(&rp, code, verifier).await;
    let (_, info) = post_form(
        app,
        "/oauth2/introspect",
        registered,
        &[("token", tokens.access_token().secret())],
    )
    .await;
    info["sid"].as_str().unwrap().to_string()
}

async fn end_session(app: &TestApp, device: &(reqwest::Client, String), sid: &str) {
    let response = device
        .0
        .delete(app.url(&format!("/api/v1/me/sessions/{sid}")))
        .header("x-csrf-token", &device.1)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

async fn wait_until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !done() {
        assert!(
            std::time::Instant::now() < until,
            "not within {seconds} s: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_receiver_that_hangs_does_not_delay_the_others_logouts() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    for db in databases().await {
        // A receiver that accepts connections and never answers; it notes how many it
        // holds at once.
        let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hanging_url = format!("http://{}/backchannel", hanging.local_addr().unwrap());
        let (open, most_open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (open_in, most_in) = (open.clone(), most_open.clone());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = hanging.accept().await.unwrap();
                let now_open = open_in.fetch_add(1, Ordering::SeqCst) + 1;
                most_in.fetch_max(now_open, Ordering::SeqCst);
                let open = open_in.clone();
                tokio::spawn(async move {
                    // Read and never answer, until the sender gives up and closes.
                    let mut buf = [0u8; 4096];
                    while tokio::io::AsyncReadExt::read(&mut socket, &mut buf)
                        .await
                        .is_ok_and(|n| n > 0)
                    {}
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let (working_url, received) = logout_receiver(StatusCode::OK).await;

        let app = TestApp::start_with(
            &db,
            &[
                ("oidc.backchannel_poll_interval_secs", "1"),
                ("oidc.backchannel_per_receiver", "2"),
            ],
        )
        .await;
        app.create_user("ada@example.com", PASSWORD).await;
        let stuck = register(&app, "Stuck", false, true, Some(hanging_url)).await;
        let working = register(&app, "Working", false, true, Some(working_url)).await;
        let mut stuck_sessions = Vec::new();
        for _ in 0..3 {
            stuck_sessions.push(session_with_tokens(&app, &stuck).await);
        }
        let working_session = session_with_tokens(&app, &working).await;
        let device = app.signed_in("ada@example.com").await;

        // Three sessions with tokens of the hanging app end: its deliveries hang (two at
        // once, its limit; the third waits for a slot).
        for sid in &stuck_sessions {
            end_session(&app, &device, sid).await;
        }
        wait_until("a connection to the hanging receiver", 5, || {
            open.load(Ordering::SeqCst) >= 1
        })
        .await;
        // The working app's logout goes out at once all the same.
        end_session(&app, &device, &working_session).await;
        wait_until("the working receiver's logout token", 3, || {
            received.lock().unwrap().len() == 1
        })
        .await;
        assert_eq!(
            most_open.load(Ordering::SeqCst),
            2,
            "{}: at most two at once to one receiver",
            db.backend
        );
    }
}

/// `gotthard_backchannel_logouts{state="…"}` from `/metrics`.
async fn logouts_in_state(app: &TestApp, state: &str) -> Option<i64> {
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("gotthard_backchannel_logouts{{state=\"{state}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn a_receiver_that_always_fails_is_dead_lettered_after_the_last_attempt() {
    for db in databases().await {
        let (url, received) = logout_receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
        let app = TestApp::start_with(
            &db,
            &[
                ("oidc.backchannel_poll_interval_secs", "1"),
                ("oidc.backchannel_max_attempts", "3"),
                ("oidc.backchannel_retry_base_secs", "1"),
            ],
        )
        .await;
        app.create_user("ada@example.com", PASSWORD).await;
        let failing = register(&app, "Failing", false, true, Some(url)).await;
        let sid = session_with_tokens(&app, &failing).await;
        let device = app.signed_in("ada@example.com").await;
        end_session(&app, &device, &sid).await;
        assert_eq!(logouts_in_state(&app, "queued").await, Some(1));

        // Tried at once, then after 1 s and 2 s: three attempts, then no more.
        wait_until("three attempts", 15, || received.lock().unwrap().len() == 3).await;
        let mut dead = None;
        for _ in 0..40 {
            dead = logouts_in_state(&app, "dead").await;
            if dead == Some(1) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(dead, Some(1), "{}: dead-lettered and visible", db.backend);
        assert_eq!(logouts_in_state(&app, "queued").await, Some(0));
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert_eq!(
            received.lock().unwrap().len(),
            3,
            "{}: no attempt after the last",
            db.backend
        );
    }
}
