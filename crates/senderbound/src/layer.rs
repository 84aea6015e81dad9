//! [`SenderBound`]: configuration, its builder, and the [`SenderBoundLayer`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use senderbound_core::jwk::{JwkSet, JwkSetError, PublicJwk};
use senderbound_core::proof::ProofPolicy;
use senderbound_core::token::{TokenRules, TypPolicy};
use senderbound_core::{Algorithm, AlgorithmSet, Clock, SystemClock};
use tower_layer::Layer;

use crate::challenge::ChallengeConfig;
use crate::key_sharing::{Detector, KeySharing};
use crate::metadata::{Facts, ResourceMetadata, ServedMetadata};
use crate::mtls::{ClientCertSource, ConnectionCert, ForwardedClientCert, TrustedProxies};
use crate::profile::{Checked, Profile, ProfileViolation};
use crate::replay::{CompactReplayStore, DEFAULT_COMPACT_REPLAY_CAPACITY, ReplayStore};
use crate::revocation::RevocationCheck;
use crate::service::{SenderBoundService, Shared};
use crate::target_uri::PublicOrigin;
use crate::tokens::cache::{DEFAULT_TOKEN_CACHE_CAPACITY, TokenCache};
use crate::tokens::{
    ClientAuth, DEFAULT_FETCH_TIMEOUT, DEFAULT_INTROSPECTION_CACHE_TTL, DEFAULT_JWKS_MAX_STALE,
    DEFAULT_JWKS_MIN_REFRESH_INTERVAL, DEFAULT_JWKS_REFRESH_INTERVAL,
    DEFAULT_MAX_CONCURRENT_INTROSPECTIONS, FetchError, Fetcher, Issuer, IssuerContext,
    IssuerRouter, RefreshTiming, TokenFormat, TokenVerifier, default_client,
};
use senderbound_core::nonce::Nonces;

/// A configured sender-constrained token check, shared by every route it
/// protects. Build one with [`SenderBound::builder`], then wrap a router with
/// [`SenderBound::layer`].
///
/// ```
/// use axum::{Router, routing::get};
/// use senderbound::{SenderBound, Sender};
///
/// # fn main() -> Result<(), senderbound::BuildError> {
/// let auth = SenderBound::builder()
///     .issuer("https://as.example.com")
///     .audience("https://api.example.com")
///     .public_base_url("https://api.example.com") // what clients sign as `htu`
///     .jwks_json(r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"as-1",
///         "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
///         "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#)
///     .build()?;
///
/// let app: Router = Router::new()
///     .route("/items", get(|sender: Sender| async move { sender.jkt().unwrap_or("").to_owned() }))
///     .layer(auth.layer());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SenderBound {
    shared: Arc<Shared>,
}

impl fmt::Debug for SenderBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderBound")
            .field("issuers", &self.shared.token_rules.issuers())
            .field("audiences", &self.shared.token_rules.audiences())
            .field("accept_bearer", &self.shared.accept_bearer)
            .field("accept_mtls_bound", &self.shared.accept_mtls)
            .finish_non_exhaustive()
    }
}

impl SenderBound {
    /// Starts a configuration.
    pub fn builder() -> SenderBoundBuilder {
        SenderBoundBuilder::default()
    }

    /// The tower [`Layer`] to wrap a router or service with.
    pub fn layer(&self) -> SenderBoundLayer {
        SenderBoundLayer {
            shared: self.shared.clone(),
        }
    }

    /// The DPoP algorithms accepted (what the `algs` challenge parameter lists).
    pub fn dpop_algorithms(&self) -> AlgorithmSet {
        self.shared.proof_policy.accepted_algorithms()
    }

    /// Where the Layer serves this resource's RFC 9728 metadata (and what
    /// its challenges name in `resource_metadata`), if
    /// [`resource_metadata`](SenderBoundBuilder::resource_metadata) was set.
    pub fn resource_metadata_url(&self) -> Option<&str> {
        self.shared.metadata.as_ref().map(|m| m.url.as_str())
    }

    /// A router that serves only the resource metadata (empty without
    /// [`resource_metadata`](SenderBoundBuilder::resource_metadata)).
    ///
    /// The Layer answers the metadata itself when it wraps the whole server.
    /// When it does not (it is applied with `route_layer`, or to a router
    /// nested under a prefix), the well-known URL at the host's root never
    /// reaches it: merge this router at the root, outside the Layer.
    ///
    /// ```
    /// # use axum::{Router, routing::get};
    /// # use senderbound::{SenderBound, metadata::ResourceMetadata};
    /// # fn main() -> Result<(), senderbound::BuildError> {
    /// let auth = SenderBound::builder()
    ///     .issuer("https://login.example.com")
    ///     .audience("https://api.example.com/api/mcp")
    ///     .public_base_url("https://api.example.com")
    ///     .resource_metadata(ResourceMetadata::new())
    ///     .build()?;
    /// let api = Router::new().route("/mcp", get(|| async { "…" })).layer(auth.layer());
    /// let app: Router = Router::new()
    ///     .nest("/api", api)
    ///     .merge(auth.resource_metadata_router());
    /// # Ok(()) }
    /// ```
    pub fn resource_metadata_router(&self) -> axum::Router {
        let mut router = axum::Router::new();
        let Some(metadata) = &self.shared.metadata else {
            return router;
        };
        for path in metadata.paths() {
            let shared = self.shared.clone();
            let served = path.clone();
            router = router.route(
                path,
                axum::routing::get(move |method: http::Method| async move {
                    shared
                        .metadata
                        .as_ref()
                        .and_then(|m| m.answer(&method, &served))
                        .unwrap_or_else(|| {
                            axum::response::IntoResponse::into_response(http::StatusCode::NOT_FOUND)
                        })
                }),
            );
        }
        router
    }
}

/// A tower [`Layer`] that admits only requests with a valid sender-constrained
/// access token. See [`SenderBound`].
#[derive(Clone)]
pub struct SenderBoundLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for SenderBoundLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderBoundLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SenderBoundLayer {
    type Service = SenderBoundService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SenderBoundService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Why a configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// No trusted issuer was given.
    NoIssuer,
    /// No audience (this resource's identifier, RFC 8707) was given.
    NoAudience,
    /// Neither keys nor a token verifier were given.
    NoTokenVerifier,
    /// The JWKS document could not be used.
    Jwks(JwkSetError),
    /// A single key could not be used.
    Jwk(senderbound_core::jwk::JwkError),
    /// The key set holds no usable signing key.
    NoUsableKey,
    /// The DPoP or token algorithm allow-list is empty.
    NoAlgorithms,
    /// The public base URL is not an absolute http(s) URL without query or
    /// fragment, or an allowed host is not a host name with optional port.
    InvalidPublicBaseUrl,
    /// Neither a public base URL nor allowed hosts were given, so the `htu`
    /// host could not be checked (use `allow_any_host()` to opt out explicitly).
    NoPublicOrigin,
    /// Keys, a JWKS URI or introspection were given to the builder itself
    /// while several issuers are trusted: they would not be tied to one
    /// issuer, so one issuer could sign for another. Configure each with
    /// [`Issuer`] and [`trust`](SenderBoundBuilder::trust).
    SeveralIssuersShareKeys,
    /// An issuer, JWKS or introspection URL cannot be used (it must be
    /// `https`, or `http` to a loopback address).
    Endpoint(FetchError),
    /// An introspection endpoint was given without client credentials.
    IntrospectionWithoutCredentials,
    /// Both fixed keys and a JWKS URI were given for one issuer.
    ConflictingKeySources,
    /// More than one issuer introspects opaque tokens: an opaque token names
    /// no issuer, and sending it to the wrong one would leak it.
    AmbiguousOpaqueTokens,
    /// The HTTP client for discovery, JWKS and introspection could not be
    /// created.
    HttpClient,
    /// The same issuer is trusted twice.
    DuplicateIssuer,
    /// The realm contains characters that cannot be quoted in a challenge.
    InvalidRealm,
    /// `freshness_from_nonce()` without `require_nonce(..)`.
    FreshnessWithoutNonce,
    /// Key-sharing detection with no capacity, or a window of zero or
    /// longer than a week.
    InvalidKeySharing,
    /// The configuration does not comply with the profile it chose
    /// ([`profile`](SenderBoundBuilder::profile)).
    Profile(ProfileViolation),
    /// The resource metadata (RFC 9728) cannot describe this resource: its
    /// `resource` must be one of the audiences and an `https` URL (`http`
    /// only on loopback) without query or fragment, and its documentation,
    /// policy and terms links absolute http(s) URLs.
    InvalidResourceMetadata,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoIssuer => f.write_str("no trusted issuer configured"),
            BuildError::NoAudience => f.write_str("no audience (resource identifier) configured"),
            BuildError::NoTokenVerifier => {
                f.write_str("no token keys (jwks/token_key) or token verifier configured")
            }
            BuildError::Jwks(e) => write!(f, "JWKS: {e}"),
            BuildError::Jwk(e) => write!(f, "token key: {e}"),
            BuildError::NoUsableKey => f.write_str("the key set has no usable signing key"),
            BuildError::NoAlgorithms => f.write_str("an algorithm allow-list is empty"),
            BuildError::InvalidPublicBaseUrl => f.write_str(
                "public base URL must be an absolute http(s) URL without query or fragment, and allowed hosts host[:port]",
            ),
            BuildError::NoPublicOrigin => f.write_str(
                "set public_base_url() or allowed_hosts() so the proof's htu host is checked (or allow_any_host())",
            ),
            BuildError::SeveralIssuersShareKeys => f.write_str(
                "several issuers cannot share one key set: use one issuer per layer or a custom TokenVerifier",
            ),
            BuildError::Endpoint(e) => write!(f, "authorization server URL: {e}"),
            BuildError::IntrospectionWithoutCredentials => {
                f.write_str("an introspection endpoint needs client credentials (client_auth)")
            }
            BuildError::ConflictingKeySources => {
                f.write_str("give an issuer either fixed keys or a jwks_uri, not both")
            }
            BuildError::AmbiguousOpaqueTokens => f.write_str(
                "at most one issuer may introspect opaque tokens (set TokenFormat::Jwt on the others)",
            ),
            BuildError::HttpClient => f.write_str("the HTTP client could not be created"),
            BuildError::DuplicateIssuer => f.write_str("the same issuer is trusted twice"),
            BuildError::InvalidRealm => {
                f.write_str("realm must be printable ASCII without quotes or backslashes")
            }
            BuildError::FreshnessWithoutNonce => {
                f.write_str("freshness_from_nonce() needs require_nonce(..)")
            }
            BuildError::InvalidKeySharing => f.write_str(
                "key sharing: capacity must be positive and the window between 1 s and 7 days",
            ),
            BuildError::Profile(violation) => write!(f, "{violation}"),
            BuildError::InvalidResourceMetadata => f.write_str(
                "resource metadata: the resource must be an audience and an https URL (http only on loopback) without query or fragment; links must be http(s) URLs",
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// Builder for [`SenderBound`]; every method reads as a sentence about what
/// the resource accepts.
///
/// Most deployments need three lines: the issuer (its metadata and keys are
/// discovered, RFC 8414), this resource's audience, and its public URL:
///
/// ```
/// use senderbound::SenderBound;
///
/// # fn main() -> Result<(), senderbound::BuildError> {
/// let auth = SenderBound::builder()
///     .issuer("https://login.example.com")
///     .audience("https://api.example.com")
///     .public_base_url("https://api.example.com")
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct SenderBoundBuilder {
    issuers: Vec<Issuer>,
    audiences: Vec<String>,
    /// Key, JWKS URI and introspection settings given to the builder itself:
    /// they belong to the one issuer.
    single: Issuer,
    single_used: bool,
    verifier: Option<Arc<dyn TokenVerifier>>,
    proof_policy: ProofPolicy,
    token_algorithms: AlgorithmSet,
    typ: TypPolicy,
    token_leeway: Option<u64>,
    max_token_bytes: Option<usize>,
    max_token_lifetime: Option<u64>,
    accept_bearer: bool,
    public_base_url: Option<String>,
    allowed_hosts: Option<Vec<String>>,
    any_host: bool,
    https: bool,
    replay: Option<Arc<dyn ReplayStore>>,
    token_cache_capacity: u64,
    clock: Arc<dyn Clock>,
    strip_credentials: bool,
    realm: Option<String>,
    http_client: Option<reqwest::Client>,
    fetch_timeout: Duration,
    jwks_timing: RefreshTiming,
    introspection_cache_ttl: Duration,
    max_concurrent_introspections: usize,
    revocation: Option<Arc<dyn RevocationCheck>>,
    client_certs: Arc<dyn ClientCertSource>,
    accept_mtls: bool,
    nonces: Option<Nonces>,
    freshness_from_nonce: bool,
    resource_metadata: Option<ResourceMetadata>,
    key_sharing: Option<KeySharing>,
    profile: Option<Profile>,
    /// Settings made explicitly, which a profile leaves alone (it checks them).
    explicit: Explicit,
}

/// Which of the settings a profile fills in were set explicitly.
#[derive(Default, Clone, Copy)]
struct Explicit {
    dpop_algorithms: bool,
    token_algorithms: bool,
    proof_max_age: bool,
    proof_max_future_skew: bool,
}

impl Default for SenderBoundBuilder {
    fn default() -> Self {
        SenderBoundBuilder {
            issuers: Vec::new(),
            audiences: Vec::new(),
            single: Issuer::new(""),
            single_used: false,
            verifier: None,
            proof_policy: ProofPolicy::new(),
            token_algorithms: AlgorithmSet::all(),
            typ: TypPolicy::default(),
            token_leeway: None,
            max_token_bytes: None,
            max_token_lifetime: None,
            accept_bearer: false,
            public_base_url: None,
            allowed_hosts: None,
            any_host: false,
            https: true,
            replay: None,
            token_cache_capacity: DEFAULT_TOKEN_CACHE_CAPACITY,
            clock: Arc::new(SystemClock),
            strip_credentials: true,
            realm: None,
            http_client: None,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            jwks_timing: RefreshTiming {
                interval: DEFAULT_JWKS_REFRESH_INTERVAL,
                min_interval: DEFAULT_JWKS_MIN_REFRESH_INTERVAL,
                max_stale: DEFAULT_JWKS_MAX_STALE,
            },
            introspection_cache_ttl: DEFAULT_INTROSPECTION_CACHE_TTL,
            max_concurrent_introspections: DEFAULT_MAX_CONCURRENT_INTROSPECTIONS,
            revocation: None,
            client_certs: Arc::new(ConnectionCert),
            accept_mtls: false,
            nonces: None,
            freshness_from_nonce: false,
            resource_metadata: None,
            key_sharing: None,
            profile: None,
            explicit: Explicit::default(),
        }
    }
}

impl fmt::Debug for SenderBoundBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderBoundBuilder")
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl SenderBoundBuilder {
    /// Trust access tokens issued by `issuer` (exact `iss` match). Unless
    /// keys, a JWKS URI or an introspection endpoint are given, the issuer's
    /// metadata is discovered (RFC 8414, then OpenID Connect Discovery) on
    /// first use and its `jwks_uri` followed. To trust several issuers,
    /// configure each with [`trust`](Self::trust).
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        self.trust(Issuer::new(issuer))
    }

    /// Trust this authorization server, configured on its own: its keys
    /// verify its tokens only. Call once per issuer.
    pub fn trust(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// This resource's identifier: tokens must name it in `aud` (RFC 8707).
    /// May be called more than once.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    fn single(mut self, f: impl FnOnce(Issuer) -> Issuer) -> Self {
        self.single = f(self.single);
        self.single_used = true;
        self
    }

    /// Verify token signatures with the keys of this JWKS document (fixed
    /// keys for the one issuer: no discovery, no refresh).
    pub fn jwks_json(self, jwks: impl Into<String>) -> Self {
        let jwks = jwks.into();
        self.single(|i| i.jwks_json(jwks))
    }

    /// Verify token signatures with these fixed keys.
    pub fn jwks(self, keys: JwkSet) -> Self {
        self.single(|i| i.jwks(keys))
    }

    /// Verify token signatures with this fixed key (a JWK's JSON text).
    pub fn token_key_json(self, jwk: &str) -> Self {
        self.single(|i| i.token_key_json(jwk))
    }

    /// Verify token signatures with this fixed key.
    pub fn token_key(self, jwk: PublicJwk) -> Self {
        self.single(|i| i.token_key(jwk))
    }

    /// Fetch the issuer's keys from this URL instead of discovering it.
    pub fn jwks_uri(self, uri: impl Into<String>) -> Self {
        let uri = uri.into();
        self.single(|i| i.jwks_uri(uri))
    }

    /// Introspect tokens (RFC 7662) at `endpoint`, authenticating with
    /// `auth`. Opaque tokens are introspected; JWTs are still verified with
    /// the issuer's keys (given, or discovered), unless
    /// [`TokenFormat::Introspect`] asks for every token to be introspected
    /// (see [`token_format`](Self::token_format)).
    pub fn introspection(self, endpoint: impl Into<String>, auth: ClientAuth) -> Self {
        let endpoint = endpoint.into();
        self.single(|i| i.introspection_endpoint(endpoint).client_auth(auth))
    }

    /// Introspect tokens at the endpoint named in the issuer's metadata.
    pub fn introspect_with(self, auth: ClientAuth) -> Self {
        self.single(|i| i.client_auth(auth))
    }

    /// Which token forms to accept from the issuer (default
    /// [`TokenFormat::Auto`]).
    pub fn token_format(self, format: TokenFormat) -> Self {
        self.single(|i| i.token_format(format))
    }

    /// Verify tokens with a custom [`TokenVerifier`] instead of fixed keys.
    /// Issuer, audience, time and binding are still checked by the Layer.
    pub fn token_verifier(mut self, verifier: impl TokenVerifier) -> Self {
        self.verifier = Some(Arc::new(verifier));
        self
    }

    /// Fetch metadata, keys and introspection answers with this client
    /// (custom root certificates, proxy, …). Its own timeout and redirect
    /// settings apply. Default: rustls with the platform's roots, no
    /// redirects, [`fetch_timeout`](Self::fetch_timeout).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Give up on a metadata, JWKS or introspection fetch after this long
    /// (default 5 s), answering 503 meanwhile if no cached answer helps.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Refresh fetched keys once they are this old (default 5 minutes).
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_timing.interval = interval;
        self
    }

    /// Fetch keys (or retry discovery) at most once per `interval`, however
    /// many tokens name unknown keys (default 10 s).
    pub fn jwks_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_timing.min_interval = interval;
        self
    }

    /// Keep using fetched keys while the AS is unreachable for at most this
    /// long after the last successful fetch (default 24 h); then answer 503,
    /// so a key the AS withdrew meanwhile cannot live on indefinitely.
    pub fn jwks_max_stale(mut self, max: Duration) -> Self {
        self.jwks_timing.max_stale = max;
        self
    }

    /// Cache introspection answers at most this long (default 60 s), and
    /// never past the token's `exp`.
    pub fn introspection_cache_ttl(mut self, ttl: Duration) -> Self {
        self.introspection_cache_ttl = ttl;
        self
    }

    /// At most this many introspection requests in flight per issuer
    /// (default 64); more wait up to the fetch timeout, then get 503.
    pub fn max_concurrent_introspections(mut self, n: usize) -> Self {
        self.max_concurrent_introspections = n;
        self
    }

    /// Refuse tokens issued to live longer than `lifetime` (`exp - iat`).
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = Some(lifetime.as_secs());
        self
    }

    /// Consult `check` on every request, cached tokens included; see
    /// [`Revocations`](crate::Revocations).
    pub fn revocations(mut self, check: impl RevocationCheck) -> Self {
        self.revocation = Some(Arc::new(check));
        self
    }

    /// Accept DPoP proofs signed with these algorithms only.
    ///
    /// Default: every asymmetric JOSE algorithm ([`Algorithm::ALL`]: ES256,
    /// ES384, ES512, EdDSA, Ed25519, RS256, RS384, RS512, PS256, PS384,
    /// PS512). The choice is the client's, every one of them is sound with
    /// the key checks made here (Ed25519 keys of small order refused, RSA
    /// keys of 2048 to 4096 bits), and a client whose algorithm is refused
    /// cannot call at all; narrow the list for a profile that requires it
    /// (FAPI 2.0 allows PS256, ES256 and EdDSA/Ed25519 only). `EdDSA` and
    /// RFC 9864's `Ed25519` name the same signature: allow both, or clients
    /// using the other name are refused. `none` and MACs are never accepted.
    pub fn dpop_algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.proof_policy = self.proof_policy.algorithms(algs);
        self.explicit.dpop_algorithms = true;
        self
    }

    /// Accept access tokens signed with these algorithms only (default: all
    /// supported, [`Algorithm::ALL`]: the authorization server is trusted to
    /// choose).
    pub fn token_algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.token_algorithms = algs.into_iter().collect();
        self.explicit.token_algorithms = true;
        self
    }

    /// Refuse proofs older than `age` (default 60 s). Also how long each
    /// `jti` is remembered.
    pub fn proof_max_age(mut self, age: Duration) -> Self {
        self.proof_policy = self.proof_policy.max_age(age.as_secs());
        self.explicit.proof_max_age = true;
        self
    }

    /// Accept proofs whose `iat` is up to `skew` ahead of this server's clock
    /// (default 15 s).
    pub fn proof_max_future_skew(mut self, skew: Duration) -> Self {
        self.proof_policy = self.proof_policy.max_future_skew(skew.as_secs());
        self.explicit.proof_max_future_skew = true;
        self
    }

    /// Refuse `DPoP` headers larger than `bytes` (default 8 KiB).
    pub fn max_proof_bytes(mut self, bytes: usize) -> Self {
        self.proof_policy = self.proof_policy.max_proof_bytes(bytes);
        self
    }

    /// How many clients' proof keys to remember, so each is read once
    /// (default 4,096; 0 reads every proof's key afresh). See
    /// [`senderbound_core::key_cache`].
    pub fn proof_key_cache_capacity(mut self, capacity: usize) -> Self {
        self.proof_policy = self.proof_policy.key_cache_capacity(capacity);
        self
    }

    /// Refuse access tokens larger than `bytes` (default 16 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = Some(bytes);
        self
    }

    /// Leeway for token `exp` / `nbf` (default 10 s).
    pub fn token_leeway(mut self, leeway: Duration) -> Self {
        self.token_leeway = Some(leeway.as_secs());
        self
    }

    /// How strictly the JWT `typ` is checked (default: `at+jwt` required).
    pub fn token_typ(mut self, typ: TypPolicy) -> Self {
        self.typ = typ;
        self
    }

    /// Require a server nonce (RFC 9449 §8–9) in every DPoP proof, issued
    /// and checked statelessly by `nonces`: give every server of a fleet the
    /// same secret and each accepts the others' nonces. A proof without a
    /// valid nonce gets 401 `use_dpop_nonce` with a fresh `DPoP-Nonce`
    /// header; an accepted request whose nonce is past its first step gets
    /// the next nonce in its response's `DPoP-Nonce`.
    ///
    /// ```
    /// use senderbound::core::nonce::Nonces;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret = b"32+ random bytes shared by the fleet"; // from your secret store
    /// let auth = senderbound::SenderBound::builder()
    ///     .issuer("https://as.example.com")
    ///     .audience("https://api.example.com")
    ///     .public_base_url("https://api.example.com")
    ///     .require_nonce(Nonces::new(secret)?)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn require_nonce(mut self, nonces: Nonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// With [`require_nonce`](Self::require_nonce): let a proof's freshness
    /// rest on its nonce, accepting an `iat` as old as a nonce lives
    /// (`window × step`) instead of [`proof_max_age`](Self::proof_max_age).
    /// For clients that sign proofs ahead of use or whose clocks lag; a
    /// clock running ahead is still limited by
    /// [`proof_max_future_skew`](Self::proof_max_future_skew). `jti`s are
    /// remembered correspondingly longer.
    pub fn freshness_from_nonce(mut self) -> Self {
        self.freshness_from_nonce = true;
        self
    }

    /// Also accept tokens bound to a client certificate (`cnf["x5t#S256"]`,
    /// RFC 8705): with the `Bearer` scheme, over a connection that presents
    /// the certificate they name. The certificate is the one the TLS server
    /// put into the request (`senderbound::tls::serve` does); behind a
    /// TLS-terminating proxy use
    /// [`trust_client_cert_header_from`](Self::trust_client_cert_header_from)
    /// instead. Challenges then offer `Bearer` too. Without it (the default)
    /// certificate-bound tokens get 401 `invalid_token`. See [`mtls`](crate::mtls).
    pub fn accept_mtls_bound(mut self) -> Self {
        self.accept_mtls = true;
        self
    }

    /// Accept certificate-bound tokens, with client certificates from
    /// `source` instead of the TLS connection
    /// ([`ConnectionCert`](crate::mtls::ConnectionCert)).
    pub fn client_cert_source(mut self, source: impl ClientCertSource) -> Self {
        self.client_certs = Arc::new(source);
        self.accept_mtls_bound()
    }

    /// Accept certificate-bound tokens, with client certificates from the
    /// RFC 9440 `Client-Cert` header of requests that come from these
    /// proxies, and from the TLS connection for every other peer; the
    /// header is removed from everyone else's requests. Shorthand for
    /// [`client_cert_source`](Self::client_cert_source)`(`[`ForwardedClientCert::new`]`(proxies))`.
    pub fn trust_client_cert_header_from(self, proxies: TrustedProxies) -> Self {
        self.client_cert_source(ForwardedClientCert::new(proxies))
    }

    /// Also accept unbound bearer tokens with the `Bearer` scheme. Tokens
    /// bound with `cnf.jkt` are still refused as `Bearer` (downgrade).
    pub fn allow_bearer(mut self) -> Self {
        self.accept_bearer = true;
        self
    }

    /// The public URL clients address this service by, including any path
    /// prefix a proxy strips (e.g. `https://api.example.com/v1`). The `htu`
    /// of each proof must be this base followed by the request path.
    /// Without it, the URI is `https://` + `Host` + path.
    pub fn public_base_url(mut self, url: impl Into<String>) -> Self {
        self.public_base_url = Some(url.into());
        self
    }

    /// Without a public base URL: accept requests addressed to these hosts
    /// (`name` or `name:port`, from `Host` or the request's authority). The
    /// `htu` is then `https://` + that host + the request path.
    pub fn allowed_hosts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, hosts: I) -> Self {
        self.any_host = false;
        self.allowed_hosts
            .get_or_insert_with(Vec::new)
            .extend(hosts.into_iter().map(Into::into));
        self
    }

    /// Without a public base URL: accept whatever host the request names.
    /// A proof made for another server that accepts the same tokens could
    /// then be replayed here; prefer [`allowed_hosts`](Self::allowed_hosts).
    /// Replaces any earlier [`allowed_hosts`](Self::allowed_hosts).
    pub fn allow_any_host(mut self) -> Self {
        self.any_host = true;
        self.allowed_hosts = None;
        self
    }

    /// When no public base URL is set, build the request URI with `http://`
    /// instead of `https://` (plain-HTTP development servers only).
    pub fn assume_plain_http(mut self) -> Self {
        self.https = false;
        self
    }

    /// Where used proofs are remembered (default: a
    /// [`CompactReplayStore`] of [`DEFAULT_COMPACT_REPLAY_CAPACITY`] proofs,
    /// about 36 bytes each).
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.replay = Some(Arc::new(store));
        self
    }

    /// How many verified tokens to cache (default 10,000).
    pub fn token_cache_capacity(mut self, capacity: u64) -> Self {
        self.token_cache_capacity = capacity;
        self
    }

    /// The clock for every time check (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Hand the inner service the `Authorization` and `DPoP` headers too.
    /// By default they are removed, so handlers cannot pass the token on.
    pub fn keep_credential_headers(mut self) -> Self {
        self.strip_credentials = false;
        self
    }

    /// A `realm` for the challenges.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Serve this resource's OAuth 2.0 Protected Resource Metadata (RFC
    /// 9728) at its well-known URL, built from this configuration plus
    /// `metadata`, and name that URL in every challenge
    /// (`resource_metadata="…"`), so clients such as MCP clients can
    /// discover the authorization server. See [`metadata`](crate::metadata).
    pub fn resource_metadata(mut self, metadata: ResourceMetadata) -> Self {
        self.resource_metadata = Some(metadata);
        self
    }

    /// Comply with `profile`: what it requires (algorithms, the proof time
    /// window, metadata; see [`profile`](crate::profile) for the table of
    /// each) fills in every such setting not made explicitly, before or
    /// after this call, and [`build`](Self::build) refuses a configuration
    /// that does not comply (an explicit setting outside the profile).
    /// Default: no profile, the defaults documented on each setter.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// Watch for one key (or client certificate) used with tokens of
    /// different clients or subjects, and audit it as suspicious (or refuse
    /// it). See [`key_sharing`](crate::key_sharing).
    pub fn detect_key_sharing(mut self, config: KeySharing) -> Self {
        self.key_sharing = Some(config);
        self
    }

    /// The proof policy, token algorithms and resource metadata with the
    /// profile's values filled in where nothing was set explicitly.
    fn with_profile(&self) -> (ProofPolicy, AlgorithmSet, Option<ResourceMetadata>) {
        let mut proof_policy = self.proof_policy.clone();
        let mut token_algorithms = self.token_algorithms;
        let mut metadata = self.resource_metadata.clone();
        if let Some(profile) = self.profile {
            let explicit = self.explicit;
            if !explicit.dpop_algorithms {
                proof_policy = proof_policy.algorithms(profile.algorithms().iter());
            }
            if !explicit.proof_max_age {
                proof_policy = proof_policy.max_age(profile.proof_max_age().as_secs());
            }
            if !explicit.proof_max_future_skew {
                proof_policy =
                    proof_policy.max_future_skew(profile.proof_max_future_skew().as_secs());
            }
            if !explicit.token_algorithms {
                token_algorithms = profile.algorithms();
            }
            if profile.serves_resource_metadata() && metadata.is_none() {
                metadata = Some(ResourceMetadata::new());
            }
        }
        (proof_policy, token_algorithms, metadata)
    }

    /// Checks the configuration and builds it. Nothing is fetched yet:
    /// discovery and keys are fetched on first use, so a server can start
    /// while its authorization server is still coming up (answering 503).
    pub fn build(self) -> Result<SenderBound, BuildError> {
        if self.issuers.is_empty() {
            return Err(BuildError::NoIssuer);
        }
        if self.audiences.is_empty() {
            return Err(BuildError::NoAudience);
        }
        if let Some(e) = self.single.key_errors.first() {
            return Err(BuildError::Jwk(*e));
        }
        let (proof_policy, token_algorithms, resource_metadata) = self.with_profile();
        if proof_policy.accepted_algorithms().is_empty() || token_algorithms.is_empty() {
            return Err(BuildError::NoAlgorithms);
        }
        let dpop_algorithms = proof_policy.accepted_algorithms();
        let proof_policy = match (&self.nonces, self.freshness_from_nonce) {
            (Some(nonces), true) => proof_policy.max_age(nonces.lifetime_secs()),
            (None, true) => return Err(BuildError::FreshnessWithoutNonce),
            (_, false) => proof_policy,
        };
        if let Some(profile) = self.profile {
            profile
                .check(&Checked {
                    accept_bearer: self.accept_bearer,
                    dpop_algorithms: proof_policy.accepted_algorithms(),
                    token_algorithms,
                    proof_max_age: proof_policy.proof_max_age(),
                    proof_max_future_skew: proof_policy.proof_max_future_skew(),
                    serves_resource_metadata: resource_metadata.is_some(),
                })
                .map_err(BuildError::Profile)?;
        }
        let quotable = |r: &String| {
            r.chars()
                .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\')
        };
        if self.realm.as_ref().is_some_and(|r| !quotable(r)) {
            return Err(BuildError::InvalidRealm);
        }
        let names = self.issuers.iter().map(|i| i.issuer().to_owned());
        let mut rules = TokenRules::new(names, self.audiences)
            .algorithms(token_algorithms.iter())
            .typ_policy(self.typ);
        if let Some(leeway) = self.token_leeway {
            rules = rules.leeway(leeway);
        }
        if let Some(bytes) = self.max_token_bytes {
            rules = rules.max_token_bytes(bytes);
        }
        if let Some(secs) = self.max_token_lifetime {
            rules = rules.max_lifetime(secs);
        }

        let token_cache = TokenCache::new(self.token_cache_capacity);
        let verifier: Arc<dyn TokenVerifier> = match self.verifier {
            Some(v) => v,
            None => {
                let mut issuers = self.issuers;
                if self.single_used {
                    let [only] = issuers.as_mut_slice() else {
                        return Err(BuildError::SeveralIssuersShareKeys);
                    };
                    if only.is_configured() {
                        // Settings both on the builder and on the `Issuer`.
                        return Err(BuildError::ConflictingKeySources);
                    }
                    let name = std::mem::take(&mut only.issuer);
                    *only = Issuer {
                        issuer: name,
                        ..self.single
                    };
                }
                let needs_http = issuers
                    .iter()
                    .any(|i| !i.has_fixed_keys() || i.client_auth.is_some());
                let fetcher = match (self.http_client, needs_http) {
                    (Some(client), _) => Some(Fetcher::new(client, self.fetch_timeout)),
                    (None, true) => Some(Fetcher::new(
                        default_client(self.fetch_timeout).map_err(|_| BuildError::HttpClient)?,
                        self.fetch_timeout,
                    )),
                    (None, false) => None,
                };
                let ctx = IssuerContext {
                    fetcher,
                    timing: self.jwks_timing,
                    introspection_cache_ttl: self.introspection_cache_ttl,
                    max_concurrent_introspections: self.max_concurrent_introspections,
                    fetch_timeout: self.fetch_timeout,
                };
                Arc::new(IssuerRouter::new(rules.clone(), issuers, &ctx)?)
            }
        };

        let origin = match &self.public_base_url {
            Some(url) => PublicOrigin::base(url).map_err(|_| BuildError::InvalidPublicBaseUrl)?,
            None => match (&self.allowed_hosts, self.any_host) {
                (_, true) => PublicOrigin::FromRequest {
                    https: self.https,
                    allowed: None,
                },
                (Some(hosts), false) => {
                    PublicOrigin::hosts(self.https, hosts.iter().map(String::as_str))
                        .map_err(|_| BuildError::InvalidPublicBaseUrl)?
                }
                (None, false) => return Err(BuildError::NoPublicOrigin),
            },
        };
        let metadata = match resource_metadata {
            Some(config) => Some(
                ServedMetadata::build(
                    config,
                    Facts {
                        audiences: rules.audiences(),
                        issuers: rules.issuers().to_vec(),
                        dpop_algorithms: dpop_algorithms.iter().map(|a| a.as_str()).collect(),
                        accept_bearer: self.accept_bearer,
                        accept_mtls: self.accept_mtls,
                    },
                )
                .map_err(|_| BuildError::InvalidResourceMetadata)?,
            ),
            None => None,
        };
        let key_sharing = match &self.key_sharing {
            Some(config) => Some(Detector::new(config).ok_or(BuildError::InvalidKeySharing)?),
            None => None,
        };
        let challenges = Arc::new(ChallengeConfig {
            algs: dpop_algorithms.to_space_separated(),
            offer_bearer: self.accept_bearer || self.accept_mtls,
            realm: self.realm,
            resource_metadata: metadata.as_ref().map(|m| m.url.clone()),
        });
        let replay = self
            .replay
            .unwrap_or_else(|| Arc::new(CompactReplayStore::new(DEFAULT_COMPACT_REPLAY_CAPACITY)));
        Ok(SenderBound {
            shared: Arc::new(Shared {
                proof_policy,
                token_rules: rules,
                verifier,
                token_cache,
                replay,
                clock: self.clock,
                accept_bearer: self.accept_bearer,
                origin,
                strip_credentials: self.strip_credentials,
                challenges,
                revocation: self.revocation,
                client_certs: self.client_certs,
                accept_mtls: self.accept_mtls,
                nonces: self.nonces,
                metadata,
                key_sharing,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWK: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn configuration_errors() {
        let b = || {
            SenderBound::builder()
                .issuer("https://as")
                .audience("https://rs")
        };
        assert_eq!(
            SenderBound::builder()
                .audience("a")
                .token_key_json(JWK)
                .build()
                .unwrap_err(),
            BuildError::NoIssuer
        );
        assert_eq!(
            SenderBound::builder()
                .issuer("a")
                .token_key_json(JWK)
                .build()
                .unwrap_err(),
            BuildError::NoAudience
        );
        // An issuer alone means discovery: valid, fetched on first use.
        assert!(b().allow_any_host().build().is_ok());
        let h = || b().allow_any_host();
        assert_eq!(
            SenderBound::builder()
                .issuer("http://as.example.com")
                .audience("https://rs")
                .allow_any_host()
                .build()
                .unwrap_err(),
            BuildError::Endpoint(FetchError::InsecureUrl)
        );
        assert_eq!(
            h().jwks_uri("http://as.example.com/jwks")
                .build()
                .unwrap_err(),
            BuildError::Endpoint(FetchError::InsecureUrl)
        );
        assert!(h().jwks_uri("http://127.0.0.1:1/jwks").build().is_ok());
        assert_eq!(
            h().jwks_uri("https://as/jwks")
                .token_key_json(JWK)
                .build()
                .unwrap_err(),
            BuildError::ConflictingKeySources
        );
        assert_eq!(
            h().trust(Issuer::new("https://as2").introspection_endpoint("https://as2/i"))
                .build()
                .unwrap_err(),
            BuildError::IntrospectionWithoutCredentials
        );
        assert_eq!(
            h().token_format(TokenFormat::Introspect)
                .build()
                .unwrap_err(),
            BuildError::NoTokenVerifier
        );
        let auth = ClientAuth::client_secret_basic("rs", "secret");
        assert_eq!(
            h().introspect_with(auth.clone())
                .trust(Issuer::new("https://as2").client_auth(auth.clone()))
                .build()
                .unwrap_err(),
            BuildError::SeveralIssuersShareKeys
        );
        assert_eq!(
            SenderBound::builder()
                .trust(Issuer::new("https://as1").client_auth(auth.clone()))
                .trust(Issuer::new("https://as2").client_auth(auth.clone()))
                .audience("https://rs")
                .allow_any_host()
                .build()
                .unwrap_err(),
            BuildError::AmbiguousOpaqueTokens
        );
        assert_eq!(
            h().trust(Issuer::new("https://as")).build().unwrap_err(),
            BuildError::DuplicateIssuer
        );
        assert_eq!(
            SenderBound::builder()
                .trust(Issuer::new("https://as").jwks_uri("https://as/jwks"))
                .token_key_json(JWK)
                .audience("https://rs")
                .allow_any_host()
                .build()
                .unwrap_err(),
            BuildError::ConflictingKeySources
        );
        assert_eq!(
            SenderBound::builder()
                .issuer("https://as?tenant=1")
                .audience("https://rs")
                .allow_any_host()
                .build()
                .unwrap_err(),
            BuildError::Endpoint(FetchError::InvalidUrl)
        );
        // An issuer that is not a URL cannot be discovered: with an
        // introspection endpoint given, its tokens are all introspected.
        assert!(
            SenderBound::builder()
                .issuer("urn:example:as")
                .introspection("https://as/introspect", auth.clone())
                .audience("https://rs")
                .allow_any_host()
                .build()
                .is_ok()
        );
        // An introspection endpoint does not stop JWTs being verified with
        // the issuer's discovered keys.
        assert!(
            h().introspection("https://as/introspect", auth.clone())
                .token_format(TokenFormat::Jwt)
                .build()
                .is_ok()
        );
        assert!(
            SenderBound::builder()
                .trust(Issuer::new("https://as1").client_auth(auth.clone()))
                .trust(
                    Issuer::new("https://as2")
                        .client_auth(auth)
                        .token_format(TokenFormat::Jwt)
                )
                .audience("https://rs")
                .allow_any_host()
                .build()
                .is_ok()
        );
        assert_eq!(
            b().jwks_json(r#"{"keys":[]}"#).build().unwrap_err(),
            BuildError::NoUsableKey
        );
        assert_eq!(
            b().jwks_json("nope").build().unwrap_err(),
            BuildError::Jwks(JwkSetError::Malformed)
        );
        assert!(matches!(
            b().token_key_json(r#"{"kty":"oct","k":"AA"}"#)
                .build()
                .unwrap_err(),
            BuildError::Jwk(_)
        ));
        assert_eq!(
            b().token_key_json(JWK)
                .dpop_algorithms([])
                .build()
                .unwrap_err(),
            BuildError::NoAlgorithms
        );
        assert_eq!(
            b().token_key_json(JWK)
                .public_base_url("https://api.example.com/v1?x")
                .build()
                .unwrap_err(),
            BuildError::InvalidPublicBaseUrl
        );
        assert_eq!(
            b().token_key_json(JWK).realm("a\"b").build().unwrap_err(),
            BuildError::InvalidRealm
        );
        assert_eq!(
            SenderBound::builder()
                .issuer("https://as")
                .audience("https://rs")
                .token_key_json(JWK)
                .build()
                .unwrap_err(),
            BuildError::NoPublicOrigin
        );
        assert_eq!(
            b().issuer("https://as2")
                .token_key_json(JWK)
                .build()
                .unwrap_err(),
            BuildError::SeveralIssuersShareKeys
        );
        assert_eq!(
            b().allowed_hosts(["rs.example/path"])
                .token_key_json(JWK)
                .build()
                .unwrap_err(),
            BuildError::InvalidPublicBaseUrl
        );
        assert!(b().allow_any_host().token_key_json(JWK).build().is_ok());
        assert!(
            b().token_key_json(JWK)
                .public_base_url("https://api.example.com/v1/")
                .build()
                .is_ok()
        );
    }
}
