//! The verified-token cache: a busy client costs one signature verification
//! per request (its proof), not two.
//!
//! Keyed by SHA-256 of the token (never the token itself); each entry expires
//! when its token does (by the configured clock at insertion), and time
//! (`exp`, `nbf`) is re-checked on every hit anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use senderbound_core::token::AccessToken;

/// Default number of verified tokens kept.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: u64 = 10_000;

#[derive(Clone)]
pub(crate) struct TokenCache {
    cache: Cache<[u8; 32], CachedToken>,
    /// Bumped by [`invalidate_all`](Self::invalidate_all): a token verified
    /// before a bump (perhaps with a key since removed) is not inserted.
    epoch: Arc<AtomicU64>,
}

#[derive(Clone)]
struct CachedToken {
    token: Arc<AccessToken>,
    ttl: Duration,
}

struct UntilExpiry;

impl Expiry<[u8; 32], CachedToken> for UntilExpiry {
    fn expire_after_create(&self, _: &[u8; 32], v: &CachedToken, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

impl TokenCache {
    pub(crate) fn new(capacity: u64) -> Self {
        TokenCache {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry)
                .build(),
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn get(&self, hash: &[u8; 32]) -> Option<Arc<AccessToken>> {
        self.cache.get(hash).map(|c| c.token)
    }

    /// The current epoch; read it before verifying a token to insert.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches `token` until its `exp` as seen from `now`, and no longer
    /// than `max_ttl` when given. Already expired tokens are not cached, nor
    /// tokens verified before the cache was last cleared (`epoch` differs).
    pub(crate) fn insert(
        &self,
        hash: [u8; 32],
        token: Arc<AccessToken>,
        now: u64,
        max_ttl: Option<Duration>,
        epoch: u64,
    ) {
        if epoch != self.epoch() {
            return;
        }
        let until_exp = Duration::from_secs(token.expires_at.saturating_sub(now));
        let ttl = max_ttl.map_or(until_exp, |max| max.min(until_exp));
        if ttl.is_zero() {
            return;
        }
        self.cache.insert(hash, CachedToken { token, ttl });
    }

    /// Forgets every cached token (a signing key was removed).
    pub(crate) fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }
}
