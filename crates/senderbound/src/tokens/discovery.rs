//! Authorization server metadata discovery (RFC 8414, with the OpenID
//! Connect Discovery location as a fallback).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;

use super::fetch::{FetchError, Fetcher, endpoint_url};
use super::remote_jwks::RefreshTiming;

/// The parts of an authorization server's metadata senderbound uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerMetadata {
    /// `issuer`, equal to the configured issuer.
    pub(crate) issuer: String,
    /// `jwks_uri`, checked by [`endpoint_url`].
    pub(crate) jwks_uri: Option<Url>,
    /// `introspection_endpoint`, checked by [`endpoint_url`].
    pub(crate) introspection_endpoint: Option<Url>,
}

#[derive(Deserialize)]
struct RawMetadata {
    issuer: String,
    jwks_uri: Option<String>,
    introspection_endpoint: Option<String>,
}

impl ServerMetadata {
    /// Parses a metadata document fetched for `expected_issuer`. The
    /// document's `issuer` must equal it exactly (RFC 8414 §3.3), and the
    /// endpoints must pass [`endpoint_url`].
    pub(crate) fn from_json(json: &[u8], expected_issuer: &str) -> Result<Self, FetchError> {
        let raw: RawMetadata = serde_json::from_slice(json).map_err(|_| FetchError::Malformed)?;
        if raw.issuer != expected_issuer {
            return Err(FetchError::IssuerMismatch);
        }
        let endpoint = |u: Option<String>| u.as_deref().map(endpoint_url).transpose();
        Ok(ServerMetadata {
            issuer: raw.issuer,
            jwks_uri: endpoint(raw.jwks_uri)?,
            introspection_endpoint: endpoint(raw.introspection_endpoint)?,
        })
    }
}

/// The metadata locations for `issuer`, in the order tried: RFC 8414 §3.1
/// (well-known segment inserted before the issuer's path), then OpenID
/// Connect Discovery §4 (appended to it).
pub(crate) fn metadata_urls(issuer: &Url) -> [Url; 2] {
    let path = issuer.path().trim_end_matches('/');
    let mut rfc8414 = issuer.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    let mut oidc = issuer.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    for url in [&mut rfc8414, &mut oidc] {
        url.set_query(None);
    }
    [rfc8414, oidc]
}

/// Fetches and checks the metadata of `issuer`.
pub(crate) async fn discover(
    fetcher: &Fetcher,
    issuer: &str,
) -> Result<ServerMetadata, FetchError> {
    let issuer_url = endpoint_url(issuer)?;
    let [rfc8414, oidc] = metadata_urls(&issuer_url);
    let document = match fetcher.get_json(&rfc8414).await {
        Ok(document) => document,
        // Not published at the RFC 8414 location: try the OpenID one.
        Err(FetchError::Status(_)) => fetcher.get_json(&oidc).await?,
        Err(e) => return Err(e),
    };
    match ServerMetadata::from_json(&document, issuer) {
        // Something else answered there (an HTML catch-all page, say).
        Err(FetchError::Malformed) => {
            ServerMetadata::from_json(&fetcher.get_json(&oidc).await?, issuer)
        }
        other => other,
    }
}

/// An issuer's metadata, fetched on first use and refreshed on the keys'
/// schedule ([`RefreshTiming`]): once older than the refresh interval it is
/// fetched again (at most once per minimum interval, one fetch at a time),
/// so a changed `jwks_uri` or introspection endpoint is followed without a
/// restart. While a refresh fails the last metadata stays in use: it only
/// says where things are, and what it points to answers for itself (keys
/// staler than the maximum staleness are refused whatever the metadata).
/// Before the first success callers get the fetch error: 503.
pub(crate) struct Discovery {
    issuer: String,
    fetcher: Fetcher,
    timing: RefreshTiming,
    state: Mutex<DiscoveryState>,
    single_flight: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct DiscoveryState {
    current: Option<(Arc<ServerMetadata>, Instant)>,
    attempt: Option<(Instant, Option<FetchError>)>,
}

impl Discovery {
    pub(crate) fn new(issuer: String, fetcher: Fetcher, timing: RefreshTiming) -> Self {
        Discovery {
            issuer,
            fetcher,
            timing,
            state: Mutex::new(DiscoveryState::default()),
            single_flight: tokio::sync::Mutex::new(()),
        }
    }

    /// The metadata: the cached copy while younger than the refresh
    /// interval, else fetched now (or, within the minimum interval of the
    /// last attempt, the cached copy while usable).
    pub(crate) async fn metadata(&self) -> Result<Arc<ServerMetadata>, FetchError> {
        if let Some(fresh) = self.cached(self.timing.interval) {
            return Ok(fresh);
        }
        // One fetch at a time; while it runs, others go on with a usable
        // cached copy rather than wait for it.
        let _flight = match self.single_flight.try_lock() {
            Ok(guard) => guard,
            Err(_) => match self.cached(Duration::MAX) {
                Some(usable) => return Ok(usable),
                None => self.single_flight.lock().await,
            },
        };
        // Someone else may have fetched while this caller waited.
        if let Some(fresh) = self.cached(self.timing.interval) {
            return Ok(fresh);
        }
        if let Some(error) = self.recent_attempt() {
            return self.cached(Duration::MAX).ok_or(error);
        }
        self.note_attempt(None);
        let result = discover(&self.fetcher, &self.issuer).await;
        let now = Instant::now();
        match result {
            Ok(metadata) => {
                tracing::info!(
                    target: "senderbound::keys",
                    issuer = %self.issuer,
                    "discovered authorization server metadata"
                );
                let metadata = Arc::new(metadata);
                if let Ok(mut state) = self.state.lock() {
                    state.current = Some((metadata.clone(), now));
                    state.attempt = Some((now, None));
                }
                Ok(metadata)
            }
            Err(e) => {
                tracing::warn!(
                    target: "senderbound::keys",
                    issuer = %self.issuer,
                    error = %e,
                    "authorization server metadata discovery failed"
                );
                self.note_attempt(Some(e.clone()));
                self.cached(Duration::MAX).ok_or(e)
            }
        }
    }

    /// The cached metadata if fetched less than `max_age` ago.
    fn cached(&self, max_age: Duration) -> Option<Arc<ServerMetadata>> {
        let state = self.state.lock().ok()?;
        let (metadata, at) = state.current.as_ref()?;
        (at.elapsed() < max_age).then(|| metadata.clone())
    }

    /// The error to answer with if an attempt ran within the minimum
    /// interval (a failed one's error; a cancelled or successful one
    /// counts as unreachable, leaving the cache to decide).
    fn recent_attempt(&self) -> Option<FetchError> {
        let state = self.state.lock().ok()?;
        let (at, error) = state.attempt.as_ref()?;
        (at.elapsed() < self.timing.min_interval)
            .then(|| error.clone().unwrap_or(FetchError::Unreachable))
    }

    /// Notes an attempt before awaiting it, so a request cancelled
    /// mid-fetch does not let the next one fetch again at once.
    fn note_attempt(&self, error: Option<FetchError>) {
        if let Ok(mut state) = self.state.lock() {
            state.attempt = Some((Instant::now(), error));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_locations() {
        let urls = |i: &str| metadata_urls(&Url::parse(i).unwrap()).map(|u| u.to_string());
        assert_eq!(
            urls("https://as.example.com"),
            [
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            urls("https://as.example.com/tenant/1/"),
            [
                "https://as.example.com/.well-known/oauth-authorization-server/tenant/1",
                "https://as.example.com/tenant/1/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn metadata_checks() {
        let doc = br#"{"issuer":"https://as.example.com","jwks_uri":"https://as.example.com/jwks",
            "introspection_endpoint":"https://as.example.com/introspect","token_endpoint":"x"}"#;
        let m = ServerMetadata::from_json(doc, "https://as.example.com").unwrap();
        assert_eq!(m.jwks_uri.unwrap().as_str(), "https://as.example.com/jwks");
        assert!(m.introspection_endpoint.is_some());
        assert_eq!(
            ServerMetadata::from_json(doc, "https://as.example.com/").unwrap_err(),
            FetchError::IssuerMismatch
        );
        assert_eq!(
            ServerMetadata::from_json(
                br#"{"issuer":"https://as","jwks_uri":"http://as/jwks"}"#,
                "https://as"
            )
            .unwrap_err(),
            FetchError::InsecureUrl
        );
        assert_eq!(
            ServerMetadata::from_json(b"<html>", "https://as").unwrap_err(),
            FetchError::Malformed
        );
        assert_eq!(
            ServerMetadata::from_json(br#"{"jwks_uri":"https://as/jwks"}"#, "https://as")
                .unwrap_err(),
            FetchError::Malformed
        );
    }
}
