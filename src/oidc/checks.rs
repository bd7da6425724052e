//! What the provider remembers of bearer checks, and for how long it may.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{AccessClaims, AccessTokenState, Client};
use crate::store::Revocations;
use crate::store::cache::RevocationFeed;
use crate::tokens::TokenDigest;

/// Bearer checks remembered by this instance: verified signatures (facts that never change)
/// and the liveness of tokens and registered clients until the next revocation
/// ([`crate::store::Revocations`]). On a single instance every revocation is this
/// instance's own; with several (Redis), the others' arrive through the
/// [`RevocationFeed`], and nothing is remembered while the feed cannot vouch for that.
pub(super) struct TokenChecks {
    verified: Mutex<HashMap<[u8; 32], AccessClaims>>,
    live: Mutex<HashMap<String, Remembered<AccessTokenState>>>,
    clients: Mutex<HashMap<String, Remembered<Client>>>,
    revocations: Arc<Revocations>,
    scope: CacheScope,
}

/// Who can revoke what this instance remembers.
#[derive(Clone)]
pub enum CacheScope {
    /// One instance (no Redis): only this process.
    SingleInstance,
    /// Several instances: revocations elsewhere come through the feed.
    Shared(RevocationFeed),
}

struct Remembered<T> {
    epoch: u64,
    at: std::time::Instant,
    value: T,
}

/// Entries kept per cache; a full cache starts over (tokens live minutes).
const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// A cache this large drops what may no longer be used — liveness older than
/// [`REMEMBER_AT_MOST`], claims of expired tokens — at every further [`SWEEP_EVERY`] entries,
/// instead of keeping it in memory until the cache is full. (An hour's soak: a slow climb of 8 MB per instance before this.)
const SWEEP_FROM: usize = 1024;
const SWEEP_EVERY: usize = 256;

/// A remembered liveness is read again after this long even when no revocation was heard:
/// the bound on staleness if an instance commits a revocation it cannot announce.
const REMEMBER_AT_MOST: std::time::Duration = std::time::Duration::from_secs(5);

impl TokenChecks {
    pub(super) fn new(revocations: Arc<Revocations>, scope: CacheScope) -> Self {
        Self {
            verified: Mutex::default(),
            live: Mutex::default(),
            clients: Mutex::default(),
            revocations,
            scope,
        }
    }

    /// Starts the feed of other instances' revocations (servers; with Redis only).
    pub(super) fn start_feed(&self) {
        if let CacheScope::Shared(feed) = &self.scope {
            feed.start();
        }
    }

    /// The claims of a token whose signature was verified before.
    pub(super) fn verified(&self, digest: &TokenDigest) -> Option<AccessClaims> {
        self.verified.lock().ok()?.get(&digest.0).cloned()
    }

    pub(super) fn keep_verified(&self, digest: TokenDigest, claims: AccessClaims) {
        if let Ok(mut map) = self.verified.lock() {
            let len = map.len();
            if len >= SWEEP_FROM && len.is_multiple_of(SWEEP_EVERY) {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                map.retain(|_, c| c.exp > now);
            }
        }
        Self::remember(&self.verified, digest.0, claims);
    }

    pub(super) fn liveness(&self, jti: &str, epoch: Option<u64>) -> Option<AccessTokenState> {
        Self::recall(&self.live, jti, epoch)
    }

    pub(super) fn keep_liveness(&self, jti: &str, epoch: Option<u64>, state: AccessTokenState) {
        Self::keep(&self.live, jti, epoch, state);
    }

    pub(super) fn client(&self, id: &str, epoch: Option<u64>) -> Option<Client> {
        Self::recall(&self.clients, id, epoch)
    }

    pub(super) fn keep_client(&self, id: &str, epoch: Option<u64>, client: Client) {
        Self::keep(&self.clients, id, epoch, client);
    }

    fn remember<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
        if let Ok(mut map) = map.lock() {
            if map.len() >= TOKEN_CACHE_ENTRIES {
                map.clear();
            }
            map.insert(key, value);
        }
    }

    /// The epoch to read and remember under, or `None` when nothing may be remembered now.
    /// Read before the database, so a revocation committed meanwhile voids what is stored.
    pub(super) fn epoch(&self) -> Option<u64> {
        match &self.scope {
            CacheScope::SingleInstance => Some(self.revocations.epoch()),
            CacheScope::Shared(feed) => feed.is_live().then(|| self.revocations.epoch()),
        }
    }

    fn recall<V: Clone>(
        map: &Mutex<HashMap<String, Remembered<V>>>,
        key: &str,
        epoch: Option<u64>,
    ) -> Option<V> {
        let epoch = epoch?;
        let map = map.lock().ok()?;
        let entry = map.get(key)?;
        (entry.epoch == epoch && entry.at.elapsed() < REMEMBER_AT_MOST).then(|| entry.value.clone())
    }

    fn keep<V>(
        map: &Mutex<HashMap<String, Remembered<V>>>,
        key: &str,
        epoch: Option<u64>,
        value: V,
    ) {
        if let Some(epoch) = epoch {
            let at = std::time::Instant::now();
            if let Ok(mut map) = map.lock() {
                let len = map.len();
                if len >= SWEEP_FROM && len.is_multiple_of(SWEEP_EVERY) {
                    map.retain(|_, e| e.at.elapsed() < REMEMBER_AT_MOST);
                }
            }
            Self::remember(map, key.to_string(), Remembered { epoch, at, value });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(n: u32, exp: i64) -> (TokenDigest, AccessClaims) {
        let mut digest = [0u8; 32];
        digest[..4].copy_from_slice(&n.to_be_bytes());
        let claims = AccessClaims {
            iss: "https://id.example".into(),
            sub: "sub".into(),
            aud: "https://id.example".into(),
            exp,
            iat: exp - 300,
            jti: n.to_string(),
            client_id: "client".into(),
            scope: String::new(),
            sid: None,
            auth_time: None,
            gid: None,
        };
        (TokenDigest(digest), claims)
    }

    #[test]
    fn claims_of_expired_tokens_are_swept_before_the_cache_fills() {
        let checks = TokenChecks::new(Arc::default(), CacheScope::SingleInstance);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for n in 0..SWEEP_FROM as u32 {
            let (digest, c) = claims(n, now - 1);
            checks.keep_verified(digest, c);
        }
        let (live, c) = claims(u32::MAX, now + 300);
        checks.keep_verified(live, c);
        assert_eq!(
            checks.verified.lock().unwrap().len(),
            1,
            "only the live token stays"
        );
        assert!(checks.verified(&live).is_some());
    }
}
