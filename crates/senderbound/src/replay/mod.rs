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

pub use compact::CompactReplayStore;
pub(crate) use compact::DEFAULT_COMPACT_REPLAY_CAPACITY;
pub use memory::MemoryReplayStore;
pub use senderbound_core::replay::{ReplayError, ReplayKey, ReplayStore};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`ReplayStore`] as a trait object (the Layer holds any store).
pub(crate) trait DynReplayStore: Send + Sync + 'static {
    fn check_and_insert_boxed(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), ReplayError>>;

    fn check_and_insert_at_once(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> Option<Result<(), ReplayError>>;
}

impl<R: ReplayStore> DynReplayStore for R {
    fn check_and_insert_boxed(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), ReplayError>> {
        Box::pin(self.check_and_insert(key, ttl))
    }

    fn check_and_insert_at_once(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> Option<Result<(), ReplayError>> {
        ReplayStore::check_and_insert_at_once(self, key, ttl)
    }
}
