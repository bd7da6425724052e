//! Back-channel logout (OIDC Back-Channel Logout 1.0): which URIs may receive logout tokens,
//! and their delivery from the queue — receivers served in parallel, a few tokens at a time
//! each, failures retried with exponential backoff up to `oidc.backchannel_max_attempts`,
//! then dead-lettered for the operator to see.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::Provider;
use crate::clock::Clock;
use crate::config::OidcConfig;
use crate::oidc::{LogoutCounts, QueuedLogout};
use crate::store::StoreError;

/// Logout tokens one instance sends at once, over all receivers.
const IN_FLIGHT: usize = 32;
/// How long one delivery may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// A claimed logout is leased this long (well beyond [`SEND_TIMEOUT`]): another instance
/// takes it over only when this one stopped before recording the outcome.
const LEASE: time::Duration = time::Duration::minutes(2);
/// The longest wait between two attempts, whatever the configuration.
const LONGEST_WAIT_SECS: u64 = 7 * 24 * 3600;

/// A back-channel logout URI receives session ends, so it must be the client's own server
/// over TLS: `https`, or `http` only to a loopback host (a receiver on this machine); no
/// fragment (Back-Channel Logout 1.0 §2.2).
pub(super) fn acceptable_uri(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    if url.fragment().is_some() {
        return false;
    }
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Domain(name))) => name.eq_ignore_ascii_case("localhost"),
        ("http", Some(url::Host::Ipv4(ip))) => IpAddr::V4(ip).is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => IpAddr::V6(ip).is_loopback(),
        _ => false,
    }
}

/// After failed attempt number `attempts` (1 is the first): when to try again, or `None`
/// when that was the last one. Each wait is twice the one before, starting at
/// `oidc.backchannel_retry_base_secs`.
pub(super) fn next_attempt(
    config: &OidcConfig,
    attempts: i32,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let attempts = u32::try_from(attempts.max(1)).unwrap_or(1);
    if attempts >= config.backchannel_max_attempts {
        return None;
    }
    let factor = 1u64.checked_shl(attempts - 1).unwrap_or(u64::MAX);
    let wait = config
        .backchannel_retry_base_secs
        .saturating_mul(factor)
        .min(LONGEST_WAIT_SECS);
    Some(now + time::Duration::seconds(i64::try_from(wait).unwrap_or(i64::MAX)))
}

impl Provider {
    /// Sends one logout token (Back-Channel Logout 1.0 §2.5); `Err` says why it failed.
    async fn send_logout(
        &self,
        http: &reqwest::Client,
        logout: &QueuedLogout,
        now: OffsetDateTime,
    ) -> Result<(), String> {
        let token = self
            .logout_token(logout, now)
            .ok_or_else(|| "no signing key".to_string())?;
        let response = http
            .post(&logout.uri)
            .form(&[("logout_token", token)])
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status().as_u16()))
        }
    }

    /// Records how an attempt went: sent; failed, to be retried later; or failed for the
    /// last time, dead-lettered.
    async fn record_logout_attempt(
        &self,
        logout: &QueuedLogout,
        outcome: Result<(), String>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let error = match outcome {
            Ok(()) => return self.store.mark_logout_sent(logout.id, now).await,
            Err(error) => error,
        };
        match next_attempt(&self.config, logout.attempts, now) {
            Some(at) => {
                tracing::warn!(
                    client = %logout.client_id, attempt = logout.attempts, %error, retry_at = %at,
                    "back-channel logout failed; will retry"
                );
                self.store.mark_logout_failed(logout.id, &error, at).await
            }
            None => {
                tracing::error!(
                    client = %logout.client_id, attempts = logout.attempts, %error,
                    "back-channel logout failed for the last time; dead-lettered"
                );
                self.store.mark_logout_dead(logout.id, &error, now).await
            }
        }
    }

    fn logout_token(&self, logout: &QueuedLogout, now: OffsetDateTime) -> Option<String> {
        let key = self.keys.active(logout.id_token_alg)?;
        let claims = json!({
            "iss": self.issuer,
            "sub": logout.subject,
            "aud": logout.client_id,
            "iat": now.unix_timestamp(),
            "exp": now.unix_timestamp() + 120,
            "jti": Uuid::now_v7().simple().to_string(),
            "sid": logout.session_id,
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        key.sign_jwt("logout+jwt", &claims).ok()
    }

    /// The queue's size, for `/metrics`.
    pub async fn logout_counts(&self) -> Result<LogoutCounts, StoreError> {
        self.store.count_logouts().await
    }
}

/// Deliveries in flight per receiver (host and port), shared with the deliveries.
type Busy = Arc<Mutex<HashMap<String, u32>>>;

/// The sender of queued logout tokens, owned by the server's background task. Each token
/// is sent by a task of its own, so a receiver that hangs holds up only its own slots (at
/// most `oidc.backchannel_per_receiver` of them); the others' tokens keep going out.
pub struct LogoutSender {
    provider: Provider,
    http: reqwest::Client,
    clock: Clock,
    busy: Busy,
    deliveries: JoinSet<()>,
}

impl LogoutSender {
    pub fn new(provider: Provider, clock: Clock) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            provider,
            http,
            clock,
            busy: Arc::default(),
            deliveries: JoinSet::new(),
        })
    }

    /// Claims the logouts that are due and starts sending them; how many started. A
    /// logout whose receiver has all its slots taken is given back, due at once, without
    /// counting as an attempt.
    pub async fn send_due(&mut self) -> Result<usize, StoreError> {
        while self.deliveries.try_join_next().is_some() {}
        let free = IN_FLIGHT.saturating_sub(self.deliveries.len());
        if free == 0 {
            return Ok(0);
        }
        let per_receiver = self.provider.config.backchannel_per_receiver;
        let now = self.clock.now();
        let due = self
            .provider
            .store
            .claim_due_logouts(now, now + LEASE, free as i64, i64::from(per_receiver))
            .await?;
        let mut started = 0;
        for logout in due {
            let Some(slot) = Slot::take(&self.busy, receiver_of(&logout.uri), per_receiver) else {
                self.provider.store.release_logout(logout.id, now).await?;
                continue;
            };
            let (provider, http, clock) =
                (self.provider.clone(), self.http.clone(), self.clock.clone());
            self.deliveries.spawn(async move {
                let outcome = provider.send_logout(&http, &logout, clock.now()).await;
                if let Err(err) = provider
                    .record_logout_attempt(&logout, outcome, clock.now())
                    .await
                {
                    // The lease runs out and the logout is tried again.
                    tracing::warn!(error = %err, "back-channel logout outcome not recorded");
                }
                drop(slot);
            });
            started += 1;
        }
        Ok(started)
    }

    /// Waits until `every` has passed, `woken` is notified (a session ended here), or a
    /// delivery finished (its receiver may take the next token).
    pub async fn wait(&mut self, every: Duration, woken: &tokio::sync::Notify) {
        let idle = self.deliveries.is_empty();
        tokio::select! {
            _ = tokio::time::timeout(every, woken.notified()) => {}
            Some(_) = self.deliveries.join_next(), if !idle => {}
        }
    }
}

/// Who receives a logout token, as far as the per-receiver limit is concerned.
fn receiver_of(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(url) => format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default()
        ),
        Err(_) => uri.to_string(),
    }
}

/// One of a receiver's delivery slots, given back when dropped.
struct Slot {
    busy: Busy,
    receiver: String,
}

impl Slot {
    fn take(busy: &Busy, receiver: String, limit: u32) -> Option<Slot> {
        let mut map = busy.lock().ok()?;
        let taken = map.entry(receiver.clone()).or_insert(0);
        if *taken >= limit {
            return None;
        }
        *taken += 1;
        drop(map);
        Some(Slot {
            busy: busy.clone(),
            receiver,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.busy.lock()
            && let Some(taken) = map.get_mut(&self.receiver)
        {
            *taken = taken.saturating_sub(1);
            if *taken == 0 {
                map.remove(&self.receiver);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_receive_logouts() {
        for good in [
            "https://app.example/logout",
            "https://app.example:8443/bc?x=1",
            "http://127.0.0.1:9/bc",
            "http://127.3.4.5/bc",
            "http://localhost:8080/bc",
            "http://[::1]:9/bc",
        ] {
            assert!(acceptable_uri(good), "{good}");
        }
        for bad in [
            "gopher://x",
            "http://app.example/logout",
            "http://10.0.0.1/bc",
            "https://app.example/logout#frag",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(!acceptable_uri(bad), "{bad}");
        }
    }

    #[test]
    fn retries_double_until_the_last_attempt() {
        let mut config = crate::config::Config::from_overrides(&[]).unwrap().oidc;
        config.backchannel_max_attempts = 4;
        config.backchannel_retry_base_secs = 600;
        let now = OffsetDateTime::UNIX_EPOCH;
        let waits: Vec<Option<i64>> = (1..=4)
            .map(|n| next_attempt(&config, n, now).map(|at| (at - now).whole_seconds()))
            .collect();
        assert_eq!(waits, [Some(600), Some(1200), Some(2400), None]);
        config.backchannel_max_attempts = 30;
        let late = next_attempt(&config, 29, now).unwrap();
        assert_eq!((late - now).whole_seconds(), LONGEST_WAIT_SECS as i64);
    }

    #[test]
    fn a_receiver_has_a_bounded_number_of_slots() {
        let busy = Busy::default();
        let a = Slot::take(&busy, "a:443".into(), 2).unwrap();
        let _b = Slot::take(&busy, "a:443".into(), 2).unwrap();
        assert!(Slot::take(&busy, "a:443".into(), 2).is_none());
        assert!(Slot::take(&busy, "b:443".into(), 2).is_some());
        drop(a);
        assert!(Slot::take(&busy, "a:443".into(), 2).is_some());
    }
}
