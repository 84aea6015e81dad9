//! Where access tokens are verified.
//!
//! The Layer asks a [`TokenVerifier`] about each token it has not seen
//! recently, then caches the answer by the token's SHA-256 hash until the
//! token expires. [`JwtVerifier`] verifies RFC 9068 JWT access
//! tokens against a fixed key set; remote JWKS and introspection plug in
//! behind the same trait.

pub(crate) mod cache;
mod jwt;

use std::future::Future;
use std::pin::Pin;

pub use jwt::JwtVerifier;
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
}

impl<T: TokenVerifier + ?Sized> TokenVerifier for std::sync::Arc<T> {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        (**self).verify(token)
    }
}
