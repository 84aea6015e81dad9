//! The HTTP header names senderbound reads and writes beyond the standard
//! ones (`Authorization`, `WWW-Authenticate`, `Host`).

use http::HeaderName;

/// `DPoP` (RFC 9449 §4.1): the request's proof.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

/// `DPoP-Nonce` (RFC 9449 §8.1): a nonce the client must put in its next
/// proofs; sent with `use_dpop_nonce` refusals, and on responses whose
/// client's nonce is aging.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// `Client-Cert` (RFC 9440 §2.2): the client's certificate as a trusted
/// proxy forwards it, an RFC 8941 byte sequence of its DER.
pub const CLIENT_CERT: HeaderName = HeaderName::from_static("client-cert");

/// `Client-Cert-Chain` (RFC 9440 §2.3). Not used for the binding (that is
/// the end-entity certificate alone), but removed from untrusted requests
/// like `Client-Cert`.
pub const CLIENT_CERT_CHAIN: HeaderName = HeaderName::from_static("client-cert-chain");
