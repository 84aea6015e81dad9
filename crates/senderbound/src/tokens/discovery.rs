//! Authorization server metadata discovery (RFC 8414, with the OpenID
//! Connect Discovery location as a fallback).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;

use super::fetch::{FetchError, Fetcher, endpoint_url};

/// The parts of an authorization server's metadata senderbound uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMetadata {
    /// `issuer`, equal to the configured issuer.
    pub issuer: String,
    /// `jwks_uri`, checked by [`endpoint_url`].
    pub jwks_uri: Option<Url>,
    /// `introspection_endpoint`, checked by [`endpoint_url`].
    pub introspection_endpoint: Option<Url>,
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
    pub fn from_json(json: &[u8], expected_issuer: &str) -> Result<Self, FetchError> {
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

/// An issuer's metadata, fetched on first use and then kept. A failed
/// fetch is retried at most once per `min_retry`, so an unreachable AS is
/// not asked on every request.
pub(crate) struct Discovery {
    issuer: String,
    fetcher: Fetcher,
    metadata: tokio::sync::OnceCell<ServerMetadata>,
    last_failure: Mutex<Option<(Instant, FetchError)>>,
    min_retry: Duration,
}

impl Discovery {
    pub(crate) fn new(issuer: String, fetcher: Fetcher, min_retry: Duration) -> Self {
        Discovery {
            issuer,
            fetcher,
            metadata: tokio::sync::OnceCell::new(),
            last_failure: Mutex::new(None),
            min_retry,
        }
    }

    /// The metadata, fetching it if needed.
    pub(crate) async fn metadata(&self) -> Result<&ServerMetadata, FetchError> {
        if let Some(metadata) = self.metadata.get() {
            return Ok(metadata);
        }
        if let Ok(failure) = self.last_failure.lock()
            && let Some((at, error)) = failure.as_ref()
            && at.elapsed() < self.min_retry
        {
            return Err(error.clone());
        }
        self.metadata
            .get_or_try_init(|| async {
                // Inits run one at a time. Check again here, and note the
                // attempt before fetching, so neither waiters queued behind a
                // failed attempt nor cancelled requests can exceed one fetch
                // per `min_retry`.
                if let Ok(mut failure) = self.last_failure.lock() {
                    if let Some((at, error)) = failure.as_ref()
                        && at.elapsed() < self.min_retry
                    {
                        return Err(error.clone());
                    }
                    *failure = Some((Instant::now(), FetchError::Unreachable));
                }
                let result = discover(&self.fetcher, &self.issuer).await;
                match &result {
                    Ok(_) => tracing::info!(
                        target: "senderbound::keys",
                        issuer = %self.issuer,
                        "discovered authorization server metadata"
                    ),
                    Err(e) => {
                        tracing::warn!(
                            target: "senderbound::keys",
                            issuer = %self.issuer,
                            error = %e,
                            "authorization server metadata discovery failed"
                        );
                        if let Ok(mut failure) = self.last_failure.lock() {
                            *failure = Some((Instant::now(), e.clone()));
                        }
                    }
                }
                result
            })
            .await
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
