//! # senderbound-suite
//!
//! Support code for senderbound's examples, end-to-end tests and benchmarks.
//! Not published.
//!
//! **[`DemoIssuer`] is for demos and tests only**: it mints access tokens
//! in-process with a key it generates at start-up. A real deployment trusts
//! an authorization server.

#![forbid(unsafe_code)]

pub mod answer;
pub mod capture;
pub mod dev_as;
pub mod harness;
pub mod mock_as;
pub mod pki;
pub mod process;
pub mod redis_server;
pub mod server_cli;

use senderbound_client::DpopKey;
use serde_json::{Value, json};

/// A **demo-only** token issuer: signs RFC 9068 JWT access tokens (ES256)
/// with a key generated in memory, and publishes its public key as a JWKS.
#[derive(Debug, Clone)]
pub struct DemoIssuer {
    key: DpopKey,
    kid: String,
    issuer: String,
}

impl DemoIssuer {
    /// A new issuer with identifier `issuer` and a fresh signing key.
    pub fn new(issuer: impl Into<String>) -> Self {
        let key = DpopKey::generate();
        let kid = key.jkt()[..8].to_owned();
        DemoIssuer {
            key,
            kid,
            issuer: issuer.into(),
        }
    }

    /// The issuer identifier (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `kid` of the signing key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWKS document to configure a resource server with.
    pub fn jwks_json(&self) -> String {
        json!({ "keys": [self.public_jwk()] }).to_string()
    }

    /// The public signing key as a JWK, with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.key.public_jwk().clone();
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!("ES256");
        jwk["use"] = json!("sig");
        jwk
    }

    /// Default claims of a token for `audience`, bound to the DPoP key with
    /// thumbprint `jkt` (unbound if `None`), issued at `now`, valid 5 minutes.
    pub fn claims(&self, audience: &str, jkt: Option<&str>, scope: &str, now: u64) -> Value {
        let mut claims = json!({
            "iss": self.issuer,
            "sub": "user-42",
            "client_id": "demo-client",
            "aud": audience,
            "scope": scope,
            "iat": now,
            "exp": now + 300,
            "jti": format!("at-{now}-{}", senderbound_client::random_jti()),
        });
        if let Some(jkt) = jkt {
            claims["cnf"] = json!({ "jkt": jkt });
        }
        claims
    }

    /// Signs `claims` as an `at+jwt` access token.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"typ": "at+jwt", "alg": "ES256", "kid": self.kid}),
            claims,
        )
    }

    /// Signs `claims` under an arbitrary JOSE header (for negative tests).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.key.sign_compact(header, claims)
    }
}

/// The claims (payload) of a compact JWS, decoded without verifying
/// anything: for tests that look at what a client or server signed. `Null`
/// if it is not a JWS with a JSON payload.
pub fn unverified_claims(jws: &str) -> Value {
    use base64::Engine as _;
    let payload = jws.split('.').nth(1).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// The README's Rust snippets, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// docs/deployment.md's Rust snippets, compiled as doc tests too.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/deployment.md")]
pub struct DeploymentDoctests;
