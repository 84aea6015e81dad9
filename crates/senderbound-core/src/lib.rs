//! # senderbound-core
//!
//! The pure protocol logic of [senderbound]: everything needed to decide
//! whether a request carries a valid *sender-constrained* OAuth 2.0 access
//! token, with no async runtime, no HTTP server and no I/O. It can be
//! unit-tested, fuzzed and benchmarked alone; the `senderbound` crate wires it
//! into a tower `Layer`.
//!
//! - [`proof`]: DPoP proof parsing and every check of RFC 9449 §4.3
//!   (except replay, which needs a store).
//! - [`jwk`]: public JWK parsing (EC P-256/P-384, Ed25519, RSA) and RFC 7638
//!   thumbprints.
//! - [`htu`]: request-URI normalisation per RFC 3986 §6.2.2–6.2.3.
//! - [`authority`]: `host[:port]` as HTTP requests carry it (`Host`,
//!   absolute-form targets, HTTP/2 `:authority`).
//! - [`token`]: RFC 9068 JWT access tokens, `cnf` bindings, issuer, audience
//!   (RFC 8707), time and scope checks.
//! - [`authorization`]: the `Authorization` header (`DPoP` / `Bearer` schemes).
//! - [`error`]: one [`Error`] enum; each variant maps to one HTTP status, one
//!   `error=` code and one audit severity.
//! - [`clock`]: an injectable clock.
//! - [`replay`] and [`revocation`]: the traits a store implements (used
//!   proofs, revoked tokens), here so a store crate needs no HTTP stack.
//!
//! Signatures are verified with keys parsed once by the backend chosen at
//! compile time by this crate's features: `aws-lc-rs` (default, fastest) or
//! `rust-crypto` (pure Rust: `p256`, `p384`, `ed25519-dalek`, `rsa`). At
//! least one must be enabled.
//!
//! ```
//! use senderbound_core::jwk::PublicJwk;
//!
//! let jwk = PublicJwk::from_json(
//!     r#"{"kty":"EC","crv":"P-256",
//!         "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
//!         "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#,
//! ).unwrap();
//! assert_eq!(jwk.thumbprint().len(), 43);
//! ```
//!
//! [senderbound]: https://docs.rs/senderbound

#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

pub mod alg;
pub mod authority;
pub mod authorization;
pub mod authorization_details;
pub mod cert;
pub mod clock;
mod crypto;
pub mod error;
pub mod htu;
pub mod jwk;
pub mod jws;
pub mod key_cache;
pub mod key_sharing;
pub mod nonce;
mod numeric_date;
pub mod proof;
pub mod replay;
pub mod revocation;
pub mod strict_json;
pub mod token;

pub use alg::{Algorithm, AlgorithmSet};
pub use clock::{Clock, FixedClock, SystemClock};
pub use crypto::backend_name;
pub use error::{Error, ErrorCode, Severity};

use sha2::{Digest, Sha256};

/// SHA-256 of an access token: the value behind the proof's `ath` claim
/// (RFC 9449 §4.2) and the key of the verified-token cache.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The `ath` claim value for `token`: base64url(SHA-256(token)).
pub fn ath(token: &str) -> String {
    jws::b64url_encode(&token_hash(token))
}
