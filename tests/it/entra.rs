//! A stand-in for Microsoft Entra ID v2.0 on loopback: the same URL shapes per tenant
//! (discovery, authorize, token, keys), RS256 ID tokens with Entra's claims (`tid`, `oid`,
//! `ver: "2.0"` …), key rotation, a plain sign-in page that a script or a browser can pass,
//! and switchable failure modes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// What the double does wrong on purpose, until set back to `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    None,
    /// `iss` and `tid` of another tenant (a token minted for someone else).
    OtherTenant,
    /// The right `iss`, another `tid`.
    WrongTid,
    /// The signature does not match the token.
    BadSignature,
    /// Signed with a key that the JWKS does not publish.
    UnknownKid,
    /// `exp` an hour in the past.
    Expired,
    /// `nbf` an hour in the future.
    NotYetValid,
    /// `aud` is another application.
    WrongAudience,
    /// No `nonce` claim.
    MissingNonce,
    /// `auth_time` a day ago: an old Entra session reused, whatever the request asked.
    StaleAuthTime,
    /// The authorize endpoint answers with this `error` and `error_description`.
    ErrorRedirect(String, String),
}

#[derive(Clone)]
pub struct DirectoryUser {
    pub oid: String,
    pub email: Option<String>,
    pub name: String,
}

struct SigningKey {
    kid: String,
    pair: KeyPair,
}

struct Grant {
    tenant: String,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    username: String,
}

struct Inner {
    base: String,
    client_id: String,
    client_secret: String,
    users: HashMap<String, DirectoryUser>,
    keys: Vec<SigningKey>,
    /// Signs, not published.
    stray: SigningKey,
    codes: HashMap<String, Grant>,
    failure: Failure,
    discovery_fetches: usize,
    /// The query of the last authorize request, as received.
    last_authorize: HashMap<String, String>,
}

#[derive(Clone)]
pub struct Entra {
    pub base: String,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    inner: Arc<Mutex<Inner>>,
    _shutdown: Arc<oneshot::Sender<()>>,
}

fn new_key() -> SigningKey {
    let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let kid = URL_SAFE_NO_PAD.encode(
        &Sha256::digest(
            pair.public_key()
                .modulus()
                .big_endian_without_leading_zero(),
        )[..12],
    );
    SigningKey { kid, pair }
}

impl Entra {
    pub async fn start() -> Entra {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            base: base.clone(),
            client_id: uuid::Uuid::new_v4().to_string(),
            client_secret: "Qx8~double.secret-value_1234567890abcdefgh".to_string(),
            users: HashMap::new(),
            keys: vec![new_key()],
            stray: new_key(),
            codes: HashMap::new(),
            failure: Failure::None,
            discovery_fetches: 0,
            last_authorize: HashMap::new(),
        }));
        let app = Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(keys))
            .route(
                "/{tenant}/oauth2/v2.0/authorize",
                get(authorize_page).post(authorize_submit),
            )
            .route("/{tenant}/oauth2/v2.0/token", axum::routing::post(token))
            .with_state(inner.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        let (client_id, client_secret) = {
            let i = inner.lock().unwrap();
            (i.client_id.clone(), i.client_secret.clone())
        };
        Entra {
            base,
            tenant: uuid::Uuid::new_v4().to_string(),
            client_id,
            client_secret,
            inner,
            _shutdown: Arc::new(tx),
        }
    }

    /// Adds (or replaces) a user of the directory, signed in with `username`.
    pub fn add_user(&self, username: &str, email: Option<&str>, name: &str) -> String {
        let oid = uuid::Uuid::new_v4().to_string();
        self.inner.lock().unwrap().users.insert(
            username.to_string(),
            DirectoryUser {
                oid: oid.clone(),
                email: email.map(str::to_string),
                name: name.to_string(),
            },
        );
        oid
    }

    /// What a tenant administrator can do: change the user's `email` claim.
    pub fn set_email(&self, username: &str, email: Option<&str>) {
        let mut inner = self.inner.lock().unwrap();
        inner.users.get_mut(username).unwrap().email = email.map(str::to_string);
    }

    /// The settings that connect an organization to this double for `domains`: provisioning
    /// members, SSO not enforced (adjust with struct update syntax).
    pub fn settings(&self, domains: &[&str]) -> gotthard::orgs::SsoSettings {
        gotthard::orgs::SsoSettings {
            tenant_id: self.tenant.clone(),
            client_id: self.client_id.clone(),
            client_secret: Some(self.client_secret.clone()),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            authority: Some(self.base.clone()),
            provision: true,
            default_role: gotthard::orgs::OrgRole::Member,
            enforce_sso: false,
        }
    }

    pub fn fail_with(&self, failure: Failure) {
        self.inner.lock().unwrap().failure = failure;
    }

    /// Key rollover: a new signing key; the JWKS publishes only it from now on.
    pub fn rotate_keys(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.keys = vec![new_key()];
    }

    pub fn discovery_fetches(&self) -> usize {
        self.inner.lock().unwrap().discovery_fetches
    }

    pub fn last_authorize(&self) -> HashMap<String, String> {
        self.inner.lock().unwrap().last_authorize.clone()
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

async fn discovery(State(inner): Shared, Path(tenant): Path<String>) -> Json<serde_json::Value> {
    let mut inner = inner.lock().unwrap();
    inner.discovery_fetches += 1;
    let base = &inner.base;
    Json(serde_json::json!({
        "issuer": format!("{base}/{tenant}/v2.0"),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported":
            ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "nonce", "oid",
            "preferred_username", "email", "tid", "ver"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "request_uri_parameter_supported": false,
    }))
}

async fn keys(State(inner): Shared) -> Json<serde_json::Value> {
    let inner = inner.lock().unwrap();
    let keys: Vec<_> = inner
        .keys
        .iter()
        .map(|k| {
            let public = k.pair.public_key();
            serde_json::json!({
                "kty": "RSA",
                "use": "sig",
                "kid": k.kid,
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            })
        })
        .collect();
    Json(serde_json::json!({ "keys": keys }))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.to_string()
}

async fn authorize_page(
    State(inner): Shared,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.last_authorize = query.clone();
    let get = |k: &str| query.get(k).cloned().unwrap_or_default();
    if get("client_id") != inner.client_id {
        return (
            StatusCode::BAD_REQUEST,
            "AADSTS700016: application not found",
        )
            .into_response();
    }
    if get("response_type") != "code" || get("code_challenge_method") != "S256" {
        return (StatusCode::BAD_REQUEST, "AADSTS900144: bad request").into_response();
    }
    if let Failure::ErrorRedirect(error, description) = &inner.failure {
        return Redirect::to(&with_query(
            &get("redirect_uri"),
            &[
                ("error", error),
                ("error_description", description),
                ("state", &get("state")),
            ],
        ))
        .into_response();
    }
    let hidden: String = [
        "client_id",
        "redirect_uri",
        "state",
        "nonce",
        "code_challenge",
        "scope",
    ]
    .iter()
    .map(|k| {
        format!(
            "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
            escape(&get(k))
        )
    })
    .collect();
    Html(format!(
        "<!doctype html><html><head><title>Sign in to your account</title></head><body>\
         <h1>Microsoft (test double) — tenant {tenant}</h1>\
         <form method=\"post\" action=\"/{tenant}/oauth2/v2.0/authorize\">{hidden}\
         <input id=\"entra-username\" name=\"username\" value=\"{}\">\
         <button type=\"submit\" id=\"entra-submit\">Sign in</button></form></body></html>",
        escape(&get("login_hint"))
    ))
    .into_response()
}

#[derive(serde::Deserialize)]
struct Approval {
    client_id: String,
    redirect_uri: String,
    state: String,
    #[serde(default)]
    nonce: String,
    code_challenge: String,
    username: String,
}

async fn authorize_submit(
    State(inner): Shared,
    Path(tenant): Path<String>,
    Form(form): Form<Approval>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if !inner.users.contains_key(&form.username) {
        return (
            StatusCode::OK,
            "AADSTS50034: the user account does not exist",
        )
            .into_response();
    }
    let code = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    inner.codes.insert(
        code.clone(),
        Grant {
            tenant,
            client_id: form.client_id,
            redirect_uri: form.redirect_uri.clone(),
            challenge: form.code_challenge,
            nonce: (!form.nonce.is_empty()).then_some(form.nonce),
            username: form.username,
        },
    );
    Redirect::to(&with_query(
        &form.redirect_uri,
        &[("code", &code), ("state", &form.state)],
    ))
    .into_response()
}

#[derive(serde::Deserialize)]
struct TokenRequest {
    grant_type: String,
    code: String,
    redirect_uri: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    code_verifier: String,
}

fn token_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

async fn token(
    State(inner): Shared,
    Path(tenant): Path<String>,
    Form(req): Form<TokenRequest>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if req.grant_type != "authorization_code" {
        return token_error("unsupported_grant_type", "AADSTS70003");
    }
    if req.client_id != inner.client_id || req.client_secret != inner.client_secret {
        return token_error(
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    // Codes are single-use.
    let Some(grant) = inner.codes.remove(&req.code) else {
        return token_error(
            "invalid_grant",
            "AADSTS70008: the code has expired or was used.",
        );
    };
    let verified = URL_SAFE_NO_PAD.encode(Sha256::digest(req.code_verifier.as_bytes()));
    if grant.tenant != tenant
        || grant.client_id != req.client_id
        || grant.redirect_uri != req.redirect_uri
        || verified != grant.challenge
    {
        return token_error(
            "invalid_grant",
            "AADSTS501481: the code verifier does not match.",
        );
    }
    let user = inner.users[&grant.username].clone();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut tid = tenant.clone();
    let mut iss = format!("{}/{tenant}/v2.0", inner.base);
    let mut aud = inner.client_id.clone();
    let (mut iat, mut nbf, mut exp) = (now, now, now + 3600);
    let mut nonce = grant.nonce.clone();
    // The form was just submitted: the user signed in now.
    let mut auth_time = now;
    match &inner.failure {
        Failure::OtherTenant => {
            tid = uuid::Uuid::new_v4().to_string();
            iss = format!("{}/{tid}/v2.0", inner.base);
        }
        Failure::WrongTid => tid = uuid::Uuid::new_v4().to_string(),
        Failure::WrongAudience => aud = uuid::Uuid::new_v4().to_string(),
        Failure::Expired => (iat, nbf, exp) = (now - 7200, now - 7200, now - 3600),
        Failure::NotYetValid => (iat, nbf, exp) = (now, now + 3600, now + 7200),
        Failure::MissingNonce => nonce = None,
        Failure::StaleAuthTime => auth_time = now - 86_400,
        _ => {}
    }
    let mut claims = serde_json::json!({
        "aud": aud,
        "iss": iss,
        "iat": iat,
        "auth_time": auth_time,
        "nbf": nbf,
        "exp": exp,
        "name": user.name,
        "oid": user.oid,
        "preferred_username": grant.username,
        // Pairwise per application, as Entra's `sub`.
        "sub": URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{}{}", user.oid, aud))),
        "tid": tid,
        "ver": "2.0",
    });
    if let Some(email) = &user.email {
        claims["email"] = email.clone().into();
    }
    if let Some(nonce) = nonce {
        claims["nonce"] = nonce.into();
    }
    let key = if inner.failure == Failure::UnknownKid {
        &inner.stray
    } else {
        &inner.keys[0]
    };
    let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "kid": key.kid });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0u8; key.pair.public_modulus_len()];
    key.pair
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .unwrap();
    if inner.failure == Failure::BadSignature {
        let last = signature.len() - 1;
        signature[last] ^= 0x5a;
    }
    let id_token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&signature));
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "token_type": "Bearer",
            "scope": "openid profile email",
            "expires_in": 3599,
            "access_token": "not-a-graph-token",
            "id_token": id_token,
        })),
    )
        .into_response()
}
