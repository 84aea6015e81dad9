//! An authorization server's signing keys, fetched from its `jwks_uri` and
//! kept current.
//!
//! - The first token triggers the first fetch; until it succeeds tokens
//!   are refused with 503, never accepted.
//! - Keys older than the refresh interval are refreshed in the background
//!   (started by the request that notices, which does not wait), while
//!   requests go on with the cached keys.
//! - A token naming an unknown `kid` triggers a refresh (the AS may have
//!   rotated in a new key), at most once per minimum interval, and only one
//!   fetch runs at a time: a flood of made-up `kid`s costs the AS one
//!   request per interval.
//! - When a fetch fails, the cached keys stay in use, for at most the
//!   maximum staleness (default 24 h) since the last successful fetch; after
//!   that tokens get 503. A document the AS did publish is the key set, even
//!   with no usable key in it: a removed key stops working at the next
//!   successful refresh.
//! - Tokens in the verified-token cache are held to the same rules on every
//!   hit ([`RemoteJwks::check_cached`]): the key that verified one must still
//!   be published, and the keys not staler than the maximum staleness, so a
//!   cached token never outlives its key (whatever the order of a cache
//!   insert and a refresh).
//! - With discovery, the metadata is refreshed on the same schedule (the
//!   fetch of the keys asks for it), so a changed `jwks_uri` is followed.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use senderbound_core::Error;
use senderbound_core::jwk::JwkSet;
use senderbound_core::jws::CompactJws;
use senderbound_core::token::{AccessToken, TokenRules};
use url::Url;

use super::discovery::Discovery;
use super::fetch::{FetchError, Fetcher};

/// Default age after which keys are refreshed.
pub(crate) const DEFAULT_JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Default longest time cached keys are used without a successful refresh.
pub(crate) const DEFAULT_JWKS_MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// Default shortest time between two fetches (or fetch attempts).
pub(crate) const DEFAULT_JWKS_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Where the JWKS document lives.
pub(crate) enum JwksLocation {
    Fixed(Url),
    Discovered(Arc<Discovery>),
}

/// How often keys are refreshed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshTiming {
    pub(crate) interval: Duration,
    pub(crate) min_interval: Duration,
    pub(crate) max_stale: Duration,
}

struct KeyState {
    keys: JwkSet,
    /// Bumped by every fetch attempt, so waiters can tell one happened.
    generation: u64,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
    last_failed: bool,
}

pub(crate) struct RemoteJwks {
    issuer: String,
    location: JwksLocation,
    fetcher: Fetcher,
    timing: RefreshTiming,
    state: RwLock<Arc<KeyState>>,
    single_flight: Arc<tokio::sync::Mutex<()>>,
}

impl RemoteJwks {
    pub(crate) fn new(
        issuer: String,
        location: JwksLocation,
        fetcher: Fetcher,
        timing: RefreshTiming,
    ) -> Self {
        RemoteJwks {
            issuer,
            location,
            fetcher,
            timing,
            state: RwLock::new(Arc::new(KeyState {
                keys: JwkSet::default(),
                generation: 0,
                fetched_at: None,
                attempted_at: None,
                last_failed: false,
            })),
            single_flight: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn current(&self) -> Option<Arc<KeyState>> {
        // A poisoned lock means a panic mid-update: fail closed (503).
        self.state.read().ok().map(|s| s.clone())
    }

    /// Verifies a JWT access token with this issuer's current keys.
    pub(crate) async fn verify(
        &self,
        rules: &TokenRules,
        token: &CompactJws<'_>,
    ) -> Result<AccessToken, Error> {
        let mut state = self.current().ok_or(Error::TokenVerifierUnavailable)?;
        if state.fetched_at.is_none() {
            state = self.refresh(state.generation).await?;
        }
        match state.fetched_at {
            None => return Err(Error::TokenVerifierUnavailable),
            // Keys the AS has not confirmed for too long (it has been
            // unreachable): a key it withdrew meanwhile must not live on.
            Some(at) if at.elapsed() > self.timing.max_stale => {
                return Err(Error::TokenVerifierUnavailable);
            }
            Some(_) => {}
        }
        match rules.verify_parsed(token, &state.keys) {
            Err(Error::TokenUnknownKey) => {
                let state = self.refresh(state.generation).await?;
                match rules.verify_parsed(token, &state.keys) {
                    // The AS may well have this key: we could not ask it.
                    Err(Error::TokenUnknownKey) if state.last_failed => {
                        Err(Error::TokenVerifierUnavailable)
                    }
                    other => other,
                }
            }
            other => other,
        }
        .and_then(|t| self.tie_to_issuer(t))
    }

    /// `false` when the issuer's metadata names no `jwks_uri`: its tokens
    /// can only be introspected. A fixed JWKS URL always publishes keys.
    pub(crate) async fn publishes_keys(&self) -> Result<bool, Error> {
        match &self.location {
            JwksLocation::Fixed(_) => Ok(true),
            JwksLocation::Discovered(discovery) => discovery
                .metadata()
                .await
                .map(|m| m.jwks_uri.is_some())
                .map_err(|_| Error::TokenVerifierUnavailable),
        }
    }

    /// A token verified earlier (served from the verified-token cache):
    /// `Ok` only while the key that verified it is still published and the
    /// keys are not staler than allowed, as for a token verified now.
    pub(crate) fn check_cached(&self, token: &AccessToken) -> Result<(), Error> {
        let state = self.current().ok_or(Error::TokenVerifierUnavailable)?;
        match state.fetched_at {
            Some(at) if at.elapsed() <= self.timing.max_stale => {}
            _ => return Err(Error::TokenVerifierUnavailable),
        }
        let published = token.key_thumbprint.as_deref().is_some_and(|verified_by| {
            state
                .keys
                .keys()
                .iter()
                .any(|k| k.thumbprint() == verified_by)
        });
        if published {
            Ok(())
        } else {
            Err(Error::TokenUnknownKey)
        }
    }

    /// The keys verified the token; its `iss` must be this key set's issuer.
    fn tie_to_issuer(&self, token: AccessToken) -> Result<AccessToken, Error> {
        if token.issuer == self.issuer {
            Ok(token)
        } else {
            Err(Error::TokenIssuer)
        }
    }

    /// Starts a refresh in the background if the keys are stale (and no
    /// fetch ran or runs within the minimum interval). Called on every
    /// request, cached tokens included, so a removed key is noticed even
    /// when no token needs verifying; costs a lock read when fresh.
    pub(crate) fn refresh_if_stale(self: &Arc<Self>) {
        let Some(state) = self.current() else { return };
        let stale = state
            .fetched_at
            .is_some_and(|at| at.elapsed() >= self.timing.interval);
        let too_soon = state
            .attempted_at
            .is_some_and(|at| at.elapsed() < self.timing.min_interval);
        if !stale || too_soon {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(guard) = self.single_flight.clone().try_lock_owned() else {
            return; // a fetch is already running
        };
        let this = self.clone();
        handle.spawn(async move {
            let _guard = guard;
            this.fetch_locked(state.generation).await;
        });
    }

    /// Refreshes unless another caller did since `seen` or the last attempt
    /// was less than the minimum interval ago; returns the state after.
    async fn refresh(&self, seen: u64) -> Result<Arc<KeyState>, Error> {
        let _guard = self.single_flight.lock().await;
        self.fetch_locked(seen).await;
        self.current().ok_or(Error::TokenVerifierUnavailable)
    }

    /// Must be called with `single_flight` held.
    async fn fetch_locked(&self, seen: u64) {
        let Some(state) = self.current() else { return };
        if state.generation != seen {
            return; // someone else just tried
        }
        if state
            .attempted_at
            .is_some_and(|at| at.elapsed() < self.timing.min_interval)
        {
            return;
        }
        // Note the attempt before awaiting: a request cancelled mid-fetch
        // must not let the next one fetch again at once.
        if let Ok(mut slot) = self.state.write() {
            *slot = Arc::new(KeyState {
                keys: state.keys.clone(),
                generation: state.generation,
                fetched_at: state.fetched_at,
                attempted_at: Some(Instant::now()),
                last_failed: state.last_failed,
            });
        }
        // A document the AS published is its key set, even an empty one:
        // keys it no longer publishes must stop working.
        let result = self.fetch().await;
        let now = Instant::now();
        let next = match result {
            Ok(keys) => {
                tracing::info!(
                    target: "senderbound::keys",
                    issuer = %self.issuer,
                    keys = keys.keys().len(),
                    "fetched token signing keys"
                );
                KeyState {
                    keys,
                    generation: state.generation + 1,
                    fetched_at: Some(now),
                    attempted_at: Some(now),
                    last_failed: false,
                }
            }
            Err(e) => {
                tracing::warn!(
                    target: "senderbound::keys",
                    issuer = %self.issuer,
                    error = %e,
                    cached_keys = state.keys.keys().len(),
                    "could not fetch token signing keys; keeping the cached ones"
                );
                KeyState {
                    keys: state.keys.clone(),
                    generation: state.generation + 1,
                    fetched_at: state.fetched_at,
                    attempted_at: Some(now),
                    last_failed: true,
                }
            }
        };
        if let Ok(mut slot) = self.state.write() {
            *slot = Arc::new(next);
        }
    }

    async fn fetch(&self) -> Result<JwkSet, FetchError> {
        let url = match &self.location {
            JwksLocation::Fixed(url) => url.clone(),
            JwksLocation::Discovered(discovery) => discovery
                .metadata()
                .await?
                .jwks_uri
                .clone()
                .ok_or(FetchError::MissingEndpoint)?,
        };
        let body = self.fetcher.get_json(&url).await?;
        let text = std::str::from_utf8(&body).map_err(|_| FetchError::Malformed)?;
        JwkSet::from_json(text).map_err(|_| FetchError::Malformed)
    }
}
