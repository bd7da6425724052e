//! The profile over HTTP (issue 17): first and last name through the page, seen by relying
//! apps in userinfo and the ID token; phone numbers in E.164 through the API and the page.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::oidc::{authorize, exchange, register, relying_party};
use crate::support::{PASSWORD, TestApp, databases, hidden_field, text_of};

/// The claims of a JWT (its signature is the provider's business, tested elsewhere).
fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_name_changed_on_the_profile_page_reaches_userinfo_and_the_id_token() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let registered = register(&app, "Webmail", false, true, None).await;
        let rp = relying_party(&app, &registered).await;
        let (browser, _) = app.signed_in("ada@example.com").await;

        let page = app.page(&browser, "/account/profile").await;
        let saved = browser
            .post(app.url("/account/profile"))
            .form(&[
                ("csrf", hidden_field(&page, "csrf")),
                ("given_name", " Ada ".into()),
                ("family_name", "King Lovelace".into()),
                ("locale", "fr".into()),
                ("time_zone", "Europe/Zurich".into()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(saved.status(), StatusCode::SEE_OTHER, "{}", db.backend);
        let page = app.page(&browser, "/account/profile?saved=1").await;
        assert_eq!(
            text_of(&page, "#account-name").unwrap(),
            "Ada King Lovelace"
        );
        assert_eq!(
            text_of(&page, "#profile-notice").unwrap(),
            "Votre profil a été enregistré."
        );
        assert_eq!(
            text_of(&page, ".zone-note").unwrap(),
            "Heures en Europe/Zurich.",
            "the zone is named"
        );

        // A wrong zone is refused with the form kept.
        let refused = browser
            .post(app.url("/account/profile"))
            .form(&[
                ("csrf", hidden_field(&page, "csrf")),
                ("given_name", "Eve".into()),
                ("family_name", "".into()),
                ("time_zone", "Mars/Olympus_Mons".into()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = refused.text().await.unwrap();
        assert!(text_of(&html, "#profile-error").is_some(), "{html}");

        // A relying app sees the new name in a new ID token and in userinfo.
        let (code, verifier, _) = authorize(
            &app,
            &rp,
            &browser,
            "ada@example.com",
            &["openid", "profile"],
        )
        .await;
        let tokens = exchange(&rp, code, verifier).await;
        let id_token = tokens.extra_fields().id_token().unwrap().to_string();
        let claims = claims_of(&id_token);
        assert_eq!(claims["given_name"], "Ada", "{}: {claims}", db.backend);
        assert_eq!(claims["family_name"], "King Lovelace");
        assert_eq!(claims["name"], "Ada King Lovelace");
        assert!(claims["updated_at"].as_i64().is_some());
        let info: Value = reqwest::Client::new()
            .get(app.url("/oauth2/userinfo"))
            .bearer_auth(openidconnect::OAuth2TokenResponse::access_token(&tokens).secret())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["given_name"], "Ada");
        assert_eq!(info["family_name"], "King Lovelace");
        assert_eq!(info["name"], "Ada King Lovelace");
        assert!(info.get("phone_number").is_none());
    }
}

#[tokio::test]
async fn phone_numbers_are_stored_in_e164_and_never_released_unverified() {
    for db in databases().await {
        let app = TestApp::start(&db).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let (client, csrf) = app.signed_in("ada@example.com").await;
        let phones = app.url("/api/v1/me/phones");
        let add = |body: Value| {
            client
                .post(&phones)
                .header("x-csrf-token", &csrf)
                .json(&body)
                .send()
        };

        let created = add(json!({"label": "Office", "number": "0041 44 668 18 00"}))
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED, "{}", db.backend);
        let created: Value = created.json().await.unwrap();
        assert_eq!(created["number"], "+41446681800");
        assert_eq!(created["display"], "+41 44 668 18 00");
        assert_eq!(created["verified"], false);
        for (body, status) in [
            (json!({"label": "Home", "number": "044 668 18 00"}), 422),
            (json!({"label": "Home", "number": "+41 12"}), 422),
            (json!({"label": "", "number": "+34 912 34 56 78"}), 422),
            (json!({"label": "Again", "number": "+41446681800"}), 409),
            (
                json!({"label": "Home", "number": "+34 912 34 56 78", "x": 1}),
                422,
            ),
        ] {
            let response = add(body.clone()).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{body}");
        }
        let listed: Value = client
            .get(&phones)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["phones"].as_array().unwrap().len(), 1);
        assert!(listed["verification"].as_str().unwrap().contains("SMS"));

        // The page's form adds one; its button removes one; another's id is not found.
        let page = app.page(&client, "/account/profile").await;
        let form_csrf = hidden_field(&page, "csrf");
        let added = client
            .post(app.url("/account/phones"))
            .form(&[
                ("csrf", form_csrf.as_str()),
                ("label", "Mobile"),
                ("number", "+34 612 34 56 78"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), StatusCode::SEE_OTHER);
        let page = app.page(&client, "/account/profile?phone=added").await;
        assert!(page.contains("+34 612 34 56 78"), "{}", db.backend);
        let id = created["id"].as_str().unwrap();
        let removed = client
            .post(app.url(&format!("/account/phones/{id}/delete")))
            .form(&[("csrf", form_csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), StatusCode::SEE_OTHER);
        let again = client
            .delete(app.url(&format!("/api/v1/me/phones/{id}")))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_FOUND);
        let listed: Value = client
            .get(&phones)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let numbers: Vec<&str> = listed["phones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["number"].as_str().unwrap())
            .collect();
        assert_eq!(numbers, ["+34612345678"]);
    }
}
