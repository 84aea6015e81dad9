//! [`ClientCertificate`]: a client's certificate and its thumbprint.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// A client certificate (DER) with its RFC 8705 `x5t#S256` thumbprint,
/// computed once.
///
/// A TLS server puts one into the extensions of every request on a
/// connection whose client presented a certificate; cloning it is cheap.
///
/// ```
/// use senderbound::mtls::ClientCertificate;
///
/// let cert = ClientCertificate::from_der(b"\x30\x03\x02\x01\x01".to_vec());
/// assert_eq!(cert.x5t_s256(), "G2X2ilIshYcV9d2VHNBALcFmkXeIFL8HWYIreiV0IdA");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    der: Bytes,
    x5t_s256: Arc<str>,
}

impl ClientCertificate {
    /// Wraps the DER encoding of a certificate and computes its thumbprint.
    /// The bytes are not parsed: the binding is to these exact bytes.
    pub fn from_der(der: impl Into<Bytes>) -> Self {
        let der = der.into();
        let x5t_s256 = senderbound_core::cert::x5t_s256(&der).into();
        ClientCertificate { der, x5t_s256 }
    }

    /// The certificate's DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Unpadded base64url SHA-256 of the DER: what `cnf["x5t#S256"]` holds.
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t_s256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}
