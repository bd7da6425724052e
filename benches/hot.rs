//! Criterion micro-benchmarks of the hot pieces behind the endpoints that `scripts/bench`
//! drives over HTTP: JWT signing and verification per algorithm (keys parsed once, as the
//! server does), one password verify at the configured argon2id parameters (through the same
//! bounded pool as the login form), a session lookup by cookie digest, and an activity page.
//! SQLite in a temporary folder. Run: `cargo bench --bench hot` (`-- sign` to pick a group).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gotthard::accounts::NewUser;
use gotthard::accounts::password::{PasswordHasher, Verification};
use gotthard::audit::{Action, ActivityEvent, ActivityFilter, ActivityLog, ClientInfo, EventOwner};
use gotthard::sessions::{NewSession, SignInMethod};
use gotthard::store::{Store, connect};
use gotthard::tokens::{OpaqueToken, SigningAlg, SigningKeys};
use time::OffsetDateTime;
use uuid::Uuid;

fn access_token_claims(now: OffsetDateTime) -> serde_json::Value {
    serde_json::json!({
        "iss": "http://127.0.0.1:8080",
        "sub": Uuid::now_v7(),
        "aud": "http://127.0.0.1:8080",
        "client_id": Uuid::now_v7(),
        "scope": "openid profile email offline_access",
        "sid": Uuid::now_v7(),
        "jti": Uuid::now_v7(),
        "iat": now.unix_timestamp(),
        "exp": now.unix_timestamp() + 300,
    })
}

fn tokens(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let now = OffsetDateTime::now_utc();
    let keys = SigningKeys::load_or_create(dir.path(), time::Duration::hours(2), now)
        .expect("signing keys");
    let claims = access_token_claims(now);
    let mut group = c.benchmark_group("jwt");
    for alg in SigningAlg::ALL {
        let key = keys.active(alg).expect("active key");
        group.bench_function(format!("sign {}", alg.as_str()), |b| {
            b.iter(|| key.sign_jwt("at+jwt", &claims).expect("sign"))
        });
        let jwt = key.sign_jwt("at+jwt", &claims).expect("sign");
        let mut validation = jsonwebtoken::Validation::new(alg.jwt_algorithm());
        validation.set_audience(&["http://127.0.0.1:8080"]);
        group.bench_function(format!("verify {}", alg.as_str()), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(&jwt, &key.decoding, &validation)
                    .expect("verify")
            })
        });
    }
    group.finish();
}

fn password(c: &mut Criterion) {
    let rt = runtime();
    let config = gotthard::config::Config::load(None).expect("config");
    let hasher = PasswordHasher::start(&config.password, 1).expect("hasher");
    let phc = rt.block_on(hasher.hash("bench-password-1")).expect("hash");
    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    let p = &config.password;
    group.bench_function(
        format!(
            "verify argon2id m={},t={},p={}",
            p.memory_kib, p.iterations, p.parallelism
        ),
        |b| {
            b.to_async(&rt).iter(|| async {
                let outcome = hasher
                    .verify("bench-password-1", Some(&phc))
                    .await
                    .expect("verify");
                assert!(matches!(outcome, Verification::Match { .. }));
            })
        },
    );
    group.finish();
}

fn store(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("bench.db").display());
    let (store, user_id, cookie) = rt.block_on(seed(&url)).expect("seed");
    let digest = cookie.digest();
    let log = ActivityLog::new(
        store.clone(),
        gotthard::audit::Retention {
            account: time::Duration::days(730),
            machine: time::Duration::days(90),
        },
    );

    let mut group = c.benchmark_group("store (SQLite)");
    group.bench_function("session by cookie digest (with its user)", |b| {
        b.to_async(&rt).iter(|| async {
            let found = store.session_by_digest(&digest).await.expect("lookup");
            assert!(found.is_some());
        })
    });
    group.bench_function("activity page (50 of 5 000 events)", |b| {
        b.to_async(&rt).iter(|| async {
            let page = log
                .page(
                    EventOwner::User(user_id),
                    &ActivityFilter::default(),
                    None,
                    50,
                )
                .await
                .expect("page");
            assert_eq!(page.events.len(), 50);
        })
    });
    let failed = ActivityFilter {
        action: Some(Action::LoginFailed.as_str().into()),
        ..Default::default()
    };
    group.bench_function("activity page filtered by action", |b| {
        b.to_async(&rt).iter(|| async {
            log.page(EventOwner::User(user_id), &failed, None, 50)
                .await
                .expect("page")
        })
    });
    group.finish();
}

/// One user with a session and 5 000 events (a third of them failed logins), plus 50 other
/// users with a session each so that the lookup is not in a one-row table.
async fn seed(url: &str) -> anyhow::Result<(std::sync::Arc<dyn Store>, Uuid, OpaqueToken)> {
    let store = connect(url, 4).await?;
    store.migrate().await?;
    let now = OffsetDateTime::now_utc();
    let client = ClientInfo::new(
        "203.0.113.7",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
    );
    let mut mine = None;
    for i in 0..51 {
        let user = store
            .insert_user(&NewUser {
                id: Uuid::now_v7(),
                email: format!("u{i}@example.com"),
                name: format!("User {i}"),
                given_name: "User".into(),
                family_name: i.to_string(),
                password_hash: None,
                is_admin: false,
                lockout_threshold: 10,
                created_at: now,
            })
            .await?;
        let cookie = OpaqueToken::generate();
        let session = NewSession {
            id: Uuid::now_v7(),
            user_id: user.id,
            token_digest: cookie.digest(),
            method: SignInMethod::Password,
            sso_org_id: None,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            created_at: now,
        };
        let event = ActivityEvent::new(
            Some(user.id),
            Action::LoginSucceeded,
            &client,
            serde_json::json!({}),
            now,
        );
        store.start_session(&session, &event, None).await?;
        if i == 0 {
            mine = Some((user.id, cookie));
        }
    }
    let (user_id, cookie) = mine.expect("first user");
    for i in 0..5000i64 {
        let action = if i % 3 == 0 {
            Action::LoginFailed
        } else {
            Action::LoginSucceeded
        };
        let at = now - time::Duration::minutes(i);
        let event = ActivityEvent::new(Some(user_id), action, &client, serde_json::json!({}), at);
        store.record_event(&event).await?;
    }
    Ok((store, user_id, cookie))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

criterion_group! {
    name = hot;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = tokens, password, store
}
criterion_main!(hot);
