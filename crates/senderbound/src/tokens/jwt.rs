//! RFC 9068 JWT access tokens verified against a fixed set of keys.

use senderbound_core::jwk::{JwkSet, PublicJwk};
use senderbound_core::token::{AccessToken, TokenRules};

use std::future::Future;

use super::TokenVerifier;

/// Verifies JWT access tokens with keys given up front (a JWKS document or
/// single JWKs).
///
/// ```
/// use senderbound::tokens::{JwkSet, JwtVerifier, TokenRules};
///
/// let keys = JwkSet::from_json(r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1",
///   "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
///   "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#).unwrap();
/// let verifier = JwtVerifier::new(
///     TokenRules::new(["https://as.example.com"], ["https://api.example.com"]),
///     keys,
/// );
/// ```
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    rules: TokenRules,
    keys: JwkSet,
}

impl JwtVerifier {
    /// A verifier accepting tokens that meet `rules` and are signed by one of `keys`.
    pub fn new(rules: TokenRules, keys: JwkSet) -> Self {
        JwtVerifier { rules, keys }
    }

    /// Adds a trusted signing key.
    pub fn with_key(mut self, key: PublicJwk) -> Self {
        self.keys.push(key);
        self
    }

    /// The trusted keys.
    pub fn keys(&self) -> &JwkSet {
        &self.keys
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<AccessToken, senderbound_core::Error>> + Send {
        std::future::ready(self.rules.verify_jwt(token, &self.keys))
    }
}
