//! The load of `scripts/soak`: an open-loop mixed load at fixed rates on several instances
//! for a long time, sampled every minute: latency per kind of request, answers by status,
//! and of every server its resident memory and open files, PostgreSQL's connections to the
//! database, Redis' clients. Prints a JSON line per sample and a summary at the end.
//!
//! Settings come from the environment (scripts/soak sets them):
//!   BASES            instances, comma-separated (http://127.0.0.1:P1,http://127.0.0.1:P2)
//!   PIDS             their process ids, comma-separated
//!   CLIENT_ID, CLIENT_SECRET   a confidential client
//!   REFRESH_TOKENS   a file with one refresh token per line: one rotating chain each
//!   USERS, PASSWORD  accounts bench1…benchN@example.com sharing a password
//!   DATABASE_URL     the instances' PostgreSQL database (connections counted)
//!   REDIS_URL        their Redis (clients counted)
//!   DURATION, SAMPLE seconds (3600, 60)
//!   RATES            per second: logins,wrong_passwords,refreshes,introspections,machine_tokens
//!                    (default 4,1,40,200,20)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

#[derive(Default)]
struct Window {
    /// Latencies in microseconds, per kind.
    latency: BTreeMap<&'static str, Vec<u64>>,
    statuses: BTreeMap<String, u64>,
}

#[derive(Clone)]
struct Load {
    bases: Arc<Vec<String>>,
    window: Arc<Mutex<Window>>,
    client_id: Arc<String>,
    secret: Arc<String>,
    /// The newest access token of the first refresh chain, for introspection.
    access_token: Arc<Mutex<String>>,
    /// At most this many requests in flight per kind: an overloaded server is seen as
    /// latency and missed requests, not as a growing pile of client tasks.
    in_flight: Arc<Semaphore>,
}

impl Load {
    fn base(&self, n: u64) -> &str {
        &self.bases[n as usize % self.bases.len()]
    }

    fn record(&self, kind: &'static str, took: Duration, status: Option<u16>) {
        let mut window = self.window.lock().unwrap();
        window
            .latency
            .entry(kind)
            .or_default()
            .push(took.as_micros() as u64);
        let key = format!(
            "{kind} {}",
            status.map_or("error".into(), |s| s.to_string())
        );
        *window.statuses.entry(key).or_default() += 1;
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// Calls `one(n)` `per_second` times a second, whatever the answers' pace (open loop).
async fn at_rate<F, Fut>(per_second: f64, running: Arc<AtomicBool>, load: Load, one: F)
where
    F: Fn(Load, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if per_second <= 0.0 {
        return;
    }
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let one = Arc::new(one);
    let mut n = 0u64;
    while running.load(Ordering::Relaxed) {
        ticks.tick().await;
        n += 1;
        let Ok(permit) = load.in_flight.clone().try_acquire_owned() else {
            load.record("skipped", Duration::ZERO, None);
            continue;
        };
        let (one, load) = (one.clone(), load.clone());
        tokio::spawn(async move {
            one(load, n).await;
            drop(permit);
        });
    }
}

/// A sign-in: the form (its CSRF field and cookie), then the post; 303 is a success.
async fn login(load: Load, n: u64, email: String, password: String, kind: &'static str) {
    let http = client();
    let base = load.base(n).to_string();
    let started = Instant::now();
    let Ok(form) = http.get(format!("{base}/login")).send().await else {
        load.record(kind, started.elapsed(), None);
        return;
    };
    let cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    let page = form.text().await.unwrap_or_default();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string();
    let answer = http
        .post(format!("{base}/login"))
        .header("cookie", cookie)
        .form(&[
            ("email", email.as_str()),
            ("password", password.as_str()),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await;
    load.record(
        kind,
        started.elapsed(),
        answer.ok().map(|r| r.status().as_u16()),
    );
}

/// One chain of refresh tokens: each answer's token is the next request's.
async fn refresh_chain(
    load: Load,
    mut token: String,
    every: Duration,
    running: Arc<AtomicBool>,
    first: bool,
) {
    let http = client();
    let mut ticks = tokio::time::interval(every);
    let mut n = 0u64;
    while running.load(Ordering::Relaxed) {
        ticks.tick().await;
        n += 1;
        let started = Instant::now();
        let answer = http
            .post(format!("{}/oauth2/token", load.base(n)))
            .basic_auth(load.client_id.as_str(), Some(load.secret.as_str()))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
            .send()
            .await;
        let status = answer.as_ref().ok().map(|r| r.status().as_u16());
        let body: serde_json::Value = match answer {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        load.record("refresh", started.elapsed(), status);
        if let Some(next) = body["refresh_token"].as_str() {
            token = next.to_string();
            if first && let Some(at) = body["access_token"].as_str() {
                *load.access_token.lock().unwrap() = at.to_string();
            }
        } else if status.is_some() {
            // A chain whose token was refused is over (a 503 keeps its token: retried).
            if status != Some(503) {
                load.record("refresh chain lost", Duration::ZERO, status);
                return;
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn proc_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_files(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bases: Vec<String> = env("BASES").split(',').map(str::to_string).collect();
    let pids: Vec<String> = env("PIDS").split(',').map(str::to_string).collect();
    let duration = Duration::from_secs(std::env::var("DURATION").map_or(Ok(3600), |v| v.parse())?);
    let sample = Duration::from_secs(std::env::var("SAMPLE").map_or(Ok(60), |v| v.parse())?);
    let rates: Vec<f64> = std::env::var("RATES")
        .unwrap_or_else(|_| "4,1,40,200,20".into())
        .split(',')
        .map(|r| r.parse().unwrap_or(0.0))
        .collect();
    let [logins, wrong, refreshes, introspections, machine] = rates[..] else {
        anyhow::bail!("RATES needs five numbers");
    };
    let users: u64 = env("USERS").parse()?;
    let password = env("PASSWORD");
    let chains: Vec<String> = std::fs::read_to_string(env("REFRESH_TOKENS"))?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let db = sqlx::PgPool::connect(&env("DATABASE_URL")).await?;
    let redis = redis::Client::open(env("REDIS_URL"))?;
    let mut redis = redis.get_multiplexed_async_connection().await?;

    let load = Load {
        bases: Arc::new(bases),
        window: Arc::default(),
        client_id: Arc::new(env("CLIENT_ID")),
        secret: Arc::new(env("CLIENT_SECRET")),
        access_token: Arc::default(),
        in_flight: Arc::new(Semaphore::new(256)),
    };
    let running = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();
    let every = Duration::from_secs_f64(chains.len() as f64 / refreshes.max(0.001));
    for (i, token) in chains.into_iter().enumerate() {
        tasks.push(tokio::spawn(refresh_chain(
            load.clone(),
            token,
            every,
            running.clone(),
            i == 0,
        )));
    }
    // The first access token arrives with the first refresh.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let password_ = password.clone();
    tasks.push(tokio::spawn(at_rate(
        logins,
        running.clone(),
        load.clone(),
        move |load, n| {
            let email = format!("bench{}@example.com", n % users + 1);
            login(load, n, email, password_.clone(), "login")
        },
    )));
    tasks.push(tokio::spawn(at_rate(
        wrong,
        running.clone(),
        load.clone(),
        move |load, n| {
            // Unknown addresses: the accounts of the load must not lock.
            let email = format!("nobody{}@example.com", n % 97);
            login(load, n, email, "not-the-password".into(), "wrong password")
        },
    )));
    tasks.push(tokio::spawn(at_rate(
        introspections,
        running.clone(),
        load.clone(),
        |load, n| async move {
            let token = load.access_token.lock().unwrap().clone();
            let started = Instant::now();
            let answer = client()
                .post(format!("{}/oauth2/introspect", load.base(n)))
                .basic_auth(load.client_id.as_str(), Some(load.secret.as_str()))
                .form(&[("token", token.as_str())])
                .send()
                .await;
            let status = match answer {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    // An inactive answer for the chain's newest token is a wrong answer.
                    Some(if status == 200 && !text.contains("\"active\":true") {
                        299
                    } else {
                        status
                    })
                }
                Err(_) => None,
            };
            load.record("introspection", started.elapsed(), status);
        },
    )));
    tasks.push(tokio::spawn(at_rate(
        machine,
        running.clone(),
        load.clone(),
        |load, n| async move {
            let started = Instant::now();
            let answer = client()
                .post(format!("{}/oauth2/token", load.base(n)))
                .basic_auth(load.client_id.as_str(), Some(load.secret.as_str()))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await;
            load.record(
                "machine token",
                started.elapsed(),
                answer.ok().map(|r| r.status().as_u16()),
            );
        },
    )));

    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < duration {
        tokio::time::sleep(sample.min(duration - started.elapsed())).await;
        let window = std::mem::take(&mut *load.window.lock().unwrap());
        let (connections,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
        )
        .fetch_one(&db)
        .await
        .unwrap_or((-1,));
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut redis)
            .await
            .unwrap_or_default();
        let redis_clients: i64 = info
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1);
        let mut kinds = serde_json::Map::new();
        for (kind, mut times) in window.latency {
            times.sort_unstable();
            kinds.insert(
                kind.to_string(),
                serde_json::json!({
                    "n": times.len(),
                    "p50_ms": percentile(&times, 0.5),
                    "p99_ms": percentile(&times, 0.99),
                    "max_ms": percentile(&times, 1.0),
                }),
            );
        }
        let line = serde_json::json!({
            "minute": (started.elapsed().as_secs_f64() / 60.0 * 10.0).round() / 10.0,
            "kinds": kinds,
            "statuses": window.statuses,
            "rss_kib": pids.iter().map(|p| proc_kib(p, "VmRSS:")).collect::<Vec<_>>(),
            "hwm_kib": pids.iter().map(|p| proc_kib(p, "VmHWM:")).collect::<Vec<_>>(),
            "open_files": pids.iter().map(|p| open_files(p)).collect::<Vec<_>>(),
            "pg_connections": connections,
            "redis_clients": redis_clients,
        });
        println!("{line}");
        samples.push(line);
    }
    running.store(false, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    }
    println!("{}", serde_json::json!({ "summary": summarize(&samples) }));
    Ok(())
}

/// First and last samples side by side (the first minute is warm-up: the second is the
/// reference), the worst p99 of each kind, and every answer that was not expected.
fn summarize(samples: &[serde_json::Value]) -> serde_json::Value {
    let reference = samples.get(1).or(samples.first());
    let last = samples.last();
    let pick = |s: Option<&serde_json::Value>, key: &str| s.map(|s| s[key].clone());
    let mut worst_p99 = BTreeMap::<String, f64>::new();
    let mut unexpected = BTreeMap::<String, u64>::new();
    for s in samples {
        if let Some(kinds) = s["kinds"].as_object() {
            for (kind, v) in kinds {
                let p99 = v["p99_ms"].as_f64().unwrap_or(0.0);
                let worst = worst_p99.entry(kind.clone()).or_default();
                *worst = worst.max(p99);
            }
        }
        if let Some(statuses) = s["statuses"].as_object() {
            for (key, n) in statuses {
                let expected = [
                    "login 303",
                    "wrong password 401",
                    "refresh 200",
                    "introspection 200",
                    "machine token 200",
                ];
                if !expected.contains(&key.as_str()) {
                    *unexpected.entry(key.clone()).or_default() += n.as_u64().unwrap_or(0);
                }
            }
        }
    }
    serde_json::json!({
        "samples": samples.len(),
        "rss_kib": { "reference": pick(reference, "rss_kib"), "last": pick(last, "rss_kib") },
        "open_files": { "reference": pick(reference, "open_files"), "last": pick(last, "open_files") },
        "pg_connections": { "reference": pick(reference, "pg_connections"), "last": pick(last, "pg_connections") },
        "redis_clients": { "reference": pick(reference, "redis_clients"), "last": pick(last, "redis_clients") },
        "worst_p99_ms": worst_p99,
        "unexpected_answers": unexpected,
    })
}
