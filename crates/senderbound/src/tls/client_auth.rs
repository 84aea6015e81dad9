//! [`AnyClientCert`]: request a client certificate, accept any issuer, and
//! check that the client holds its private key.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// A rustls [`ClientCertVerifier`] for certificate-bound tokens.
///
/// It asks every client for a certificate and accepts any well-formed one,
/// self-signed included: what makes a request legitimate is that the token
/// is bound to this exact certificate (RFC 8705 §2.2), not who issued it.
/// The TLS handshake signature *is* verified with the certificate's public
/// key, so a client that knows a certificate but not its private key fails
/// the handshake.
///
/// Issuer and validity dates are not checked; the bound token's own
/// lifetime limits how long the certificate is useful. To require a CA as
/// well, build a [`rustls::ServerConfig`] with rustls's
/// `WebPkiClientVerifier` and hand it to [`serve`](super::serve).
///
/// [`optional`](AnyClientCert::optional) lets clients without a certificate
/// connect (DPoP clients, say); [`required`](AnyClientCert::required) ends
/// their handshake.
#[derive(Debug)]
pub struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    /// Asks for a certificate, and lets clients without one connect.
    pub fn optional(provider: &CryptoProvider) -> Arc<Self> {
        Arc::new(AnyClientCert {
            mandatory: false,
            algorithms: provider.signature_verification_algorithms,
        })
    }

    /// Asks for a certificate, and refuses the handshake without one.
    pub fn required(provider: &CryptoProvider) -> Arc<Self> {
        Arc::new(AnyClientCert {
            mandatory: true,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: a client sends whatever certificate it has.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Must parse as an X.509 end-entity certificate: its public key is
        // what the handshake signature is checked with next.
        ParsedCertificate::try_from(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
