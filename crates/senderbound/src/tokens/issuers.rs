//! Trusted authorization servers: how each one's tokens are verified, and
//! the router that picks the issuer for each token.
//!
//! A JWT names its issuer in `iss`: the router reads it (unverified, only to
//! choose) and verifies the token with that issuer's keys alone, or asks that
//! issuer's introspection endpoint, so no token is verified twice and no
//! issuer's key can vouch for another issuer's tokens. An opaque token names
//! nobody: it goes to the one issuer configured to introspect opaque tokens.

use std::sync::Arc;
use std::time::Duration;

use senderbound_core::Error;
use senderbound_core::jwk::{JwkError, JwkSet, PublicJwk};
use senderbound_core::token::{AccessToken, TokenRules, looks_like_jwt, unverified_issuer_of};

use super::discovery::Discovery;
use super::fetch::{FetchError, Fetcher, endpoint_url};
use super::introspection::{ClientAuth, EndpointLocation, Introspector};
use super::remote_jwks::{JwksLocation, RefreshTiming, RemoteJwks};
use super::{TokenVerifier, VerifyFuture};
use crate::layer::BuildError;

/// Which token forms an issuer's tokens are accepted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenFormat {
    /// JWT-shaped tokens are verified locally when the issuer has keys (or a
    /// `jwks_uri` in its metadata), everything else is introspected when
    /// introspection is configured. The default.
    #[default]
    Auto,
    /// JWT access tokens only, verified locally.
    Jwt,
    /// Every token is introspected, JWT-shaped or not.
    Introspect,
}

/// One trusted authorization server and how to verify its tokens.
///
/// By default its metadata is discovered from the issuer URL (RFC 8414) and
/// its keys are fetched from the `jwks_uri` it names.
///
/// ```
/// use senderbound::tokens::{ClientAuth, Issuer, TokenFormat};
///
/// // Discovery: metadata → jwks_uri.
/// let a = Issuer::new("https://login.example.com");
/// // A fixed JWKS location, no discovery.
/// let b = Issuer::new("https://as.example.org").jwks_uri("https://as.example.org/keys");
/// // Opaque tokens, checked with RFC 7662 introspection.
/// let c = Issuer::new("https://legacy.example.net")
///     .introspection_endpoint("https://legacy.example.net/introspect")
///     .client_auth(ClientAuth::client_secret_basic("api", "secret"))
///     .token_format(TokenFormat::Introspect);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Issuer {
    pub(crate) issuer: String,
    pub(crate) keys: JwkSet,
    pub(crate) jwks_json: Vec<String>,
    pub(crate) key_errors: Vec<JwkError>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) introspection_endpoint: Option<String>,
    pub(crate) client_auth: Option<ClientAuth>,
    pub(crate) format: TokenFormat,
}

impl Issuer {
    /// Trust tokens whose `iss` is exactly `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Issuer {
            issuer: issuer.into(),
            keys: JwkSet::default(),
            jwks_json: Vec::new(),
            key_errors: Vec::new(),
            jwks_uri: None,
            introspection_endpoint: None,
            client_auth: None,
            format: TokenFormat::Auto,
        }
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Fetch this issuer's keys from `uri` instead of discovering it.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Verify this issuer's tokens with the keys of this JWKS document
    /// (fixed keys: no discovery, no refresh).
    pub fn jwks_json(mut self, jwks: impl Into<String>) -> Self {
        self.jwks_json.push(jwks.into());
        self
    }

    /// Verify this issuer's tokens with these fixed keys.
    pub fn jwks(mut self, keys: JwkSet) -> Self {
        for key in keys.keys() {
            self.keys.push(key.clone());
        }
        self
    }

    /// Verify this issuer's tokens with this fixed key.
    pub fn token_key(mut self, key: PublicJwk) -> Self {
        self.keys.push(key);
        self
    }

    /// Verify this issuer's tokens with this fixed key (a JWK's JSON text).
    pub fn token_key_json(mut self, jwk: &str) -> Self {
        match PublicJwk::from_json(jwk) {
            Ok(key) => self.keys.push(key),
            Err(e) => self.key_errors.push(e),
        }
        self
    }

    /// Introspect tokens at this endpoint (RFC 7662); needs
    /// [`client_auth`](Self::client_auth).
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        self.introspection_endpoint = Some(url.into());
        self
    }

    /// Credentials for introspection. Without an explicit
    /// [`introspection_endpoint`](Self::introspection_endpoint), the one in
    /// the issuer's metadata is used.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = Some(auth);
        self
    }

    /// Which token forms to accept from this issuer (default
    /// [`TokenFormat::Auto`]).
    pub fn token_format(mut self, format: TokenFormat) -> Self {
        self.format = format;
        self
    }

    pub(crate) fn has_fixed_keys(&self) -> bool {
        !self.keys.is_empty() || !self.jwks_json.is_empty()
    }

    /// `true` if anything beyond the issuer name was set.
    pub(crate) fn is_configured(&self) -> bool {
        self.has_fixed_keys()
            || !self.key_errors.is_empty()
            || self.jwks_uri.is_some()
            || self.introspection_endpoint.is_some()
            || self.client_auth.is_some()
            || self.format != TokenFormat::Auto
    }

    /// `true` if opaque (non-JWT) tokens would be introspected here.
    pub(crate) fn takes_opaque_tokens(&self) -> bool {
        self.client_auth.is_some() && self.format != TokenFormat::Jwt
    }
}

/// What building the issuers needs from the Layer's configuration.
pub(crate) struct IssuerContext {
    pub(crate) fetcher: Option<Fetcher>,
    pub(crate) timing: RefreshTiming,
    pub(crate) introspection_cache_ttl: Duration,
    pub(crate) max_concurrent_introspections: usize,
    pub(crate) fetch_timeout: Duration,
}

enum KeySource {
    Fixed(JwkSet),
    Remote(Arc<RemoteJwks>),
}

struct TrustedIssuer {
    name: String,
    keys: Option<KeySource>,
    introspector: Option<Introspector>,
    format: TokenFormat,
}

/// Routes each token to its issuer's verification; see the module docs.
pub(crate) struct IssuerRouter {
    rules: TokenRules,
    issuers: Vec<TrustedIssuer>,
    opaque: Option<usize>,
    introspection_cache_ttl: Duration,
}

impl IssuerRouter {
    pub(crate) fn new(
        rules: TokenRules,
        configured: Vec<Issuer>,
        ctx: &IssuerContext,
    ) -> Result<Self, BuildError> {
        if configured
            .iter()
            .filter(|i| i.takes_opaque_tokens())
            .count()
            > 1
        {
            return Err(BuildError::AmbiguousOpaqueTokens);
        }
        for (i, issuer) in configured.iter().enumerate() {
            if configured[..i].iter().any(|o| o.issuer == issuer.issuer) {
                return Err(BuildError::DuplicateIssuer);
            }
        }
        let mut issuers = Vec::with_capacity(configured.len());
        let mut opaque = None;
        for (index, issuer) in configured.into_iter().enumerate() {
            if issuer.takes_opaque_tokens() {
                opaque = Some(index);
            }
            issuers.push(trusted(issuer, ctx)?);
        }
        Ok(IssuerRouter {
            rules,
            issuers,
            opaque,
            introspection_cache_ttl: ctx.introspection_cache_ttl,
        })
    }

    async fn route(&self, token: &str) -> Result<AccessToken, Error> {
        if !looks_like_jwt(token) {
            let issuer = self
                .opaque
                .and_then(|i| self.issuers.get(i))
                .ok_or(Error::TokenMalformed)?;
            return match &issuer.introspector {
                Some(introspector) => introspector.introspect(token).await,
                None => Err(Error::TokenMalformed),
            };
        }
        // Split and decode once: the issuer is read from, and the signature
        // verified on, the same parse.
        let jws = self.rules.parse_jwt(token)?;
        let iss = unverified_issuer_of(&jws)?.ok_or(Error::TokenMissingClaim)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.name == iss)
            .ok_or(Error::TokenIssuer)?;
        let token = match (&issuer.keys, &issuer.introspector, issuer.format) {
            (_, Some(introspector), TokenFormat::Introspect) | (None, Some(introspector), _) => {
                introspector.introspect(token).await?
            }
            (Some(KeySource::Fixed(keys)), _, _) => self.rules.verify_parsed(&jws, keys)?,
            // An AS whose metadata names no keys (or publishes no metadata
            // at all): its JWT-shaped tokens can only be introspected.
            (Some(KeySource::Remote(remote)), Some(introspector), TokenFormat::Auto)
                if !remote.publishes_keys().await.unwrap_or(false) =>
            {
                introspector.introspect(token).await?
            }
            (Some(KeySource::Remote(remote)), _, _) => remote.verify(&self.rules, &jws).await?,
            (None, None, _) => return Err(Error::TokenVerifierUnavailable),
        };
        // The keys or the endpoint chosen by `iss` vouched for the token:
        // it must really be that issuer's.
        if token.issuer != issuer.name {
            return Err(Error::TokenIssuer);
        }
        Ok(token)
    }
}

impl TokenVerifier for IssuerRouter {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(self.route(token))
    }

    fn on_request(&self) {
        for issuer in &self.issuers {
            if let Some(KeySource::Remote(remote)) = &issuer.keys {
                remote.refresh_if_stale();
            }
        }
    }

    fn check_cached(&self, token: &AccessToken) -> Result<(), Error> {
        // A token only reaches the cache through its issuer's keys or
        // introspection; only remote keys change under it.
        match self.issuers.iter().find(|i| i.name == token.issuer) {
            Some(TrustedIssuer {
                keys: Some(KeySource::Remote(remote)),
                ..
            }) if token.key_thumbprint.is_some() => remote.check_cached(token),
            Some(_) => Ok(()),
            None => Err(Error::TokenIssuer),
        }
    }

    fn max_cache_ttl(&self, token: &AccessToken) -> Option<Duration> {
        // Introspection answers can change before `exp`; a token verified
        // by a key is held to that key on every hit instead.
        if token.key_thumbprint.is_some() {
            return None;
        }
        self.issuers
            .iter()
            .find(|i| i.name == token.issuer)
            .filter(|i| i.introspector.is_some())
            .map(|_| self.introspection_cache_ttl)
    }
}

fn trusted(issuer: Issuer, ctx: &IssuerContext) -> Result<TrustedIssuer, BuildError> {
    if let Some(e) = issuer.key_errors.first() {
        return Err(BuildError::Jwk(*e));
    }
    if issuer.introspection_endpoint.is_some() && issuer.client_auth.is_none() {
        return Err(BuildError::IntrospectionWithoutCredentials);
    }
    let fixed = issuer.has_fixed_keys();
    if fixed && issuer.jwks_uri.is_some() {
        return Err(BuildError::ConflictingKeySources);
    }
    // Discovery is needed for keys unless they are given or only
    // introspection is wanted (JWTs are verified locally even when an
    // introspection endpoint is given: introspection is for opaque tokens),
    // and for an introspection endpoint not given. With an endpoint given,
    // keys are discovered only if the issuer can be (an https URL without
    // query, RFC 8414 §2); otherwise its tokens are introspected, as before.
    let discoverable = endpoint_url(&issuer.issuer).is_ok_and(|url| url.query().is_none());
    let wants_local_keys = issuer.format != TokenFormat::Introspect
        && !fixed
        && issuer.jwks_uri.is_none()
        && (issuer.introspection_endpoint.is_none() || discoverable);
    let needs_discovery = wants_local_keys
        || (issuer.client_auth.is_some() && issuer.introspection_endpoint.is_none());
    let fetcher = || ctx.fetcher.clone().ok_or(BuildError::HttpClient);
    let discovery = if needs_discovery {
        // RFC 8414 §2: an issuer is an https URL with no query or fragment.
        let url = endpoint_url(&issuer.issuer).map_err(BuildError::Endpoint)?;
        if url.query().is_some() {
            return Err(BuildError::Endpoint(FetchError::InvalidUrl));
        }
        Some(Arc::new(Discovery::new(
            issuer.issuer.clone(),
            fetcher()?,
            ctx.timing,
        )))
    } else {
        None
    };

    let keys = if fixed {
        let mut keys = issuer.keys;
        for doc in &issuer.jwks_json {
            let set = JwkSet::from_json(doc).map_err(BuildError::Jwks)?;
            for key in set.keys() {
                keys.push(key.clone());
            }
        }
        if keys.is_empty() {
            return Err(BuildError::NoUsableKey);
        }
        Some(KeySource::Fixed(keys))
    } else {
        let location = match (&issuer.jwks_uri, &discovery) {
            (Some(uri), _) => Some(JwksLocation::Fixed(
                endpoint_url(uri).map_err(BuildError::Endpoint)?,
            )),
            (None, Some(d)) if wants_local_keys => Some(JwksLocation::Discovered(d.clone())),
            _ => None,
        };
        match location {
            Some(location) => Some(KeySource::Remote(Arc::new(RemoteJwks::new(
                issuer.issuer.clone(),
                location,
                fetcher()?,
                ctx.timing,
            )))),
            None => None,
        }
    };

    let introspector = match &issuer.client_auth {
        Some(auth) => {
            let endpoint = match (&issuer.introspection_endpoint, &discovery) {
                (Some(url), _) => {
                    EndpointLocation::Fixed(endpoint_url(url).map_err(BuildError::Endpoint)?)
                }
                (None, Some(d)) => EndpointLocation::Discovered(d.clone()),
                (None, None) => return Err(BuildError::HttpClient),
            };
            Some(Introspector::new(
                issuer.issuer.clone(),
                endpoint,
                auth.clone(),
                fetcher()?,
                ctx.max_concurrent_introspections,
                ctx.fetch_timeout,
            ))
        }
        None => None,
    };
    if keys.is_none() && introspector.is_none() {
        return Err(BuildError::NoTokenVerifier);
    }
    if issuer.format == TokenFormat::Introspect && introspector.is_none() {
        return Err(BuildError::NoTokenVerifier);
    }
    Ok(TrustedIssuer {
        name: issuer.issuer,
        keys,
        introspector,
        format: issuer.format,
    })
}
