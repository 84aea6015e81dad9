//! Compact JWS (RFC 7515 §7.1) splitting and base64url decoding, shared by
//! DPoP proofs and JWT access tokens.
//!
//! One pass: the three segments are located once, decoded once into one
//! buffer (one allocation), and the signing input is borrowed from the input
//! string.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A compact JWS split into its parts. Nothing has been verified yet.
/// Its `Debug` output shows only sizes.
pub struct CompactJws<'a> {
    /// The decoded header, payload and signature, one after the other.
    decoded: Vec<u8>,
    /// Where the payload and the signature start in `decoded`.
    payload_at: usize,
    signature_at: usize,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: what the signature covers.
    pub signing_input: &'a str,
}

impl std::fmt::Debug for CompactJws<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactJws")
            .field("header_bytes", &self.header().len())
            .field("payload_bytes", &self.payload().len())
            .field("signature_bytes", &self.signature().len())
            .finish()
    }
}

/// Why a string is not a compact JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotCompactJws;

/// The three segments of a compact JWS, located but not decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segments<'a> {
    /// The header as sent (base64url).
    pub(crate) header: &'a str,
    payload: &'a str,
    signature: &'a str,
    signing_input: &'a str,
}

impl<'a> Segments<'a> {
    /// Locates the segments. Fails unless there are exactly three non-empty
    /// ones (an empty signature is how `alg: none` looks).
    pub(crate) fn split(input: &'a str) -> Result<Self, NotCompactJws> {
        let bytes = input.as_bytes();
        let first = memchr_dot(bytes, 0).ok_or(NotCompactJws)?;
        let second = memchr_dot(bytes, first + 1).ok_or(NotCompactJws)?;
        if memchr_dot(bytes, second + 1).is_some() {
            return Err(NotCompactJws);
        }
        let segments = Segments {
            header: &input[..first],
            payload: &input[first + 1..second],
            signature: &input[second + 1..],
            signing_input: &input[..second],
        };
        if segments.header.is_empty()
            || segments.payload.is_empty()
            || segments.signature.is_empty()
        {
            return Err(NotCompactJws);
        }
        Ok(segments)
    }
}

impl<'a> CompactJws<'a> {
    /// Splits `input` into header, payload and signature, decoding each with
    /// strict unpadded base64url. Fails unless there are exactly three
    /// non-empty segments (an empty signature is how `alg: none` looks).
    pub fn parse(input: &'a str) -> Result<Self, NotCompactJws> {
        Self::decode(Segments::split(input)?, true)
    }

    /// Decodes the payload and the signature of `segments`, and its header
    /// too if `with_header` (else [`header`](Self::header) is empty: for a
    /// header whose checks are already known, see
    /// [`key_cache`](crate::key_cache)).
    pub(crate) fn decode(segments: Segments<'a>, with_header: bool) -> Result<Self, NotCompactJws> {
        let Segments {
            header: h,
            payload: p,
            signature: s,
            signing_input,
        } = segments;
        // Each segment decodes to at most 3/4 of its length.
        let mut decoded = Vec::with_capacity((h.len() + p.len() + s.len()) / 4 * 3 + 3);
        if with_header {
            URL_SAFE_NO_PAD
                .decode_vec(h, &mut decoded)
                .map_err(|_| NotCompactJws)?;
        }
        let payload_at = decoded.len();
        URL_SAFE_NO_PAD
            .decode_vec(p, &mut decoded)
            .map_err(|_| NotCompactJws)?;
        let signature_at = decoded.len();
        // A JOSE header (RFC 7515 §4) and a JWT claims set (RFC 7519 §7.2)
        // are JSON objects; serde would also read a struct from an array.
        if (with_header && !is_json_object(&decoded[..payload_at]))
            || !is_json_object(&decoded[payload_at..])
        {
            return Err(NotCompactJws);
        }
        URL_SAFE_NO_PAD
            .decode_vec(s, &mut decoded)
            .map_err(|_| NotCompactJws)?;
        Ok(CompactJws {
            decoded,
            payload_at,
            signature_at,
            signing_input,
        })
    }

    /// The decoded JOSE header (JSON bytes).
    pub fn header(&self) -> &[u8] {
        self.decoded.get(..self.payload_at).unwrap_or_default()
    }

    /// The decoded payload (JSON bytes for a JWT).
    pub fn payload(&self) -> &[u8] {
        self.decoded
            .get(self.payload_at..self.signature_at)
            .unwrap_or_default()
    }

    /// The decoded signature bytes.
    pub fn signature(&self) -> &[u8] {
        self.decoded.get(self.signature_at..).unwrap_or_default()
    }
}

fn memchr_dot(bytes: &[u8], from: usize) -> Option<usize> {
    memchr::memchr(b'.', bytes.get(from..)?).map(|i| i + from)
}

/// `true` if `json` is UTF-8 text (RFC 8259 §8.1) that can only be a JSON
/// object: its first non-whitespace byte is `{`. Checked before
/// deserializing into a struct, which serde would otherwise also fill from
/// an array, member by position, and which skips ignored members without
/// checking their text (found by the `introspection` fuzz target).
pub(crate) fn is_json_object(json: &[u8]) -> bool {
    std::str::from_utf8(json).is_ok() && json.trim_ascii_start().first() == Some(&b'{')
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
        assert_eq!(jws.header(), br#"{"a":1}"#);
        assert_eq!(jws.payload(), br#"{"b":2}"#);
        assert_eq!(jws.signing_input, "eyJhIjoxfQ.eyJiIjoyfQ");
        assert_eq!(jws.signature(), [1, 2, 3]);
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

    #[test]
    fn header_and_payload_must_be_json_objects() {
        let enc = |s: &str| b64url_encode(s.as_bytes());
        let ok = format!("{}.{}.AQID", enc(" {\"a\":1}"), enc("\n{}"));
        assert!(CompactJws::parse(&ok).is_ok());
        for (header, payload) in [
            (r#"["dpop+jwt","ES256"]"#, "{}"),
            ("{}", r#"["jti","POST"]"#),
            ("{}", "1"),
            ("null", "{}"),
            ("{}", ""),
        ] {
            let jws = format!("{}.{}.AQID", enc(header), enc(payload));
            assert!(CompactJws::parse(&jws).is_err(), "{header} {payload}");
        }
        // Not UTF-8, even in a member nobody reads.
        let latin1 = b64url_encode(b"{\"x\":\"caf\xe9\"}");
        assert!(CompactJws::parse(&format!("{}.{latin1}.AQID", enc("{}"))).is_err());
    }
}
