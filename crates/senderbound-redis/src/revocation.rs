//! [`RedisRevocations`]: a revocation list every server of a fleet sees.
//!
//! The list lives in Redis (one hash of `kind:value` → expiry, and a
//! version counter, under one hash tag so a cluster keeps them in one
//! slot). Each server keeps a local copy and polls the version every
//! [`poll_interval`](RedisRevocationsBuilder::poll_interval) (one `GET`),
//! reading the list only when it changed: asking "is this token revoked?"
//! costs no round trip, and a revocation made anywhere is seen everywhere
//! within the poll interval plus one round trip.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use senderbound_core::revocation::{RevocationCheck, RevocationUnavailable};
use senderbound_core::token::{AccessToken, Binding};

use crate::deployment::{Connection, Deployment, connect, kind, slot};
use crate::{Durability, RedisStoreError};

/// The longest a revocation holds.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// What a revocation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Revoked {
    /// A token id (`jti`).
    TokenId,
    /// A subject (`sub`).
    Subject,
    /// A client (`client_id`).
    Client,
    /// A DPoP key thumbprint (`jkt`: bound in `cnf`, or signing the proof).
    Key,
    /// A client certificate thumbprint (`x5t#S256` bound in `cnf`).
    Certificate,
}

impl Revoked {
    const fn prefix(self) -> &'static str {
        match self {
            Revoked::TokenId => "jti",
            Revoked::Subject => "sub",
            Revoked::Client => "client",
            Revoked::Key => "jkt",
            Revoked::Certificate => "x5t",
        }
    }
}

/// KEYS[1] the list (hash), KEYS[2] its version. ARGV[1] the field,
/// ARGV[2] the lifetime in ms (0: remove the field). Prunes expired fields.
/// Returns 1.
///
/// The version is `generation:counter:time`, the generation made when
/// there is none, the time (Redis's, in microseconds) that of the change:
/// every change gets a version never seen before, even after a Redis that
/// lost the last changes (a failover to a lagging replica, a restart)
/// counts again from an older counter, or lost everything and starts
/// another generation. So a server never mistakes a new list for the one
/// it holds.
const CHANGE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) <= now then redis.call('HDEL', KEYS[1], all[i]) end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local gen, n = string.match(redis.call('GET', KEYS[2]) or '', '^(%d+):(%d+)')
if not gen then
  gen = t[1] .. t[2]
  n = 0
end
redis.call('SET', KEYS[2], gen .. ':' .. (tonumber(n) + 1) .. ':' .. t[1] .. string.format('%06d', tonumber(t[2])))
return 1
";

/// KEYS[1] the list, KEYS[2] its version: both, read together.
const READ: &str = r"
return {redis.call('GET', KEYS[2]) or '0', redis.call('HGETALL', KEYS[1])}
";

/// Configures [`RedisRevocations`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisRevocationsBuilder {
    deployment: Deployment,
    namespace: String,
    poll_interval: Duration,
    max_staleness: Duration,
    operation_timeout: Duration,
    durability: Durability,
}

impl RedisRevocationsBuilder {
    /// Prefix of the keys (default `senderbound:revoked`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How often each server asks whether the list changed (default 1 s):
    /// the longest a revocation made elsewhere takes to be seen here, plus
    /// one round trip.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long the last list read may be served, beyond one poll
    /// interval, while Redis cannot be reached (default 30 s); after that
    /// every request is refused with 503 until Redis answers. Zero fails
    /// closed at the first missed poll; a long bound keeps serving through
    /// an outage, at the price of not seeing revocations made meanwhile.
    pub fn max_staleness(mut self, staleness: Duration) -> Self {
        self.max_staleness = staleness;
        self
    }

    /// Longest one Redis operation may take (default 250 ms).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// What a change ([`revoke`](RedisRevocations::revoke),
    /// [`restore`](RedisRevocations::restore)) must survive before it
    /// returns `Ok` (default [`Durability::Primary`]). With
    /// [`Durability::Replicas`], a change not acknowledged in time returns
    /// an error: it holds on the primary (and is seen by the fleet), but a
    /// failover could lose it, so make it again (or check
    /// [`revokes`](RedisRevocations::revokes) after a failover). Replay and
    /// revocation stores may differ: a revocation is rare, and losing one
    /// quietly is what this closes.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Creates the list and starts polling in the background (stopped when
    /// the last clone is dropped). Must be called inside a tokio runtime.
    /// Until the first read succeeds, every request gets 503.
    pub fn build(self) -> Result<RedisRevocations, RedisStoreError> {
        if matches!(self.durability, Durability::Replicas { count: 0, .. }) {
            return Err(RedisStoreError::Durability);
        }
        // The connection's own response timeout covers WAIT too.
        let wait = match self.durability {
            Durability::Replicas { timeout, .. } => timeout,
            Durability::Primary => Duration::ZERO,
        };
        let connection = connect(
            &self.deployment,
            &self.namespace,
            self.operation_timeout.saturating_add(wait),
        )?;
        let inner = Arc::new(Inner {
            connection,
            list: format!("{{{}}}:list", self.namespace),
            version: format!("{{{}}}:version", self.namespace),
            change: redis::Script::new(CHANGE),
            read: redis::Script::new(READ),
            local: RwLock::new(Local::default()),
            poll_interval: self.poll_interval,
            max_staleness: self.max_staleness,
            operation_timeout: self.operation_timeout,
            durability: self.durability,
            slot: slot(&self.namespace),
            syncing: tokio::sync::Mutex::new(()),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(poll(
            weak,
            self.poll_interval.max(Duration::from_millis(10)),
        ));
        Ok(RedisRevocations { inner })
    }
}

/// A revocation list in Redis, shared by a fleet. Each server keeps a local
/// copy and polls a version counter every
/// [`poll_interval`](RedisRevocationsBuilder::poll_interval), reading the
/// list only when it changed: a request costs no round trip, and a
/// revocation made anywhere is seen everywhere within the poll interval
/// plus one round trip. Clones share one local copy.
///
/// ```no_run
/// use std::time::Duration;
/// use senderbound_redis::{RedisRevocations, Revoked};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let revocations = RedisRevocations::builder("redis://10.0.0.7:6379/").build()?;
/// // Give a clone to the Layer: `.revocations(revocations.clone())`.
/// revocations
///     .revoke(Revoked::Key, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", Duration::from_secs(3600))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRevocations {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocations")
            .field("list", &self.inner.list)
            .finish_non_exhaustive()
    }
}

struct Inner {
    connection: Connection,
    list: String,
    version: String,
    change: redis::Script,
    read: redis::Script,
    local: RwLock<Local>,
    poll_interval: Duration,
    max_staleness: Duration,
    operation_timeout: Duration,
    durability: Durability,
    /// The cluster slot of the list and its version (their hash tag).
    slot: u16,
    /// Held by a sync: two at once (a poll and a change) could store the
    /// older answer last.
    syncing: tokio::sync::Mutex<()>,
}

/// The local copy.
#[derive(Default)]
struct Local {
    version: Option<String>,
    /// `kind:value` → expiry, ms since the epoch (Redis's clock).
    entries: HashMap<String, u64>,
    /// When Redis last answered a poll.
    synced_at: Option<Instant>,
}

/// Why a change could not be made (Redis unreachable or erring).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationStoreError(String);

impl fmt::Display for RevocationStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revocation list: {}", self.0)
    }
}

impl std::error::Error for RevocationStoreError {}

impl RedisRevocations {
    /// Starts a configuration for Redis deployed as `deployment`.
    pub fn builder(deployment: impl Into<Deployment>) -> RedisRevocationsBuilder {
        RedisRevocationsBuilder {
            deployment: deployment.into(),
            namespace: "senderbound:revoked".to_owned(),
            poll_interval: Duration::from_secs(1),
            max_staleness: Duration::from_secs(30),
            operation_timeout: Duration::from_millis(250),
            durability: Durability::Primary,
        }
    }

    /// Refuses tokens naming `value` as `what`, on every server, for
    /// `lifetime` (at most a century): make it at least the longest a token
    /// lives plus the token leeway and the servers' clock skew (expiries
    /// are Redis's clock, compared with each server's). Seen here at once,
    /// elsewhere within the poll interval. Revocations Redis loses are
    /// lost: run it with AOF (restarts), and use
    /// [`durability`](RedisRevocationsBuilder::durability) to have
    /// replicas acknowledge each change (failovers).
    pub async fn revoke(
        &self,
        what: Revoked,
        value: &str,
        lifetime: Duration,
    ) -> Result<(), RevocationStoreError> {
        // A century at most: an expiry Redis's Lua (doubles) and every
        // server read back exactly.
        let ms = u64::try_from(lifetime.min(CENTURY).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.change(what, value, ms).await
    }

    /// Accepts tokens naming `value` as `what` again.
    pub async fn restore(&self, what: Revoked, value: &str) -> Result<(), RevocationStoreError> {
        self.change(what, value, 0).await
    }

    async fn change(
        &self,
        what: Revoked,
        value: &str,
        ms: u64,
    ) -> Result<(), RevocationStoreError> {
        let inner = &self.inner;
        let field = format!("{}:{value}", what.prefix());
        let (answer, required) = match inner.durability {
            Durability::Primary => {
                let mut script = inner.change.prepare_invoke();
                script
                    .key(&inner.list)
                    .key(&inner.version)
                    .arg(&field)
                    .arg(ms);
                let change = async { inner.connection.invoke(&script).await.map(|a| (a, None)) };
                (
                    inner
                        .connection
                        .within(inner.operation_timeout, change)
                        .await,
                    None,
                )
            }
            Durability::Replicas { count, timeout } => {
                let mut eval = redis::Cmd::new();
                eval.arg("EVAL")
                    .arg(CHANGE)
                    .arg(2)
                    .arg(&inner.list)
                    .arg(&inner.version)
                    .arg(&field)
                    .arg(ms);
                let change = async {
                    inner
                        .connection
                        .eval_then_wait(eval, inner.slot, count, timeout)
                        .await
                        .map(|(a, acknowledged)| (a, Some(acknowledged)))
                };
                (
                    inner
                        .connection
                        .within(inner.operation_timeout + timeout, change)
                        .await,
                    Some(count),
                )
            }
        };
        let acknowledged = match answer {
            Ok(Ok((1, acknowledged))) => acknowledged,
            Ok(Ok(_)) => return Err(RevocationStoreError("unexpected answer".to_owned())),
            Ok(Err(e)) => return Err(RevocationStoreError(kind(&e))),
            Err(_) => return Err(RevocationStoreError("timed out".to_owned())),
        };
        // Seen here at once (made, even when not acknowledged).
        inner.sync().await;
        match (required, acknowledged) {
            (Some(count), Some(acknowledged)) if acknowledged < i64::from(count) => {
                Err(RevocationStoreError(
                    "made on the primary, but too few replicas acknowledged it (WAIT): \
                     a failover could lose it"
                        .to_owned(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// `true` if the local copy names this token, its binding or
    /// `proof_jkt`; `Err` when the copy is older than the staleness bound.
    pub fn revokes(
        &self,
        token: &AccessToken,
        proof_jkt: Option<&str>,
    ) -> Result<bool, RevocationUnavailable> {
        let local = self.inner.local.read().map_err(|_| RevocationUnavailable)?;
        // A healthy copy is at most a poll interval and two operations old.
        let fresh =
            self.inner.poll_interval + self.inner.max_staleness + 2 * self.inner.operation_timeout;
        match local.synced_at {
            Some(at) if at.elapsed() <= fresh => {}
            _ => return Err(RevocationUnavailable),
        }
        let now = now_ms();
        let listed = |what: Revoked, value: Option<&str>| {
            value.is_some_and(|v| {
                local
                    .entries
                    .get(&format!("{}:{v}", what.prefix()))
                    .is_some_and(|&expiry| expiry > now)
            })
        };
        let (bound_jkt, bound_cert) = match &token.binding {
            Binding::Dpop { jkt } => (Some(jkt.as_str()), None),
            Binding::Mtls { x5t_s256 } => (None, Some(x5t_s256.as_str())),
            Binding::Unbound => (None, None),
        };
        Ok(listed(Revoked::TokenId, token.token_id.as_deref())
            || listed(Revoked::Subject, token.subject.as_deref())
            || listed(Revoked::Client, token.client_id.as_deref())
            || listed(Revoked::Key, bound_jkt)
            || listed(Revoked::Key, proof_jkt)
            || listed(Revoked::Certificate, bound_cert))
    }
}

impl RevocationCheck for RedisRevocations {
    fn is_revoked(
        &self,
        token: &AccessToken,
        proof_jkt: Option<&str>,
    ) -> impl Future<Output = Result<bool, RevocationUnavailable>> + Send {
        std::future::ready(self.revokes(token, proof_jkt))
    }
}

impl Inner {
    /// Reads the version, and the list when it changed.
    async fn sync(&self) {
        let _one_at_a_time = self.syncing.lock().await;
        let version = async {
            let mut get = redis::Cmd::new();
            get.arg("GET").arg(&self.version);
            let version: Option<String> = self.connection.query(&get).await?;
            Ok::<_, redis::RedisError>(version.unwrap_or_else(|| "0".to_owned()))
        };
        let Ok(Ok(version)) = self
            .connection
            .within(self.operation_timeout, version)
            .await
        else {
            return;
        };
        let unchanged = self
            .local
            .read()
            .is_ok_and(|l| l.version.as_deref() == Some(version.as_str()));
        if unchanged {
            if let Ok(mut local) = self.local.write() {
                local.synced_at = Some(Instant::now());
            }
            return;
        }
        let mut script = self.read.prepare_invoke();
        script.key(&self.list).key(&self.version);
        let read = self.connection.invoke_value(&script);
        let Ok(Ok(value)) = self.connection.within(self.operation_timeout, read).await else {
            return;
        };
        let Ok((version, flat)) = redis::from_redis_value::<(String, Vec<String>)>(value) else {
            return;
        };
        // An expiry that does not read as a number never expires: an entry
        // is never dropped for its form.
        let entries = flat
            .chunks(2)
            .filter_map(|pair| match pair {
                [field, expiry] => Some((field.clone(), expiry.parse().unwrap_or(u64::MAX))),
                _ => None,
            })
            .collect();
        if let Ok(mut local) = self.local.write() {
            *local = Local {
                version: Some(version),
                entries,
                synced_at: Some(Instant::now()),
            };
        }
    }
}

/// Polls until the list is dropped.
async fn poll(inner: Weak<Inner>, interval: Duration) {
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.sync().await;
        drop(inner);
        tokio::time::sleep(interval).await;
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
