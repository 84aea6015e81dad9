//! The checked headers of recent proofs, so a client's header is read once.
//!
//! A client signs every proof with the same key and sends the same JOSE
//! header, byte for byte, in every proof: `typ`, `alg` and its public key in
//! `jwk`. Reading it costs base64url decoding, a JSON parse, the backend's
//! key validation (point on the curve, RSA numbers) and the SHA-256
//! thumbprint: several microseconds, as much as everything else in a proof
//! check beside the signature. The cache maps the exact base64url text of
//! the header segment to what its checks found (the algorithm and the key).
//! That is a pure function of the text, so a hit can never differ from a
//! fresh read; only headers that passed every check are kept, so refusals
//! are made afresh every time.
//!
//! Bounded: [`DEFAULT_KEY_CACHE_CAPACITY`] headers in 16 shards, each
//! emptied when full (a flood of new headers only costs the flooder's own
//! reads: the cache cannot be made to hold anything but headers that
//! passed). The hash is randomly keyed, so no client can choose texts that
//! collide.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use crate::alg::Algorithm;
use crate::jwk::PublicJwk;

/// Default number of proof headers remembered.
pub const DEFAULT_KEY_CACHE_CAPACITY: usize = 4096;

/// Longest header segment cached (an RSA-4096 key's header is about
/// 1,100 characters).
const MAX_CACHED_TEXT: usize = 2048;

const SHARDS: usize = 16;

/// What a proof header that passed every check said: the algorithm it
/// names and the public key in its `jwk`.
#[derive(Debug, Clone)]
pub(crate) struct CheckedHeader {
    /// The header's `alg`.
    pub(crate) alg: Algorithm,
    /// The header's `jwk`, read and validated.
    pub(crate) jwk: Arc<PublicJwk>,
}

/// Checked proof headers by their base64url text. Only a
/// [`ProofPolicy`](crate::proof::ProofPolicy) fills and reads it (through
/// [`key_cache_capacity`](crate::proof::ProofPolicy::key_cache_capacity)), so
/// every entry is a header that passed its checks.
pub struct KeyCache {
    shards: Vec<Mutex<HashMap<Box<str>, CheckedHeader>>>,
    per_shard: usize,
    hasher: RandomState,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache of about `capacity` headers (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        KeyCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, segment: &str) -> &Mutex<HashMap<Box<str>, CheckedHeader>> {
        &self.shards[(self.hasher.hash_one(segment) as usize) % SHARDS]
    }

    /// What the header `segment` (base64url, as sent) was found to say, if
    /// it was checked before.
    pub(crate) fn get(&self, segment: &str) -> Option<CheckedHeader> {
        if segment.len() > MAX_CACHED_TEXT {
            return None;
        }
        // A poisoned lock only means another thread panicked mid-insert;
        // the map itself is still a valid map of checked headers.
        self.shard(segment)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(segment)
            .cloned()
    }

    /// Remembers what the header `segment` was found to say. Called only
    /// for a header that passed every check.
    pub(crate) fn insert(&self, segment: &str, checked: CheckedHeader) {
        if segment.len() > MAX_CACHED_TEXT {
            return;
        }
        let mut map = self
            .shard(segment)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // A full shard is emptied; its entries are dropped after the lock.
        let evicted = (map.len() >= self.per_shard && !map.contains_key(segment))
            .then(|| std::mem::take(&mut *map));
        map.insert(segment.into(), checked);
        drop(map);
        drop(evicted);
    }

    /// Number of headers held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether no header is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    fn checked() -> CheckedHeader {
        CheckedHeader {
            alg: Algorithm::EdDSA,
            jwk: Arc::new(PublicJwk::from_slice(KEY.as_bytes()).unwrap()),
        }
    }

    #[test]
    fn a_hit_is_what_was_inserted_for_that_exact_text() {
        let cache = KeyCache::new(64);
        let entry = checked();
        cache.insert("eyJhIjoxfQ", entry.clone());
        let hit = cache.get("eyJhIjoxfQ").unwrap();
        assert!(Arc::ptr_eq(&hit.jwk, &entry.jwk));
        assert_eq!(hit.alg, Algorithm::EdDSA);
        // Another text is another entry, even one decoding to the same JSON
        // with a space more: never a hit for text that was not checked.
        assert!(cache.get("eyJhIjogMX0").is_none());
        assert!(cache.get("eyJhIjoxfQ ").is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn long_headers_are_not_kept() {
        let cache = KeyCache::new(64);
        let long = "e".repeat(MAX_CACHED_TEXT + 1);
        cache.insert(&long, checked());
        assert!(cache.get(&long).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn stays_within_its_capacity() {
        let cache = KeyCache::new(16);
        for i in 0..200 {
            cache.insert(&format!("header{i}"), checked());
        }
        assert!(cache.len() <= 16, "{}", cache.len());
        // Inserting again what a full shard already holds does not empty
        // it: two texts of one shard (two per shard), one inserted again.
        let cache = KeyCache::new(32);
        let first = "header0".to_owned();
        let second = (1..)
            .map(|i| format!("header{i}"))
            .find(|t| std::ptr::eq(cache.shard(t), cache.shard(&first)))
            .unwrap();
        cache.insert(&first, checked());
        cache.insert(&second, checked());
        cache.insert(&first, checked());
        assert_eq!(cache.len(), 2);
    }
}
