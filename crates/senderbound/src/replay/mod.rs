//! Replay protection (RFC 9449 §11.1): each proof (`jkt`, `jti`) is accepted
//! once inside the window in which its `iat` would be accepted.
//!
//! The Layer asks the store only after the proof's signature, the token and
//! the binding all verified, so junk cannot fill it. A store that cannot
//! answer (full, unreachable) makes the Layer refuse the request with 503:
//! forgetting a live `jti` would reopen replay.

mod compact;
mod memory;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use compact::{CompactReplayStore, DEFAULT_COMPACT_REPLAY_CAPACITY};
pub use memory::{DEFAULT_REPLAY_CAPACITY, MemoryReplayStore};

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
pub enum ReplayError {
    /// The proof was already used inside its window: a replay.
    AlreadySeen,
    /// The store is at capacity. Refusing is safer than evicting a live entry.
    Full,
    /// The store could not be reached or did not answer in time.
    Unavailable,
}

impl From<ReplayError> for senderbound_core::Error {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::AlreadySeen => senderbound_core::Error::ProofReplayed,
            ReplayError::Full => senderbound_core::Error::ReplayStoreFull,
            ReplayError::Unavailable => senderbound_core::Error::ReplayStoreUnavailable,
        }
    }
}

/// The future returned by [`ReplayStore::check_and_insert`].
pub type ReplayFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ReplayError>> + Send + 'a>>;

/// Remembers which proofs were already used.
///
/// Implementations must make `check_and_insert` atomic: of any number of
/// concurrent calls with the same key, exactly one returns `Ok(())`.
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` for at least `ttl`. `Ok(())` the first time;
    /// [`ReplayError::AlreadySeen`] if it is already recorded and unexpired.
    fn check_and_insert<'a>(&'a self, key: ReplayKey, ttl: Duration) -> ReplayFuture<'a>;
}

impl<T: ReplayStore + ?Sized> ReplayStore for std::sync::Arc<T> {
    fn check_and_insert<'a>(&'a self, key: ReplayKey, ttl: Duration) -> ReplayFuture<'a> {
        (**self).check_and_insert(key, ttl)
    }
}
