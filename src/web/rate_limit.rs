//! Per-IP limits on the sign-in forms, per-account and per-IP limits on the password
//! re-checks of signed-in users, and who the client is behind a trusted proxy. With
//! Redis the counters are shared by every instance (a GCRA script); without it, or while it
//! is unreachable, each instance counts for itself (governor's GCRA). Either way the account
//! lockout, atomic in SQL, is what guards each password across instances.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

use crate::AppState;
use crate::config::RateLimitConfig;
use crate::error::WebError;
use crate::store::cache::SharedCache;

/// The form posts that check passwords, send mail, or start a round trip to Entra ID.
const LIMITED: [&str; 6] = [
    "/login",
    "/unlock",
    "/unlock/confirm",
    "/setup",
    "/login/sso",
    "/login/sso/link",
];

pub struct RateLimits {
    sign_in: DefaultKeyedRateLimiter<IpAddr>,
    reauth: ReauthLimits,
    config: RateLimitConfig,
    shared: Option<SharedCache>,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig, shared: Option<SharedCache>) -> Self {
        let per_minute = NonZeroU32::new(config.sign_in_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.sign_in_burst).unwrap_or(NonZeroU32::MIN);
        Self {
            sign_in: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ),
            reauth: ReauthLimits::new(config),
            config: config.clone(),
            shared,
        }
    }

    /// `Err(wait)` when `ip` is over its limit: the shared count when Redis answers, else
    /// this instance's.
    pub async fn check_sign_in(&self, ip: IpAddr) -> Result<(), Duration> {
        if let Some(shared) = &self.shared {
            let key = format!("signin:{ip}");
            let (per_minute, burst) = (self.config.sign_in_per_minute, self.config.sign_in_burst);
            if let Some(answer) = shared.check_rate(&key, per_minute, burst).await {
                return answer;
            }
        }
        self.check_locally(ip)
    }

    /// Whether the counters are shared through Redis right now.
    pub fn uses_shared_counters(&self) -> bool {
        self.shared.as_ref().is_some_and(SharedCache::is_connected)
    }

    fn check_locally(&self, ip: IpAddr) -> Result<(), Duration> {
        self.sign_in
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets idle clients (called by the maintenance task).
    pub fn forget_idle(&self) {
        self.sign_in.retain_recent();
        self.reauth.accounts.retain_recent();
        self.reauth.ips.retain_recent();
    }
}

/// The in-process counters of password re-checks (used while Redis cannot answer).
struct ReauthLimits {
    accounts: DefaultKeyedRateLimiter<Uuid>,
    ips: DefaultKeyedRateLimiter<IpAddr>,
}

impl ReauthLimits {
    fn new(config: &RateLimitConfig) -> Self {
        let per_minute = NonZeroU32::new(config.reauth_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.reauth_burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            accounts: DefaultKeyedRateLimiter::keyed(quota),
            ips: DefaultKeyedRateLimiter::keyed(quota),
        }
    }
}

impl RateLimits {
    /// A password re-check (e-mail change, password change, deletion) of `account` from
    /// `ip`: each costs a full argon2 hash, so a signed-in caller — or many sessions from one
    /// address — cannot fill the hashing pool with them. `Err(wait)` when either is over.
    pub async fn check_reauth(&self, account: Uuid, ip: IpAddr) -> Result<(), Duration> {
        let (per_minute, burst) = (self.config.reauth_per_minute, self.config.reauth_burst);
        let wait_from = |not_until: governor::NotUntil<_>| {
            not_until.wait_time_from(DefaultClock::default().now())
        };
        // The address first: a refused call does not use up the account's allowance.
        let by_ip = match &self.shared {
            Some(shared) => {
                shared
                    .check_rate(&format!("reauth:ip:{ip}"), per_minute, burst)
                    .await
            }
            None => None,
        };
        by_ip.unwrap_or_else(|| self.reauth.ips.check_key(&ip).map_err(wait_from))?;
        let by_account = match &self.shared {
            Some(shared) => {
                shared
                    .check_rate(&format!("reauth:account:{account}"), per_minute, burst)
                    .await
            }
            None => None,
        };
        by_account.unwrap_or_else(|| self.reauth.accounts.check_key(&account).map_err(wait_from))
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the rightmost
/// address of `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
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

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        assert_eq!(client_ip(proxy, &headers, &[]), proxy, "untrusted: ignored");
        assert_eq!(
            client_ip(proxy, &headers, &[proxy]),
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "the rightmost hop the proxy saw, not what the client claims first"
        );
    }

    #[tokio::test]
    async fn over_the_burst_is_refused_with_a_wait() {
        let config = RateLimitConfig {
            sign_in_per_minute: 6,
            sign_in_burst: 2,
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
}
