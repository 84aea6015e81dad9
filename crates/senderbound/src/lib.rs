//! # senderbound
//!
//! A tower [`Layer`](tower_layer::Layer) for axum that accepts only
//! **sender-constrained** OAuth 2.0 access tokens. A bearer token works for
//! whoever holds the string; a DPoP-bound token (RFC 9449) also needs a fresh
//! proof signed by the key the token was bound to, so a leaked token is
//! useless on its own.
//!
//! On every request the Layer checks, in this order: the `Authorization` and
//! `DPoP` headers → the proof (RFC 9449 §4.3: `typ`, `alg`, public `jwk`,
//! `htm`, `htu`, `iat`, `ath`, signature) → the access token (RFC 9068 JWT:
//! signature, `iss`, `aud` per RFC 8707, `exp`/`nbf`; cached by hash) → the
//! binding (`cnf.jkt` equals the proof key's RFC 7638 thumbprint) → replay
//! (each proof once) → then hands the handler a verified [`Sender`].
//! Every refusal is an exact RFC status and `WWW-Authenticate` challenge, and
//! every decision is one audit event (see [`audit`]).
//!
//! Tokens come from one or more trusted authorization servers: name the
//! issuer and its metadata (RFC 8414) and keys are discovered, refreshed and
//! rotated; opaque tokens are introspected (RFC 7662); see [`tokens`].
//! Tokens, subjects, clients or keys can be [revoked](Revocations) at run time.
//!
//! For a fleet of servers: [`require_nonce`](SenderBoundBuilder::require_nonce)
//! asks for stateless server nonces (RFC 9449 §8–9, `use_dpop_nonce` with a
//! `DPoP-Nonce`), and the `senderbound-redis` crate remembers used proofs in
//! Redis, so a proof replayed to another instance is caught.
//!
//! With [`accept_mtls_bound`](SenderBoundBuilder::accept_mtls_bound), tokens
//! bound to a client certificate (`cnf["x5t#S256"]`, RFC 8705) are accepted
//! with the `Bearer` scheme when the request comes with that certificate:
//! from the TLS connection (`senderbound::tls::serve`, feature `tls`, puts it
//! in the request), or from a trusted proxy's RFC 9440 `Client-Cert` header.
//! DPoP and mTLS clients can share one router; see [`mtls`].
//!
//! For APIs and MCP servers that AI agents call: the Layer serves RFC 9728
//! protected resource metadata ([`metadata`]), [`authorize::Authorize`]
//! asks your policy about each request (with the MCP tool being called),
//! [`key_sharing`] flags one key used by several clients, and every
//! decision is an audit event plus a `metrics` counter ([`audit`]).
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use senderbound::{RequireScope, Sender, SenderBound};
//!
//! # fn main() -> Result<(), senderbound::BuildError> {
//! let auth = SenderBound::builder()
//!     .issuer("https://as.example.com")
//!     .audience("https://api.example.com")
//!     .public_base_url("https://api.example.com")
//!     .jwks_json(r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"as-1",
//!         "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
//!         "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#)
//!     .build()?;
//!
//! async fn read(sender: Sender) -> Json<Sender> {
//!     Json(sender)
//! }
//!
//! let app: Router = Router::new()
//!     .route("/api/read", get(read).route_layer(RequireScope::all(["read"])))
//!     .layer(auth.layer());
//! # Ok(()) }
//! ```
//!
//! With an authorization server to discover:
//!
//! ```
//! # fn main() -> Result<(), senderbound::BuildError> {
//! let auth = senderbound::SenderBound::builder()
//!     .issuer("https://login.example.com") // metadata → jwks_uri, fetched on first use
//!     .audience("https://api.example.com")
//!     .public_base_url("https://api.example.com")
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! ## Features
//! - `aws-lc-rs` (default): signatures verified with aws-lc-rs.
//! - `rust-crypto`: pure-Rust verification (p256, p384, ed25519-dalek, rsa),
//!   for targets that cannot build C. If both are enabled, aws-lc-rs is used.
//! - `serve`: the `serve` module: serving a router over HTTP/1.1 and HTTP/2
//!   with what the Layer needs from the server (request targets with a
//!   fragment marked, the peer's address).
//! - `tls`: the `tls` module: serving a router over rustls with client certificates
//!   (tokio-rustls, hyper-util). TLS runs on aws-lc-rs, as the HTTP client
//!   for discovery and JWKS already does, whichever backend verifies
//!   signatures.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod authorize;
mod challenge;
mod credentials;
pub mod framing;
pub mod key_sharing;
mod layer;
pub mod metadata;
pub mod mtls;
pub mod profile;
pub mod replay;
mod require_scope;
pub mod revocation;
mod sender;
#[cfg(feature = "serve")]
pub mod serve;
mod service;
mod target_uri;
#[cfg(feature = "tls")]
pub mod tls;
pub mod tokens;

pub use challenge::Rejection;
pub use credentials::DPOP;
pub use layer::{BuildError, SenderBound, SenderBoundBuilder, SenderBoundLayer};
pub use require_scope::{RequireScope, RequireScopeFuture, RequireScopeService};
pub use revocation::{RevocationCheck, Revocations};
pub use sender::{BindingKind, MissingSender, Sender};
pub use service::{DPOP_NONCE, ResponseFuture, SenderBoundService};
pub use tokens::{ClientAuth, Issuer, TokenFormat};

/// The HTTP client crate used for discovery, JWKS and introspection, for
/// building a custom client ([`SenderBoundBuilder::http_client`]).
pub use reqwest;

/// The protocol crate, re-exported: algorithms, JWKs, errors, the clock.
pub use senderbound_core as core;
pub use senderbound_core::token::TypPolicy;
pub use senderbound_core::{Algorithm, Clock, Error, ErrorCode, FixedClock, Severity, SystemClock};
