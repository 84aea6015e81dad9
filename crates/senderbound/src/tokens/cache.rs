//! The verified-token cache: a busy client costs one signature verification
//! per request (its proof), not two.
//!
//! Keyed by SHA-256 of the token (never the token itself); each entry expires
//! when its token does (by the configured clock at insertion), and time
//! (`exp`, `nbf`) is re-checked on every hit anyway, as is the key that
//! verified it ([`TokenVerifier::check_cached`](super::TokenVerifier::check_cached)).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use senderbound_core::token::AccessToken;

/// Default number of verified tokens kept.
pub(crate) const DEFAULT_TOKEN_CACHE_CAPACITY: u64 = 10_000;

#[derive(Clone)]
pub(crate) struct TokenCache {
    cache: Cache<[u8; 32], CachedToken>,
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
        }
    }

    pub(crate) fn get(&self, hash: &[u8; 32]) -> Option<Arc<AccessToken>> {
        self.cache.get(hash).map(|c| c.token)
    }

    /// Caches `token` until its `exp` as seen from `now`, and no longer
    /// than `max_ttl` when given. Already expired tokens are not cached.
    pub(crate) fn insert(
        &self,
        hash: [u8; 32],
        token: Arc<AccessToken>,
        now: u64,
        max_ttl: Option<Duration>,
    ) {
        let until_exp = Duration::from_secs(token.expires_at.saturating_sub(now));
        let ttl = max_ttl.map_or(until_exp, |max| max.min(until_exp));
        if ttl.is_zero() {
            return;
        }
        self.cache.insert(hash, CachedToken { token, ttl });
    }
}
