//! Where access tokens are verified.
//!
//! The Layer asks a [`TokenVerifier`] about each token it has not seen
//! recently, then caches the answer by the token's SHA-256 hash until the
//! token expires. The built-in verifier trusts one or more [`Issuer`]s:
//! JWT access tokens (RFC 9068) are verified with the issuer's keys — fixed,
//! from a `jwks_uri`, or found by RFC 8414 discovery and kept current — and
//! opaque tokens are introspected (RFC 7662). [`JwtVerifier`] is the
//! fixed-key verifier on its own; custom verifiers plug in behind the trait.
//!
//! The values configuring this part of the Layer live here too:
//! [`Issuer`] (with [`Keys`] and [`Introspection`]), [`TokenPolicy`] and
//! [`Fetching`].

pub(crate) mod cache;
mod discovery;
mod fetch;
mod fetching;
mod introspection;
mod issuers;
mod jwt;
mod policy;
mod remote_jwks;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use fetch::FetchError;
pub(crate) use fetch::{Fetcher, default_client, endpoint_url};
pub use fetching::Fetching;
pub use introspection::{ClientAuth, Introspection};
pub use issuers::{Issuer, Keys, TokenFormat};
pub(crate) use issuers::{IssuerContext, IssuerRouter};
pub use jwt::JwtVerifier;
pub use policy::TokenPolicy;
/// The HTTP client crate used for discovery, JWKS and introspection, for
/// building a custom client ([`Fetching::http_client`]).
pub use reqwest;
pub use senderbound_core::authorization_details::AuthorizationDetail;
pub use senderbound_core::jwk::{JwkSet, PublicJwk};
pub use senderbound_core::token::{AccessToken, Audience, Binding, TokenRules, TypPolicy};

/// Turns an access token string into verified claims.
///
/// Implementations verify the token's integrity (signature, or an
/// authorization server's answer) and return its claims. The Layer then
/// checks issuer and audience again, time on every request, and the binding.
///
/// Errors must be [`Error`](crate::Error) token variants (`invalid_token`)
/// for a bad token, or [`Error::TokenVerifierUnavailable`](crate::Error::TokenVerifierUnavailable)
/// when keys or the authorization server cannot be reached (503): never
/// blame the client for the server's trouble.
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token`.
    fn verify(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<AccessToken, senderbound_core::Error>> + Send;

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

impl<T: TokenVerifier> TokenVerifier for std::sync::Arc<T> {
    fn verify(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<AccessToken, senderbound_core::Error>> + Send {
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

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`TokenVerifier`] as a trait object (the Layer holds any verifier).
pub(crate) trait DynTokenVerifier: Send + Sync + 'static {
    fn verify_boxed<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, senderbound_core::Error>>;
    fn on_request(&self);
    fn check_cached(&self, token: &AccessToken) -> Result<(), senderbound_core::Error>;
    fn max_cache_ttl(&self, token: &AccessToken) -> Option<Duration>;
}

impl<V: TokenVerifier> DynTokenVerifier for V {
    fn verify_boxed<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, senderbound_core::Error>> {
        Box::pin(self.verify(token))
    }

    fn on_request(&self) {
        TokenVerifier::on_request(self)
    }

    fn check_cached(&self, token: &AccessToken) -> Result<(), senderbound_core::Error> {
        TokenVerifier::check_cached(self, token)
    }

    fn max_cache_ttl(&self, token: &AccessToken) -> Option<Duration> {
        TokenVerifier::max_cache_ttl(self, token)
    }
}
