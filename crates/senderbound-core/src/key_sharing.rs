//! Key-sharing detection across a fleet: the [`KeyHolders`] store a store
//! crate implements, so every server sees which identity a key (or client
//! certificate) was first used with.

use std::future::Future;
use std::time::Duration;

/// The store cannot be reached: with key sharing refused, the request is
/// refused with 503; when it is only reported, the request goes on
/// unobserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHoldersUnavailable;

/// Remembers the first holder seen with each key, for a window.
pub trait KeyHolders: Send + Sync + 'static {
    /// Records `holder` as `key`'s first holder unless one is recorded, and
    /// keeps the record for `window` from now either way (a key in use
    /// stays remembered). Returns the recorded holder: `holder` itself
    /// when it is the first, or the earlier one. Must be atomic: of two
    /// concurrent first uses, one holder is recorded and both learn it.
    fn first_holder(
        &self,
        key: &str,
        holder: &str,
        window: Duration,
    ) -> impl Future<Output = Result<String, KeyHoldersUnavailable>> + Send;
}
