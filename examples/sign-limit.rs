//! The machine's signing limit, for `scripts/bench`: JWT signatures (and verifications) per
//! second with every core busy, through the same `SigningKeys` the server uses, on an access
//! token shaped like Gotthard's (RFC 9068 claims). Prints one JSON line.
//!
//!   target/release/examples/sign-limit [seconds=3]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gotthard::tokens::{SigningAlg, SigningKeys};
use time::OffsetDateTime;

fn main() -> anyhow::Result<()> {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let dir = tempfile::tempdir()?;
    let now = OffsetDateTime::now_utc();
    let keys = SigningKeys::load_or_create(dir.path(), time::Duration::hours(2), now)?;
    let cores = std::thread::available_parallelism()?.get();
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:8080",
        "sub": "0194f3c2-6a1e-7b7d-9c51-3f2d7e0a9b11",
        "aud": "http://127.0.0.1:8080",
        "client_id": "0194f3c2-6a1e-7b7d-9c51-3f2d7e0a9b12",
        "scope": "openid profile email offline_access",
        "sid": "0194f3c2-6a1e-7b7d-9c51-3f2d7e0a9b13",
        "jti": "0194f3c2-6a1e-7b7d-9c51-3f2d7e0a9b14",
        "iat": now.unix_timestamp(),
        "exp": now.unix_timestamp() + 300,
    });
    let mut out = serde_json::Map::new();
    out.insert("cores".into(), cores.into());
    // ES256 (the access-token algorithm) gets most of the time.
    for (alg, share) in [
        (SigningAlg::Es256, 0.6),
        (SigningAlg::Rs256, 0.2),
        (SigningAlg::EdDsa, 0.2),
    ] {
        let key = keys
            .active(alg)
            .ok_or_else(|| anyhow::anyhow!("no {} key", alg.as_str()))?;
        let jwt = key.sign_jwt("at+jwt", &claims)?;
        let mut validation = jsonwebtoken::Validation::new(alg.jwt_algorithm());
        validation.validate_aud = false;
        let budget = Duration::from_secs_f64(seconds * share / 2.0);
        let rate = |work: &(dyn Fn() + Sync)| -> f64 {
            let count = AtomicU64::new(0);
            let started = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..cores {
                    s.spawn(|| {
                        let mut n = 0;
                        while started.elapsed() < budget {
                            for _ in 0..16 {
                                work();
                            }
                            n += 16;
                        }
                        count.fetch_add(n, Ordering::Relaxed);
                    });
                }
            });
            count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
        };
        let signs = rate(&|| {
            std::hint::black_box(key.sign_jwt("at+jwt", &claims).expect("sign"));
        });
        let verifies = rate(&|| {
            std::hint::black_box(
                jsonwebtoken::decode::<serde_json::Value>(&jwt, &key.decoding, &validation)
                    .expect("verify"),
            );
        });
        out.insert(
            alg.as_str().to_string(),
            serde_json::json!({
                "signs_per_s": signs.round(),
                "verifies_per_s": verifies.round(),
            }),
        );
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
