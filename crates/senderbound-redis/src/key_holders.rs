//! [`RedisKeyHolders`]: the first holder of each key, in Redis, for
//! key-sharing detection across a fleet.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use senderbound_core::key_sharing::{KeyHolders, KeyHoldersUnavailable};

use crate::RedisStoreError;
use crate::deployment::{Connection, Deployment, connect};

/// KEYS[1] the key's record; ARGV[1] the holder, ARGV[2] the window in
/// ms. Records the holder if none is, keeps the record for the window
/// while its holder uses the key (another holder's use does not extend
/// it), and returns the recorded holder.
const FIRST_HOLDER: &str = r"
local first = redis.call('GET', KEYS[1])
if not first then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if first == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return first
";

/// Configures [`RedisKeyHolders`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisKeyHoldersBuilder {
    deployment: Deployment,
    namespace: String,
    operation_timeout: Duration,
}

impl RedisKeyHoldersBuilder {
    /// Prefix of the keys (default `senderbound:holders`; no `{` or `}`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Longest one lookup may take (default 250 ms).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Creates the store; connects lazily. Must be called inside a tokio
    /// runtime.
    pub fn build(self) -> Result<RedisKeyHolders, RedisStoreError> {
        let connection = connect(&self.deployment, &self.namespace, self.operation_timeout)?;
        Ok(RedisKeyHolders {
            connection,
            namespace: self.namespace,
            operation_timeout: self.operation_timeout,
            script: redis::Script::new(FIRST_HOLDER),
        })
    }
}

/// The first identity seen with each DPoP key or client certificate,
/// shared by a fleet: give it to
/// `KeySharing::holders(..)` and every server reports (or refuses) a key
/// used with two clients, wherever each was seen.
///
/// ```no_run
/// use senderbound::key_sharing::KeySharing;
/// use senderbound_redis::RedisKeyHolders;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let sharing = KeySharing::new()
///     .reject()
///     .holders(RedisKeyHolders::builder("redis://10.0.0.7:6379/").build()?);
/// # let _ = sharing; Ok(()) }
/// ```
pub struct RedisKeyHolders {
    connection: Connection,
    namespace: String,
    operation_timeout: Duration,
    script: redis::Script,
}

impl fmt::Debug for RedisKeyHolders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyHolders")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl RedisKeyHolders {
    /// Starts a configuration for Redis deployed as `deployment`.
    pub fn builder(deployment: impl Into<Deployment>) -> RedisKeyHoldersBuilder {
        RedisKeyHoldersBuilder {
            deployment: deployment.into(),
            namespace: "senderbound:holders".to_owned(),
            operation_timeout: Duration::from_millis(250),
        }
    }
}

impl KeyHolders for RedisKeyHolders {
    fn first_holder(
        &self,
        key: &str,
        holder: &str,
        window: Duration,
    ) -> impl Future<Output = Result<String, KeyHoldersUnavailable>> + Send {
        // One key, so any slot; the tag spreads keys over a cluster.
        let tag = crc16::State::<crc16::XMODEM>::calculate(key.as_bytes()) % 256;
        let redis_key = format!("{{{}:{tag:02x}}}:{key}", self.namespace);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let holder = holder.to_owned();
        async move {
            let mut script = self.script.prepare_invoke();
            script.key(redis_key).arg(holder).arg(window_ms);
            let lookup = self.connection.invoke_value(&script);
            match self.connection.within(self.operation_timeout, lookup).await {
                Ok(Ok(value)) => redis::from_redis_value(value).map_err(|_| KeyHoldersUnavailable),
                _ => Err(KeyHoldersUnavailable),
            }
        }
    }
}
