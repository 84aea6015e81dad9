//! How Redis is deployed, and a connection to it that follows the
//! deployment: one node (reconnecting), Sentinel (following the primary
//! through failovers) or Cluster (routing by hash slot).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, RedisError, RedisResult, Script, ScriptInvocation,
};

/// Where Redis runs: the store works the same way on each.
///
/// With the crate's `tls` feature, `rediss://` URLs reach Redis over TLS
/// (rustls, trusting the platform's roots; `SSL_CERT_FILE` or
/// `SSL_CERT_DIR` add a private CA): a node, the seeds of a cluster (and so
/// every node), or sentinels (and then the nodes they name too). Without
/// it, a `rediss://` URL fails at `build()`.
///
/// ```
/// use senderbound_redis::Deployment;
///
/// let one = Deployment::single("redis://10.0.0.7:6379/");
/// let sentinel = Deployment::sentinel(
///     ["redis://10.0.0.11:26379", "redis://10.0.0.12:26379", "redis://10.0.0.13:26379"],
///     "senderbound", // the service (master) name the sentinels monitor
/// );
/// let cluster = Deployment::cluster(["redis://10.0.1.1:6379", "redis://10.0.1.2:6379"]);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum Deployment {
    /// One Redis node (`redis://[:password@]host:port/db`).
    Single(String),
    /// A primary watched by Sentinel: the store asks the sentinels for the
    /// current primary, and again after any error, so it follows a failover.
    Sentinel {
        /// Sentinel URLs (`redis://host:26379`).
        sentinels: Vec<String>,
        /// The service name the sentinels monitor.
        service: String,
        /// The password of the Redis nodes themselves, if any.
        password: Option<String>,
    },
    /// Redis Cluster: seed node URLs; keys spread over hash slots, and the
    /// redis crate's cluster client follows slot moves and failovers.
    Cluster(Vec<String>),
}

impl Deployment {
    /// One node.
    pub fn single(url: impl Into<String>) -> Self {
        Deployment::Single(url.into())
    }

    /// A primary watched by these sentinels under `service`.
    pub fn sentinel<I, S>(sentinels: I, service: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Deployment::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            service: service.into(),
            password: None,
        }
    }

    /// With [`sentinel`](Self::sentinel): the Redis nodes' password.
    #[must_use]
    pub fn node_password(self, node_password: impl Into<String>) -> Self {
        match self {
            Deployment::Sentinel {
                sentinels, service, ..
            } => Deployment::Sentinel {
                sentinels,
                service,
                password: Some(node_password.into()),
            },
            other => other,
        }
    }

    /// A cluster, reached through these seed nodes.
    pub fn cluster<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Deployment::Cluster(nodes.into_iter().map(Into::into).collect())
    }

    /// The URLs, without user information or query, for logs.
    pub(crate) fn redacted(&self) -> String {
        let list = |urls: &[String]| {
            urls.iter()
                .map(|u| crate::redacted(u))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Deployment::Single(url) => format!("single {}", crate::redacted(url)),
            Deployment::Sentinel {
                sentinels, service, ..
            } => format!("sentinel {service} via {}", list(sentinels)),
            Deployment::Cluster(nodes) => format!("cluster via {}", list(nodes)),
        }
    }
}

impl fmt::Debug for Deployment {
    /// Never shows a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A connection for a store whose keys live under `namespace` (a hash tag's
/// prefix, so it may not hold `{` or `}`: Redis hashes the text between
/// the first `{` and `}`, and a brace would move a key away from its
/// group). Every store's `build` goes through here.
pub(crate) fn connect(
    deployment: &Deployment,
    namespace: &str,
    timeout: Duration,
) -> Result<Connection, crate::RedisStoreError> {
    if namespace.contains(['{', '}']) {
        return Err(crate::RedisStoreError::Namespace);
    }
    Connection::new(deployment, timeout).map_err(|e| match e.kind() {
        redis::ErrorKind::InvalidClientConfig => crate::RedisStoreError::Url(e),
        _ => crate::RedisStoreError::Connection(e),
    })
}

/// A connection that follows the deployment.
pub(crate) enum Connection {
    Single(ConnectionManager),
    Sentinel(SentinelConnection),
    Cluster(Box<LazyCluster>),
}

impl Connection {
    /// Lazily connected: nothing is dialled before the first request.
    pub(crate) fn new(deployment: &Deployment, timeout: Duration) -> RedisResult<Self> {
        match deployment {
            Deployment::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                Ok(Connection::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            Deployment::Sentinel {
                sentinels,
                service,
                password,
            } => {
                let mut node = redis::sentinel::SentinelNodeConnectionInfo::default();
                if let Some(password) = password {
                    node = node.set_redis_connection_info(
                        redis::RedisConnectionInfo::default().set_password(password.clone()),
                    );
                }
                // Sentinels reached over TLS name nodes reached over TLS;
                // a list that mixes both is refused (which would the nodes
                // use?).
                let tls = |url: &String| url.to_ascii_lowercase().starts_with("rediss://");
                if sentinels.iter().any(tls) {
                    if !sentinels.iter().all(tls) {
                        return Err(RedisError::from((
                            ErrorKind::InvalidClientConfig,
                            "the sentinel URLs mix redis:// and rediss://",
                        )));
                    }
                    node = node.set_tls_mode(redis::TlsMode::Secure);
                }
                let node = Some(node);
                let client = SentinelClient::build(
                    sentinels.iter().map(String::as_str).collect(),
                    service.clone(),
                    node,
                    SentinelServerType::Master,
                )?;
                Ok(Connection::Sentinel(SentinelConnection::new(
                    client,
                    AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout)),
                )))
            }
            Deployment::Cluster(nodes) => {
                let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()?;
                Ok(Connection::Cluster(Box::new(LazyCluster {
                    client,
                    connection: tokio::sync::Mutex::new(None),
                })))
            }
        }
    }

    /// Runs `script` (whose keys share one hash slot) on the primary.
    pub(crate) async fn invoke(&self, script: &ScriptInvocation<'_>) -> RedisResult<i64> {
        let value = self.invoke_value(script).await?;
        redis::from_redis_value(value).map_err(RedisError::from)
    }

    /// Runs `script`, returning its raw answer.
    pub(crate) async fn invoke_value(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> RedisResult<redis::Value> {
        match self {
            Connection::Single(manager) => script.invoke_async(&mut manager.clone()).await,
            Connection::Sentinel(sentinel) => {
                let mut connection = sentinel.connection().await?;
                sentinel.forget_on_error(script.invoke_async(&mut connection).await)
            }
            Connection::Cluster(cluster) => {
                let mut connection = cluster.connection().await?;
                script.invoke_async(&mut connection).await
            }
        }
    }

    /// A command (on a cluster, routed by its key).
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, command: &Cmd) -> RedisResult<T> {
        match self {
            Connection::Single(manager) => command.query_async(&mut manager.clone()).await,
            Connection::Sentinel(sentinel) => {
                let mut connection = sentinel.connection().await?;
                sentinel.forget_on_error(command.query_async(&mut connection).await)
            }
            Connection::Cluster(cluster) => {
                let mut connection = cluster.connection().await?;
                command.query_async(&mut connection).await
            }
        }
    }

    /// `EVAL script` then `WAIT replicas timeout`, pipelined on one
    /// connection to the primary that holds `slot` (WAIT counts only the
    /// writes of its own connection): the script's answer and how many
    /// replicas acknowledged.
    pub(crate) async fn eval_then_wait(
        &self,
        eval: Cmd,
        slot: u16,
        replicas: u32,
        timeout: Duration,
    ) -> RedisResult<(i64, i64)> {
        let timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut pipe = redis::pipe();
        pipe.add_command(eval);
        pipe.cmd("WAIT").arg(replicas).arg(timeout_ms);
        match self {
            Connection::Single(manager) => pipe.query_async(&mut manager.clone()).await,
            Connection::Sentinel(sentinel) => {
                let mut connection = sentinel.connection().await?;
                sentinel.forget_on_error(pipe.query_async(&mut connection).await)
            }
            Connection::Cluster(cluster) => {
                let mut connection = cluster.connection().await?;
                let route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
                let values = connection.route_pipeline(pipe, 0, 2, route).await?;
                redis::from_redis_value(redis::Value::Array(values)).map_err(RedisError::from)
            }
        }
    }

    /// Runs `operation` for at most `timeout`. A Sentinel connection that
    /// did not answer in time is forgotten: the next request asks the
    /// sentinels again (a primary that hangs is never dropped otherwise,
    /// its connection's own timeout being the same as this one).
    pub(crate) async fn within<T>(
        &self,
        timeout: Duration,
        operation: impl Future<Output = T>,
    ) -> Result<T, tokio::time::error::Elapsed> {
        let answer = tokio::time::timeout(timeout, operation).await;
        if answer.is_err() {
            self.forget();
        }
        answer
    }

    /// Drops a Sentinel connection (the node no longer serves as primary).
    pub(crate) fn forget(&self) {
        if let Connection::Sentinel(sentinel) = self {
            sentinel.forget();
        }
    }
}

/// The current primary's connection, asked of the sentinels when there is
/// none (at start, and after any error).
///
/// The lookup runs as its own task, one at a time, to its end: a request
/// waits for it only as long as its operation timeout allows. Asking the
/// sentinels can take longer than that (one that hangs is given up on after
/// the redis crate's timeouts, about a second, before the next answers);
/// were the lookup a part of each request, every request would abandon it
/// half-way and the store would never find the new primary.
pub(crate) struct SentinelConnection {
    shared: Arc<SentinelShared>,
}

struct SentinelShared {
    client: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<MultiplexedConnection>>,
    config: AsyncConnectionConfig,
    /// A lookup task is running.
    looking: AtomicBool,
    /// Woken when a lookup ends, found or not.
    done: tokio::sync::Notify,
}

impl SentinelConnection {
    fn new(client: SentinelClient, config: AsyncConnectionConfig) -> Self {
        SentinelConnection {
            shared: Arc::new(SentinelShared {
                client: tokio::sync::Mutex::new(client),
                current: Mutex::new(None),
                config,
                looking: AtomicBool::new(false),
                done: tokio::sync::Notify::new(),
            }),
        }
    }

    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(connection) = self.shared.cached() {
            return Ok(connection);
        }
        // Waiting before looking: a lookup ending in between still wakes
        // this (a `Notified` receives `notify_waiters` once created).
        let done = self.shared.done.notified();
        if !self.shared.looking.swap(true, Ordering::AcqRel) {
            let lookup = Lookup(self.shared.clone());
            tokio::spawn(async move { lookup.0.look_up().await });
        }
        done.await;
        self.shared.cached().ok_or_else(|| {
            RedisError::from((ErrorKind::Io, "the sentinels named no reachable primary"))
        })
    }

    /// `answer`, the connection forgotten if it is an error (the node may
    /// no longer be the primary: the next request asks the sentinels).
    fn forget_on_error<T>(&self, answer: RedisResult<T>) -> RedisResult<T> {
        if answer.is_err() {
            self.forget();
        }
        answer
    }

    fn forget(&self) {
        if let Ok(mut current) = self.shared.current.lock() {
            *current = None;
        }
    }
}

/// A running lookup: when it ends (or its task is dropped), the next may
/// start and the waiting requests look at what it found.
struct Lookup(Arc<SentinelShared>);

impl Drop for Lookup {
    fn drop(&mut self) {
        self.0.looking.store(false, Ordering::Release);
        self.0.done.notify_waiters();
    }
}

impl SentinelShared {
    fn cached(&self) -> Option<MultiplexedConnection> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    /// Asks the sentinels for the primary and connects to it.
    async fn look_up(&self) {
        let mut client = self.client.lock().await;
        if self.cached().is_some() {
            return;
        }
        if let Ok(connection) = client.get_async_connection_with_config(&self.config).await
            && let Ok(mut current) = self.current.lock()
        {
            *current = Some(connection);
        }
    }
}

/// The cluster connection, made on first use (and again after a failure
/// to make it).
pub(crate) struct LazyCluster {
    client: redis::cluster::ClusterClient,
    connection: tokio::sync::Mutex<Option<ClusterConnection>>,
}

impl LazyCluster {
    async fn connection(&self) -> RedisResult<ClusterConnection> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = self.client.get_async_connection().await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

/// The cluster hash slot of a hash tag (CRC16/XMODEM mod 16384, Redis
/// Cluster specification).
pub(crate) fn slot(tag: &str) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes()) % 16384
}

/// Makes `RedisError` usable in logs without its (possibly secret) detail.
pub(crate) fn kind(e: &RedisError) -> String {
    format!("{:?}", e.kind())
}

/// A script with its keys (kept here so callers need not name the types).
pub(crate) fn invocation<'a>(script: &'a Script) -> ScriptInvocation<'a> {
    script.prepare_invoke()
}
