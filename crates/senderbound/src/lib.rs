//! # senderbound
//!
//! A tower [`Layer`](tower_layer::Layer) for axum (and any tower service)
//! that accepts only **sender-constrained** OAuth 2.0 access tokens. A
//! bearer token works for whoever holds the string; a DPoP-bound token (RFC
//! 9449) also needs a fresh proof signed by the key the token was bound to,
//! and a certificate-bound token (RFC 8705) the client certificate it names,
//! so a leaked token is useless on its own.
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use senderbound::{RequireScopeLayer, Sender, SenderBoundLayer};
//!
//! # fn main() -> Result<(), senderbound::BuildError> {
//! let auth = SenderBoundLayer::builder()
//!     .issuer("https://login.example.com") // metadata and keys discovered (RFC 8414)
//!     .audience("https://api.example.com") // what tokens must name in `aud`
//!     .origin("https://api.example.com")   // what proofs must name in `htu`
//!     .build()?;
//!
//! async fn read(sender: Sender) -> Json<Sender> {
//!     Json(sender)
//! }
//!
//! let app: Router = Router::new()
//!     .route("/api/read", get(read).route_layer(RequireScopeLayer::all(["read"])))
//!     .layer(auth);
//! # Ok(()) }
//! ```
//!
//! Every request goes through the [`pipeline`] (its order is told there):
//! framing, credentials, the proof (RFC 9449 §4.3), the token (RFC 9068 JWT
//! by the issuer's keys, or RFC 7662 introspection; cached by hash), the
//! binding, revocation, replay; then the handler gets a verified
//! [`Sender`]. Every refusal is an exact RFC status and `WWW-Authenticate`
//! challenge ([`challenge`]), and every decision one audit event
//! ([`audit`]: install a `tracing` subscriber to see them).
//!
//! ## Where things are
//! - The root: the Layer and its builder, [`Sender`], the route layers
//!   [`RequireScopeLayer`] and [`AuthorizeLayer`], the refusal and build
//!   errors.
//! - [`tokens`]: trusted issuers ([`Issuer`](tokens::Issuer)), token rules,
//!   fetching; [`proof`]: proof rules and server nonces; [`mtls`]:
//!   certificate sources; [`replay`] and [`revocation`]: the stores.
//! - For agents: [`step_up`] (RFC 9470), [`tool_grants`] (RFC 9396),
//!   [`key_sharing`], [`incident`] (when failed proofs are an incident).
//! - [`metadata`] (RFC 9728), [`profile`] (FAPI 2.0, MCP), [`header`]
//!   (header names), [`clock`], [`error`].
//! - [`serve`] and [`tls`] (features): serving a router with what the Layer
//!   needs from the server; [`cors`] (feature): CORS for browser DPoP
//!   clients.
//!
//! To test your own protected handlers, the `senderbound-test` crate makes
//! an issuer the Layer trusts, tokens bound to a client key, and proofs.
//!
//! ## Features
//! - `aws-lc-rs` (default): signatures verified with aws-lc-rs.
//! - `rust-crypto`: pure-Rust verification (p256, p384, p521,
//!   ed25519-dalek, rsa), for targets that cannot build C. If both are
//!   enabled, aws-lc-rs is used.
//! - `serve`: the [`serve`] module: serving a router over HTTP/1.1 and
//!   HTTP/2 with what the Layer needs from the server (request targets with
//!   a fragment marked, the peer's address).
//! - `tls`: the [`tls`] module: serving a router over rustls with client
//!   certificates. TLS runs on aws-lc-rs, as the HTTP client for discovery
//!   and JWKS already does, whichever backend verifies signatures.
//! - `cors`: the [`cors`] module: a tower-http `CorsLayer` for browser DPoP
//!   clients (`Authorization` and `DPoP` allowed, `WWW-Authenticate` and
//!   `DPoP-Nonce` exposed, listed origins only, no credentials).

#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod audit;
pub mod authorize;
pub mod challenge;
pub mod clock;
#[cfg(feature = "cors")]
#[cfg_attr(docsrs, doc(cfg(feature = "cors")))]
pub mod cors;
mod credentials;
pub mod error;
pub mod framing;
pub mod header;
pub mod incident;
pub mod key_sharing;
mod layer;
pub mod metadata;
pub mod mtls;
mod origin;
pub mod pipeline;
pub mod profile;
pub mod proof;
pub mod replay;
pub mod require_scope;
pub mod revocation;
mod sender;
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub mod serve;
pub mod service;
pub mod step_up;
mod target_uri;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
pub mod tokens;
pub mod tool_grants;

pub use authorize::{Authorize, AuthorizeLayer};
pub use challenge::Rejection;
pub use layer::{BuildError, SenderBoundBuilder, SenderBoundLayer};
pub use origin::Origin;
pub use require_scope::{RequireScope, RequireScopeLayer};
pub use sender::{MissingSender, Sender};
pub use senderbound_core::{Algorithm, Error};
pub use service::SenderBound;
