//! RFC 7662 token introspection, for authorization servers that issue
//! opaque access tokens (or when every token must be checked with the AS).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use senderbound_core::Error;
use senderbound_core::token::AccessToken;
use tokio::sync::Semaphore;
use url::Url;

use super::discovery::Discovery;
use super::fetch::{Auth, FetchError, Fetcher, form_encode};

/// Default longest time an introspection answer is cached.
const DEFAULT_INTROSPECTION_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default number of introspection requests in flight at once per issuer.
const DEFAULT_MAX_CONCURRENT_INTROSPECTIONS: usize = 64;

/// How this resource server authenticates to the introspection endpoint
/// (RFC 6749 §2.3.1).
///
/// ```
/// use senderbound::tokens::ClientAuth;
///
/// let auth = ClientAuth::client_secret_basic("resource-server", "s3cret");
/// assert!(!format!("{auth:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded client id and secret.
    ClientSecretBasic {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
    },
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
    },
}

impl ClientAuth {
    /// `client_secret_basic`.
    pub fn client_secret_basic(id: impl Into<String>, secret: impl Into<String>) -> Self {
        ClientAuth::ClientSecretBasic {
            client_id: id.into(),
            client_secret: secret.into(),
        }
    }

    /// `client_secret_post`.
    pub fn client_secret_post(id: impl Into<String>, secret: impl Into<String>) -> Self {
        ClientAuth::ClientSecretPost {
            client_id: id.into(),
            client_secret: secret.into(),
        }
    }
}

/// Token introspection (RFC 7662) for one [`Issuer`](super::Issuer): how
/// this resource server authenticates, where the endpoint is, and how its
/// answers are cached.
///
/// ```
/// use std::time::Duration;
/// use senderbound::tokens::{ClientAuth, Introspection};
///
/// let introspection = Introspection::new(ClientAuth::client_secret_basic("api", "secret"))
///     .endpoint("https://as.example.com/introspect") // default: from the AS metadata
///     .cache_ttl(Duration::from_secs(30))
///     .max_concurrent(16);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Introspection {
    pub(crate) auth: ClientAuth,
    pub(crate) endpoint: Option<String>,
    pub(crate) cache_ttl: Duration,
    pub(crate) max_concurrent: usize,
}

impl Introspection {
    /// Introspect with these client credentials, at the
    /// `introspection_endpoint` of the issuer's metadata (RFC 8414).
    pub fn new(auth: ClientAuth) -> Self {
        Introspection {
            auth,
            endpoint: None,
            cache_ttl: DEFAULT_INTROSPECTION_CACHE_TTL,
            max_concurrent: DEFAULT_MAX_CONCURRENT_INTROSPECTIONS,
        }
    }

    /// Introspect at this endpoint instead of the one in the metadata.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Cache an answer at most this long (default 60 s), and never past
    /// the token's `exp`.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// At most this many introspection requests in flight (default 64);
    /// more wait up to the fetch timeout, then get 503.
    pub fn max_concurrent(mut self, requests: usize) -> Self {
        self.max_concurrent = requests;
        self
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (method, id) = match self {
            ClientAuth::ClientSecretBasic { client_id, .. } => ("client_secret_basic", client_id),
            ClientAuth::ClientSecretPost { client_id, .. } => ("client_secret_post", client_id),
        };
        f.debug_struct("ClientAuth")
            .field("method", &method)
            .field("client_id", id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Where the introspection endpoint is.
pub(crate) enum EndpointLocation {
    Fixed(Url),
    Discovered(Arc<Discovery>),
}

pub(crate) struct Introspector {
    issuer: String,
    endpoint: EndpointLocation,
    auth: ClientAuth,
    fetcher: Fetcher,
    in_flight: Semaphore,
    wait: Duration,
}

impl Introspector {
    pub(crate) fn new(
        issuer: String,
        endpoint: EndpointLocation,
        auth: ClientAuth,
        fetcher: Fetcher,
        max_in_flight: usize,
        wait: Duration,
    ) -> Self {
        Introspector {
            issuer,
            endpoint,
            auth,
            fetcher,
            in_flight: Semaphore::new(max_in_flight.max(1)),
            wait,
        }
    }

    /// Asks the authorization server about `token`.
    pub(crate) async fn introspect(&self, token: &str) -> Result<AccessToken, Error> {
        let unavailable = |e: FetchError| {
            tracing::warn!(
                target: "senderbound::keys",
                issuer = %self.issuer,
                error = %e,
                "token introspection failed"
            );
            Error::TokenVerifierUnavailable
        };
        let url = match &self.endpoint {
            EndpointLocation::Fixed(url) => url.clone(),
            EndpointLocation::Discovered(discovery) => discovery
                .metadata()
                .await
                .map_err(unavailable)?
                .introspection_endpoint
                .clone()
                .ok_or(FetchError::MissingEndpoint)
                .map_err(unavailable)?,
        };
        // Bound the load a flood of unknown tokens puts on the AS.
        let _permit = tokio::time::timeout(self.wait, self.in_flight.acquire())
            .await
            .map_err(|_| Error::TokenVerifierUnavailable)?
            .map_err(|_| Error::TokenVerifierUnavailable)?;
        let mut form = format!("token={}&token_type_hint=access_token", form_encode(token));
        let auth = match &self.auth {
            ClientAuth::ClientSecretBasic {
                client_id,
                client_secret,
            } => Auth::Basic {
                id: client_id,
                secret: client_secret,
            },
            ClientAuth::ClientSecretPost {
                client_id,
                client_secret,
            } => {
                form.push_str("&client_id=");
                form.push_str(&form_encode(client_id));
                form.push_str("&client_secret=");
                form.push_str(&form_encode(client_secret));
                Auth::None
            }
        };
        let answer = self
            .fetcher
            .post_form(&url, auth, form)
            .await
            .map_err(unavailable)?;
        AccessToken::from_introspection(&answer, &self.issuer)
    }
}
