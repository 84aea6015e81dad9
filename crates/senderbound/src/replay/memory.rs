//! The in-process replay store, on moka.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use super::{ReplayError, ReplayKey, ReplayStore};

/// Default capacity of [`MemoryReplayStore`]: enough for about 6,600
/// requests per second with the default 75-second window (60 s age plus 15 s
/// skew). Size it as *requests per second × window*.
pub(crate) const DEFAULT_REPLAY_CAPACITY: u64 = 500_000;

/// A replay store for one server process, on a moka cache.
///
/// Capacity is explicit and enforced *before* insertion: when the store holds
/// `capacity` live entries, new proofs are refused with
/// [`ReplayError::Full`] (the Layer answers 503) instead of evicting an entry
/// whose proof could then be replayed. Entries expire on their own when their
/// window closes.
///
/// ```
/// use senderbound::replay::MemoryReplayStore;
/// let store = MemoryReplayStore::new(100_000);
/// assert_eq!(store.capacity(), 100_000);
/// ```
#[derive(Clone)]
pub struct MemoryReplayStore {
    cache: Cache<ReplayKey, Duration>,
    live: Arc<AtomicU64>,
    capacity: u64,
}

impl std::fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("capacity", &self.capacity)
            .field("live", &self.live.load(Ordering::Relaxed))
            .finish()
    }
}

struct TtlFromValue;

impl Expiry<ReplayKey, Duration> for TtlFromValue {
    fn expire_after_create(&self, _: &ReplayKey, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl MemoryReplayStore {
    /// A store that holds at most `capacity` live proofs.
    pub fn new(capacity: u64) -> Self {
        let live = Arc::new(AtomicU64::new(0));
        let counter = live.clone();
        let cache = Cache::builder()
            // No moka size bound: moka would evict (or refuse to admit) live
            // entries silently. The bound is enforced by `live` instead.
            .expire_after(TtlFromValue)
            .eviction_listener(move |_, _, _| {
                counter.fetch_sub(1, Ordering::AcqRel);
            })
            .build();
        MemoryReplayStore {
            cache,
            live,
            capacity,
        }
    }

    /// The configured capacity.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Live entries (including expired ones not yet swept).
    pub fn len(&self) -> u64 {
        self.live.load(Ordering::Acquire)
    }

    /// `true` if no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn reserve_slot(&self) -> bool {
        if self.live.fetch_add(1, Ordering::AcqRel) < self.capacity {
            return true;
        }
        self.live.fetch_sub(1, Ordering::AcqRel);
        // Full: sweep expired entries once, then try again.
        self.cache.run_pending_tasks();
        if self.live.fetch_add(1, Ordering::AcqRel) < self.capacity {
            return true;
        }
        self.live.fetch_sub(1, Ordering::AcqRel);
        false
    }

    /// The synchronous form of [`ReplayStore::check_and_insert`].
    pub fn check_and_insert_now(&self, key: ReplayKey, ttl: Duration) -> Result<(), ReplayError> {
        if self.cache.contains_key(&key) {
            return Err(ReplayError::AlreadySeen);
        }
        if !self.reserve_slot() {
            return Err(ReplayError::Full);
        }
        let entry = self
            .cache
            .entry(key)
            .or_insert_with(|| ttl.max(Duration::from_secs(1)));
        if entry.is_fresh() {
            Ok(())
        } else {
            self.live.fetch_sub(1, Ordering::AcqRel);
            Err(ReplayError::AlreadySeen)
        }
    }
}

impl ReplayStore for MemoryReplayStore {
    fn check_and_insert(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), ReplayError>> + Send {
        std::future::ready(self.check_and_insert_now(key, ttl))
    }

    fn check_and_insert_at_once(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> Option<Result<(), ReplayError>> {
        Some(self.check_and_insert_now(key, ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_insert_is_a_replay() {
        let store = MemoryReplayStore::new(10);
        let k = ReplayKey::new("jkt", "a");
        assert_eq!(
            store.check_and_insert_now(k, Duration::from_secs(60)),
            Ok(())
        );
        assert_eq!(
            store.check_and_insert_now(k, Duration::from_secs(60)),
            Err(ReplayError::AlreadySeen)
        );
        // Same jti under another key is a different proof.
        assert_eq!(
            store.check_and_insert_now(ReplayKey::new("other", "a"), Duration::from_secs(60)),
            Ok(())
        );
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn full_store_refuses_instead_of_evicting() {
        let store = MemoryReplayStore::new(3);
        for i in 0..3 {
            let k = ReplayKey::new("jkt", &i.to_string());
            assert_eq!(
                store.check_and_insert_now(k, Duration::from_secs(60)),
                Ok(())
            );
        }
        let k = ReplayKey::new("jkt", "overflow");
        assert_eq!(
            store.check_and_insert_now(k, Duration::from_secs(60)),
            Err(ReplayError::Full)
        );
        // Every earlier proof is still remembered.
        for i in 0..3 {
            let k = ReplayKey::new("jkt", &i.to_string());
            assert_eq!(
                store.check_and_insert_now(k, Duration::from_secs(60)),
                Err(ReplayError::AlreadySeen)
            );
        }
    }

    #[test]
    fn expired_entries_free_their_slots() {
        let store = MemoryReplayStore::new(1);
        let k = ReplayKey::new("jkt", "a");
        store
            .check_and_insert_now(k, Duration::from_millis(10))
            .unwrap();
        // The minimum TTL is one second.
        std::thread::sleep(Duration::from_millis(1100));
        let k2 = ReplayKey::new("jkt", "b");
        assert_eq!(
            store.check_and_insert_now(k2, Duration::from_secs(60)),
            Ok(())
        );
    }
}
