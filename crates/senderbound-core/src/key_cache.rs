//! The public keys of recent proofs, so a client's key is read once.
//!
//! A client signs every proof with the same key and sends it, byte for byte
//! the same, in every proof's `jwk` header. Reading it costs a JSON parse,
//! base64 decoding, the backend's validation (point on the curve, RSA
//! numbers) and the SHA-256 thumbprint: several microseconds, as much as
//! everything else in a proof check beside the signature. The cache maps the
//! exact JSON text of the `jwk` member to the key read from it, which is a
//! pure function of that text, so a hit can never differ from a fresh read.
//!
//! Bounded: [`DEFAULT_KEY_CACHE_CAPACITY`] keys in 16 shards, each emptied
//! when full (a flood of new keys only costs the flooder's own reads: the
//! cache cannot be made to hold anything but keys that parsed). The hash is
//! randomly keyed, so no client can choose texts that collide.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use crate::jwk::{JwkError, PublicJwk};

/// Default number of proof keys remembered.
pub const DEFAULT_KEY_CACHE_CAPACITY: usize = 4096;

/// Longest `jwk` text cached (an RSA-4096 key is about 750 bytes).
const MAX_CACHED_TEXT: usize = 2048;

const SHARDS: usize = 16;

/// Public keys by the JSON text they were read from.
pub struct KeyCache {
    shards: Vec<Mutex<HashMap<Box<str>, Arc<PublicJwk>>>>,
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
    /// A cache of about `capacity` keys (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        KeyCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// The key read from `text`: from the cache, or read now (and cached
    /// if it is a key). Errors are not cached.
    pub fn get_or_read(&self, text: &str) -> Result<Arc<PublicJwk>, JwkError> {
        if text.len() > MAX_CACHED_TEXT {
            return PublicJwk::from_slice(text.as_bytes()).map(Arc::new);
        }
        let shard = &self.shards[(self.hasher.hash_one(text) as usize) % SHARDS];
        // A poisoned lock only means another thread panicked mid-insert;
        // the map itself is still a valid map of valid keys.
        if let Some(key) = shard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(text)
            .cloned()
        {
            return Ok(key);
        }
        let key = Arc::new(PublicJwk::from_slice(text.as_bytes())?);
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        // A full shard is emptied; its keys are dropped after the lock.
        let evicted = (map.len() >= self.per_shard).then(|| std::mem::take(&mut *map));
        map.insert(text.into(), key.clone());
        drop(map);
        drop(evicted);
        Ok(key)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    #[test]
    fn a_hit_is_the_key_read_before() {
        let cache = KeyCache::new(64);
        let first = cache.get_or_read(KEY).unwrap();
        let second = cache.get_or_read(KEY).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn refused_keys_are_refused_every_time_and_not_kept() {
        let cache = KeyCache::new(64);
        let private = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#;
        for _ in 0..2 {
            assert_eq!(cache.get_or_read(private).unwrap_err(), JwkError::Private);
            assert_eq!(cache.get_or_read("{}").unwrap_err(), JwkError::Invalid);
        }
        assert!(cache.is_empty());
    }

    #[test]
    fn other_text_is_another_entry_even_for_the_same_key() {
        // Exact text: whitespace or member order makes another entry (with
        // the same thumbprint), never a wrong hit.
        let cache = KeyCache::new(64);
        let spaced = KEY.replace(',', ", ");
        let a = cache.get_or_read(KEY).unwrap();
        let b = cache.get_or_read(&spaced).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(a.thumbprint(), b.thumbprint());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn stays_within_its_capacity() {
        let cache = KeyCache::new(16);
        // The same key in 200 different texts (extra members are allowed).
        for i in 0..200 {
            let text = KEY.replace('}', &format!(r#","kid":"{i}"}}"#));
            cache.get_or_read(&text).unwrap();
        }
        assert!(cache.len() <= 16, "{}", cache.len());
    }
}
