//! The shared cache of several instances (Redis), when configured. Every use degrades to
//! the in-process answer while Redis is unreachable: a lost Redis slows nothing down and
//! loses nothing, since SQL holds everything that must survive.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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
    connection: Arc<RwLock<Option<ConnectionManager>>>,
    prefix: String,
    gcra: Arc<redis::Script>,
}

impl SharedCache {
    /// Connects in the background (retrying every few seconds), so that start-up never waits
    /// for Redis. Fails only on a malformed URL.
    pub fn start(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let cache = Self {
            connection: Arc::new(RwLock::new(None)),
            prefix: prefix.to_string(),
            gcra: Arc::new(redis::Script::new(GCRA)),
        };
        let slot = cache.connection.clone();
        tokio::spawn(async move {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_secs(2))
                .set_response_timeout(Duration::from_millis(300))
                .set_number_of_retries(2);
            loop {
                match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                    Ok(manager) => {
                        if let Ok(mut slot) = slot.write() {
                            *slot = Some(manager);
                        }
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

    pub fn is_connected(&self) -> bool {
        self.connection().is_some()
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
            Ok(Ok(0)) => Some(Ok(())),
            Ok(Ok(wait_ms)) => Some(Err(Duration::from_millis(wait_ms))),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "Redis rate limit failed; using in-process counters");
                None
            }
            Err(_) => {
                tracing::warn!("Redis rate limit timed out; using in-process counters");
                None
            }
        }
    }
}
