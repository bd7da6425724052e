//! What several instances share through Redis, when configured: sign-in rate-limit counters
//! and the revocation feed. Every use degrades while Redis is unreachable (counters per
//! instance; bearer checks read from the database instead of memory): a lost Redis loses
//! nothing, since SQL holds everything that must survive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Revocations;

/// GCRA on a Redis key, atomic in one script, on Redis' own clock (instances' clocks differ):
/// returns 0 when allowed, else the milliseconds to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_from = new_tat - interval * burst
if now < allow_from then return allow_from - now end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
return 0
";

#[derive(Clone)]
pub struct SharedCache {
    client: redis::Client,
    connection: Arc<RwLock<Option<ConnectionManager>>>,
    /// Whether the last command on `connection` got an answer: a connection manager exists
    /// through an outage, so this, not its presence, says Redis is serving.
    answering: Arc<AtomicBool>,
    prefix: String,
    gcra: Arc<redis::Script>,
}

impl SharedCache {
    /// Connects in the background (retrying every few seconds), so that start-up never waits
    /// for Redis. Fails only on a malformed URL.
    pub fn start(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let cache = Self {
            client: client.clone(),
            connection: Arc::new(RwLock::new(None)),
            answering: Arc::new(AtomicBool::new(false)),
            prefix: prefix.to_string(),
            gcra: Arc::new(redis::Script::new(GCRA)),
        };
        let slot = cache.connection.clone();
        let answering = cache.answering.clone();
        tokio::spawn(async move {
            // One quick attempt per reconnection: the heartbeat and every rate check ask
            // again, so an outage ends at the first command after it. (The crate's retries
            // sleep 1 s, then its `factor` of 100 times that, capped at a minute: a Redis
            // back after a crash was not used again for up to a minute.)
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_secs(2))
                .set_response_timeout(Duration::from_millis(300))
                .set_number_of_retries(1)
                .set_max_delay(200);
            loop {
                match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                    Ok(manager) => {
                        if let Ok(mut slot) = slot.write() {
                            *slot = Some(manager);
                        }
                        answering.store(true, Ordering::Release);
                        tracing::info!("connected to Redis");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "Redis unreachable; using in-process counters");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
        });
        Ok(cache)
    }

    /// Whether Redis answered the last command sent to it (rate checks, the feed's
    /// heartbeats every half second).
    pub fn is_connected(&self) -> bool {
        self.connection().is_some() && self.answering.load(Ordering::Acquire)
    }

    fn answered(&self, yes: bool) {
        self.answering.store(yes, Ordering::Release);
    }

    fn connection(&self) -> Option<ConnectionManager> {
        self.connection.read().ok().and_then(|c| c.clone())
    }

    /// One event against a shared GCRA limit (`per_minute`, `burst`) on `key`: `Some(Ok)`
    /// allowed, `Some(Err(wait))` over the limit, `None` when Redis cannot answer now.
    pub async fn check_rate(
        &self,
        key: &str,
        per_minute: u32,
        burst: u32,
    ) -> Option<Result<(), Duration>> {
        let mut connection = self.connection()?;
        let interval_ms = 60_000 / u64::from(per_minute.max(1));
        let mut invocation = self.gcra.key(format!("{}ratelimit:{key}", self.prefix));
        invocation.arg(interval_ms.max(1)).arg(burst.max(1));
        let call = invocation.invoke_async::<u64>(&mut connection);
        match tokio::time::timeout(Duration::from_millis(500), call).await {
            Ok(Ok(0)) => {
                self.answered(true);
                Some(Ok(()))
            }
            Ok(Ok(wait_ms)) => {
                self.answered(true);
                Some(Err(Duration::from_millis(wait_ms)))
            }
            Ok(Err(err)) => {
                self.answered(false);
                tracing::warn!(error = %err, "Redis rate limit failed; using in-process counters");
                None
            }
            Err(_) => {
                self.answered(false);
                tracing::warn!("Redis rate limit timed out; using in-process counters");
                None
            }
        }
    }
}

/// How often each instance says it is alive on the revocation channel; not hearing its own
/// messages back for [`FEED_SILENCE`] means announcements may be lost.
const FEED_HEARTBEAT: Duration = Duration::from_millis(500);
const FEED_SILENCE: Duration = Duration::from_millis(1_500);

/// Revocations announced between instances over Redis pub/sub (`{prefix}revocations`), so
/// that each may remember token checks until a revocation anywhere. Announcements are
/// best-effort, so the feed vouches for the cache only while it hears its own heartbeats
/// come back: when Redis, the subscription or the publishing connection fails, nothing is
/// remembered until it is whole again, and reconnecting voids all that was remembered.
#[derive(Clone)]
pub struct RevocationFeed {
    started: Instant,
    /// Milliseconds after `started` of the last own message heard; 0 = not listening.
    heard_at: Arc<AtomicU64>,
    shared: SharedCache,
    revocations: Arc<Revocations>,
    /// This instance on the channel.
    me: String,
}

impl RevocationFeed {
    /// Starts announcing this instance's revocations and listening to the others'.
    pub fn start(&self) {
        tokio::spawn(listen(self.clone()));
        tokio::spawn(announce(self.clone()));
    }

    /// Whether every revocation announced by any instance reaches this one now.
    pub fn is_live(&self) -> bool {
        let heard = self.heard_at.load(Ordering::Acquire);
        heard != 0 && self.elapsed_ms().saturating_sub(heard) < FEED_SILENCE.as_millis() as u64
    }

    fn elapsed_ms(&self) -> u64 {
        // Never 0, which means "not listening".
        (self.started.elapsed().as_millis() as u64).max(1)
    }

    fn heard(&self) {
        self.heard_at.store(self.elapsed_ms(), Ordering::Release);
    }

    fn deaf(&self) {
        self.heard_at.store(0, Ordering::Release);
    }
}

impl SharedCache {
    /// The revocation feed of this instance's `revocations`; silent (and so vouching for
    /// nothing) until [`RevocationFeed::start`], which servers call and commands do not.
    pub fn revocation_feed(&self, revocations: Arc<Revocations>) -> RevocationFeed {
        RevocationFeed {
            started: Instant::now(),
            heard_at: Arc::new(AtomicU64::new(0)),
            shared: self.clone(),
            revocations,
            me: uuid::Uuid::now_v7().simple().to_string(),
        }
    }

    fn revocation_channel(&self) -> String {
        format!("{}revocations", self.prefix)
    }

    /// Announces a revocation once, on a connection of its own (the background one may not
    /// be up yet in a short-lived process); whether Redis took it.
    pub async fn announce_revocation(&self) -> bool {
        let payload = format!("revoked:{}", uuid::Uuid::now_v7().simple());
        let announced = async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            publish(&mut connection, &self.revocation_channel(), &payload).await
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), announced).await,
            Ok(Ok(()))
        )
    }
}

async fn publish(
    connection: &mut impl redis::aio::ConnectionLike,
    channel: &str,
    payload: &str,
) -> redis::RedisResult<()> {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async::<i64>(connection)
        .await
        .map(drop)
}

/// Subscribes (again after any failure) and moves the epoch on others' revocations.
async fn listen(feed: RevocationFeed) {
    let channel = feed.shared.revocation_channel();
    loop {
        let subscribed = async {
            let mut pubsub = feed.shared.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let mut pubsub = match tokio::time::timeout(Duration::from_secs(2), subscribed).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "Redis revocation feed unavailable; token checks not cached");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => continue,
        };
        // Announcements made while not subscribed are lost: forget everything remembered.
        feed.revocations.bump();
        let mut messages = pubsub.on_message();
        // A closed stream, or no message at all for FEED_SILENCE (heartbeats come every
        // FEED_HEARTBEAT), ends this subscription.
        while let Ok(Some(message)) = tokio::time::timeout(FEED_SILENCE, messages.next()).await {
            let payload: String = message.get_payload().unwrap_or_default();
            let (kind, from) = payload.split_once(':').unwrap_or_default();
            if from == feed.me {
                // Our own message came back: publishing and subscription both work.
                feed.heard();
            } else if kind == "revoked" {
                feed.revocations.bump();
            }
        }
        feed.deaf();
        tracing::warn!(
            "Redis revocation feed interrupted; token checks not cached until it resumes"
        );
    }
}

/// Publishes this instance's revocations (retrying until Redis takes them) and heartbeats.
async fn announce(feed: RevocationFeed) {
    let channel = feed.shared.revocation_channel();
    let mut pending = false;
    loop {
        tokio::select! {
            () = feed.revocations.committed_here() => pending = true,
            () = tokio::time::sleep(FEED_HEARTBEAT) => {}
        }
        let payload = if pending {
            format!("revoked:{}", feed.me)
        } else {
            format!("alive:{}", feed.me)
        };
        let Some(mut connection) = feed.shared.connection() else {
            continue;
        };
        let published = publish(&mut connection, &channel, &payload);
        let outcome = tokio::time::timeout(Duration::from_millis(500), published).await;
        feed.shared.answered(matches!(outcome, Ok(Ok(()))));
        match outcome {
            Ok(Ok(())) => pending = false,
            Ok(Err(err)) => tracing::debug!(error = %err, "Redis publish failed"),
            Err(_) => tracing::debug!("Redis publish timed out"),
        }
    }
}
