//! Replay protection (RFC 9449 §11.1): the [`ReplayStore`] trait a store
//! implements, and the fixed-size [`ReplayKey`] it remembers.
//!
//! Defined here, in the pure core, so that a store crate (Redis, a
//! database) implements it without depending on the HTTP stack. The
//! `senderbound` Layer asks its store only after a proof's signature, the
//! token and the binding all verified, so junk cannot fill it; a store that
//! cannot answer (full, unreachable) makes the Layer refuse the request with
//! 503: forgetting a live `jti` would reopen replay.

use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The key under which a proof is remembered: SHA-256 of the key thumbprint
/// and the `jti`. Fixed-size, so a client cannot make entries large.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; 32]);

impl ReplayKey {
    /// The key for a proof by the key with thumbprint `jkt` with identifier `jti`.
    pub fn new(jkt: &str, jti: &str) -> Self {
        let mut h = Sha256::new();
        // jkt is always 43 characters, so the concatenation is unambiguous;
        // the separator keeps it so even for a custom thumbprint length.
        h.update(jkt.as_bytes());
        h.update([0u8]);
        h.update(jti.as_bytes());
        ReplayKey(h.finalize().into())
    }

    /// The 32 key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why a proof was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// The proof was already used inside its window: a replay.
    AlreadySeen,
    /// The store is at capacity. Refusing is safer than evicting a live entry.
    Full,
    /// The store could not be reached or did not answer in time.
    Unavailable,
}

impl From<ReplayError> for crate::Error {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::AlreadySeen => crate::Error::ProofReplayed,
            ReplayError::Full => crate::Error::ReplayStoreFull,
            ReplayError::Unavailable => crate::Error::ReplayStoreUnavailable,
        }
    }
}

/// Remembers which proofs were already used.
///
/// Implementations must make `check_and_insert` atomic: of any number of
/// concurrent calls with the same key, exactly one returns `Ok(())`.
///
/// ```
/// use std::collections::HashSet;
/// use std::sync::Mutex;
/// use std::time::Duration;
/// use senderbound_core::replay::{ReplayError, ReplayKey, ReplayStore};
///
/// /// Never forgets (a sketch: a real store expires entries after `ttl`).
/// #[derive(Default)]
/// struct Forever(Mutex<HashSet<ReplayKey>>);
///
/// impl ReplayStore for Forever {
///     async fn check_and_insert(&self, key: ReplayKey, _ttl: Duration) -> Result<(), ReplayError> {
///         let mut seen = self.0.lock().map_err(|_| ReplayError::Unavailable)?;
///         if seen.insert(key) { Ok(()) } else { Err(ReplayError::AlreadySeen) }
///     }
/// }
/// ```
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` for at least `ttl`. `Ok(())` the first time;
    /// [`ReplayError::AlreadySeen`] if it is already recorded and unexpired.
    fn check_and_insert(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), ReplayError>> + Send;

    /// The same, answered at once by a store that keeps its records in
    /// this process; `None` (the default) for one that must wait (a
    /// network store), which is then asked with
    /// [`check_and_insert`](Self::check_and_insert). Lets a caller that
    /// works through trait objects skip a boxed future per request. When it
    /// answers, it must answer exactly as `check_and_insert` would (a
    /// wrapper that forwards one must forward both).
    fn check_and_insert_at_once(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> Option<Result<(), ReplayError>> {
        let _ = (key, ttl);
        None
    }
}

impl<T: ReplayStore> ReplayStore for std::sync::Arc<T> {
    fn check_and_insert(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), ReplayError>> + Send {
        (**self).check_and_insert(key, ttl)
    }

    fn check_and_insert_at_once(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> Option<Result<(), ReplayError>> {
        (**self).check_and_insert_at_once(key, ttl)
    }
}
