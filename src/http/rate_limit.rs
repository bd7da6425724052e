//! Per-client limits on the sign-in forms, per-account and per-client limits on the password
//! re-checks of signed-in users (who the client is behind a trusted proxy: `client.rs`). A
//! client is its network: an IPv4 address (`rate_limit.ipv4_prefix_len`, 32) or an IPv6 /64
//! (`rate_limit.ipv6_prefix_len`), since one host commonly holds a whole /64 and could
//! otherwise take a fresh budget per address. With Redis the counters are shared by every
//! instance (a GCRA script); without it, or while it is unreachable, each instance counts
//! for itself in a table of at most `rate_limit.max_tracked_clients` networks. Either way the
//! account lockout, atomic in SQL, is what guards each password across instances.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::AppState;
use crate::config::RateLimitConfig;
use crate::error::WebError;
use crate::store::cache::SharedCache;

/// The form posts that check passwords, send mail, or start a round trip to Entra ID.
const LIMITED: [&str; 10] = [
    "/login",
    "/unlock",
    "/unlock/confirm",
    "/setup",
    "/login/sso",
    "/login/sso/link",
    "/password/forgot",
    "/password/reset",
    "/api/v1/password/forgot",
    "/api/v1/password/reset",
];

pub struct RateLimits {
    sign_in: ClientTable<IpAddr>,
    /// Password re-checks, per account and per network (each costs a full argon2 hash).
    reauth_accounts: ClientTable<Uuid>,
    reauth_networks: ClientTable<IpAddr>,
    config: RateLimitConfig,
    shared: Option<SharedCache>,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig, shared: Option<SharedCache>) -> Self {
        Self {
            sign_in: ClientTable::new(
                config.sign_in_per_minute,
                config.sign_in_burst,
                config.max_tracked_clients,
            ),
            reauth_accounts: ClientTable::new(
                config.reauth_per_minute,
                config.reauth_burst,
                config.max_tracked_clients,
            ),
            reauth_networks: ClientTable::new(
                config.reauth_per_minute,
                config.reauth_burst,
                config.max_tracked_clients,
            ),
            config: config.clone(),
            shared,
        }
    }

    /// `Err(wait)` when the network of `ip` is over its limit: the shared count when Redis
    /// answers, else this instance's.
    pub async fn check_sign_in(&self, ip: IpAddr) -> Result<(), Duration> {
        let network = self.network_of(ip);
        if let Some(shared) = &self.shared {
            let key = format!("signin:{}/{}", network.0, network.1);
            let (per_minute, burst) = (self.config.sign_in_per_minute, self.config.sign_in_burst);
            if let Some(answer) = shared.check_rate(&key, per_minute, burst).await {
                return answer;
            }
        }
        self.sign_in.check(network.0, Instant::now())
    }

    /// The network `ip` counts in, and its prefix length.
    fn network_of(&self, ip: IpAddr) -> (IpAddr, u8) {
        network_of(ip, self.config.ipv4_prefix_len, self.config.ipv6_prefix_len)
    }

    /// Whether the counters are shared through Redis right now.
    pub fn uses_shared_counters(&self) -> bool {
        self.shared.as_ref().is_some_and(SharedCache::is_connected)
    }

    /// A password re-check (e-mail change, password change, deletion) of `account` from
    /// `ip`: each costs a full argon2 hash, so a signed-in caller — or many sessions from one
    /// network — cannot fill the hashing pool with them. `Err(wait)` when either is over.
    pub async fn check_reauth(&self, account: Uuid, ip: IpAddr) -> Result<(), Duration> {
        let (per_minute, burst) = (self.config.reauth_per_minute, self.config.reauth_burst);
        let network = self.network_of(ip);
        // The network first: a refused call does not use up the account's allowance.
        let key = format!("reauth:ip:{}/{}", network.0, network.1);
        let shared = match &self.shared {
            Some(shared) => shared.check_rate(&key, per_minute, burst).await,
            None => None,
        };
        shared.unwrap_or_else(|| self.reauth_networks.check(network.0, Instant::now()))?;
        let key = format!("reauth:account:{account}");
        let shared = match &self.shared {
            Some(shared) => shared.check_rate(&key, per_minute, burst).await,
            None => None,
        };
        shared.unwrap_or_else(|| self.reauth_accounts.check(account, Instant::now()))
    }

    /// Forgets idle clients (called by the maintenance task).
    pub fn forget_idle(&self) {
        let now = Instant::now();
        self.sign_in.forget_idle(now);
        self.reauth_accounts.forget_idle(now);
        self.reauth_networks.forget_idle(now);
    }
}

/// The accounts service asks before every re-check of a signed-in user's password.
#[async_trait::async_trait]
impl crate::accounts::ReauthLimit for RateLimits {
    async fn check(&self, account: Uuid, ip: IpAddr) -> Result<(), Duration> {
        self.check_reauth(account, ip).await
    }
}

/// The network of `ip` with its prefix length: the address with every bit past the prefix
/// cleared. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) counts as the IPv4 address.
pub fn network_of(ip: IpAddr, ipv4_prefix_len: u8, ipv6_prefix_len: u8) -> (IpAddr, u8) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let len = ipv4_prefix_len.min(32);
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            (IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask)), len)
        }
        IpAddr::V6(v6) => {
            let len = ipv6_prefix_len.min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            (IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)), len)
        }
    }
}

/// This instance's counters: GCRA per network (when its next request is "due"), for at most
/// `capacity` networks. A network whose due time has passed is idle: forgetting it changes
/// nothing. When the table is full of busy networks, the eighth nearest to idle are forgotten
/// (they get a fresh burst a little early), so memory stays bounded and each new network
/// costs amortized constant time; no client is refused because the table is full.
struct ClientTable<K> {
    due: Mutex<HashMap<K, Instant>>,
    capacity: usize,
    /// Time between two requests at the sustained rate.
    interval: Duration,
    burst: u32,
}

impl<K: Hash + Eq + Copy> ClientTable<K> {
    fn new(per_minute: u32, burst: u32, capacity: usize) -> Self {
        Self {
            due: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            interval: Duration::from_secs(60) / per_minute.max(1),
            burst: burst.max(1),
        }
    }

    /// One request of `network` at `now`: `Err(wait)` when it is over the limit.
    fn check(&self, network: K, now: Instant) -> Result<(), Duration> {
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = due.get(&network).copied();
        let next_due = previous.map_or(now, |d| d.max(now)) + self.interval;
        let allowed_ahead = self.interval.saturating_mul(self.burst);
        let ahead = next_due.saturating_duration_since(now);
        if ahead > allowed_ahead {
            return Err(ahead - allowed_ahead);
        }
        if previous.is_none() && due.len() >= self.capacity {
            self.make_room(&mut due, now);
        }
        due.insert(network, next_due);
        Ok(())
    }

    /// Forgets idle networks, then, if that freed less than an eighth of the table, the busy
    /// ones nearest to idle down to seven eighths.
    fn make_room(&self, due: &mut HashMap<K, Instant>, now: Instant) {
        due.retain(|_, d| *d > now);
        let keep = self.capacity - (self.capacity / 8).max(1);
        if due.len() <= keep {
            return;
        }
        let mut times: Vec<Instant> = due.values().copied().collect();
        let forget = times.len() - keep;
        let (_, cutoff, _) = times.select_nth_unstable(forget - 1);
        let cutoff = *cutoff;
        let mut left = forget;
        due.retain(|_, d| {
            if left > 0 && *d <= cutoff {
                left -= 1;
                false
            } else {
                true
            }
        });
    }

    fn forget_idle(&self, now: Instant) {
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        due.retain(|_, d| *d > now);
        due.shrink_to_fit();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Middleware: 429 with `Retry-After` for sign-in posts over the client's limit.
pub async fn limit_sign_in(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST || !LIMITED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let client = super::client_info(&parts, &state);
    let ip = client.ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if let Err(wait) = state.rate_limits.check_sign_in(ip).await {
        return WebError::RateLimited(wait.as_secs().max(1)).into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn over_the_burst_is_refused_with_a_wait() {
        let config = RateLimitConfig {
            sign_in_per_minute: 6,
            sign_in_burst: 2,
            ipv4_prefix_len: 32,
            ipv6_prefix_len: 64,
            max_tracked_clients: 100,
            reauth_per_minute: 1,
            reauth_burst: 1,
        };
        let limits = RateLimits::new(&config, None);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limits.check_sign_in(ip).await.is_ok());
        assert!(limits.check_sign_in(ip).await.is_ok());
        let wait = limits.check_sign_in(ip).await.unwrap_err();
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.check_sign_in(other).await.is_ok());
    }

    #[tokio::test]
    async fn reauthentication_is_limited_per_account_and_per_address() {
        let config = RateLimitConfig {
            sign_in_per_minute: 6,
            sign_in_burst: 2,
            ipv4_prefix_len: 32,
            ipv6_prefix_len: 64,
            max_tracked_clients: 100,
            reauth_per_minute: 1,
            reauth_burst: 2,
        };
        let limits = RateLimits::new(&config, None);
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (home, cafe, office): (IpAddr, IpAddr, IpAddr) = (
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            "192.0.2.3".parse().unwrap(),
        );
        assert!(limits.check_reauth(ada, home).await.is_ok());
        assert!(limits.check_reauth(ada, cafe).await.is_ok());
        // Ada's third try is refused from any address: the account's allowance is spent.
        assert!(limits.check_reauth(ada, office).await.is_err());
        // Other accounts still pass, until one address has used up its own allowance.
        assert!(limits.check_reauth(bob, office).await.is_ok());
        let carol = Uuid::now_v7();
        let wait = limits.check_reauth(carol, office).await.unwrap_err();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
    }

    #[test]
    fn ipv6_clients_count_per_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a = network_of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 32, 64);
        assert_eq!(a, (ip("2001:db8:1:2::"), 64));
        assert_eq!(network_of(ip("2001:db8:1:2::1"), 32, 64), a);
        assert_ne!(network_of(ip("2001:db8:1:3::1"), 32, 64), a);
        assert_eq!(
            network_of(ip("2001:db8:1:2::1"), 32, 128).0,
            ip("2001:db8:1:2::1")
        );
        assert_eq!(network_of(ip("2001:db8::1"), 32, 0).0, ip("::"));
        assert_eq!(network_of(ip("2001:db8::1"), 32, 48).0, ip("2001:db8::"));
        assert_eq!(network_of(ip("192.0.2.77"), 24, 64), (ip("192.0.2.0"), 24));
        assert_eq!(network_of(ip("192.0.2.77"), 32, 64).0, ip("192.0.2.77"));
        assert_eq!(network_of(ip("192.0.2.77"), 0, 64).0, ip("0.0.0.0"));
        // An IPv4 client seen through an IPv6 socket is the same client.
        assert_eq!(
            network_of(ip("::ffff:192.0.2.77"), 32, 64).0,
            ip("192.0.2.77")
        );
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_the_idle_first() {
        let table = ClientTable::new(1, 2, 64);
        let start = Instant::now();
        let host = |i: u32| IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i));
        // A busy client, over its limit.
        let busy = host(0);
        assert!(table.check(busy, start).is_ok());
        assert!(table.check(busy, start).is_ok());
        assert!(table.check(busy, start).is_err());
        // Far more clients than room, each once, a millisecond apart.
        for i in 1..10_000 {
            let now = start + Duration::from_millis(u64::from(i));
            assert!(table.check(host(i), now).is_ok(), "never refused for room");
            assert!(table.len() <= 64, "{} entries", table.len());
        }
        // The busy client was the farthest from idle: still remembered, still limited.
        let now = start + Duration::from_millis(10_000);
        assert!(
            table.check(busy, now).is_err(),
            "the busy client kept its count"
        );
        // Once every client is idle, maintenance empties the table.
        table.forget_idle(start + Duration::from_secs(3600));
        assert_eq!(table.len(), 0);
    }
}
