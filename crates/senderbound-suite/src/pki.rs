//! **Test-only** certificates made at run time (rcgen), and HTTPS clients
//! that present them: for mTLS certificate-bound token tests and examples.
//! Nothing here is ever written to the repository.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};

/// A self-signed certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM (test fixture, generated in memory).
    pub key_pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl Identity {
    /// A fresh self-signed certificate (ECDSA P-256) for these names, which
    /// may be DNS names or IP addresses.
    pub fn self_signed(names: &[&str]) -> Self {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names).expect("rcgen certificate");
        Identity {
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
            der: certified.cert.der().to_vec(),
        }
    }

    /// A certificate for a server on 127.0.0.1 / localhost.
    pub fn localhost() -> Self {
        Self::self_signed(&["localhost", "127.0.0.1"])
    }

    /// The RFC 8705 thumbprint a token bound to this certificate carries.
    pub fn x5t_s256(&self) -> String {
        senderbound_core::cert::x5t_s256(&self.der)
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("test key PEM")
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What certificate an [`https_client`] presents.
#[derive(Debug, Clone, Copy)]
pub enum Present<'a> {
    /// None.
    Nothing,
    /// This certificate, signing the handshake with its own key.
    Cert(&'a Identity),
    /// `cert`, but signing the handshake with `key`'s private key: a client
    /// that knows a certificate without holding its key.
    CertWithKeyOf {
        /// The certificate presented.
        cert: &'a Identity,
        /// Whose private key signs.
        key: &'a Identity,
    },
}

/// The DER of the first certificate in `pem`.
pub fn der_from_pem(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("a PEM certificate")
        .to_vec()
}

/// An HTTPS client (HTTP/1.1) that trusts only the server certificate
/// `server_der` and presents `present`.
pub fn https_client(server_der: &[u8], present: Present<'_>) -> reqwest::ClientBuilder {
    https_client_with_versions(server_der, present, rustls::DEFAULT_VERSIONS)
}

/// [`https_client`] speaking TLS 1.2 only.
pub fn https_client_tls12(server_der: &[u8], present: Present<'_>) -> reqwest::ClientBuilder {
    https_client_with_versions(server_der, present, &[&rustls::version::TLS12])
}

fn https_client_with_versions(
    server_der: &[u8],
    present: Present<'_>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> reqwest::ClientBuilder {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(server_der.to_vec()))
        .expect("server certificate as root");
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("TLS versions")
        .with_root_certificates(roots);
    let config = match present {
        Present::Nothing => builder.with_no_client_auth(),
        Present::Cert(id) => builder
            .with_client_auth_cert(vec![CertificateDer::from(id.der.clone())], id.key_der())
            .expect("client certificate"),
        Present::CertWithKeyOf { cert, key } => {
            let signing = provider()
                .key_provider
                .load_private_key(key.key_der())
                .expect("signing key");
            builder.with_client_cert_resolver(Arc::new(Mismatched(Arc::new(CertifiedKey::new(
                vec![CertificateDer::from(cert.der.clone())],
                signing,
            )))))
        }
    };
    reqwest::Client::builder().tls_backend_preconfigured(config)
}

/// Always offers one certificate with a key that is not its own.
#[derive(Debug)]
struct Mismatched(Arc<CertifiedKey>);

impl ResolvesClientCert for Mismatched {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
