//! Client certificates for mTLS certificate-bound tokens (RFC 8705).
//!
//! A token whose `cnf` holds `"x5t#S256"` is accepted only from a request
//! that comes with the client certificate of that SHA-256 thumbprint. Such a
//! token travels with the `Bearer` scheme (RFC 8705 §3): that is not a
//! downgrade, the certificate is the proof of possession.
//!
//! Where the certificate comes from is a [`ClientCertSource`]:
//!
//! - **the TLS connection** (the default): the server that terminates TLS puts
//!   the peer's certificate into each request's extensions as a
//!   [`ClientCertificate`]. `senderbound::tls::serve` (feature `tls`)
//!   does this; so can any server of your own.
//! - **an RFC 9440 `Client-Cert` header** set by a TLS-terminating proxy:
//!   honoured only when the TCP peer (axum's
//!   [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo)) is one of the
//!   [`TrustedProxies`], and removed from every request that comes from
//!   anyone else, so no handler behind the Layer ever sees a spoofed
//!   certificate (routes *outside* the Layer are not covered: apply the
//!   Layer to the whole router, or have the proxy overwrite the header).
//!   See [`ForwardedClientCert`].
//!
//! After a certificate-bound token is accepted, the certificate it is bound
//! to is in the request's extensions as a [`ClientCertificate`] (behind a
//! proxy: the forwarded one), and [`Sender::binding`](crate::Sender::binding)
//! names its thumbprint.
//!
//! ```
//! use senderbound::SenderBoundLayer;
//! use senderbound::mtls::{ForwardedClientCert, TrustedProxies};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = SenderBoundLayer::builder()
//!     .issuer("https://as.example.com")
//!     .audience("https://api.example.com")
//!     .origin("https://api.example.com")
//!     // Accept certificate-bound tokens, with certificates from TLS
//!     // connections and from this proxy's Client-Cert header:
//!     .mtls(ForwardedClientCert::new(TrustedProxies::parse(["10.0.0.0/8", "::1"])?))
//!     .build()?;
//! # Ok(()) }
//! ```

mod certificate;
mod forwarded;

pub use certificate::ClientCertificate;
pub use forwarded::{ForwardedClientCert, InvalidProxy, TrustedProxies};

use http::request::Parts;
use senderbound_core::Error;

/// Where the Layer finds the client certificate of a request.
///
/// Two calls per request: [`sanitize`](ClientCertSource::sanitize) on every
/// request, before any check, to remove what the source does not trust;
/// [`client_certificate`](ClientCertSource::client_certificate) only when
/// the token turns out to be certificate-bound.
///
/// Implement it to read certificates from somewhere else (another proxy
/// header format, a service mesh). Fail closed: a certificate you cannot
/// decode is an `Err` (use [`Error::CertificateMalformed`]), never
/// `Ok(None)` or a guess; and strip in `sanitize` whatever a client could
/// forge, so handlers behind the Layer never see it.
pub trait ClientCertSource: Send + Sync + 'static {
    /// Removes anything this source would not trust from the request (a
    /// forwarded-certificate header from a peer that is not a trusted
    /// proxy, say), so that handlers behind the Layer never see it.
    fn sanitize(&self, parts: &mut Parts);

    /// The certificate the client presented, `Ok(None)` if it presented none.
    fn client_certificate(&self, parts: &Parts) -> Result<Option<ClientCertificate>, Error>;
}

/// The certificate of the TLS connection itself: the [`ClientCertificate`]
/// its server put into the request's extensions. The default source.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionCert;

impl ClientCertSource for ConnectionCert {
    /// Nothing to remove: a request cannot forge its extensions.
    fn sanitize(&self, _: &mut Parts) {}

    fn client_certificate(&self, parts: &Parts) -> Result<Option<ClientCertificate>, Error> {
        Ok(parts.extensions.get::<ClientCertificate>().cloned())
    }
}
