//! A compact in-process replay store: rotating buckets of 128-bit keys.
//!
//! Every entry lives for about the same window (the proof age plus the
//! clock skew), so there is no need for per-entry expiry bookkeeping: an
//! entry goes into the bucket of the time slot in which it expires, and a
//! whole bucket is dropped once its slot has passed. An entry costs its 16
//! bytes plus the hash table's slack, instead of a cache's per-entry node.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::hash::RandomState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{ReplayError, ReplayKey, ReplayStore};

/// Default capacity of the Layer's default store: 2,000,000 live proofs,
/// enough for about 22,000 requests per second with the default window
/// (about 91 s: 60 s age, 15 s skew, 15 s fleet margin, 1 s rounding), and
/// at most about 72 MB (36 bytes each; memory grows with use, not with the
/// capacity). A full store refuses requests (503), so size it as
/// *peak requests per second × window*.
pub(crate) const DEFAULT_COMPACT_REPLAY_CAPACITY: u64 = 2_000_000;

/// Length of one expiry slot: entries live at most this much (plus one
/// second of rounding) longer than asked, never shorter. A lookup costs one
/// hash probe per live slot: 16 with the default 76-second window, more
/// with a longer configured proof age.
const SLOT: Duration = Duration::from_secs(5);
/// Independent locks, chosen by the key's first byte.
const SHARDS: usize = 16;

/// A replay store for one server process that keeps each proof in 16 bytes
/// plus hash-table slack (36 bytes per entry measured at a million, against 386
/// for a general-purpose cache).
///
/// Like [`MemoryReplayStore`](super::MemoryReplayStore), capacity is
/// enforced before insertion: when full (after dropping expired slots) a new
/// proof is refused with [`ReplayError::Full`], so the Layer answers 503
/// rather than forget a live proof. `check_and_insert` is atomic per key.
/// Entries are remembered for their TTL rounded up to the next 5-second
/// slot.
///
/// Keys are the first 128 bits of [`ReplayKey`] (a SHA-256): two different
/// proofs collide with probability about 2⁻¹²⁸ per pair, and a collision
/// refuses a proof, it never accepts one.
///
/// ```
/// use senderbound::replay::CompactReplayStore;
/// let store = CompactReplayStore::new(1_000_000);
/// assert_eq!(store.capacity(), 1_000_000);
/// ```
#[derive(Debug)]
pub struct CompactReplayStore {
    shards: Box<[Mutex<Shard>]>,
    capacity: u64,
    /// Live entries in all shards: a slot is reserved before an insert.
    live: AtomicU64,
    /// The last slot in which a full store swept every shard.
    swept: AtomicU64,
    started: Instant,
}

/// Hashed with a per-process random key (SipHash): a client chooses its
/// `jti`, so it could search offline for keys whose bits collide in a table
/// indexed by the key's own bits, and slow every lookup of a shard.
type Bucket = HashSet<u128, RandomState>;

#[derive(Debug, Default)]
struct Shard {
    /// (expiry slot, keys expiring in it), oldest first.
    buckets: VecDeque<(u64, Bucket)>,
    len: u64,
}

impl Shard {
    /// Drops the buckets whose slot has passed; returns how many entries
    /// went.
    fn expire(&mut self, now_slot: u64) -> u64 {
        let mut dropped = 0;
        while let Some((slot, _)) = self.buckets.front() {
            if *slot >= now_slot {
                break;
            }
            if let Some((_, bucket)) = self.buckets.pop_front() {
                dropped += bucket.len() as u64;
            }
        }
        self.len -= dropped;
        dropped
    }

    fn contains(&self, key: u128) -> bool {
        self.buckets.iter().any(|(_, b)| b.contains(&key))
    }

    /// Adds `key` (not present: the caller checked under the same lock);
    /// `false` if it was there after all.
    fn insert(&mut self, key: u128, slot: u64) -> bool {
        // Slots are mostly inserted in order; a shorter TTL lands earlier.
        let at = self
            .buckets
            .iter()
            .rposition(|(s, _)| *s <= slot)
            .map_or(0, |i| i + 1);
        let added = match self.buckets.get_mut(at.wrapping_sub(1)) {
            Some((s, bucket)) if *s == slot => bucket.insert(key),
            _ => {
                let mut bucket = Bucket::default();
                bucket.insert(key);
                self.buckets.insert(at, (slot, bucket));
                true
            }
        };
        if added {
            self.len += 1;
        }
        added
    }
}

impl CompactReplayStore {
    /// A store that refuses new proofs once it holds `capacity` live ones.
    pub fn new(capacity: u64) -> Self {
        CompactReplayStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            capacity,
            live: AtomicU64::new(0),
            swept: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// The configured capacity.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Live entries (expired slots not yet dropped may be counted).
    pub fn len(&self) -> u64 {
        self.live.load(Ordering::Acquire)
    }

    /// `true` if no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, after: Duration) -> u64 {
        let at = self.started.elapsed().saturating_add(after);
        // Round up: an entry's slot ends no earlier than its expiry.
        at.as_secs().div_ceil(SLOT.as_secs())
    }

    /// Reserves room for one entry; `false` when at capacity.
    fn reserve(&self) -> bool {
        let before = self.live.fetch_add(1, Ordering::AcqRel);
        if before >= self.capacity {
            self.live.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Drops passed slots in `shard`, keeping the live count.
    fn expire(&self, shard: &mut Shard, now: u64) {
        let dropped = shard.expire(now);
        self.live.fetch_sub(dropped, Ordering::AcqRel);
    }

    /// The synchronous check, for the trait's ready future.
    fn check(&self, key: &ReplayKey, ttl: Duration) -> Result<(), ReplayError> {
        let bytes = key.as_bytes();
        let mut first = [0u8; 16];
        first.copy_from_slice(&bytes[..16]);
        let key = u128::from_le_bytes(first);
        let shard_lock = &self.shards[usize::from(bytes[31]) % SHARDS];
        let now = self.slot(Duration::ZERO);
        let mut shard = lock(shard_lock);
        // Passed slots go first (nothing to do most of the time).
        self.expire(&mut shard, now);
        if shard.contains(key) {
            return Err(ReplayError::AlreadySeen);
        }
        if !self.reserve() {
            // Full: drop the passed slots of every shard, at most once per
            // slot (so a full store is not swept on every refusal), then try
            // once more. The shard is released meanwhile, so look for the
            // key again after.
            let swept = self.swept.load(Ordering::Acquire);
            if swept >= now
                || self
                    .swept
                    .compare_exchange(swept, now, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                return Err(ReplayError::Full);
            }
            drop(shard);
            for other in self.shards.iter() {
                self.expire(&mut lock(other), now);
            }
            shard = lock(shard_lock);
            if shard.contains(key) {
                return Err(ReplayError::AlreadySeen);
            }
            if !self.reserve() {
                return Err(ReplayError::Full);
            }
        }
        if !shard.insert(key, self.slot(ttl)) {
            // Unreachable (checked under this lock); give the room back.
            self.live.fetch_sub(1, Ordering::AcqRel);
            return Err(ReplayError::AlreadySeen);
        }
        Ok(())
    }
}

/// A poisoned lock still holds consistent sets (no operation panics midway
/// on valid data); keep serving rather than fail every request forever.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    match shard.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl ReplayStore for CompactReplayStore {
    fn check_and_insert(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), ReplayError>> + Send {
        std::future::ready(self.check(&key, ttl))
    }

    fn check_and_insert_at_once(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> Option<Result<(), ReplayError>> {
        Some(self.check(&key, ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> ReplayKey {
        ReplayKey::new("jkt", &i.to_string())
    }

    #[test]
    fn a_key_is_accepted_once() {
        let store = CompactReplayStore::new(100);
        let ttl = Duration::from_secs(60);
        assert_eq!(store.check(&key(1), ttl), Ok(()));
        assert_eq!(store.check(&key(1), ttl), Err(ReplayError::AlreadySeen));
        assert_eq!(store.check(&key(2), ttl), Ok(()));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn full_refuses_instead_of_forgetting() {
        let store = CompactReplayStore::new(32);
        let ttl = Duration::from_secs(60);
        let mut refused = 0;
        for i in 0..200 {
            match store.check(&key(i), ttl) {
                Ok(()) => {}
                Err(ReplayError::Full) => refused += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(store.len(), 32);
        assert_eq!(refused, 200 - 32);
        // Every accepted key is still refused as a replay.
        let accepted: Vec<u64> = (0..200)
            .filter(|i| store.check(&key(*i), ttl) == Err(ReplayError::AlreadySeen))
            .collect();
        assert_eq!(accepted.len(), 32);
    }

    #[test]
    fn passed_slots_are_dropped_with_their_keys() {
        let store = CompactReplayStore::new(100);
        // A zero TTL expires with the current slot.
        assert_eq!(store.check(&key(1), Duration::ZERO), Ok(()));
        let mut shard = lock(&store.shards[usize::from(key(1).as_bytes()[31]) % SHARDS]);
        let far = store.slot(Duration::from_secs(3600));
        store.expire(&mut shard, far);
        assert_eq!(shard.len, 0);
        assert!(shard.buckets.is_empty());
        drop(shard);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn entries_with_different_ttls_keep_their_slots_in_order() {
        let mut shard = Shard::default();
        shard.insert(1, 10);
        shard.insert(2, 8);
        shard.insert(3, 12);
        shard.insert(4, 10);
        let slots: Vec<u64> = shard.buckets.iter().map(|(s, _)| *s).collect();
        assert_eq!(slots, [8, 10, 12]);
        shard.expire(10);
        assert!(!shard.contains(2) && shard.contains(1) && shard.contains(4));
        assert_eq!(shard.len, 3);
    }

    #[test]
    fn a_slot_is_dropped_only_after_it_has_passed() {
        let mut shard = Shard::default();
        assert!(shard.insert(7, 20));
        assert!(!shard.insert(7, 20));
        assert_eq!(shard.len, 1);
        // At slot 20 (its last), the entry stays; after it, it goes.
        assert_eq!(shard.expire(20), 0);
        assert!(shard.contains(7));
        assert_eq!(shard.expire(21), 1);
        assert!(!shard.contains(7));
    }

    #[test]
    fn a_key_is_remembered_at_least_its_ttl() {
        let store = CompactReplayStore::new(100);
        let ttl = Duration::from_secs(76);
        let slot = store.slot(ttl);
        assert!(slot * SLOT.as_secs() >= store.started.elapsed().as_secs() + 76);
        // Expiry at any moment until then keeps it.
        let mut shard = Shard::default();
        shard.insert(1, slot);
        for now in 0..=slot {
            shard.expire(now);
            assert!(shard.contains(1), "dropped at slot {now} of {slot}");
        }
    }
}
