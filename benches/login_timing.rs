//! Does the login answer tell whether an address has an account? Runs the real server on
//! loopback (SQLite, release build) and posts 50 wrong passwords for an existing account
//! and 50 for unknown addresses, interleaved, comparing status, body and median time.
//! Run: `cargo bench --bench login_timing`.

use std::time::{Duration, Instant};

use gotthard::AppState;
use gotthard::config::Config;

const ROUNDS: usize = 50;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let data = dir.path().join("data");
    let keys = dir.path().join("keys");
    let config = Config::from_overrides(&[
        ("issuer", base.as_str()),
        ("data_dir", data.to_str().unwrap_or("data")),
        ("keys.dir", keys.to_str().unwrap_or("keys")),
        // 2·ROUNDS failures must not lock the account or hit the per-IP limit.
        ("lockout.max_threshold", "1000"),
        ("rate_limit.sign_in_burst", "100000"),
        ("rate_limit.sign_in_per_minute", "100000"),
    ])?;
    let threads = config.hash_threads();
    let state = AppState::open(config, threads).await?;
    let now = state.clock.now();
    let user = state
        .accounts
        .create_user("ada@example.com", "", "granite-otter-lantern", false, now)
        .await?;
    let settings = gotthard::accounts::SecuritySettings {
        lockout_threshold: 1000,
        notify_on_success: false,
        notify_on_failure: false,
    };
    let client_info = gotthard::audit::ClientInfo::new("bench", "bench");
    // The threshold is bounded by lockout.max_threshold, raised above for this run.
    state
        .accounts
        .update_security(&user, settings, &client_info, now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tokio::spawn(gotthard::serve(state, listener, std::future::pending()));

    let client = reqwest::Client::builder().cookie_store(true).build()?;
    let page = client
        .get(format!("{base}/login"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| anyhow::anyhow!("no csrf field"))?
        .to_string();
    let post = |email: &'static str| {
        let client = client.clone();
        let url = format!("{base}/login");
        let csrf = csrf.clone();
        async move {
            let started = Instant::now();
            let response = client
                .post(url)
                .form(&[
                    ("email", email),
                    ("password", "not-the-password"),
                    ("csrf", &csrf),
                ])
                .send()
                .await?;
            let status = response.status();
            let body = response.text().await?;
            Ok::<_, anyhow::Error>((started.elapsed(), status, body))
        }
    };
    // Warm up both paths.
    post("ada@example.com").await?;
    post("nobody@example.com").await?;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    let (mut known_answer, mut unknown_answer) = (None, None);
    for _ in 0..ROUNDS {
        let (t, status, body) = post("ada@example.com").await?;
        known.push(t);
        known_answer.get_or_insert((status, body.replace("ada@example.com", "<email>")));
        let (t, status, body) = post("nobody@example.com").await?;
        unknown.push(t);
        unknown_answer.get_or_insert((status, body.replace("nobody@example.com", "<email>")));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (k, u) = (median(&mut known), median(&mut unknown));
    let same = known_answer == unknown_answer;
    println!(
        "wrong password (existing account): median {:.2} ms over {ROUNDS}",
        k.as_secs_f64() * 1000.0
    );
    println!(
        "unknown e-mail:                    median {:.2} ms over {ROUNDS}",
        u.as_secs_f64() * 1000.0
    );
    println!(
        "ratio unknown / existing = {:.3}; same status and body (e-mail field aside): {same}",
        u.as_secs_f64() / k.as_secs_f64()
    );
    Ok(())
}
