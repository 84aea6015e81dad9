//! Client certificates for mTLS certificate-bound tokens (RFC 8705): the
//! `x5t#S256` thumbprint, and the RFC 9440 `Client-Cert` header a
//! TLS-terminating proxy forwards the certificate in.
//!
//! ```
//! use senderbound_core::cert::{client_cert_header, x5t_s256};
//!
//! let der = b"\x30\x03\x02\x01\x01"; // any DER bytes
//! assert_eq!(x5t_s256(der).len(), 43);
//! assert_eq!(client_cert_header(b":MAMCAQE=:").unwrap(), der);
//! ```

use std::fmt;

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::{Digest, Sha256};

/// RFC 8941 §4.2.7: standard base64; parsers SHOULD NOT fail on missing
/// `=` padding or on non-zero pad bits.
const BYTE_SEQUENCE: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Largest forwarded certificate accepted, in bytes of header value.
pub const MAX_CLIENT_CERT_HEADER_BYTES: usize = 16 * 1024;

/// The RFC 8705 §3.1 certificate thumbprint: unpadded base64url of the
/// SHA-256 of the certificate's DER encoding.
pub fn x5t_s256(der: &[u8]) -> String {
    crate::jws::b64url_encode(&Sha256::digest(der))
}

/// Why a `Client-Cert` header value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientCertError {
    /// Larger than [`MAX_CLIENT_CERT_HEADER_BYTES`].
    TooLarge,
    /// Not an RFC 8941 byte sequence (`:` base64 `:`), or empty.
    Malformed,
}

impl fmt::Display for ClientCertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientCertError::TooLarge => "client certificate header too large",
            ClientCertError::Malformed => "client certificate header malformed",
        })
    }
}

impl std::error::Error for ClientCertError {}

/// Decodes an RFC 9440 `Client-Cert` header value: an RFC 8941 §3.3.5 byte
/// sequence (`:` + base64 + `:`) holding the certificate's DER.
/// Surrounding spaces are allowed, and so are missing padding and non-zero
/// pad bits (RFC 8941 §4.2.7 asks parsers to accept both); nothing else is:
/// no parameters, no list, no whitespace inside, no base64url, no empty
/// certificate.
pub fn client_cert_header(value: &[u8]) -> Result<Vec<u8>, ClientCertError> {
    if value.len() > MAX_CLIENT_CERT_HEADER_BYTES {
        return Err(ClientCertError::TooLarge);
    }
    let trimmed = value.trim_ascii();
    let inner = trimmed
        .strip_prefix(b":")
        .and_then(|v| v.strip_suffix(b":"))
        .ok_or(ClientCertError::Malformed)?;
    let der = BYTE_SEQUENCE
        .decode(inner)
        .map_err(|_| ClientCertError::Malformed)?;
    // A DER certificate is a SEQUENCE: at least a tag and a length.
    if der.len() < 2 || der.first() != Some(&0x30) {
        return Err(ClientCertError::Malformed);
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_is_base64url_sha256() {
        // SHA-256("") = e3b0c442…; base64url without padding.
        assert_eq!(x5t_s256(b""), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    }

    #[test]
    fn header_forms() {
        for good in [&b"  :MAMCAQE=:  "[..], b":MAMCAQE:", b":MAMCAQF=:"] {
            assert_eq!(
                client_cert_header(good).unwrap(),
                b"\x30\x03\x02\x01\x01",
                "{}",
                String::from_utf8_lossy(good)
            );
        }
        for bad in [
            &b"MAMCAQE="[..],
            b":MAMCAQE=",
            b"MAMCAQE=:",
            b"::",
            b":MAM CAQE=:",
            b":MAMCAQE=:;a=1",
            b":MAMCAQE=:, :MAMCAQE=:",
            b":MAMCAQE==:", // too much padding
            b":MA=MCAQE:",  // padding inside
            b":MAMC_QE=:",  // base64url alphabet, not base64
            b":AQID:",      // not a DER SEQUENCE
            b"",
        ] {
            assert_eq!(
                client_cert_header(bad),
                Err(ClientCertError::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let huge = vec![b'A'; MAX_CLIENT_CERT_HEADER_BYTES + 1];
        assert_eq!(client_cert_header(&huge), Err(ClientCertError::TooLarge));
    }
}
