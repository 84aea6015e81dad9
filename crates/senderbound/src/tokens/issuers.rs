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
use senderbound_core::jwk::{JwkSet, PublicJwk};
use senderbound_core::token::{AccessToken, TokenRules, looks_like_jwt, unverified_issuer_of};

use super::discovery::Discovery;
use super::fetch::{FetchError, Fetcher, endpoint_url};
use super::introspection::{EndpointLocation, Introspection, Introspector};
use super::remote_jwks::{JwksLocation, RefreshTiming, RemoteJwks};
use std::future::Future;

use super::TokenVerifier;
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
/// use senderbound::tokens::{ClientAuth, Introspection, Issuer, TokenFormat};
///
/// // Discovery: metadata → jwks_uri.
/// let a = Issuer::new("https://login.example.com");
/// // A fixed JWKS location, no discovery.
/// let b = Issuer::new("https://as.example.org").jwks_uri("https://as.example.org/keys");
/// // Fixed keys (a JWKS document or one JWK), no fetching at all.
/// let c = Issuer::new("https://as.example.com").keys(r#"{"keys":[{"kty":"EC","crv":"P-256",
///     "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
///     "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#);
/// // Opaque tokens, checked with RFC 7662 introspection.
/// let d = Issuer::new("https://legacy.example.net")
///     .introspection(
///         Introspection::new(ClientAuth::client_secret_basic("api", "secret"))
///             .endpoint("https://legacy.example.net/introspect"),
///     )
///     .token_format(TokenFormat::Introspect);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Issuer {
    pub(crate) issuer: String,
    pub(crate) keys: Vec<Keys>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) introspection: Option<Introspection>,
    pub(crate) format: TokenFormat,
}

impl Issuer {
    /// Trust tokens whose `iss` is exactly `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Issuer {
            issuer: issuer.into(),
            keys: Vec::new(),
            jwks_uri: None,
            introspection: None,
            format: TokenFormat::Auto,
        }
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verify this issuer's tokens with these fixed keys: no discovery, no
    /// refresh. `keys` is a JWKS document or one JWK (JSON text, checked by
    /// [`build`](crate::SenderBoundBuilder::build)), a [`JwkSet`] or a
    /// [`PublicJwk`]; calling again adds keys. Not together with
    /// [`jwks_uri`](Self::jwks_uri).
    pub fn keys(mut self, keys: impl Into<Keys>) -> Self {
        self.keys.push(keys.into());
        self
    }

    /// Fetch this issuer's keys from `uri` (and keep them current) instead
    /// of discovering where they are.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Introspect this issuer's opaque tokens (RFC 7662), or all of them
    /// with [`TokenFormat::Introspect`]. JWTs are still verified with the
    /// issuer's keys (given, or discovered) by default.
    pub fn introspection(mut self, introspection: Introspection) -> Self {
        self.introspection = Some(introspection);
        self
    }

    /// Which token forms to accept from this issuer (default
    /// [`TokenFormat::Auto`]).
    pub fn token_format(mut self, format: TokenFormat) -> Self {
        self.format = format;
        self
    }

    pub(crate) fn has_fixed_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// `true` if opaque (non-JWT) tokens would be introspected here.
    pub(crate) fn takes_opaque_tokens(&self) -> bool {
        self.introspection.is_some() && self.format != TokenFormat::Jwt
    }

    /// The fixed keys, parsed: `None` if none were given.
    fn fixed_keys(&self) -> Result<Option<JwkSet>, BuildError> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let mut set = JwkSet::default();
        for keys in &self.keys {
            keys.add_to(&mut set)?;
        }
        if set.is_empty() {
            return Err(BuildError::NoUsableKey);
        }
        Ok(Some(set))
    }
}

/// Fixed token-signing keys for an [`Issuer`]: JSON text (a JWKS document,
/// `{"keys":[…]}`, or one JWK), a [`JwkSet`] or a [`PublicJwk`].
///
/// Text is parsed when the configuration is built, so a mistake is a
/// [`BuildError`], never a panic.
#[derive(Debug, Clone)]
pub struct Keys(KeysInner);

#[derive(Debug, Clone)]
enum KeysInner {
    Json(String),
    Set(JwkSet),
    Key(PublicJwk),
}

impl Keys {
    fn add_to(&self, set: &mut JwkSet) -> Result<(), BuildError> {
        match &self.0 {
            KeysInner::Json(text) => {
                // A JWKS is an object with `keys` (RFC 7517 §5), whatever
                // else it holds; anything else is read as one JWK. The probe
                // reads no value, so nothing in the document can make it
                // fall through to the single-key reading.
                #[derive(serde::Deserialize)]
                struct Probe {
                    keys: Option<serde::de::IgnoredAny>,
                }
                let is_set = serde_json::from_str::<Probe>(text).is_ok_and(|p| p.keys.is_some());
                if is_set || !text.trim_start().starts_with('{') {
                    let parsed = JwkSet::from_json(text).map_err(BuildError::Jwks)?;
                    for key in parsed.keys() {
                        set.push(key.clone());
                    }
                } else {
                    let key = PublicJwk::from_json(text).map_err(BuildError::Jwk)?;
                    // As in a JWKS: a key for anything but signatures does
                    // not verify tokens.
                    if key.key_use().is_none_or(|u| u == "sig") {
                        set.push(key);
                    }
                }
            }
            KeysInner::Set(keys) => {
                for key in keys.keys() {
                    set.push(key.clone());
                }
            }
            KeysInner::Key(key) => set.push(key.clone()),
        }
        Ok(())
    }
}

impl From<&str> for Keys {
    fn from(json: &str) -> Self {
        Keys(KeysInner::Json(json.to_owned()))
    }
}

impl From<String> for Keys {
    fn from(json: String) -> Self {
        Keys(KeysInner::Json(json))
    }
}

impl From<JwkSet> for Keys {
    fn from(keys: JwkSet) -> Self {
        Keys(KeysInner::Set(keys))
    }
}

impl From<PublicJwk> for Keys {
    fn from(key: PublicJwk) -> Self {
        Keys(KeysInner::Key(key))
    }
}

/// What building the issuers needs from the Layer's configuration.
pub(crate) struct IssuerContext {
    pub(crate) fetcher: Option<Fetcher>,
    pub(crate) timing: RefreshTiming,
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
    /// How long introspection answers are cached.
    introspection_cache_ttl: Duration,
    format: TokenFormat,
}

/// Routes each token to its issuer's verification; see the module docs.
pub(crate) struct IssuerRouter {
    rules: TokenRules,
    issuers: Vec<TrustedIssuer>,
    opaque: Option<usize>,
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
    fn verify(&self, token: &str) -> impl Future<Output = Result<AccessToken, Error>> + Send {
        self.route(token)
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
            .map(|i| i.introspection_cache_ttl)
    }
}

fn trusted(issuer: Issuer, ctx: &IssuerContext) -> Result<TrustedIssuer, BuildError> {
    let fixed_keys = issuer.fixed_keys()?;
    let fixed = fixed_keys.is_some();
    let endpoint = issuer
        .introspection
        .as_ref()
        .and_then(|i| i.endpoint.as_ref());
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
        && (endpoint.is_none() || discoverable);
    let needs_discovery =
        wants_local_keys || (issuer.introspection.is_some() && endpoint.is_none());
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

    let keys = if let Some(keys) = fixed_keys {
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

    let introspector = match &issuer.introspection {
        Some(introspection) => {
            let endpoint = match (&introspection.endpoint, &discovery) {
                (Some(url), _) => {
                    EndpointLocation::Fixed(endpoint_url(url).map_err(BuildError::Endpoint)?)
                }
                (None, Some(d)) => EndpointLocation::Discovered(d.clone()),
                (None, None) => return Err(BuildError::HttpClient),
            };
            Some(Introspector::new(
                issuer.issuer.clone(),
                endpoint,
                introspection.auth.clone(),
                fetcher()?,
                introspection.max_concurrent,
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
        introspection_cache_ttl: issuer
            .introspection
            .as_ref()
            .map_or(Duration::ZERO, |i| i.cache_ttl),
        name: issuer.issuer,
        keys,
        introspector,
        format: issuer.format,
    })
}
