//! Sign in with SSO against the Entra ID double, over HTTP, on SQLite and PostgreSQL.

use reqwest::StatusCode;
use uuid::Uuid;

use crate::entra::{Entra, Failure};
use crate::support::{PASSWORD, TestApp, TestDb, databases, text_of};
use gotthard::orgs::OrgRole;

const DOMAIN: &str = "contoso.example";

/// A running Gotthard and Entra double, and an organization whose legal representative
/// connected it to the double's tenant through the API.
struct Sso {
    app: TestApp,
    entra: Entra,
    org: Uuid,
    admin: (reqwest::Client, String),
}

async fn setup(db: &TestDb, provision: bool, enforce_sso: bool) -> Sso {
    setup_with(db, provision, enforce_sso, &[]).await
}

async fn setup_with(
    db: &TestDb,
    provision: bool,
    enforce_sso: bool,
    extra: &[(&str, &str)],
) -> Sso {
    let entra = Entra::start().await;
    let app = TestApp::start_with(db, extra).await;
    let now = app.state.clock.now();
    let org = app.state.orgs.create("Contoso", now).await.unwrap();
    // An administrator of this instance too: only they (or an operator) may point the
    // connection at an authority outside Entra's clouds, like the double.
    app.state
        .accounts
        .create_user("rep@example.net", "Rep", PASSWORD, true, now)
        .await
        .unwrap();
    app.state
        .orgs
        .add_member(
            "Contoso",
            "rep@example.net",
            OrgRole::LegalRepresentative,
            now,
        )
        .await
        .unwrap();
    let admin = app.signed_in("rep@example.net").await;
    let response = admin
        .0
        .put(app.url(&format!("/api/v1/orgs/{}/sso", org.id)))
        .header("x-csrf-token", &admin.1)
        .json(&serde_json::json!({
            "tenant_id": entra.tenant,
            "client_id": entra.client_id,
            "client_secret": entra.client_secret,
            "domains": [DOMAIN],
            "authority": entra.base,
            "provision": provision,
            "default_role": "member",
            "enforce_sso": enforce_sso,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", db.backend);
    app.verify_domain(org.id, DOMAIN).await;
    Sso {
        app,
        entra,
        org: org.id,
        admin,
    }
}

fn attr(html: &str, css: &str, name: &str) -> String {
    let doc = scraper::Html::parse_document(html);
    let selector = scraper::Selector::parse(css).unwrap();
    doc.select(&selector)
        .next()
        .and_then(|e| e.value().attr(name))
        .unwrap_or_else(|| panic!("no {css}[{name}] in:\n{html}"))
        .to_string()
}

impl Sso {
    /// From the SSO form through the double's sign-in page: the callback URL the double
    /// sends the browser to.
    async fn to_callback(&self, client: &reqwest::Client, email: &str, username: &str) -> String {
        self.to_callback_from(client, "/login/sso", email, username)
            .await
    }

    /// The same, from a given SSO form (which may carry a relying app's request in `next`).
    async fn to_callback_from(
        &self,
        client: &reqwest::Client,
        form_path: &str,
        email: &str,
        username: &str,
    ) -> String {
        let form = client
            .get(self.app.url(form_path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = crate::support::hidden_field(&form, "csrf");
        let next = scraper::Html::parse_document(&form)
            .select(&scraper::Selector::parse("input[name=next]").unwrap())
            .next()
            .and_then(|e| e.value().attr("value").map(str::to_string))
            .unwrap_or_default();
        let hop = client
            .post(self.app.url("/login/sso"))
            .form(&[("email", email), ("csrf", &csrf), ("next", &next)])
            .send()
            .await
            .unwrap();
        assert_eq!(hop.status(), StatusCode::OK);
        let html = hop.text().await.unwrap();
        let authorize = attr(&html, "a#sso-continue", "href");
        assert_eq!(
            attr(&html, "meta[http-equiv=refresh]", "content"),
            format!("0;url={authorize}")
        );
        let page = client.get(&authorize).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "the double's sign-in page");
        let page = page.text().await.unwrap();
        let mut form: Vec<(String, String)> = scraper::Html::parse_document(&page)
            .select(&scraper::Selector::parse("form input[type=hidden]").unwrap())
            .map(|e| {
                (
                    e.value().attr("name").unwrap().to_string(),
                    e.value().attr("value").unwrap_or("").to_string(),
                )
            })
            .collect();
        form.push(("username".into(), username.into()));
        let approved = client
            .post(format!(
                "{}/{}/oauth2/v2.0/authorize",
                self.entra.base, self.entra.tenant
            ))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            approved.status(),
            StatusCode::SEE_OTHER,
            "{:?}",
            approved.text().await
        );
        approved
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    }

    /// The whole round trip; returns the callback's answer.
    async fn sign_in(
        &self,
        client: &reqwest::Client,
        email: &str,
        username: &str,
    ) -> reqwest::Response {
        let callback = self.to_callback(client, email, username).await;
        client.get(callback).send().await.unwrap()
    }

    async fn account_email(&self, client: &reqwest::Client) -> Option<String> {
        let page = client.get(self.app.url("/account")).send().await.unwrap();
        if page.status() != StatusCode::OK {
            return None;
        }
        text_of(&page.text().await.unwrap(), "#account-email")
    }
}

/// `(user_id, details)` of every event with this action, read directly.
async fn events(db: &TestDb, action: &str) -> Vec<(Option<Uuid>, serde_json::Value)> {
    let sql = "SELECT user_id, details FROM activity_events WHERE action = $1 ORDER BY id";
    let rows: Vec<(Option<Uuid>, String)> = if db.backend == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query_as(sql)
            .bind(action)
            .fetch_all(&pool)
            .await
            .unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query_as(sql)
            .bind(action)
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    rows.into_iter()
        .map(|(u, d)| (u, serde_json::from_str(&d).unwrap()))
        .collect()
}

async fn failure_reasons(db: &TestDb) -> Vec<String> {
    events(db, "login.failed")
        .await
        .into_iter()
        .map(|(_, d)| d["reason"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn first_sign_in_provisions_and_the_second_finds_the_same_account_by_tid_and_oid() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let username = "ada@contoso.example";
        sso.entra.add_user(username, Some(username), "Ada Lovelace");
        let client = sso.app.client();
        let done = sso.sign_in(&client, username, username).await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", db.backend);
        assert_eq!(done.headers()["location"], "/account");
        assert_eq!(sso.account_email(&client).await.as_deref(), Some(username));

        // The authorize request carried PKCE, a nonce and the hints.
        let sent = sso.entra.last_authorize();
        assert_eq!(sent["code_challenge_method"], "S256");
        assert_eq!(sent["login_hint"], username);
        assert_eq!(sent["domain_hint"], DOMAIN);
        assert!(sent["nonce"].len() >= 32);
        assert!(sent["scope"].split(' ').any(|s| s == "openid"));

        // A member of the organization with the default role, without a password.
        let state = &sso.app.state;
        let user = state.store.user_by_email(username).await.unwrap().unwrap();
        assert_eq!(user.name, "Ada Lovelace");
        assert!(user.password_hash.is_none());
        assert_eq!(
            state.store.membership_role(sso.org, user.id).await.unwrap(),
            Some(OrgRole::Member)
        );
        let sessions = state.store.sessions_of_user(user.id).await.unwrap();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].method, "sso");
        assert_eq!(sessions[0].sso_org_id, Some(sso.org));
        let logins = events(&db, "login.succeeded").await;
        assert!(
            logins
                .iter()
                .any(|(u, d)| *u == Some(user.id) && d["method"] == "sso"),
            "{logins:?}"
        );
        // "Account access" tells how the device signed in.
        let listed = client
            .get(sso.app.url("/account/sessions"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(listed.contains("SSO: Contoso"), "{listed}");
        let users_before = db.count("users").await;

        // The tenant's admin changes the e-mail claim (even to someone else's address): the
        // same account signs in, and its address is not taken from the claim.
        sso.entra
            .set_email(username, Some("someone-else@contoso.example"));
        let second = sso.app.client();
        let done = sso.sign_in(&second, username, username).await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        assert_eq!(sso.account_email(&second).await.as_deref(), Some(username));
        assert_eq!(db.count("users").await, users_before);
        assert_eq!(db.count("federated_identities").await, 1);
    }
}

#[tokio::test]
async fn tokens_that_fail_validation_are_refused_with_a_clear_page_and_an_event() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let username = "eve@contoso.example";
        sso.entra.add_user(username, Some(username), "Eve");
        let cases = [
            (Failure::OtherTenant, "sso_token_issuer"),
            (Failure::WrongTid, "sso_token_tenant"),
            (Failure::BadSignature, "sso_token_signature"),
            (Failure::UnknownKid, "sso_token_unknown_key"),
            (Failure::WrongAudience, "sso_token_audience"),
            (Failure::Expired, "sso_token_expired"),
            (Failure::NotYetValid, "sso_token_not_yet_valid"),
            (Failure::MissingNonce, "sso_token_nonce"),
        ];
        for (failure, reason) in cases {
            sso.entra.fail_with(failure.clone());
            let client = sso.app.client();
            let refused = sso.sign_in(&client, username, username).await;
            assert_eq!(
                refused.status(),
                StatusCode::UNAUTHORIZED,
                "{failure:?} on {}",
                db.backend
            );
            let html = refused.text().await.unwrap();
            assert!(
                text_of(&html, "#sso-error")
                    .unwrap()
                    .contains("could not be verified"),
                "{html}"
            );
            assert!(sso.account_email(&client).await.is_none(), "{failure:?}");
            let reasons = failure_reasons(&db).await;
            assert_eq!(
                reasons.last().map(String::as_str),
                Some(reason),
                "{failure:?}"
            );
        }
        // Nothing was provisioned from any of them.
        assert_eq!(db.count("federated_identities").await, 0);
        assert!(
            sso.app
                .state
                .store
                .user_by_email(username)
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_replayed_or_foreign_state_is_refused() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let username = "ann@contoso.example";
        sso.entra.add_user(username, Some(username), "Ann");
        let client = sso.app.client();
        let callback = sso.to_callback(&client, username, username).await;
        let first = client.get(&callback).send().await.unwrap();
        assert_eq!(first.status(), StatusCode::SEE_OTHER);
        // The same state again (a replay): refused, the flow was used up.
        let again = sso.app.client();
        let _ = sso.app.csrf_from(&again, "/login/sso").await;
        let replay = client.get(&callback).send().await.unwrap();
        assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "{}", db.backend);
        let html = replay.text().await.unwrap();
        assert!(
            text_of(&html, "#sso-error")
                .unwrap()
                .contains("already used")
        );
        // A callback URL carried to another browser (login CSRF): refused too.
        let carried = sso.to_callback(&client, username, username).await;
        let other = sso.app.client();
        let _ = sso.app.csrf_from(&other, "/login/sso").await;
        let refused = other.get(&carried).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(sso.account_email(&other).await.is_none());
        // A state that was never issued.
        let forged = client
            .get(sso.app.url(
                "/login/sso/callback?state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&code=x",
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
        let reasons = failure_reasons(&db).await;
        assert_eq!(
            reasons
                .iter()
                .filter(|r| *r == "sso_state_unusable")
                .count(),
            3,
            "{reasons:?}"
        );
        // An expired flow (ten minutes).
        let late = sso.app.client();
        let callback = sso.to_callback(&late, username, username).await;
        sso.app.state.clock.advance(time::Duration::minutes(11));
        let expired = late.get(&callback).send().await.unwrap();
        assert_eq!(expired.status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn entra_errors_become_a_clear_escaped_page() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let username = "bo@contoso.example";
        sso.entra.add_user(username, Some(username), "Bo");
        sso.entra.fail_with(Failure::ErrorRedirect(
            "access_denied".into(),
            "AADSTS50105: <script>alert(1)</script> is not assigned to a role".into(),
        ));
        let client = sso.app.client();
        let csrf = sso.app.csrf_from(&client, "/login/sso").await;
        let hop = client
            .post(sso.app.url("/login/sso"))
            .form(&[("email", username), ("csrf", &csrf)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let authorize = attr(&hop, "a#sso-continue", "href");
        let back = client.get(&authorize).send().await.unwrap();
        assert_eq!(back.status(), StatusCode::SEE_OTHER);
        let callback = back.headers()["location"].to_str().unwrap().to_string();
        let page = client.get(&callback).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::UNAUTHORIZED, "{}", db.backend);
        let html = page.text().await.unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert_eq!(
            text_of(&html, "#sso-upstream-error").as_deref(),
            Some("access_denied")
        );
        assert!(
            text_of(&html, "#sso-upstream-description")
                .unwrap()
                .starts_with("AADSTS50105")
        );
        let failed = events(&db, "login.failed").await;
        let last = &failed.last().unwrap().1;
        assert_eq!(last["reason"], "sso_upstream_error");
        assert_eq!(last["error"], "access_denied");
    }
}

#[tokio::test]
async fn rotated_keys_are_fetched_again_and_discovery_is_cached() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let username = "ro@contoso.example";
        sso.entra.add_user(username, Some(username), "Ro");
        let client = sso.app.client();
        assert_eq!(
            sso.sign_in(&client, username, username).await.status(),
            StatusCode::SEE_OTHER
        );
        let fetched = sso.entra.discovery_fetches();
        assert_eq!(fetched, 1, "one discovery for the whole flow");
        sso.entra.rotate_keys();
        let client = sso.app.client();
        assert_eq!(
            sso.sign_in(&client, username, username).await.status(),
            StatusCode::SEE_OTHER,
            "{}",
            db.backend
        );
        assert_eq!(sso.entra.discovery_fetches(), fetched + 1, "refreshed once");
    }
}

#[tokio::test]
async fn an_existing_local_account_is_linked_only_with_its_password() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let username = "carl@contoso.example";
        let local = sso.app.create_user(username, PASSWORD).await;
        // The owner wants a mail at each sign-in, and a lock after 3 wrong passwords.
        let (owner, csrf) = sso.app.signed_in(username).await;
        let saved = owner
            .put(sso.app.url("/api/v1/me/security"))
            .header("x-csrf-token", &csrf)
            .json(&serde_json::json!({
                "lockout_threshold": 3, "notify_on_success": true, "notify_on_failure": false
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(saved.status(), StatusCode::OK);
        sso.entra.add_user(username, Some(username), "Carl");

        let client = sso.app.client();
        let asked = sso.sign_in(&client, username, username).await;
        assert_eq!(asked.status(), StatusCode::OK, "{}", db.backend);
        let html = asked.text().await.unwrap();
        assert!(
            text_of(&html, "#sso-link-intro")
                .unwrap()
                .contains(username)
        );
        assert!(
            sso.account_email(&client).await.is_none(),
            "not signed in yet"
        );
        assert_eq!(
            db.count("federated_identities").await,
            0,
            "not linked silently"
        );
        let link = crate::support::hidden_field(&html, "link");
        let csrf = crate::support::hidden_field(&html, "csrf");

        let wrong = client
            .post(sso.app.url("/login/sso/link"))
            .form(&[
                ("link", link.as_str()),
                ("password", "not-it"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(db.count("federated_identities").await, 0);
        let mails_before = db.count("mail_outbox").await;
        let right = client
            .post(sso.app.url("/login/sso/link"))
            .form(&[
                ("link", link.as_str()),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), StatusCode::SEE_OTHER);
        assert_eq!(sso.account_email(&client).await.as_deref(), Some(username));
        assert_eq!(db.count("federated_identities").await, 1);
        assert!(
            events(&db, "sso.linked")
                .await
                .iter()
                .any(|(u, _)| *u == Some(local.id))
        );
        // The login alert went out with the SSO sign-in.
        assert_eq!(db.count("mail_outbox").await, mails_before + 1);
        // The link form works once.
        let reuse = client
            .post(sso.app.url("/login/sso/link"))
            .form(&[
                ("link", link.as_str()),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(reuse.status(), StatusCode::GONE);

        // Wrong passwords lock the password; SSO still signs the owner in.
        let attacker = sso.app.client();
        for _ in 0..3 {
            sso.app
                .login(&attacker, username, "guess-guess-guess")
                .await;
        }
        let user = sso
            .app
            .state
            .store
            .user_by_id(local.id)
            .await
            .unwrap()
            .unwrap();
        assert!(user.locked_at.is_some(), "locked");
        let later = sso.app.client();
        let done = sso.sign_in(&later, username, username).await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "SSO despite the lock");
        assert_eq!(sso.account_email(&later).await.as_deref(), Some(username));
    }
}

#[tokio::test]
async fn a_claim_outside_the_organizations_domains_makes_no_account() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        // nOAuth: the tenant puts a foreign address in the claim.
        let username = "mallory@contoso.example";
        sso.entra
            .add_user(username, Some("victim@example.net"), "M");
        sso.app.create_user("victim@example.net", PASSWORD).await;
        sso.entra
            .add_user("nomail@contoso.example", None, "No Mail");
        let client = sso.app.client();
        let refused = sso.sign_in(&client, username, username).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{}", db.backend);
        assert_eq!(db.count("federated_identities").await, 0);
        assert_eq!(
            failure_reasons(&db).await.last().map(String::as_str),
            Some("sso_address_outside_domains")
        );
        // Without an e-mail claim, preferred_username within the domains names the account.
        let client = sso.app.client();
        let done = sso
            .sign_in(&client, "nomail@contoso.example", "nomail@contoso.example")
            .await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn a_listed_but_unverified_domain_neither_provisions_nor_reveals_accounts() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        // The organization lists a domain it has not proven (someone else's).
        let listed = sso
            .admin
            .0
            .put(sso.app.url(&format!("/api/v1/orgs/{}/sso", sso.org)))
            .header("x-csrf-token", &sso.admin.1)
            .json(&serde_json::json!({
                "tenant_id": sso.entra.tenant, "client_id": sso.entra.client_id,
                "domains": [DOMAIN, "victim.test"], "authority": sso.entra.base,
                "provision": true,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), StatusCode::OK, "{}", db.backend);
        let victim = sso.app.create_user("ceo@victim.test", PASSWORD).await;
        // Its tenant claims the existing account's address: no link page names it.
        sso.entra
            .add_user("m1@contoso.example", Some("ceo@victim.test"), "M");
        let client = sso.app.client();
        let refused = sso
            .sign_in(&client, "m1@contoso.example", "m1@contoso.example")
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{}", db.backend);
        assert!(!refused.text().await.unwrap().contains("ceo@victim.test"));
        assert_eq!(db.count("sso_pending_links").await, 0);
        // … nor an unused address of that domain: no account is made in advance.
        sso.entra
            .add_user("m2@contoso.example", Some("new@victim.test"), "M");
        let refused = sso
            .sign_in(&client, "m2@contoso.example", "m2@contoso.example")
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(
            sso.app
                .state
                .store
                .user_by_email("new@victim.test")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            failure_reasons(&db).await.last().map(String::as_str),
            Some("sso_address_outside_domains")
        );
        // The owner of the address still signs in with the password.
        let own = sso.app.client();
        let ok = sso.app.login(&own, &victim.email, PASSWORD).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn without_provisioning_an_unknown_identity_is_refused() {
    for db in databases().await {
        let sso = setup(&db, false, false).await;
        let username = "new@contoso.example";
        sso.entra.add_user(username, Some(username), "New");
        let client = sso.app.client();
        let refused = sso.sign_in(&client, username, username).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{}", db.backend);
        let html = refused.text().await.unwrap();
        assert!(text_of(&html, "#sso-error").unwrap().contains("no account"));
        assert!(
            sso.app
                .state
                .store
                .user_by_email(username)
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn an_sso_only_domain_refuses_the_password_of_members_only_and_tells_nobody_else() {
    for db in databases().await {
        let sso = setup(&db, true, true).await;
        let username = "dora@contoso.example";
        let user = sso.app.create_user(username, PASSWORD).await;
        let now = sso.app.state.clock.now();
        sso.app
            .state
            .orgs
            .add_member("Contoso", username, OrgRole::Member, now)
            .await
            .unwrap();
        let client = sso.app.client();
        let refused = sso.app.login(&client, username, PASSWORD).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{}", db.backend);
        let html = refused.text().await.unwrap();
        assert!(text_of(&html, "#login-error").unwrap().contains("SSO"));
        assert_eq!(
            attr(&html, "a#sso-button", "href"),
            "/login/sso?email=dora%40contoso.example"
        );
        assert!(sso.account_email(&client).await.is_none());
        let failed = events(&db, "login.failed").await;
        assert!(
            failed
                .iter()
                .any(|(u, d)| *u == Some(user.id) && d["reason"] == "sso_required")
        );
        // Without the password, a member's address answers exactly like an address without
        // an account: nothing tells who is a member.
        let wrong = sso.app.login(&client, username, "not-the-password").await;
        let unknown = sso
            .app
            .login(&client, "nobody@contoso.example", "not-the-password")
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{}", db.backend);
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        let wrong = text_of(&wrong.text().await.unwrap(), "#login-error");
        let unknown = text_of(&unknown.text().await.unwrap(), "#login-error");
        assert_eq!(wrong, unknown);
        // Someone at the domain who is not the organization's member keeps their password
        // (an instance administrator with an address there, say).
        let outsider = "ops@contoso.example";
        sso.app.create_user(outsider, PASSWORD).await;
        let browser = sso.app.client();
        let ok = sso.app.login(&browser, outsider, PASSWORD).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER, "{}", db.backend);
        assert_eq!(sso.account_email(&browser).await.as_deref(), Some(outsider));
        // Other domains still sign in with passwords.
        let admin = sso.app.client();
        let ok = sso.app.login(&admin, "rep@example.net", PASSWORD).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn a_removed_member_can_no_longer_sign_in_with_the_organizations_sso() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let username = "gone@contoso.example";
        sso.entra.add_user(username, Some(username), "Gone");
        let client = sso.app.client();
        assert_eq!(
            sso.sign_in(&client, username, username).await.status(),
            StatusCode::SEE_OTHER
        );
        let user = sso
            .app
            .state
            .store
            .user_by_email(username)
            .await
            .unwrap()
            .unwrap();
        let now = sso.app.state.clock.now();
        let cli = gotthard::audit::ClientInfo::new("test", "");
        assert!(
            sso.app
                .state
                .orgs
                .remove_member(sso.org, user.id, &cli, now)
                .await
                .unwrap()
        );
        // The session the organization's SSO had started ends with the membership.
        assert!(sso.account_email(&client).await.is_none(), "signed out");
        let later = sso.app.client();
        let refused = sso.sign_in(&later, username, username).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{}", db.backend);
        let html = refused.text().await.unwrap();
        assert!(
            text_of(&html, "#sso-error")
                .unwrap()
                .contains("not a member")
        );
        assert!(sso.account_email(&later).await.is_none());
        let failed = events(&db, "login.failed").await;
        assert!(
            failed
                .iter()
                .any(|(u, d)| *u == Some(user.id) && d["reason"] == "sso_not_member")
        );
        // Provisioning does not take them back in.
        assert_eq!(
            sso.app
                .state
                .store
                .membership_role(sso.org, user.id)
                .await
                .unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn an_unknown_domain_gets_a_clear_message_and_no_hint_about_other_organizations() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let client = sso.app.client();
        let csrf = sso.app.csrf_from(&client, "/login/sso").await;
        let page = client
            .post(sso.app.url("/login/sso"))
            .form(&[("email", "zed@fabrikam.example"), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::NOT_FOUND, "{}", db.backend);
        let html = page.text().await.unwrap();
        let message = text_of(&html, "#sso-error").unwrap();
        assert!(message.contains("password"), "{message}");
        assert!(!html.contains("Contoso"));
        assert_eq!(attr(&html, "#password-login-link", "href"), "/login");
        assert_eq!(db.count("sso_flows").await, 0);
    }
}

#[tokio::test]
async fn the_sso_api_is_for_admins_and_never_returns_the_secret() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let app = &sso.app;
        let path = app.url(&format!("/api/v1/orgs/{}/sso", sso.org));
        let (admin, csrf) = &sso.admin;
        let shown: serde_json::Value = admin.get(&path).send().await.unwrap().json().await.unwrap();
        assert_eq!(shown["tenant_id"], sso.entra.tenant);
        assert_eq!(shown["domains"], serde_json::json!([DOMAIN]));
        assert_eq!(shown["redirect_uri"], app.url("/login/sso/callback"));
        assert!(shown.get("client_secret").is_none());
        assert!(!shown.to_string().contains(&sso.entra.client_secret));
        // Encrypted at rest.
        let pool_rows: Vec<(Vec<u8>,)> = if db.backend == "sqlite" {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query_as("SELECT client_secret_enc FROM sso_connections")
                .fetch_all(&pool)
                .await
                .unwrap()
        } else {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query_as("SELECT client_secret_enc FROM sso_connections")
                .fetch_all(&pool)
                .await
                .unwrap()
        };
        let secret = sso.entra.client_secret.as_bytes();
        assert!(!pool_rows[0].0.windows(secret.len()).any(|w| w == secret));

        // An update without the secret keeps it: sign-in still works.
        let kept = admin
            .put(&path)
            .header("x-csrf-token", csrf)
            .json(&serde_json::json!({
                "tenant_id": sso.entra.tenant, "client_id": sso.entra.client_id,
                "domains": [DOMAIN, "Contoso-Mail.example"], "authority": sso.entra.base,
                "provision": true,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(kept.status(), StatusCode::OK);
        let kept: serde_json::Value = kept.json().await.unwrap();
        assert_eq!(
            kept["domains"],
            serde_json::json!(["contoso-mail.example", DOMAIN])
        );
        sso.entra
            .add_user("k@contoso.example", Some("k@contoso.example"), "K");
        let client = app.client();
        assert_eq!(
            sso.sign_in(&client, "k@contoso.example", "k@contoso.example")
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        assert!(
            events(&db, "sso.changed")
                .await
                .iter()
                .all(|(_, d)| !d.to_string().contains(&sso.entra.client_secret))
        );

        // Bad input names the field.
        let bad = admin
            .put(&path)
            .header("x-csrf-token", csrf)
            .json(&serde_json::json!({
                "tenant_id": "common", "client_id": sso.entra.client_id, "domains": [DOMAIN],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: serde_json::Value = bad.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains("tenant_id"));

        // A plain member: 403; an outsider: 404; another org cannot take the verified
        // domain: 409.
        let now = app.state.clock.now();
        app.create_user("member@example.net", PASSWORD).await;
        app.state
            .orgs
            .add_member("Contoso", "member@example.net", OrgRole::Member, now)
            .await
            .unwrap();
        let (member, _) = app.signed_in("member@example.net").await;
        assert_eq!(
            member.get(&path).send().await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
        let other = app.state.orgs.create("Fabrikam", now).await.unwrap();
        app.create_user("boss@example.net", PASSWORD).await;
        app.state
            .orgs
            .add_member("Fabrikam", "boss@example.net", OrgRole::Admin, now)
            .await
            .unwrap();
        let (boss, boss_csrf) = app.signed_in("boss@example.net").await;
        assert_eq!(
            boss.get(&path).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        let taken = boss
            .put(app.url(&format!("/api/v1/orgs/{}/sso", other.id)))
            .header("x-csrf-token", &boss_csrf)
            .json(&serde_json::json!({
                "tenant_id": Uuid::new_v4(), "client_id": Uuid::new_v4(),
                "client_secret": "x", "domains": [DOMAIN],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(taken.status(), StatusCode::CONFLICT, "{}", db.backend);
        // An organization's admin may choose among Entra's clouds, not any URL (the server
        // would fetch from it).
        let elsewhere = boss
            .put(app.url(&format!("/api/v1/orgs/{}/sso", other.id)))
            .header("x-csrf-token", &boss_csrf)
            .json(&serde_json::json!({
                "tenant_id": Uuid::new_v4(), "client_id": Uuid::new_v4(),
                "client_secret": "x", "domains": ["fabrikam.example"],
                "authority": "http://127.0.0.1:9",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(elsewhere.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let national = boss
            .put(app.url(&format!("/api/v1/orgs/{}/sso", other.id)))
            .header("x-csrf-token", &boss_csrf)
            .json(&serde_json::json!({
                "tenant_id": Uuid::new_v4(), "client_id": Uuid::new_v4(),
                "client_secret": "x", "domains": ["fabrikam.example"],
                "authority": "https://login.microsoftonline.us/",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(national.status(), StatusCode::OK);
        let national: serde_json::Value = national.json().await.unwrap();
        assert_eq!(national["authority"], "https://login.microsoftonline.us");
        // Without the CSRF header: refused.
        let no_csrf = admin.delete(&path).send().await.unwrap();
        assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
        let removed = admin
            .delete(&path)
            .header("x-csrf-token", csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            admin.get(&path).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn operators_set_show_and_remove_the_connection_with_the_cli() {
    use crate::cli::{gotthard, stderr, stdout};
    for db in databases().await {
        let org = gotthard(&db, &["org", "create", "--name", "Contoso"], None);
        assert!(org.status.success(), "{}", stderr(&org));
        let tenant = Uuid::new_v4().to_string();
        let app_id = Uuid::new_v4().to_string();
        let set_args = [
            "org",
            "sso",
            "set",
            "--org",
            "Contoso",
            "--tenant-id",
            &tenant,
            "--client-id",
            &app_id,
            "--domain",
            "contoso.example",
            "--domain",
            "Contoso.net",
            "--provision",
            "--enforce-sso",
        ];
        // A new connection needs its secret, from stdin only.
        let without = gotthard(&db, &set_args, None);
        assert!(!without.status.success());
        assert!(
            stderr(&without).contains("client_secret"),
            "{}",
            stderr(&without)
        );
        let mut with_secret = set_args.to_vec();
        with_secret.push("--client-secret-stdin");
        let set = gotthard(&db, &with_secret, Some("cli~secret~value\n"));
        assert!(set.status.success(), "{}: {}", db.backend, stderr(&set));
        assert!(stdout(&set).contains("/login/sso/callback"));
        assert!(!stdout(&set).contains("cli~secret~value"));

        let show = gotthard(&db, &["org", "sso", "show", "--org", "Contoso"], None);
        let shown = stdout(&show);
        assert!(shown.contains(&format!("tenant_id\t{tenant}")), "{shown}");
        assert!(shown.contains("domains\tcontoso.example,contoso.net"));
        assert!(shown.contains("enforce_sso\ttrue"));
        assert!(!shown.contains("cli~secret~value"));
        assert!(!stderr(&show).contains("cli~secret~value"));
        // The domains prove nothing yet; the listing says what to publish, and an operator
        // may vouch for one instead.
        let list = ["org", "domain", "list", "--org", "Contoso"];
        let listed = stdout(&gotthard(&db, &list, None));
        assert!(
            listed.contains("contoso.example\tunverified\t_gotthard-challenge.contoso.example TXT \"gotthard-domain-verification="),
            "{listed}"
        );
        let vouch = [
            "org",
            "domain",
            "verify",
            "--org",
            "Contoso",
            "--domain",
            "contoso.example",
            "--without-dns",
        ];
        let vouched = gotthard(&db, &vouch, None);
        assert!(vouched.status.success(), "{}", stderr(&vouched));
        let listed = stdout(&gotthard(&db, &list, None));
        assert!(listed.contains("contoso.example\toperator\t"), "{listed}");
        assert!(listed.contains("contoso.net\tunverified\t"), "{listed}");

        // The server decrypts what the CLI encrypted (same keys/ folder).
        let app = TestApp::start(&db).await;
        let org = app.state.orgs.by_name("Contoso").await.unwrap().unwrap();
        let connection = app.state.sso.get(org.id).await.unwrap().unwrap();
        assert_eq!(
            app.state.sso.client_secret(&connection).unwrap(),
            "cli~secret~value"
        );
        drop(app);

        let bad = gotthard(
            &db,
            &[
                "org",
                "sso",
                "set",
                "--org",
                "Contoso",
                "--tenant-id",
                "common",
                "--client-id",
                &app_id,
                "--domain",
                "contoso.example",
            ],
            None,
        );
        assert!(!bad.status.success());
        assert!(stderr(&bad).contains("tenant_id"));
        let removed = gotthard(&db, &["org", "sso", "remove", "--org", "Contoso"], None);
        assert!(stdout(&removed).contains("no longer signs in with SSO"));
        assert_eq!(db.count("sso_connections").await, 0);
        // The domains are the organization's, and stay verified.
        let listed = stdout(&gotthard(&db, &list, None));
        assert!(listed.contains("contoso.example\toperator\t"), "{listed}");
    }
}

#[tokio::test]
async fn admins_manage_the_connection_on_its_page() {
    for db in databases().await {
        let dns = crate::dns::DnsDouble::start().await;
        let server = dns.addr.to_string();
        let sso = setup_with(&db, false, false, &[("sso.dns_server", &server)]).await;
        let app = &sso.app;
        let (admin, _) = &sso.admin;
        let path = format!("/account/orgs/{}/sso", sso.org);
        let page = admin.get(app.url(&path)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{}", db.backend);
        let html = page.text().await.unwrap();
        assert_eq!(attr(&html, "#tenant_id", "value"), sso.entra.tenant);
        assert_eq!(attr(&html, "#domains", "value"), DOMAIN);
        assert_eq!(
            text_of(&html, "#sso-redirect-uri").as_deref(),
            Some(app.url("/login/sso/callback").as_str())
        );
        // The secret is never put into the page.
        assert!(!html.contains(&sso.entra.client_secret));
        let secret_field = scraper::Html::parse_document(&html);
        let field = secret_field
            .select(&scraper::Selector::parse("#client_secret").unwrap())
            .next()
            .unwrap();
        assert!(field.value().attr("value").is_none());
        // The members page links here.
        let members = admin
            .get(app.url(&format!("/account/orgs/{}/members", sso.org)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(attr(&members, "#sso-admin-link", "href"), path);

        let csrf = crate::support::hidden_field(&html, "csrf");
        let form = |domains: &str, tenant: &str| {
            vec![
                ("csrf", csrf.clone()),
                ("tenant_id", tenant.to_string()),
                ("client_id", sso.entra.client_id.clone()),
                ("client_secret", String::new()),
                ("domains", domains.to_string()),
                ("authority", sso.entra.base.clone()),
                ("provision", "on".to_string()),
                ("default_role", "member".to_string()),
            ]
        };
        let saved = admin
            .post(app.url(&path))
            .form(&form("contoso.example, Contoso.org", &sso.entra.tenant))
            .send()
            .await
            .unwrap();
        assert_eq!(saved.status(), StatusCode::SEE_OTHER);
        let connection = app.state.sso.get(sso.org).await.unwrap().unwrap();
        assert_eq!(connection.domains, ["contoso.example", "contoso.org"]);
        assert!(connection.provision && !connection.enforce_sso);
        // The new domain routes nobody until its TXT record is published and verified
        // from the page.
        let html = admin
            .get(app.url(&path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let row = "#domain-table tr[data-domain='contoso.org']";
        assert!(
            text_of(&html, row).unwrap().contains("Not verified"),
            "{html}"
        );
        let record = text_of(&html, &format!("{row} code.record-value")).unwrap();
        let verify = |html: &str| {
            let csrf = crate::support::hidden_field(html, "csrf");
            admin
                .post(app.url(&format!("/account/orgs/{}/domains/verify", sso.org)))
                .form(&[("csrf", csrf), ("domain", "contoso.org".to_string())])
                .send()
        };
        let missing = verify(&html).await.unwrap();
        assert_eq!(missing.status(), StatusCode::SEE_OTHER);
        let back = missing.headers()["location"].to_str().unwrap().to_string();
        let html = admin
            .get(app.url(&back))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text_of(&html, "#sso-admin-error").unwrap().contains("TXT"));
        dns.add_txt("_gotthard-challenge.contoso.org", &record);
        let done = verify(&html).await.unwrap();
        let back = done.headers()["location"].to_str().unwrap().to_string();
        let html = admin
            .get(app.url(&back))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text_of(&html, "#sso-admin-notice")
                .unwrap()
                .contains("contoso.org")
        );
        assert!(text_of(&html, row).unwrap().contains("Verified"));
        // The stored secret was kept: sign-in (now with provisioning) works.
        sso.entra
            .add_user("p@contoso.org", Some("p@contoso.org"), "P");
        let client = app.client();
        assert_eq!(
            sso.sign_in(&client, "p@contoso.org", "p@contoso.org")
                .await
                .status(),
            StatusCode::SEE_OTHER
        );

        let bad = admin
            .post(app.url(&path))
            .form(&form("contoso.example", "not-a-guid"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = bad.text().await.unwrap();
        assert!(text_of(&html, "#sso-admin-error").unwrap().contains("GUID"));

        let removed = admin
            .post(app.url(&format!("{path}/remove")))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), StatusCode::SEE_OTHER);
        assert!(app.state.sso.get(sso.org).await.unwrap().is_none());

        // A plain member may not see it.
        let now = app.state.clock.now();
        app.create_user("plain@example.net", PASSWORD).await;
        app.state
            .orgs
            .add_member("Contoso", "plain@example.net", OrgRole::Member, now)
            .await
            .unwrap();
        let (plain, _) = app.signed_in("plain@example.net").await;
        assert_eq!(
            plain.get(app.url(&path)).send().await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }
}

#[tokio::test]
async fn the_callback_may_land_on_another_instance() {
    for db in databases().await {
        // Two instances behind one public name, sharing the database and keys/.
        let extra = [("issuer", "http://login.gotthard.test")];
        let entra = Entra::start().await;
        let a = TestApp::start_with(&db, &extra).await;
        let b = TestApp::start_with(&db, &extra).await;
        let now = a.state.clock.now();
        let org = a.state.orgs.create("Contoso", now).await.unwrap();
        let settings = entra.settings(&[DOMAIN]);
        a.set_sso(org.id, settings).await;
        a.verify_domain(org.id, DOMAIN).await;
        let b_base = b.base.clone();
        let sso = Sso {
            admin: (a.client(), String::new()),
            app: a,
            entra,
            org: org.id,
        };
        let username = "multi@contoso.example";
        sso.entra.add_user(username, Some(username), "Multi");
        let client = sso.app.client();
        let callback = sso.to_callback(&client, username, username).await;
        let at_b = callback.replace("http://login.gotthard.test", &b_base);
        assert_ne!(at_b, callback);
        let done = client.get(&at_b).send().await.unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", db.backend);
        assert_eq!(sso.account_email(&client).await.as_deref(), Some(username));
        // And the state is used up for both.
        let again = client.get(callback.replace("http://login.gotthard.test", &sso.app.base));
        assert_eq!(
            again.send().await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
        drop(b);
    }
}

#[tokio::test]
async fn an_operator_links_an_existing_account_by_object_id() {
    use crate::cli::{gotthard, stderr, stdout};
    for db in databases().await {
        let sso = setup(&db, false, false).await;
        let username = "lin@contoso.example";
        let local = sso.app.create_user(username, PASSWORD).await;
        let oid = sso.entra.add_user(username, Some(username), "Lin");
        let args = [
            "org",
            "sso",
            "link",
            "--org",
            "Contoso",
            "--email",
            username,
            "--object-id",
            &oid,
        ];
        // Only members can be linked.
        let refused = gotthard(&db, &args, None);
        assert!(!refused.status.success());
        assert!(
            stderr(&refused).contains("not a member"),
            "{}",
            stderr(&refused)
        );
        let now = sso.app.state.clock.now();
        sso.app
            .state
            .orgs
            .add_member("Contoso", username, OrgRole::Member, now)
            .await
            .unwrap();
        let linked = gotthard(&db, &args, None);
        assert!(
            linked.status.success(),
            "{}: {}",
            db.backend,
            stderr(&linked)
        );
        assert!(stdout(&linked).contains(&oid));
        let again = gotthard(&db, &args, None);
        assert!(stderr(&again).contains("linked to an account already"));

        let client = sso.app.client();
        let done = sso.sign_in(&client, username, username).await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "no password asked");
        assert_eq!(sso.account_email(&client).await.as_deref(), Some(username));
        assert!(
            events(&db, "sso.linked")
                .await
                .iter()
                .any(|(u, d)| *u == Some(local.id) && d["by"] == "operator")
        );
    }
}

#[tokio::test]
async fn a_relying_app_signs_in_an_sso_user_and_hears_amr_fed() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::Digest;
    const REDIRECT: &str = "http://127.0.0.1:9/callback";
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let app = &sso.app;
        let (client, secret) = app
            .register_client("Webmail", REDIRECT, |spec| spec.require_pkce = true)
            .await;
        let username = "rp@contoso.example";
        sso.entra.add_user(username, Some(username), "Rp");

        // The app sends the browser to Gotthard, which asks it to sign in.
        let verifier = "v".repeat(50);
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let authorize = format!(
            "/oauth2/authorize?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("response_type", "code")
                .append_pair("client_id", &client.id)
                .append_pair("redirect_uri", REDIRECT)
                .append_pair("scope", "openid email")
                .append_pair("state", "st-1")
                .append_pair("nonce", "nonce-1")
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256")
                .finish()
        );
        let browser = app.client();
        let asked = browser.get(app.url(&authorize)).send().await.unwrap();
        let login = asked.headers()["location"].to_str().unwrap().to_string();
        assert!(login.starts_with("/login?"), "{login}");
        let login_page = browser
            .get(app.url(&login))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // "Sign in with SSO" carries the app's request along.
        let sso_form = attr(&login_page, "a#sso-button", "href");
        assert!(sso_form.starts_with("/login/sso?next="), "{sso_form}");
        let callback = sso
            .to_callback_from(&browser, &sso_form, username, username)
            .await;
        let done = browser.get(&callback).send().await.unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", db.backend);
        let resumed = done.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(resumed, authorize, "back to the app's request");
        let to_app = browser.get(app.url(&resumed)).send().await.unwrap();
        let back = url::Url::parse(to_app.headers()["location"].to_str().unwrap()).unwrap();
        assert!(back.as_str().starts_with(REDIRECT), "{back}");
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code");

        let tokens: serde_json::Value = reqwest::Client::new()
            .post(app.url("/oauth2/token"))
            .basic_auth(&client.id, secret.as_deref())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id_token = tokens["id_token"].as_str().expect("an ID token");
        let payload = id_token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["amr"], serde_json::json!(["fed"]), "{claims}");
        assert_eq!(claims["nonce"], "nonce-1");
    }
}

#[tokio::test]
async fn a_refused_client_secret_gets_a_page_for_the_administrator() {
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let username = "sec@contoso.example";
        sso.entra.add_user(username, Some(username), "Sec");
        // The secret expired in Entra and was replaced there, not here.
        let settings = gotthard::orgs::SsoSettings {
            client_secret: Some("an-old-secret".into()),
            ..sso.entra.settings(&[DOMAIN])
        };
        sso.app.set_sso(sso.org, settings).await;
        let client = sso.app.client();
        let refused = sso.sign_in(&client, username, username).await;
        assert_eq!(refused.status(), StatusCode::BAD_GATEWAY, "{}", db.backend);
        let html = refused.text().await.unwrap();
        assert!(
            text_of(&html, "#sso-error")
                .unwrap()
                .contains("administrator")
        );
        assert!(!html.contains("an-old-secret"));
        assert_eq!(
            failure_reasons(&db).await.last().map(String::as_str),
            Some("sso_token_exchange")
        );
    }
}

#[tokio::test]
async fn a_flow_state_is_taken_once_even_by_parallel_callbacks() {
    use gotthard::federation::SsoFlow;
    use gotthard::tokens::OpaqueToken;
    for db in databases().await {
        let app = TestApp::start(&db).await;
        let now = app.state.clock.now();
        let org = app.state.orgs.create("Contoso", now).await.unwrap();
        let store = &app.state.store;
        for _ in 0..5 {
            let state = OpaqueToken::generate();
            store
                .insert_sso_flow(&SsoFlow {
                    state: state.digest(),
                    org_id: org.id,
                    browser: OpaqueToken::generate().digest(),
                    nonce: "n".into(),
                    next: None,
                    reauth: Default::default(),
                    created_at: now,
                    expires_at: now + time::Duration::minutes(10),
                })
                .await
                .unwrap();
            let digest = state.digest();
            let takes = futures_take(store, &digest).await;
            assert_eq!(takes, 1, "{}", db.backend);
        }
        // Expired state is pruned.
        let state = OpaqueToken::generate();
        store
            .insert_sso_flow(&SsoFlow {
                state: state.digest(),
                org_id: org.id,
                browser: OpaqueToken::generate().digest(),
                nonce: "n".into(),
                next: None,
                reauth: Default::default(),
                created_at: now,
                expires_at: now + time::Duration::minutes(10),
            })
            .await
            .unwrap();
        let later = now + time::Duration::minutes(11);
        assert_eq!(app.state.federation.prune(later).await.unwrap(), 1);
        assert_eq!(db.count("sso_flows").await, 0);
    }
}

/// Four parallel takes of one state; returns how many got it.
async fn futures_take(
    store: &std::sync::Arc<dyn gotthard::store::Store>,
    digest: &gotthard::tokens::TokenDigest,
) -> usize {
    let (a, b, c, d) = tokio::join!(
        store.take_sso_flow(digest),
        store.take_sso_flow(digest),
        store.take_sso_flow(digest),
        store.take_sso_flow(digest)
    );
    [a, b, c, d]
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_some())
        .count()
}

/// Answers every request with a discovery document of `size` bytes (a hostile authority).
async fn oversized_authority(size: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let _ = socket.read(&mut request).await;
                let body = format!("{{\"padding\": \"{}\"}}", "x".repeat(size));
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            });
        }
    });
    base
}

#[tokio::test]
async fn authorities_stay_on_the_internet_unless_allowed_and_answers_are_bounded() {
    for db in databases().await {
        // No host allowed: the Entra double on loopback is out of reach too.
        let strict = [("sso.authority_allow_hosts", "[]")];
        let sso = setup_with(&db, true, false, &[]).await;
        let app = TestApp::start_with(&db, &strict).await;
        let (admin, csrf) = app.signed_in("rep@example.net").await;
        let path = app.url(&format!("/api/v1/orgs/{}/sso", sso.org));
        for inward in [
            "https://127.0.0.1:8443",
            "https://localhost:8443",
            "https://[::1]:8443",
            "http://127.0.0.1:9",
        ] {
            let refused = admin
                .put(&path)
                .header("x-csrf-token", &csrf)
                .json(&serde_json::json!({
                    "tenant_id": sso.entra.tenant, "client_id": sso.entra.client_id,
                    "domains": [DOMAIN], "authority": inward,
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(
                refused.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{inward} on {}",
                db.backend
            );
        }
        // What was set before (by the allowing instance) is not fetched from here either.
        let begin = app.sso_begin("ann@contoso.example").await;
        assert_eq!(begin.status(), StatusCode::BAD_GATEWAY, "{}", db.backend);
        assert_eq!(db.count("sso_flows").await, 0);

        // An allowed host still answers within the size bound, or not at all.
        let bounded = [("sso.upstream_body_limit_bytes", "8192")];
        let small = TestApp::start_with(&db, &bounded).await;
        let huge = oversized_authority(1 << 20).await;
        let settings = gotthard::orgs::SsoSettings {
            client_secret: None,
            authority: Some(huge),
            ..sso.entra.settings(&[DOMAIN])
        };
        small.set_sso(sso.org, settings).await;
        let begin = small.sso_begin("ann@contoso.example").await;
        assert_eq!(begin.status(), StatusCode::BAD_GATEWAY);
        drop(sso);
    }
}

/// A relying app's request, through its login page and "Sign in with SSO", to the SSO
/// callback; returns the browser and the callback's answer.
async fn through_sso(
    sso: &Sso,
    username: &str,
    request: &str,
) -> (reqwest::Client, reqwest::Response) {
    let (app, browser) = (&sso.app, sso.app.client());
    let asked = browser.get(app.url(request)).send().await.unwrap();
    let login = asked.headers()["location"].to_str().unwrap().to_string();
    let page = browser.get(app.url(&login)).send().await.unwrap();
    let sso_form = attr(&page.text().await.unwrap(), "a#sso-button", "href");
    let callback = sso
        .to_callback_from(&browser, &sso_form, username, username)
        .await;
    let done = browser.get(&callback).send().await.unwrap();
    (browser, done)
}

/// A relying app's `prompt=login` and `max_age` reach Entra ID, and Entra's `auth_time` must
/// answer them (issue 14): an old Entra session passed off as a fresh sign-in is refused.
#[tokio::test]
async fn prompt_login_and_max_age_are_passed_to_entra_and_its_auth_time_checked() {
    const REDIRECT: &str = "http://127.0.0.1:9/callback";
    for db in databases().await {
        let sso = setup(&db, true, false).await;
        let app = &sso.app;
        let (client, _) = app.register_client("Webmail", REDIRECT, |_| {}).await;
        let username = "fresh@contoso.example";
        sso.entra.add_user(username, Some(username), "Fresh");
        let authorize = |extra: &[(&str, &str)]| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &client.id)
                .append_pair("redirect_uri", REDIRECT)
                .append_pair("scope", "openid")
                .append_pair("state", "st");
            for (k, v) in extra {
                query.append_pair(k, v);
            }
            format!("/oauth2/authorize?{}", query.finish())
        };
        for (extra, sent) in [
            (vec![("prompt", "login")], ("prompt", "login")),
            (vec![("max_age", "60")], ("max_age", "60")),
        ] {
            let (browser, done) = through_sso(&sso, username, &authorize(&extra)).await;
            assert_eq!(
                sso.entra.last_authorize().get(sent.0).map(String::as_str),
                Some(sent.1),
                "{} on {}",
                sent.0,
                db.backend
            );
            assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", db.backend);
            // Back at the app's request, which now issues its code without asking again.
            let resumed = done.headers()["location"].to_str().unwrap().to_string();
            let to_app = browser.get(app.url(&resumed)).send().await.unwrap();
            let back = to_app.headers()["location"].to_str().unwrap().to_string();
            assert!(
                back.starts_with(REDIRECT) && back.contains("code="),
                "{back}"
            );
        }

        // Entra reuses a day-old session although a fresh sign-in was asked: refused.
        sso.entra.fail_with(Failure::StaleAuthTime);
        for extra in [vec![("prompt", "login")], vec![("max_age", "60")]] {
            let (browser, done) = through_sso(&sso, username, &authorize(&extra)).await;
            assert_eq!(done.status(), StatusCode::UNAUTHORIZED, "{}", db.backend);
            assert_eq!(
                failure_reasons(&db).await.last().map(String::as_str),
                Some("sso_token_auth_time")
            );
            assert!(sso.account_email(&browser).await.is_none());
        }
        // Without either, the app asked for nothing: an older Entra session is fine.
        let (_, done) = through_sso(&sso, username, &authorize(&[])).await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        assert!(!sso.entra.last_authorize().contains_key("prompt"));
    }
}
