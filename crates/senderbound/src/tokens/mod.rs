//! Where access tokens are verified.
//!
//! The Layer asks a [`TokenVerifier`] about each token it has not seen
//! recently, then caches the answer by the token's SHA-256 hash until the
//! token expires. The built-in verifier trusts one or more [`Issuer`]s:
//! JWT access tokens (RFC 9068) are verified with the issuer's keys — fixed,
//! from a `jwks_uri`, or found by RFC 8414 discovery and kept current — and
//! opaque tokens are introspected (RFC 7662). [`JwtVerifier`] is the
//! fixed-key verifier on its own; custom verifiers plug in behind the trait.

pub(crate) mod cache;
mod discovery;
mod fetch;
mod introspection;
mod issuers;
mod jwt;
mod remote_jwks;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use discovery::ServerMetadata;
pub use fetch::{DEFAULT_FETCH_TIMEOUT, FetchError, MAX_RESPONSE_BYTES, endpoint_url};
pub(crate) use fetch::{Fetcher, default_client};
pub use introspection::{
    ClientAuth, DEFAULT_INTROSPECTION_CACHE_TTL, DEFAULT_MAX_CONCURRENT_INTROSPECTIONS,
};
pub use issuers::{Issuer, TokenFormat};
pub(crate) use issuers::{IssuerContext, IssuerRouter};
pub use jwt::JwtVerifier;
pub(crate) use remote_jwks::RefreshTiming;
pub use remote_jwks::{
    DEFAULT_JWKS_MAX_STALE, DEFAULT_JWKS_MIN_REFRESH_INTERVAL, DEFAULT_JWKS_REFRESH_INTERVAL,
};
pub use senderbound_core::token::{AccessToken, Audience, Binding, TokenRules, TypPolicy};

/// The future returned by [`TokenVerifier::verify`].
pub type VerifyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AccessToken, senderbound_core::Error>> + Send + 'a>>;

/// Turns an access token string into verified claims.
///
/// Implementations verify the token's integrity (signature, or an
/// authorization server's answer) and return its claims. The Layer then
/// checks issuer and audience again, time on every request, and the binding.
///
/// Errors must be [`senderbound_core::Error`] token variants (`invalid_token`)
/// for a bad token, or [`senderbound_core::Error::TokenVerifierUnavailable`]
/// when keys or the authorization server cannot be reached (503): never
/// blame the client for the server's trouble.
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token`.
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a>;

    /// Called on every request before the token cache is consulted, so a
    /// verifier can keep its keys current even while every token is served
    /// from the cache. Must be cheap and must not block (spawn work
    /// instead). The default does nothing.
    fn on_request(&self) {}

    /// Called on every verified-token cache hit: whether a token this
    /// verifier vouched for earlier still passes as it would now (its
    /// signing key still published, the keys not too stale). The default
    /// accepts; `Err` refuses the request with that error.
    fn check_cached(&self, token: &AccessToken) -> Result<(), senderbound_core::Error> {
        let _ = token;
        Ok(())
    }

    /// The longest the Layer may cache this verified token (it never caches
    /// past `exp`). `None`, the default, means until `exp`; verifiers whose
    /// answers can change before then (introspection) return a bound.
    fn max_cache_ttl(&self, token: &AccessToken) -> Option<Duration> {
        let _ = token;
        None
    }
}

impl<T: TokenVerifier + ?Sized> TokenVerifier for std::sync::Arc<T> {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        (**self).verify(token)
    }

    fn on_request(&self) {
        (**self).on_request()
    }

    fn check_cached(&self, token: &AccessToken) -> Result<(), senderbound_core::Error> {
        (**self).check_cached(token)
    }

    fn max_cache_ttl(&self, token: &AccessToken) -> Option<Duration> {
        (**self).max_cache_ttl(token)
    }
}
