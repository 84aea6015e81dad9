//! [`Fetching`]: how the Layer talks to authorization servers.

use std::fmt;
use std::time::Duration;

use super::fetch::DEFAULT_FETCH_TIMEOUT;
use super::remote_jwks::{
    DEFAULT_JWKS_MAX_STALE, DEFAULT_JWKS_MIN_REFRESH_INTERVAL, DEFAULT_JWKS_REFRESH_INTERVAL,
    RefreshTiming,
};

/// How metadata, keys and introspection answers are fetched from
/// authorization servers, and how fetched keys are kept current. Every
/// setting has a default; set only what differs.
///
/// ```
/// use std::time::Duration;
/// use senderbound::tokens::Fetching;
///
/// let fetching = Fetching::new()
///     .timeout(Duration::from_secs(2))
///     .key_refresh(Duration::from_secs(600));
/// ```
#[derive(Clone)]
#[must_use]
pub struct Fetching {
    pub(crate) client: Option<reqwest::Client>,
    pub(crate) timeout: Duration,
    pub(crate) timing: RefreshTiming,
}

impl fmt::Debug for Fetching {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetching")
            .field("custom_client", &self.client.is_some())
            .field("timeout", &self.timeout)
            .field("key_refresh", &self.timing.interval)
            .field("min_key_refresh", &self.timing.min_interval)
            .field("max_key_staleness", &self.timing.max_stale)
            .finish()
    }
}

impl Default for Fetching {
    fn default() -> Self {
        Fetching {
            client: None,
            timeout: DEFAULT_FETCH_TIMEOUT,
            timing: RefreshTiming {
                interval: DEFAULT_JWKS_REFRESH_INTERVAL,
                min_interval: DEFAULT_JWKS_MIN_REFRESH_INTERVAL,
                max_stale: DEFAULT_JWKS_MAX_STALE,
            },
        }
    }
}

impl Fetching {
    /// The defaults: rustls with the platform's roots, no redirects, a 5 s
    /// timeout; keys refreshed every 5 minutes, at most once per 10 s, used
    /// for at most 24 h while the authorization server is unreachable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fetch with this client (custom root certificates, proxy, …). Its
    /// own timeout and redirect settings apply.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Give up on a metadata, JWKS or introspection fetch after this long
    /// (default 5 s), answering 503 meanwhile if no cached answer helps.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Refresh fetched keys (and metadata) once they are this old (default
    /// 5 minutes).
    pub fn key_refresh(mut self, interval: Duration) -> Self {
        self.timing.interval = interval;
        self
    }

    /// Fetch keys (or retry discovery) at most once per `interval`, however
    /// many tokens name unknown keys (default 10 s).
    pub fn min_key_refresh(mut self, interval: Duration) -> Self {
        self.timing.min_interval = interval;
        self
    }

    /// Keep using fetched keys while the authorization server is
    /// unreachable for at most this long after the last successful fetch
    /// (default 24 h); then answer 503, so a key the server withdrew
    /// meanwhile cannot live on indefinitely.
    pub fn max_key_staleness(mut self, max: Duration) -> Self {
        self.timing.max_stale = max;
        self
    }
}
