//! [`SenderBoundLayer`]: the configured Layer, its [`SenderBoundBuilder`],
//! and [`BuildError`].

use std::fmt;
use std::sync::Arc;

use senderbound_core::jwk::{JwkError, JwkSetError};
use senderbound_core::proof::ProofPolicy;
use senderbound_core::token::TokenRules;
use senderbound_core::{AlgorithmSet, Clock, SystemClock};
use tower_layer::Layer;

use crate::challenge::{ChallengeConfig, RefusalBody};
use crate::incident::{Incidents, Tracker};
use crate::key_sharing::{Detector, KeySharing};
use crate::metadata::{Facts, ResourceMetadata, ServedMetadata};
use crate::mtls::{ClientCertSource, ConnectionCert};
use crate::origin::Origin;
use crate::pipeline::{Pipeline, RouteContext};
use crate::profile::{Checked, Profile, ProfileViolation};
use crate::proof::{Nonces, ProofRules};
use crate::replay::{CompactReplayStore, DynReplayStore, ReplayStore};
use crate::revocation::{DynRevocationCheck, RevocationCheck};
use crate::service::SenderBound;
use crate::tokens::cache::TokenCache;
use crate::tokens::{
    DynTokenVerifier, FetchError, Fetcher, Fetching, Issuer, IssuerContext, IssuerRouter,
    TokenPolicy, TokenVerifier, default_client,
};

/// The Layer: a configured sender-constrained token check, shared by every
/// route it wraps. Build one with [`SenderBoundLayer::builder`]; clones share
/// the configuration (and its caches).
///
/// ```
/// use axum::{Router, routing::get};
/// use senderbound::{Sender, SenderBoundLayer, tokens::Issuer};
///
/// # fn main() -> Result<(), senderbound::BuildError> {
/// let auth = SenderBoundLayer::builder()
///     .trust(Issuer::new("https://as.example.com").keys(r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"as-1",
///         "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
///         "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#))
///     .audience("https://api.example.com")
///     .origin("https://api.example.com") // what clients sign as `htu`
///     .build()?;
///
/// let app: Router = Router::new()
///     .route("/items", get(|sender: Sender| async move { sender.subject().unwrap_or("").to_owned() }))
///     .layer(auth);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SenderBoundLayer {
    pipeline: Arc<Pipeline>,
}

impl fmt::Debug for SenderBoundLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderBoundLayer")
            .field("issuers", &self.pipeline.token_rules.issuers())
            .field("audiences", &self.pipeline.token_rules.audiences())
            .field("allow_bearer", &self.pipeline.allow_bearer)
            .field("mtls", &self.pipeline.mtls)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SenderBoundLayer {
    type Service = SenderBound<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SenderBound::new(inner, self.pipeline.clone())
    }
}

impl SenderBoundLayer {
    /// Starts a configuration.
    pub fn builder() -> SenderBoundBuilder {
        SenderBoundBuilder::default()
    }

    /// The DPoP algorithms accepted (what the `algs` challenge parameter lists).
    pub fn dpop_algorithms(&self) -> AlgorithmSet {
        self.pipeline.proof_policy.accepted_algorithms()
    }

    /// Where the Layer serves this resource's RFC 9728 metadata (and what
    /// its challenges name in `resource_metadata`), if
    /// [`resource_metadata`](SenderBoundBuilder::resource_metadata) was set.
    pub fn resource_metadata_url(&self) -> Option<&str> {
        self.pipeline.metadata.as_ref().map(|m| m.url.as_str())
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
    /// # use senderbound::{SenderBoundLayer, metadata::ResourceMetadata};
    /// # fn main() -> Result<(), senderbound::BuildError> {
    /// let auth = SenderBoundLayer::builder()
    ///     .issuer("https://login.example.com")
    ///     .audience("https://api.example.com/api/mcp")
    ///     .origin("https://api.example.com")
    ///     .resource_metadata(ResourceMetadata::new())
    ///     .build()?;
    /// let api = Router::new().route("/mcp", get(|| async { "…" })).layer(auth.clone());
    /// let app: Router = Router::new()
    ///     .nest("/api", api)
    ///     .merge(auth.resource_metadata_router());
    /// # Ok(()) }
    /// ```
    pub fn resource_metadata_router(&self) -> axum::Router {
        let mut router = axum::Router::new();
        let Some(metadata) = &self.pipeline.metadata else {
            return router;
        };
        for path in metadata.paths() {
            let pipeline = self.pipeline.clone();
            let served = path.clone();
            router = router.route(
                path,
                axum::routing::get(move |method: http::Method| async move {
                    pipeline
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

/// Why a configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// No trusted issuer was given.
    NoIssuer,
    /// No audience (this resource's identifier, RFC 8707) was given.
    NoAudience,
    /// An issuer has nothing to verify its tokens with: it introspects every
    /// token ([`TokenFormat::Introspect`](crate::tokens::TokenFormat)) without
    /// [`Introspection`](crate::tokens::Introspection).
    NoTokenVerifier,
    /// A JWKS document given as keys could not be used.
    Jwks(JwkSetError),
    /// A single JWK given as keys could not be used.
    Jwk(JwkError),
    /// The keys given hold no usable signing key.
    NoUsableKey,
    /// The DPoP or token algorithm allow-list is empty.
    NoAlgorithms,
    /// The [`Origin`] cannot be used: a public URL that is not an absolute
    /// http(s) URL without query or fragment (or with `plain_http()`), or a
    /// host that is not `host[:port]`, or no hosts.
    InvalidOrigin,
    /// No [`origin`](SenderBoundBuilder::origin) was given, so the proof's
    /// `htu` could not be checked.
    NoOrigin,
    /// An issuer, JWKS or introspection URL cannot be used (it must be
    /// `https`, or `http` to a loopback address).
    Endpoint(FetchError),
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
    /// [`ProofRules::freshness_from_nonce`] without
    /// [`nonces`](SenderBoundBuilder::nonces).
    FreshnessWithoutNonce,
    /// Key-sharing detection with no capacity, or a window of zero or
    /// longer than a week.
    InvalidKeySharing,
    /// The configuration does not comply with the profile it chose
    /// ([`profile`](SenderBoundBuilder::profile)).
    Profile(ProfileViolation),
    /// A setter that takes a whole value ([`proofs`](SenderBoundBuilder::proofs),
    /// [`tokens`](SenderBoundBuilder::tokens),
    /// [`fetching`](SenderBoundBuilder::fetching)) was called twice: the
    /// second call would silently drop every setting of the first (its
    /// algorithm allow-list, say). Build the value once, with every
    /// setting.
    SetTwice(&'static str),
    /// The resource metadata (RFC 9728) cannot describe this resource: its
    /// `resource` must be one of the audiences and an `https` URL (`http`
    /// only on loopback) without query or fragment, and its documentation,
    /// policy and terms links absolute http(s) URLs.
    InvalidResourceMetadata,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoIssuer => f.write_str(
                "no trusted issuer: call .issuer(url) or .trust(Issuer::new(url)…)",
            ),
            BuildError::NoAudience => f.write_str(
                "no audience: call .audience(resource identifier) (RFC 8707)",
            ),
            BuildError::NoTokenVerifier => f.write_str(
                "an issuer with TokenFormat::Introspect needs .introspection(Introspection::new(..))",
            ),
            BuildError::Jwks(e) => write!(f, "issuer keys (JWKS): {e}"),
            BuildError::Jwk(e) => write!(f, "issuer key (JWK): {e}"),
            BuildError::NoUsableKey => f.write_str("the issuer keys hold no usable signing key"),
            BuildError::NoAlgorithms => f.write_str("an algorithm allow-list is empty"),
            BuildError::InvalidOrigin => f.write_str(
                "origin: a public URL must be an absolute http(s) URL without query or fragment (and takes no plain_http()); hosts are host[:port], at least one",
            ),
            BuildError::NoOrigin => f.write_str(
                "no origin: call .origin(\"https://api.example.com\") (or Origin::hosts(..)) so the proof's htu is checked",
            ),
            BuildError::Endpoint(e) => write!(f, "authorization server URL: {e}"),
            BuildError::ConflictingKeySources => {
                f.write_str("give an issuer either fixed keys or a jwks_uri, not both")
            }
            BuildError::AmbiguousOpaqueTokens => f.write_str(
                "at most one issuer may introspect opaque tokens (set TokenFormat::Jwt on the others)",
            ),
            BuildError::HttpClient => f.write_str("the HTTP client could not be created"),
            BuildError::DuplicateIssuer => f.write_str(
                "the same issuer is trusted twice: configure each issuer once, with .issuer(url) or .trust(Issuer::new(url)…)",
            ),
            BuildError::InvalidRealm => {
                f.write_str("realm must be printable ASCII without quotes or backslashes")
            }
            BuildError::FreshnessWithoutNonce => {
                f.write_str("ProofRules::freshness_from_nonce() needs .nonces(..)")
            }
            BuildError::InvalidKeySharing => f.write_str(
                "key sharing: capacity must be positive and the window between 1 s and 7 days",
            ),
            BuildError::Profile(violation) => write!(f, "{violation}"),
            BuildError::SetTwice(setter) => write!(
                f,
                ".{setter}(..) called twice: the second value would replace the first; pass one value with every setting"
            ),
            BuildError::InvalidResourceMetadata => f.write_str(
                "resource metadata: the resource must be an audience and an https URL (http only on loopback) without query or fragment; links must be http(s) URLs",
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// Builder for [`SenderBoundLayer`]: one setter per concept, each taking a
/// value that names the choice, defaults documented on the setter;
/// [`build`](Self::build) checks everything.
///
/// Most deployments need three lines: the issuer (its metadata and keys are
/// discovered, RFC 8414), this resource's audience, and its public origin:
///
/// ```
/// use senderbound::SenderBoundLayer;
///
/// # fn main() -> Result<(), senderbound::BuildError> {
/// let auth = SenderBoundLayer::builder()
///     .issuer("https://login.example.com")
///     .audience("https://api.example.com")
///     .origin("https://api.example.com")
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct SenderBoundBuilder {
    issuers: Vec<Issuer>,
    audiences: Vec<String>,
    origin: Option<Origin>,
    allow_bearer: bool,
    mtls: Option<Arc<dyn ClientCertSource>>,
    proofs: ProofRules,
    nonces: Option<Nonces>,
    tokens: TokenPolicy,
    verifier: Option<Arc<dyn DynTokenVerifier>>,
    fetching: Fetching,
    revocation: Option<Arc<dyn DynRevocationCheck>>,
    replay: Option<Arc<dyn DynReplayStore>>,
    key_sharing: Option<KeySharing>,
    incidents: Option<Incidents>,
    resource_metadata: Option<ResourceMetadata>,
    profile: Option<Profile>,
    realm: Option<String>,
    clock: Arc<dyn Clock>,
    strip_credentials: bool,
    refusal_body: RefusalBody,
    /// Which whole-value setters were called, and the first called twice.
    called: Called,
}

/// The whole-value setters already called (each may be called once).
#[derive(Default)]
struct Called {
    proofs: bool,
    tokens: bool,
    fetching: bool,
    twice: Option<&'static str>,
}

impl Called {
    fn mark(&mut self, setter: &'static str) {
        let seen = match setter {
            "proofs" => &mut self.proofs,
            "tokens" => &mut self.tokens,
            _ => &mut self.fetching,
        };
        if *seen {
            self.twice.get_or_insert(setter);
        }
        *seen = true;
    }
}

impl Default for SenderBoundBuilder {
    fn default() -> Self {
        SenderBoundBuilder {
            issuers: Vec::new(),
            audiences: Vec::new(),
            origin: None,
            allow_bearer: false,
            mtls: None,
            proofs: ProofRules::new(),
            nonces: None,
            tokens: TokenPolicy::new(),
            verifier: None,
            fetching: Fetching::new(),
            revocation: None,
            replay: None,
            key_sharing: None,
            incidents: None,
            resource_metadata: None,
            profile: None,
            realm: None,
            clock: Arc::new(SystemClock),
            strip_credentials: true,
            refusal_body: RefusalBody::default(),
            called: Called::default(),
        }
    }
}

impl fmt::Debug for SenderBoundBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderBoundBuilder")
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl SenderBoundBuilder {
    /// Trust access tokens issued by `issuer` (exact `iss` match), its
    /// metadata discovered (RFC 8414, then OpenID Connect Discovery) on
    /// first use and its `jwks_uri` followed. Shorthand for
    /// [`trust`](Self::trust)`(Issuer::new(issuer))`; to give keys, a JWKS
    /// URI or introspection, use `trust`.
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        self.trust(Issuer::new(issuer))
    }

    /// Trust this authorization server, configured on its own: its keys
    /// verify its tokens only. Call once per issuer; see [`Issuer`].
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

    /// Where clients address this service, which every proof's `htu` must
    /// match: a public URL (`"https://api.example.com/v1"`), allowed hosts
    /// or any host; see [`Origin`]. Required.
    pub fn origin(mut self, origin: impl Into<Origin>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Also accept unbound bearer tokens with the `Bearer` scheme (default:
    /// refused). Tokens bound with `cnf.jkt` are still refused as `Bearer`
    /// (downgrade).
    pub fn allow_bearer(mut self) -> Self {
        self.allow_bearer = true;
        self
    }

    /// Also accept tokens bound to a client certificate (`cnf["x5t#S256"]`,
    /// RFC 8705) with the `Bearer` scheme, over a connection that presents
    /// the certificate they name, taken from `source`:
    /// [`ConnectionCert`] (the TLS connection, as
    /// [`tls::serve`](crate::mtls) puts it in the request) or
    /// [`ForwardedClientCert`](crate::mtls::ForwardedClientCert) (a trusted
    /// proxy's RFC 9440 `Client-Cert` header). Challenges then offer
    /// `Bearer` too. Default: certificate-bound tokens get 401
    /// `invalid_token`. See [`mtls`](crate::mtls).
    pub fn mtls(mut self, source: impl ClientCertSource) -> Self {
        self.mtls = Some(Arc::new(source));
        self
    }

    /// What DPoP proofs must look like: algorithms, time window, size; see
    /// [`ProofRules`] for each default. Call once, with every setting.
    pub fn proofs(mut self, rules: ProofRules) -> Self {
        self.called.mark("proofs");
        self.proofs = rules;
        self
    }

    /// Require a server nonce (RFC 9449 §8–9) in every DPoP proof, issued
    /// and checked statelessly by `nonces` (default: no nonces). Give every
    /// server of a fleet the same secret and each accepts the others'
    /// nonces. A proof without a valid nonce gets 401 `use_dpop_nonce` with
    /// a fresh `DPoP-Nonce` header; an accepted request whose nonce is past
    /// its first step gets the next nonce in its response's `DPoP-Nonce`.
    ///
    /// ```
    /// use senderbound::proof::Nonces;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret = b"32+ random bytes shared by the fleet"; // from your secret store
    /// let auth = senderbound::SenderBoundLayer::builder()
    ///     .issuer("https://as.example.com")
    ///     .audience("https://api.example.com")
    ///     .origin("https://api.example.com")
    ///     .nonces(Nonces::new(secret)?)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn nonces(mut self, nonces: Nonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// What access tokens must look like beyond issuer and audience
    /// (algorithms, `typ`, leeway, lifetime, size) and how many verified
    /// tokens are cached; see [`TokenPolicy`] for each default.
    pub fn tokens(mut self, policy: TokenPolicy) -> Self {
        self.called.mark("tokens");
        self.tokens = policy;
        self
    }

    /// Verify tokens with a custom [`TokenVerifier`] instead of the
    /// issuers' keys and introspection. Issuer, audience, time and binding
    /// are still checked by the Layer.
    pub fn token_verifier(mut self, verifier: impl TokenVerifier) -> Self {
        self.verifier = Some(Arc::new(verifier));
        self
    }

    /// How metadata, keys and introspection answers are fetched and kept
    /// current; see [`Fetching`] for each default.
    pub fn fetching(mut self, fetching: Fetching) -> Self {
        self.called.mark("fetching");
        self.fetching = fetching;
        self
    }

    /// Consult `check` on every request, cached tokens included (default:
    /// none); see [`Revocations`](crate::revocation::Revocations).
    pub fn revocations(mut self, check: impl RevocationCheck) -> Self {
        self.revocation = Some(Arc::new(check));
        self
    }

    /// Where used proofs are remembered (default: a
    /// [`CompactReplayStore`] of 2,000,000 proofs, about 36 bytes each,
    /// memory growing with use). For a fleet, a shared store such as
    /// `senderbound-redis`'s.
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.replay = Some(Arc::new(store));
        self
    }

    /// Notice one key used by several clients or subjects (default: off);
    /// see [`KeySharing`].
    pub fn key_sharing(mut self, config: KeySharing) -> Self {
        self.key_sharing = Some(config);
        self
    }

    /// Count suspicious refusals per key and per client, and emit a
    /// `finding="incident"` event when they cross the rule's threshold
    /// within its window, optionally refusing the key for a cool-down
    /// (default: off); see [`Incidents`].
    pub fn incidents(mut self, rule: Incidents) -> Self {
        self.incidents = Some(rule);
        self
    }

    /// Serve this resource's OAuth 2.0 Protected Resource Metadata (RFC
    /// 9728) at its well-known URL, built from this configuration plus
    /// `metadata`, and name that URL in every challenge
    /// (`resource_metadata="…"`), so clients such as MCP clients can
    /// discover the authorization server (default: not served). See
    /// [`metadata`](crate::metadata).
    pub fn resource_metadata(mut self, metadata: ResourceMetadata) -> Self {
        self.resource_metadata = Some(metadata);
        self
    }

    /// Comply with `profile`: what it requires (algorithms, the proof time
    /// window, metadata; see [`profile`](crate::profile) for the table)
    /// fills in every setting not given explicitly, and `build` refuses an
    /// explicit setting the profile does not allow. Default: no profile.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// A `realm` for the challenges (default: none).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
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

    /// The body of refusals (default: the OAuth JSON error object); see
    /// [`RefusalBody`]. Status and headers stay senderbound's.
    pub fn refusal_body(mut self, body: RefusalBody) -> Self {
        self.refusal_body = body;
        self
    }

    /// Checks the configuration and builds the Layer. Nothing is fetched
    /// yet: discovery and keys are fetched on first use, so a server can
    /// start while its authorization server is still coming up (answering
    /// 503).
    pub fn build(self) -> Result<SenderBoundLayer, BuildError> {
        if let Some(setter) = self.called.twice {
            return Err(BuildError::SetTwice(setter));
        }
        if self.issuers.is_empty() {
            return Err(BuildError::NoIssuer);
        }
        if self.audiences.is_empty() {
            return Err(BuildError::NoAudience);
        }
        let origin = self
            .origin
            .as_ref()
            .ok_or(BuildError::NoOrigin)?
            .resolve()?;
        let applied = self.apply_profile()?;
        if self.realm.as_deref().is_some_and(|r| !quotable(r)) {
            return Err(BuildError::InvalidRealm);
        }
        let names = self.issuers.iter().map(|i| i.issuer().to_owned()).collect();
        let rules = self
            .tokens
            .rules(names, self.audiences, applied.token_algorithms);
        let verifier = match self.verifier {
            Some(v) => v,
            None => Arc::new(issuer_router(rules.clone(), self.issuers, &self.fetching)?),
        };
        let metadata = match applied.resource_metadata {
            Some(config) => Some(
                ServedMetadata::build(
                    config,
                    Facts {
                        audiences: rules.audiences(),
                        issuers: rules.issuers().to_vec(),
                        dpop_algorithms: applied
                            .dpop_algorithms
                            .iter()
                            .map(|a| a.as_str())
                            .collect(),
                        accept_bearer: self.allow_bearer,
                        accept_mtls: self.mtls.is_some(),
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
            algs: applied.dpop_algorithms.to_space_separated(),
            offer_bearer: self.allow_bearer || self.mtls.is_some(),
            realm: self.realm,
            resource_metadata: metadata.as_ref().map(|m| m.url.clone()),
            body: self.refusal_body,
        });
        let replay = self.replay.unwrap_or_else(|| {
            Arc::new(CompactReplayStore::new(
                crate::replay::DEFAULT_COMPACT_REPLAY_CAPACITY,
            ))
        });
        let nonces = self.nonces.map(Arc::new);
        let route = Arc::new(RouteContext {
            challenges: challenges.clone(),
            clock: self.clock.clone(),
            leeway: rules.time_leeway(),
            nonces: nonces.clone(),
            incidents: self.incidents.map(|rule| Arc::new(Tracker::new(rule))),
        });
        Ok(SenderBoundLayer {
            pipeline: Arc::new(Pipeline {
                proof_policy: applied.proof_policy,
                token_rules: rules,
                verifier,
                token_cache: TokenCache::new(self.tokens.cache_capacity),
                replay,
                clock: self.clock,
                allow_bearer: self.allow_bearer,
                origin,
                strip_credentials: self.strip_credentials,
                challenges,
                revocation: self.revocation,
                mtls: self.mtls.is_some(),
                client_certs: self.mtls.unwrap_or_else(|| Arc::new(ConnectionCert)),
                nonces,
                route,
                metadata,
                key_sharing,
            }),
        })
    }

    /// The proof policy, token algorithms and metadata after the profile
    /// filled in what was not set explicitly, checked against it.
    fn apply_profile(&self) -> Result<Applied, BuildError> {
        let mut proofs = self.proofs.clone();
        let mut token_algorithms = self.tokens.algorithms;
        let mut resource_metadata = self.resource_metadata.clone();
        if let Some(profile) = self.profile {
            proofs.algorithms.get_or_insert(profile.algorithms());
            proofs.max_age.get_or_insert(profile.max_proof_age());
            proofs
                .max_future_skew
                .get_or_insert(profile.max_proof_future_skew());
            token_algorithms.get_or_insert(profile.algorithms());
            if profile.serves_resource_metadata() && resource_metadata.is_none() {
                resource_metadata = Some(ResourceMetadata::new());
            }
        }
        let token_algorithms = token_algorithms.unwrap_or_else(AlgorithmSet::all);
        let mut proof_policy: ProofPolicy = proofs.policy();
        let dpop_algorithms = proof_policy.accepted_algorithms();
        if dpop_algorithms.is_empty() || token_algorithms.is_empty() {
            return Err(BuildError::NoAlgorithms);
        }
        if proofs.freshness_from_nonce {
            let nonces = self
                .nonces
                .as_ref()
                .ok_or(BuildError::FreshnessWithoutNonce)?;
            proof_policy =
                proof_policy.max_age(std::time::Duration::from_secs(nonces.lifetime_secs()));
        }
        if let Some(profile) = self.profile {
            profile
                .check(&Checked {
                    accept_bearer: self.allow_bearer,
                    dpop_algorithms,
                    token_algorithms,
                    proof_max_age: proof_policy.proof_max_age(),
                    proof_max_future_skew: proof_policy.proof_max_future_skew(),
                    serves_resource_metadata: resource_metadata.is_some(),
                })
                .map_err(BuildError::Profile)?;
        }
        Ok(Applied {
            proof_policy,
            dpop_algorithms,
            token_algorithms,
            resource_metadata,
        })
    }
}

/// What [`SenderBoundBuilder::apply_profile`] settles.
struct Applied {
    proof_policy: ProofPolicy,
    dpop_algorithms: AlgorithmSet,
    token_algorithms: AlgorithmSet,
    resource_metadata: Option<ResourceMetadata>,
}

/// Printable ASCII without quotes or backslashes: safe inside a quoted
/// challenge parameter.
fn quotable(realm: &str) -> bool {
    realm
        .chars()
        .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\')
}

/// The built-in verifier: each issuer's keys and introspection.
fn issuer_router(
    rules: TokenRules,
    issuers: Vec<Issuer>,
    fetching: &Fetching,
) -> Result<IssuerRouter, BuildError> {
    let needs_http = issuers
        .iter()
        .any(|i| !i.has_fixed_keys() || i.introspection.is_some());
    let fetcher = match (&fetching.client, needs_http) {
        (Some(client), _) => Some(Fetcher::new(client.clone(), fetching.timeout)),
        (None, true) => Some(Fetcher::new(
            default_client(fetching.timeout).map_err(|_| BuildError::HttpClient)?,
            fetching.timeout,
        )),
        (None, false) => None,
    };
    let ctx = IssuerContext {
        fetcher,
        timing: fetching.timing,
        fetch_timeout: fetching.timeout,
    };
    IssuerRouter::new(rules, issuers, &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::ProofRules;
    use crate::tokens::{ClientAuth, Introspection, TokenFormat};
    use crate::tokens::{Fetching, TokenPolicy};

    const JWK: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    fn keyed() -> Issuer {
        Issuer::new("https://as").keys(JWK)
    }

    fn error(builder: SenderBoundBuilder) -> BuildError {
        builder.build().unwrap_err()
    }

    #[test]
    fn configuration_errors() {
        let b = || {
            SenderBoundLayer::builder()
                .audience("https://rs")
                .origin(Origin::any_host())
        };
        let auth = ClientAuth::client_secret_basic("rs", "secret");
        let introspect = || Introspection::new(auth.clone());
        assert_eq!(
            error(
                SenderBoundLayer::builder()
                    .audience("a")
                    .origin(Origin::any_host())
            ),
            BuildError::NoIssuer
        );
        assert_eq!(
            error(
                SenderBoundLayer::builder()
                    .trust(keyed())
                    .origin(Origin::any_host())
            ),
            BuildError::NoAudience
        );
        assert_eq!(
            error(
                SenderBoundLayer::builder()
                    .trust(keyed())
                    .audience("https://rs")
            ),
            BuildError::NoOrigin
        );
        // An issuer alone means discovery: valid, fetched on first use.
        assert!(b().issuer("https://as").build().is_ok());
        assert_eq!(
            error(b().issuer("http://as.example.com")),
            BuildError::Endpoint(FetchError::InsecureUrl)
        );
        assert_eq!(
            error(b().trust(Issuer::new("https://as").jwks_uri("http://as.example.com/jwks"))),
            BuildError::Endpoint(FetchError::InsecureUrl)
        );
        assert!(
            b().trust(Issuer::new("https://as").jwks_uri("http://127.0.0.1:1/jwks"))
                .build()
                .is_ok()
        );
        assert_eq!(
            error(b().trust(keyed().jwks_uri("https://as/jwks"))),
            BuildError::ConflictingKeySources
        );
        assert_eq!(
            error(b().trust(Issuer::new("https://as").token_format(TokenFormat::Introspect))),
            BuildError::NoTokenVerifier
        );
        assert_eq!(
            error(
                b().trust(Issuer::new("https://as1").introspection(introspect()))
                    .trust(Issuer::new("https://as2").introspection(introspect()))
            ),
            BuildError::AmbiguousOpaqueTokens
        );
        assert_eq!(
            error(b().issuer("https://as").trust(Issuer::new("https://as"))),
            BuildError::DuplicateIssuer
        );
        assert_eq!(
            error(b().issuer("https://as?tenant=1")),
            BuildError::Endpoint(FetchError::InvalidUrl)
        );
        // An issuer that is not a URL cannot be discovered: with an
        // introspection endpoint given, its tokens are all introspected.
        assert!(
            b().trust(
                Issuer::new("urn:example:as")
                    .introspection(introspect().endpoint("https://as/introspect"))
            )
            .build()
            .is_ok()
        );
        // An introspection endpoint does not stop JWTs being verified with
        // the issuer's discovered keys.
        assert!(
            b().trust(
                Issuer::new("https://as")
                    .introspection(introspect().endpoint("https://as/introspect"))
                    .token_format(TokenFormat::Jwt)
            )
            .build()
            .is_ok()
        );
        assert!(
            b().trust(Issuer::new("https://as1").introspection(introspect()))
                .trust(
                    Issuer::new("https://as2")
                        .introspection(introspect())
                        .token_format(TokenFormat::Jwt)
                )
                .build()
                .is_ok()
        );
        // Several issuers, each with its own keys.
        assert!(
            b().trust(keyed())
                .trust(Issuer::new("https://as2").keys(JWK))
                .build()
                .is_ok()
        );
        let with_keys = |keys: &str| b().trust(Issuer::new("https://as").keys(keys));
        assert_eq!(error(with_keys(r#"{"keys":[]}"#)), BuildError::NoUsableKey);
        assert_eq!(
            error(with_keys("nope")),
            BuildError::Jwks(JwkSetError::Malformed)
        );
        assert!(matches!(
            error(with_keys(r#"{"kty":"oct","k":"AA"}"#)),
            BuildError::Jwk(_)
        ));
        assert!(with_keys(JWK).build().is_ok());
        assert!(with_keys(&format!(r#"{{"keys":[{JWK}]}}"#)).build().is_ok());
        assert_eq!(
            error(b().trust(keyed()).proofs(ProofRules::new().algorithms([]))),
            BuildError::NoAlgorithms
        );
        assert_eq!(
            error(b().trust(keyed()).realm("a\"b")),
            BuildError::InvalidRealm
        );
        assert_eq!(
            error(
                b().trust(keyed())
                    .proofs(ProofRules::new().freshness_from_nonce())
            ),
            BuildError::FreshnessWithoutNonce
        );
    }

    #[test]
    fn whole_values_are_set_once() {
        let b = || {
            SenderBoundLayer::builder()
                .trust(keyed())
                .audience("https://rs")
                .origin(Origin::any_host())
        };
        // A whole value set twice would drop the first one's settings.
        let es256 = || ProofRules::new().algorithms([senderbound_core::Algorithm::ES256]);
        assert_eq!(
            error(b().proofs(es256()).proofs(ProofRules::new())),
            BuildError::SetTwice("proofs")
        );
        assert_eq!(
            error(b().tokens(TokenPolicy::new()).tokens(TokenPolicy::new())),
            BuildError::SetTwice("tokens")
        );
        assert_eq!(
            error(b().fetching(Fetching::new()).fetching(Fetching::new())),
            BuildError::SetTwice("fetching")
        );
        assert!(
            b().proofs(es256())
                .tokens(TokenPolicy::new())
                .build()
                .is_ok()
        );
    }

    #[test]
    fn keys_text_is_a_jwks_or_one_signing_jwk() {
        let with_keys = |keys: &str| {
            SenderBoundLayer::builder()
                .trust(Issuer::new("https://as").keys(keys))
                .audience("https://rs")
                .origin(Origin::any_host())
        };
        // A key for encryption verifies nothing, alone as in a set.
        let enc = JWK.replace("{", r#"{"use":"enc","#);
        assert_eq!(error(with_keys(&enc)), BuildError::NoUsableKey);
        assert_eq!(
            error(with_keys(&format!(r#"{{"keys":[{enc}]}}"#))),
            BuildError::NoUsableKey
        );
        // A document with `keys` is a JWKS, even with key members at the
        // top level or a value serde_json cannot hold.
        let both = JWK.replace("}", r#","keys":[],"z":"\ud800"}"#);
        assert_eq!(error(with_keys(&both)), BuildError::NoUsableKey);
        let sig = JWK.replace("{", r#"{"use":"sig","#);
        assert!(with_keys(&sig).build().is_ok());
    }

    #[test]
    fn origin_errors() {
        let b = |origin: Origin| {
            SenderBoundLayer::builder()
                .trust(keyed())
                .audience("https://rs")
                .origin(origin)
        };
        for bad in [
            Origin::public_url("https://api.example.com/v1?x"),
            Origin::public_url("https://api.example.com/v1#f"),
            Origin::public_url("api.example.com"),
            Origin::public_url("https://api.example.com").plain_http(),
            Origin::hosts(["rs.example/path"]),
            Origin::hosts(Vec::<String>::new()),
        ] {
            assert_eq!(error(b(bad.clone())), BuildError::InvalidOrigin, "{bad:?}");
        }
        assert!(b(Origin::any_host()).build().is_ok());
        assert!(b(Origin::any_host().plain_http()).build().is_ok());
        assert!(
            b(Origin::hosts(["rs.example:8443"]).plain_http())
                .build()
                .is_ok()
        );
        assert!(b("https://api.example.com/v1/".into()).build().is_ok());
    }
}
