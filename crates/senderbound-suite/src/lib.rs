//! # senderbound-suite
//!
//! Support code for senderbound's examples, end-to-end tests and benchmarks.
//! Not published.
//!
//! **[`TestIssuer`] is for demos and tests only**: it mints access tokens
//! in-process with a key it generates at start-up. A real deployment trusts
//! an authorization server.

#![forbid(unsafe_code)]

pub mod answer;
pub mod capture;
pub mod dev_as;
pub mod grpc;
pub mod harness;
pub mod mock_as;
pub mod pki;
pub mod process;
pub mod recorded;
pub mod redis_server;
pub mod server_cli;

/// The test issuer of the published `senderbound-test` crate, which the
/// suite's examples and tests use as their demo issuer.
pub use senderbound_test::TestIssuer;
use serde_json::Value;

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

/// docs/audit.md's Rust snippet (writing the events as JSON lines).
#[cfg(doctest)]
#[doc = include_str!("../../../docs/audit.md")]
pub struct AuditDoctests;
