//! Serving an axum router over TLS with client certificates (feature `tls`).
//!
//! For mTLS certificate-bound tokens (RFC 8705) the resource server must see
//! the client's certificate. When your server terminates TLS itself, this
//! module is the short way: [`server_config`] builds a rustls configuration
//! that asks clients for a certificate (any issuer, self-signed included,
//! see [`AnyClientCert`]), and [`serve`] runs the router over it, putting
//! the peer's [`ClientCertificate`] and its address
//! ([`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo)) into the
//! extensions of every request. The Layer's default certificate source
//! reads exactly that.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use senderbound::tls::{self, AnyClientCert};
//!
//! # async fn run(app: Router) -> Result<(), Box<dyn std::error::Error>> {
//! let config = tls::server_config(
//!     &std::fs::read("server.pem")?,     // certificate chain, PEM
//!     &std::fs::read("server-key.pem")?, // private key, PEM
//!     AnyClientCert::optional,           // DPoP clients may come without one
//! )?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! tls::serve(listener, config, app)
//!     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or(()) })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The connections are served as [`serve`](crate::serve) serves them
//! (request targets with a fragment marked, `ConnectInfo` on every request);
//! ALPN offers `h2` and `http/1.1` (gRPC clients need HTTP/2 over TLS; the
//! authority then comes from `:authority`). No connection upgrades, no
//! connection limit. Each handshake must finish within 10 s; an HTTP/1.1
//! request head must arrive within 30 s; an HTTP/2 connection is kept
//! while the peer answers keep-alive pings (gRPC clients keep idle
//! connections open on purpose) and let go when it stops answering, so
//! dead peers cannot pin tasks forever. Put a proxy in front for
//! connection limits or anything fancier, and forward the certificate with
//! RFC 9440 (see [`mtls`](crate::mtls)).

mod client_auth;

pub use client_auth::AnyClientCert;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::mtls::ClientCertificate;
use crate::serve::Transport;
pub use crate::serve::{Serve, WithGracefulShutdown};

pub use rustls;

/// How long a client has to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub use crate::serve::HEADER_READ_TIMEOUT;

/// Why [`server_config`] failed. Says which input, never its contents.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The certificate chain PEM holds no certificate, or cannot be read.
    Certificates,
    /// The key PEM holds no private key, or cannot be read.
    PrivateKey,
    /// rustls refused the configuration (for example the key does not match
    /// the certificate).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Certificates => f.write_str("no usable certificate in the PEM chain"),
            TlsConfigError::PrivateKey => f.write_str("no usable private key in the key PEM"),
            TlsConfigError::Rustls(e) => write!(f, "TLS configuration: {e}"),
        }
    }
}

impl std::error::Error for TlsConfigError {}

/// A rustls server configuration from a PEM certificate chain and private
/// key that asks clients for certificates with `client_auth` (usually
/// [`AnyClientCert::optional`] or [`AnyClientCert::required`]).
///
/// Uses the process-wide rustls crypto provider if one is installed,
/// aws-lc-rs otherwise; TLS 1.3 and 1.2; ALPN `h2` and `http/1.1`.
pub fn server_config<V>(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_auth: impl FnOnce(&CryptoProvider) -> Arc<V>,
) -> Result<Arc<ServerConfig>, TlsConfigError>
where
    V: ClientCertVerifier + 'static,
{
    let chain = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsConfigError::Certificates)?;
    if chain.is_empty() {
        return Err(TlsConfigError::Certificates);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsConfigError::PrivateKey)?;
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = client_auth(&provider);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Rustls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(TlsConfigError::Rustls)?;
    // HTTP/2 first: gRPC clients require it; browsers and curl prefer it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over TLS on `listener`; see the [module docs](self).
///
/// Await it to run until an I/O error of the listener itself; add
/// [`with_graceful_shutdown`](Serve::with_graceful_shutdown) to stop on a
/// signal. Every request carries [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo)
/// and, if the client presented one, its [`ClientCertificate`].
pub fn serve(listener: TcpListener, config: Arc<ServerConfig>, app: Router) -> Serve {
    Serve::with_transport(listener, app, Transport::Tls(TlsAcceptor::from(config)))
}

/// The TLS handshake, bounded in time, and the client's certificate (its
/// first, end-entity certificate) if it sent one.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> Option<(
    tokio_rustls::server::TlsStream<TcpStream>,
    Option<ClientCertificate>,
)> {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(target: "senderbound::tls", "TLS handshake failed: {e}");
            return None;
        }
        Err(_) => {
            tracing::debug!(target: "senderbound::tls", "TLS handshake timed out");
            return None;
        }
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| ClientCertificate::from_der(leaf.as_ref().to_vec()));
    Some((tls, cert))
}
