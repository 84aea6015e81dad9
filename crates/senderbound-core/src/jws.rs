//! Compact JWS (RFC 7515 §7.1) splitting and base64url decoding, shared by
//! DPoP proofs and JWT access tokens.
//!
//! One pass: the three segments are located once, the header and payload are
//! decoded once, and the signing input is borrowed from the input string.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A compact JWS split into its parts. Nothing has been verified yet.
/// Its `Debug` output shows only sizes.
pub struct CompactJws<'a> {
    /// The decoded JOSE header (JSON bytes).
    pub header: Vec<u8>,
    /// The decoded payload (JSON bytes for a JWT).
    pub payload: Vec<u8>,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: what the signature covers.
    pub signing_input: &'a str,
    /// The decoded signature bytes.
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for CompactJws<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactJws")
            .field("header_bytes", &self.header.len())
            .field("payload_bytes", &self.payload.len())
            .field("signature_bytes", &self.signature.len())
            .finish()
    }
}

/// Why a string is not a compact JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotCompactJws;

impl<'a> CompactJws<'a> {
    /// Splits `input` into header, payload and signature, decoding each with
    /// strict unpadded base64url. Fails unless there are exactly three
    /// non-empty segments (an empty signature is how `alg: none` looks).
    pub fn parse(input: &'a str) -> Result<Self, NotCompactJws> {
        let bytes = input.as_bytes();
        let first = memchr_dot(bytes, 0).ok_or(NotCompactJws)?;
        let second = memchr_dot(bytes, first + 1).ok_or(NotCompactJws)?;
        if memchr_dot(bytes, second + 1).is_some() {
            return Err(NotCompactJws);
        }
        let (h, p, s) = (
            &input[..first],
            &input[first + 1..second],
            &input[second + 1..],
        );
        if h.is_empty() || p.is_empty() || s.is_empty() {
            return Err(NotCompactJws);
        }
        Ok(CompactJws {
            header: b64url_decode(h)?,
            payload: b64url_decode(p)?,
            signing_input: &input[..second],
            signature: b64url_decode(s)?,
        })
    }
}

fn memchr_dot(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|b| *b == b'.')
        .map(|i| i + from)
}

/// Strict unpadded base64url decoding (no padding, no whitespace, canonical
/// trailing bits).
pub(crate) fn b64url_decode(s: &str) -> Result<Vec<u8>, NotCompactJws> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| NotCompactJws)
}

/// Unpadded base64url encoding.
pub(crate) fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_parts() {
        let jws = CompactJws::parse("eyJhIjoxfQ.eyJiIjoyfQ.AQID").unwrap();
        assert_eq!(jws.header, br#"{"a":1}"#);
        assert_eq!(jws.payload, br#"{"b":2}"#);
        assert_eq!(jws.signing_input, "eyJhIjoxfQ.eyJiIjoyfQ");
        assert_eq!(jws.signature, [1, 2, 3]);
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "eyJhIjoxfQ.eyJiIjoyfQ.",      // empty signature (alg none)
            ".eyJiIjoyfQ.AQID",            // empty header
            "eyJhIjoxfQ.eyJiIjoyfQ.AQID=", // padding
            "eyJhIjoxfQ.eyJiIjoyfQ.AQ+D",  // standard alphabet
            "eyJhIjoxfQ .eyJiIjoyfQ.AQID", // whitespace
            "eyJhIjoxfQ.eyJiIjoyfQ.AQIE.", // trailing dot
            "eyJhIjoxfQ.eyJiIjoyfQ.AQJ",   // non-canonical trailing bits
        ] {
            assert!(CompactJws::parse(bad).is_err(), "{bad:?}");
        }
    }
}
