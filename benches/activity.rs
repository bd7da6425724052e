//! The activity-log query over a table of 1 000 000 events, on SQLite and (when
//! `TEST_DATABASE_URL` is set) PostgreSQL, through the same `ActivityLog` the API uses.
//! 1 000 users; one heavy user holds every HEAVY_EVERY-th event (default 10: 10 %), the
//! others share the rest. MACHINE_EVENTS more events of a machine client (no user), all past
//! their retention, sit in the same table; one pruning batch of each kind is timed there.
//! Run: `cargo bench --bench activity` (EVENTS=… to change the size, BACKENDS=postgres);
//! a million events of one user beside a million machine tokens:
//! `EVENTS=2000000 HEAVY_EVERY=2 MACHINE_EVENTS=1000000 cargo bench --bench activity`.

use std::time::{Duration, Instant};

use gotthard::audit::{ActivityCursor, ActivityFilter, ActivityLog, EventKind, EventOwner};
use gotthard::store::{Store, connect};
use time::OffsetDateTime;
use uuid::Uuid;

const USERS: i64 = 1000;
const ROUNDS: usize = 50;

/// What is seeded.
#[derive(Clone, Copy)]
struct Size {
    events: i64,
    /// The heavy user has every `heavy_every`-th event.
    heavy_every: i64,
    machine_events: i64,
}

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let size = Size {
        events: env_or("EVENTS", 1_000_000),
        heavy_every: env_or("HEAVY_EVERY", 10).max(1),
        machine_events: env_or("MACHINE_EVENTS", 0),
    };
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "sqlite postgres".into());
    let dir = tempfile::tempdir()?;
    let sqlite_url = format!("sqlite:{}", dir.path().join("bench.db").display());
    if backends.contains("sqlite") {
        run("sqlite", &sqlite_url, size, seed_sqlite).await?;
    }
    if !backends.contains("postgres") {
        return Ok(());
    }
    if let Ok(admin) = std::env::var("TEST_DATABASE_URL") {
        use sqlx::Connection;
        let name = format!("gotthard_bench_{}", Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let mut url = url::Url::parse(&admin)?;
        url.set_path(&format!("/{name}"));
        let result = run("postgres", url.as_str(), size, seed_postgres).await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        result?;
    } else {
        println!("postgres: skipped (TEST_DATABASE_URL unset)");
    }
    Ok(())
}

type Seed = for<'a> fn(
    &'a str,
    Size,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>,
>;

async fn run(backend: &str, url: &str, size: Size, seed: Seed) -> anyhow::Result<()> {
    let store = connect(url, 4).await?;
    store.migrate().await?;
    let started = Instant::now();
    seed(url, size).await?;
    println!(
        "{backend}: seeded {} events for {USERS} users ({} of the heavy user) and {} of a \
         machine client in {:.1?}",
        size.events,
        size.events / size.heavy_every,
        size.machine_events,
        started.elapsed()
    );
    let log = ActivityLog::new(
        store.clone(),
        gotthard::audit::Retention {
            account: time::Duration::days(730),
            machine: time::Duration::days(90),
        },
    );
    let heavy = user(&*store, "u0@example.com").await?;
    let typical = user(&*store, "u500@example.com").await?;
    let now = OffsetDateTime::now_utc();
    // A cursor deep in the heavy user's history: the 50th page.
    let mut deep = None;
    for _ in 0..50 {
        deep = log
            .page(
                EventOwner::User(heavy),
                &ActivityFilter::default(),
                deep,
                50,
            )
            .await?
            .next;
    }
    let week = ActivityFilter {
        from: Some(now - time::Duration::days(37)),
        to: Some(now - time::Duration::days(30)),
        ..Default::default()
    };
    let action = ActivityFilter {
        action: Some("login.failed".into()),
        ..Default::default()
    };
    let rare = ActivityFilter {
        action: Some("session.ended".into()),
        ..Default::default()
    };
    let product = ActivityFilter {
        product: Some("webmail".into()),
        ..Default::default()
    };
    let combined = ActivityFilter {
        action: Some("login.failed".into()),
        product: Some("webmail".into()),
        ..week.clone()
    };
    let cases: Vec<(&str, Uuid, ActivityFilter, Option<ActivityCursor>)> = vec![
        (
            "heavy user, first page",
            heavy,
            ActivityFilter::default(),
            None,
        ),
        (
            "heavy user, page 51",
            heavy,
            ActivityFilter::default(),
            deep,
        ),
        ("heavy user, one week", heavy, week.clone(), None),
        ("heavy user, action", heavy, action.clone(), None),
        ("heavy user, rare action", heavy, rare, None),
        ("heavy user, product", heavy, product, None),
        ("heavy user, all filters", heavy, combined, None),
        (
            "typical user, first page",
            typical,
            ActivityFilter::default(),
            None,
        ),
        ("typical user, action", typical, action, None),
    ];
    println!(
        "{backend}: {:<26} {:>9} {:>9} {:>9}  (50 events a page, {ROUNDS} rounds)",
        "query", "p50", "p99", "max"
    );
    for (name, user_id, filter, cursor) in cases {
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let page = log
                .page(EventOwner::User(user_id), &filter, cursor, 50)
                .await?;
            times.push(t.elapsed());
            std::hint::black_box(page.events.len());
        }
        times.sort();
        let ms = |d: Duration| format!("{:.2}ms", d.as_secs_f64() * 1000.0);
        println!(
            "{backend}: {name:<26} {:>9} {:>9} {:>9}",
            ms(times[ROUNDS / 2]),
            ms(times[ROUNDS * 99 / 100]),
            ms(times[ROUNDS - 1])
        );
    }
    // Retention: one batch of each kind, as the maintenance tick deletes them.
    for (kind, kept) in [(EventKind::Machine, 90), (EventKind::Account, 730)] {
        let t = Instant::now();
        let deleted = store
            .prune_events(kind, now - time::Duration::days(kept), 1000)
            .await?;
        println!(
            "{backend}: pruning batch of {kind:?} events: {deleted} deleted in {:.2}ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

async fn user(store: &dyn Store, email: &str) -> anyhow::Result<Uuid> {
    Ok(store
        .user_by_email(email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no {email}"))?
        .id)
}

/// Users and events written by SQL itself (a recursive CTE), in one transaction.
fn seed_sqlite(
    url: &str,
    size: Size,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + '_>> {
    Box::pin(async move {
        let pool = sqlx::SqlitePool::connect(url).await?;
        let mut tx = pool.begin().await?;
        sqlx::query(
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < $1 - 1) \
             INSERT INTO users (id, email, email_key, name, created_at, updated_at) \
             SELECT randomblob(16), 'u' || n || '@example.com', 'u' || n || '@example.com', '', \
             '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z' FROM seq",
        )
        .bind(USERS)
        .execute(&mut *tx)
        .await?;
        sqlx::query("CREATE TEMP TABLE uids (n INTEGER PRIMARY KEY, id BLOB)")
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO uids SELECT CAST(substr(email, 2, instr(email, '@') - 2) AS INTEGER), id FROM users")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < $1 - 1) \
             INSERT INTO activity_events (id, user_id, action, product, ip, user_agent, details, created_at) \
             SELECT randomblob(16), u.id, \
               CASE i % 20 WHEN 0 THEN 'session.ended' WHEN 1 THEN 'logout' \
                 ELSE CASE i % 3 WHEN 0 THEN 'login.failed' ELSE 'login.succeeded' END END, \
               CASE i % 4 WHEN 0 THEN 'webmail' ELSE 'account' END, \
               '203.0.113.' || (i % 250), 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0', '{}', \
               strftime('%Y-%m-%dT%H:%M:%SZ', unixepoch('now') - i * 30, 'unixepoch') \
             FROM seq JOIN uids u ON u.n = CASE WHEN i % $3 = 0 THEN 0 ELSE 1 + i % ($2 - 1) END",
        )
        .bind(size.events)
        .bind(USERS)
        .bind(size.heavy_every)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < $1 - 1) \
             INSERT INTO activity_events (id, user_id, action, product, ip, user_agent, details, created_at) \
             SELECT randomblob(16), NULL, 'token.issued', 'machine', '198.51.100.' || (i % 250), \
               'client/1.0', '{}', \
               strftime('%Y-%m-%dT%H:%M:%SZ', unixepoch('now') - 91 * 86400 - i, 'unixepoch') \
             FROM seq WHERE $1 > 0",
        )
        .bind(size.machine_events)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        pool.close().await;
        Ok(())
    })
}

/// The same data set on PostgreSQL, from generate_series.
fn seed_postgres(
    url: &str,
    size: Size,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + '_>> {
    Box::pin(async move {
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::query(
            "INSERT INTO users (id, email, email_key, name, created_at, updated_at) \
             SELECT gen_random_uuid(), 'u' || n || '@example.com', 'u' || n || '@example.com', '', \
             now(), now() FROM generate_series(0, $1 - 1) n",
        )
        .bind(USERS)
        .execute(&pool)
        .await?;
        sqlx::query(
            "WITH uids AS (SELECT CAST(substring(email FROM 2 FOR position('@' IN email) - 2) AS BIGINT) AS n, id FROM users) \
             INSERT INTO activity_events (id, user_id, action, product, ip, user_agent, details, created_at) \
             SELECT gen_random_uuid(), u.id, \
               CASE i % 20 WHEN 0 THEN 'session.ended' WHEN 1 THEN 'logout' \
                 ELSE CASE i % 3 WHEN 0 THEN 'login.failed' ELSE 'login.succeeded' END END, \
               CASE i % 4 WHEN 0 THEN 'webmail' ELSE 'account' END, \
               '203.0.113.' || (i % 250), 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0', '{}', \
               date_trunc('second', now()) - make_interval(secs => i * 30) \
             FROM generate_series(0, $1 - 1) i \
             JOIN uids u ON u.n = CASE WHEN i % $3 = 0 THEN 0 ELSE 1 + i % ($2 - 1) END",
        )
        .bind(size.events)
        .bind(USERS)
        .bind(size.heavy_every)
        .execute(&pool)
        .await?;
        sqlx::query(
            "INSERT INTO activity_events (id, user_id, action, product, ip, user_agent, details, created_at) \
             SELECT gen_random_uuid(), NULL, 'token.issued', 'machine', '198.51.100.' || (i % 250), \
               'client/1.0', '{}', date_trunc('second', now()) - interval '91 days' - make_interval(secs => i) \
             FROM generate_series(1, $1) i",
        )
        .bind(size.machine_events)
        .execute(&pool)
        .await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        pool.close().await;
        Ok(())
    })
}
