//! Public JSON Web Keys (RFC 7517/7518/8037) and their RFC 7638 SHA-256
//! thumbprints.
//!
//! Only *public* keys of the types senderbound verifies with are accepted:
//! EC P-256, P-384 and P-521, OKP Ed25519, and RSA (2048 to 4096 bits). A
//! key with any private member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`) or a
//! symmetric key (`kty: oct`, `k`) is refused: a client that sends its
//! private key has already lost it, and a MAC key can never prove
//! possession.
//!
//! Nor is a key that proves nothing accepted. An Ed25519 public key of small
//! order lets anyone make signatures that verify (for the identity point,
//! one signature verifies every message; RFC 8032 §5.1.7 verification does
//! not exclude them), and a non-canonical encoding (y ≥ p, or x = 0 with the
//! sign bit) is a second name, and a second thumbprint, for a point: both
//! are refused when the key is read, on both backends. EC points are checked
//! by the backend (on the curve, coordinates below p, never the identity);
//! RSA numbers here (odd modulus of 2048–4096 bits, odd exponent ≥ 3).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::alg::Algorithm;
use crate::crypto::VerifyingKey;
use crate::jws::{b64url_decode, b64url_encode};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits. Bounds verification cost, and is
/// the limit of the pure-Rust `rsa` backend, so both backends agree.
pub const MAX_RSA_BITS: usize = 4096;

/// Why a JWK was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwkError {
    /// Not a JSON object, a member has the wrong type or encoding, or the key
    /// is of the wrong size.
    Invalid,
    /// The key contains private or symmetric key material.
    Private,
    /// A key type or curve senderbound does not verify with.
    Unsupported,
}

impl fmt::Display for JwkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JwkError::Invalid => "invalid JWK",
            JwkError::Private => "JWK contains private or symmetric key material",
            JwkError::Unsupported => "unsupported JWK key type or curve",
        })
    }
}

impl std::error::Error for JwkError {}

/// The key type and curve of a [`PublicJwk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// EC P-256 (`kty: EC`, `crv: P-256`).
    P256,
    /// EC P-384 (`kty: EC`, `crv: P-384`).
    P384,
    /// EC P-521 (`kty: EC`, `crv: P-521`).
    P521,
    /// Ed25519 (`kty: OKP`, `crv: Ed25519`).
    Ed25519,
    /// RSA with a modulus of this many bits.
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
}

impl KeyType {
    /// `true` if a signature made with `alg` can come from a key of this type.
    pub const fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (KeyType::P256, ES256)
                | (KeyType::P384, ES384)
                | (KeyType::P521, ES512)
                | (KeyType::Ed25519, EdDSA | Ed25519)
                | (
                    KeyType::Rsa { .. },
                    RS256 | RS384 | RS512 | PS256 | PS384 | PS512
                )
        )
    }

    /// The length of a signature by a key of this type (RFC 7518 §3.4:
    /// R ‖ S for ECDSA; RFC 8032: R ‖ S for Ed25519; the modulus length for RSA).
    const fn signature_len(self) -> usize {
        match self {
            KeyType::P256 | KeyType::Ed25519 => 64,
            KeyType::P384 => 96,
            KeyType::P521 => 132,
            KeyType::Rsa { bits } => bits.div_ceil(8),
        }
    }
}

/// A validated public JWK, ready to verify signatures, with its RFC 7638
/// thumbprint computed once.
///
/// ```
/// use senderbound_core::jwk::PublicJwk;
///
/// // RFC 7638 §3.1 example key.
/// let jwk = PublicJwk::from_json(r#"{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29",
///   "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#).unwrap();
/// assert_eq!(jwk.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
/// ```
#[derive(Clone)]
pub struct PublicJwk {
    key_type: KeyType,
    thumbprint: String,
    kid: Option<String>,
    alg: Option<String>,
    use_: Option<String>,
    key: crate::crypto::VerifyingKey,
}

impl fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicJwk")
            .field("key_type", &self.key_type)
            .field("thumbprint", &self.thumbprint)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Ok(true)
}

#[derive(Deserialize)]
struct RawJwk<'a> {
    #[serde(borrow)]
    kty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    crv: Option<Cow<'a, str>>,
    #[serde(borrow)]
    x: Option<Cow<'a, str>>,
    #[serde(borrow)]
    y: Option<Cow<'a, str>>,
    #[serde(borrow)]
    n: Option<Cow<'a, str>>,
    #[serde(borrow)]
    e: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "use")]
    use_: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    d: bool,
    #[serde(default, deserialize_with = "present")]
    p: bool,
    #[serde(default, deserialize_with = "present")]
    q: bool,
    #[serde(default, deserialize_with = "present")]
    dp: bool,
    #[serde(default, deserialize_with = "present")]
    dq: bool,
    #[serde(default, deserialize_with = "present")]
    qi: bool,
    #[serde(default, deserialize_with = "present")]
    oth: bool,
    #[serde(default, deserialize_with = "present")]
    k: bool,
}

impl PublicJwk {
    /// Parses and validates a JWK from its JSON text.
    pub fn from_json(json: &str) -> Result<Self, JwkError> {
        Self::from_slice(json.as_bytes())
    }

    /// Parses and validates a JWK from JSON bytes.
    pub fn from_slice(json: &[u8]) -> Result<Self, JwkError> {
        // Decide "private" before "invalid": a private key is refused as such
        // even when other members are also wrong.
        if !crate::jws::is_json_object(json) {
            return Err(JwkError::Invalid);
        }
        let raw: RawJwk<'_> = serde_json::from_slice(json).map_err(|_| JwkError::Invalid)?;
        Self::from_raw(raw)
    }

    /// Parses a JWK from an already-parsed JSON value (as found in a JWKS).
    pub fn from_value(value: &serde_json::Value) -> Result<Self, JwkError> {
        if !value.is_object() {
            return Err(JwkError::Invalid);
        }
        let raw = RawJwk::deserialize(value).map_err(|_| JwkError::Invalid)?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawJwk<'_>) -> Result<Self, JwkError> {
        if raw.d || raw.p || raw.q || raw.dp || raw.dq || raw.qi || raw.oth || raw.k {
            return Err(JwkError::Private);
        }
        let kty = raw.kty.as_deref().ok_or(JwkError::Invalid)?;
        let (key_type, thumbprint_input, key) = match kty {
            "EC" => {
                let (key_type, crv, len) = match raw.crv.as_deref().ok_or(JwkError::Invalid)? {
                    "P-256" => (KeyType::P256, "P-256", 32),
                    "P-384" => (KeyType::P384, "P-384", 48),
                    "P-521" => (KeyType::P521, "P-521", 66),
                    _ => return Err(JwkError::Unsupported),
                };
                let (x, y) = (member(&raw.x)?, member(&raw.y)?);
                // RFC 7518 §6.2.1.2: coordinates are the full field size,
                // leading zero bytes included.
                let xb = fixed(x, len)?;
                let yb = fixed(y, len)?;
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&xb);
                point.extend_from_slice(&yb);
                (
                    key_type,
                    format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#),
                    VerifyingKey::ec(&point, key_type),
                )
            }
            "OKP" => {
                if raw.crv.as_deref().ok_or(JwkError::Invalid)? != "Ed25519" {
                    return Err(JwkError::Unsupported);
                }
                if raw.y.is_some() {
                    return Err(JwkError::Invalid);
                }
                let x = member(&raw.x)?;
                let xb = fixed(x, 32)?;
                if !ed25519_key_proves_possession(&xb) {
                    return Err(JwkError::Invalid);
                }
                (
                    KeyType::Ed25519,
                    format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
                    VerifyingKey::ed25519(&xb),
                )
            }
            "RSA" => {
                let (n, e) = (member(&raw.n)?, member(&raw.e)?);
                let nb = b64url_decode(n).map_err(|_| JwkError::Invalid)?;
                let eb = b64url_decode(e).map_err(|_| JwkError::Invalid)?;
                // base64urlUInt (RFC 7518 §2): minimal, no leading zero octet,
                // so each key has exactly one thumbprint.
                if nb.first().is_none_or(|b| *b == 0) || eb.first().is_none_or(|b| *b == 0) {
                    return Err(JwkError::Invalid);
                }
                let bits = nb.len() * 8 - nb[0].leading_zeros() as usize;
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) || eb.len() > 4 {
                    return Err(JwkError::Invalid);
                }
                // An RSA modulus is odd, and so is a usable exponent, which
                // is at least 3. Checked here so both backends refuse such a
                // key when it is read (aws-lc-rs would only notice when
                // verifying).
                let odd = |b: &[u8]| b.last().is_some_and(|l| l & 1 == 1);
                if !odd(&nb) || !odd(&eb) || (eb.len() == 1 && eb[0] < 3) {
                    return Err(JwkError::Invalid);
                }
                (
                    KeyType::Rsa { bits },
                    format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
                    VerifyingKey::rsa(&nb, &eb),
                )
            }
            "oct" => return Err(JwkError::Private),
            _ => return Err(JwkError::Unsupported),
        };
        Ok(PublicJwk {
            key_type,
            thumbprint: b64url_encode(&Sha256::digest(thumbprint_input.as_bytes())),
            kid: raw.kid.map(Cow::into_owned),
            alg: raw.alg.map(Cow::into_owned),
            use_: raw.use_.map(Cow::into_owned),
            // The backend's own validation: a point off the curve or
            // inconsistent RSA numbers are not a key.
            key: key.map_err(|_| JwkError::Invalid)?,
        })
    }

    /// The key type and curve.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url (the DPoP `jkt`).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The `kid` member, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `alg` member, if any (a hint; the signature's `alg` is what is checked).
    pub fn alg(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    /// The `use` member, if any (`sig` or `enc`).
    pub fn key_use(&self) -> Option<&str> {
        self.use_.as_deref()
    }

    /// `true` if this key may verify a signature made with `alg`: the key
    /// type fits, and a declared `alg` member (if any) agrees.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.key_type.fits(alg) && self.alg.as_deref().is_none_or(|a| a == alg.as_str())
    }

    /// Verifies a JWS signature made with `alg` over `signing_input`.
    /// `false` if the key does not fit the algorithm or the signature is wrong.
    pub fn verify(&self, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
        if !self.fits(alg) || signature.len() != self.key_type.signature_len() {
            return false;
        }
        // Ed25519 verified strictly on both backends: besides S < L and a
        // canonical R (both backends check those), R must not be a point of
        // small order. An honest signer's R never is (it is [r]B).
        if self.key_type == KeyType::Ed25519
            && ED25519_SMALL_ORDER[..8]
                .iter()
                .any(|weak| signature.starts_with(weak))
        {
            return false;
        }
        self.key.verify(alg, signing_input, signature)
    }
}

/// Ed25519 encodings of the points of small order: the eight canonical
/// ones (orders 1, 2, 4, 4, 8, 8, 8, 8), then the two non-canonical ones
/// with y < p (x = 0 with the sign bit set, for y = 1 and y = p − 1). The
/// other non-canonical encodings have y ≥ p and are refused as such. The
/// lists of ed25519-speccheck (`EIGHT_TORSION`, `EIGHT_TORSION_NON_CANONICAL`)
/// and of "Taming the many EdDSAs" (Chalkias et al., 2020).
const ED25519_SMALL_ORDER: [[u8; 32]; 10] = {
    const fn le(first: u8, fill: u8, last: u8) -> [u8; 32] {
        let mut bytes = [fill; 32];
        bytes[0] = first;
        bytes[31] = last;
        bytes
    }
    const ORDER_8_A: [u8; 32] = [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ];
    const ORDER_8_B: [u8; 32] = [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ];
    const fn signed(mut bytes: [u8; 32]) -> [u8; 32] {
        bytes[31] |= 0x80;
        bytes
    }
    [
        le(0x01, 0x00, 0x00), // (0, 1): the identity, order 1
        le(0xec, 0xff, 0x7f), // (0, -1), order 2
        le(0x00, 0x00, 0x00), // order 4
        le(0x00, 0x00, 0x80), // order 4
        ORDER_8_A,
        signed(ORDER_8_A),
        ORDER_8_B,
        signed(ORDER_8_B),
        le(0x01, 0x00, 0x80), // the identity, x = 0 with the sign bit
        le(0xec, 0xff, 0xff), // (0, -1), x = 0 with the sign bit
    ]
};

/// `true` if `x` can be an Ed25519 key someone holds the secret of: a
/// canonical encoding (y < p = 2^255 − 19, RFC 8032 §5.1.3) of a point that
/// is not of small order. Byte comparisons only: the key is public, and
/// whether the point is on the curve is the backend's check.
fn ed25519_key_proves_possession(x: &[u8]) -> bool {
    // y is `x` without bit 255, little-endian; y ≥ p exactly when the low
    // byte is ≥ 0xed and every other bit of y is set.
    let y_at_least_p = x.len() == 32
        && x[0] >= 0xed
        && x[1..31].iter().all(|b| *b == 0xff)
        && x[31] & 0x7f == 0x7f;
    x.len() == 32 && !y_at_least_p && !ED25519_SMALL_ORDER.iter().any(|weak| weak == x)
}

fn member<'s>(m: &'s Option<Cow<'_, str>>) -> Result<&'s str, JwkError> {
    m.as_deref().ok_or(JwkError::Invalid)
}

fn fixed(b64: &str, len: usize) -> Result<Vec<u8>, JwkError> {
    let bytes = b64url_decode(b64).map_err(|_| JwkError::Invalid)?;
    if bytes.len() == len {
        Ok(bytes)
    } else {
        Err(JwkError::Invalid)
    }
}

/// The most entries a JWKS document may hold. Authorization servers publish
/// a handful of keys (the current ones and those rotating in or out); a
/// document with more is refused whole rather than parsed key by key.
pub const MAX_JWKS_KEYS: usize = 100;

/// A set of public keys (a JWKS document, RFC 7517 §5).
#[derive(Debug, Clone, Default)]
pub struct JwkSet {
    keys: Vec<PublicJwk>,
}

/// Why a JWKS document was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwkSetError {
    /// Not `{"keys": [...]}`.
    Malformed,
    /// A key contains private or symmetric material: the document is refused
    /// whole, because publishing it is a serious misconfiguration.
    PrivateKey,
    /// More than [`MAX_JWKS_KEYS`] entries.
    TooManyKeys,
}

impl fmt::Display for JwkSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JwkSetError::Malformed => "malformed JWKS document",
            JwkSetError::PrivateKey => "JWKS document contains private or symmetric key material",
            JwkSetError::TooManyKeys => "JWKS document holds more keys than allowed",
        })
    }
}

impl std::error::Error for JwkSetError {}

impl JwkSet {
    /// Parses a JWKS document. Keys of unsupported types, invalid keys and
    /// encryption keys (`use: enc`) are skipped; a private key anywhere, or
    /// more than [`MAX_JWKS_KEYS`] entries, refuses the whole document.
    pub fn from_json(json: &str) -> Result<Self, JwkSetError> {
        #[derive(Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        if !crate::jws::is_json_object(json.as_bytes()) {
            return Err(JwkSetError::Malformed);
        }
        let doc: Doc = serde_json::from_str(json).map_err(|_| JwkSetError::Malformed)?;
        if doc.keys.len() > MAX_JWKS_KEYS {
            return Err(JwkSetError::TooManyKeys);
        }
        let mut keys = Vec::with_capacity(doc.keys.len());
        for value in &doc.keys {
            match PublicJwk::from_value(value) {
                Ok(k) if k.key_use().is_none_or(|u| u == "sig") => keys.push(k),
                Ok(_) => {}
                Err(JwkError::Private) => return Err(JwkSetError::PrivateKey),
                Err(_) => {}
            }
        }
        Ok(JwkSet { keys })
    }

    /// A set holding the given keys.
    pub fn from_keys(keys: impl IntoIterator<Item = PublicJwk>) -> Self {
        JwkSet {
            keys: keys.into_iter().collect(),
        }
    }

    /// Adds a key.
    pub fn push(&mut self, key: PublicJwk) {
        self.keys.push(key);
    }

    /// The usable keys.
    pub fn keys(&self) -> &[PublicJwk] {
        &self.keys
    }

    /// `true` if no usable key is present.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys that may have made a signature with `alg` and header `kid`:
    /// the key with that `kid` when one is given, else every fitting key.
    pub fn candidates<'s>(
        &'s self,
        alg: Algorithm,
        kid: Option<&'s str>,
    ) -> impl Iterator<Item = &'s PublicJwk> + 's {
        self.keys
            .iter()
            .filter(move |k| k.fits(alg) && (kid.is_none() || k.kid() == kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn rfc7638_example_thumbprint() {
        let json = format!(
            r#"{{"kty":"RSA","n":"{RFC7638_N}","e":"AQAB","alg":"RS256","kid":"2011-04-29"}}"#
        );
        let jwk = PublicJwk::from_json(&json).unwrap();
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(jwk.key_type(), KeyType::Rsa { bits: 2048 });
    }

    #[test]
    fn thumbprint_ignores_member_order_and_extra_members() {
        let a = PublicJwk::from_json(&format!(r#"{{"e":"AQAB","kty":"RSA","n":"{RFC7638_N}"}}"#))
            .unwrap();
        let b = PublicJwk::from_json(&format!(
            r#"{{"n":"{RFC7638_N}","use":"sig","x5t":"zzz","e":"AQAB","kty":"RSA","ext":true}}"#
        ))
        .unwrap();
        assert_eq!(a.thumbprint(), b.thumbprint());
    }

    fn hex32(hex: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// RFC 8037 §A.2's Ed25519 public key.
    const ED25519_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn ec(x: &[u8], y: &[u8]) -> String {
        format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            b64url_encode(x),
            b64url_encode(y)
        )
    }

    #[test]
    fn ec_coordinates_with_leading_zero_bytes() {
        // The thumbprint is computed over the full-length encodings, leading
        // zeros included (RFC 7518 §6.2.1.2); a shortened coordinate is refused.
        // A point on P-256 whose x starts with two zero bytes (found by
        // solving the curve equation for x = 00 00 07 07 … 0b).
        let x = hex32("000007070707070707070707070707070707070707070707070707070707070b");
        let y = hex32("0757d39c7153a32d8e048d59549b8392881892a4a8d95d4d62b3ab2f071ff6ca");
        let jwk = PublicJwk::from_json(&ec(&x, &y)).unwrap();
        let expected_input = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64url_encode(&x),
            b64url_encode(&y)
        );
        assert!(b64url_encode(&x).starts_with("AAA"));
        assert_eq!(
            jwk.thumbprint(),
            b64url_encode(&Sha256::digest(expected_input.as_bytes()))
        );
        assert_eq!(
            PublicJwk::from_json(&ec(&x[2..], &y)).unwrap_err(),
            JwkError::Invalid
        );
        assert_eq!(
            PublicJwk::from_json(&ec(&x, &[9u8; 33])).unwrap_err(),
            JwkError::Invalid
        );
    }

    #[test]
    fn private_and_symmetric_members_refused() {
        let x = b64url_encode(&[1u8; 32]);
        for extra in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            let json =
                format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{x}","{extra}":"AAAA"}}"#);
            assert_eq!(
                PublicJwk::from_json(&json).unwrap_err(),
                JwkError::Private,
                "{extra}"
            );
        }
        // Even a null private member is refused.
        let json = format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{x}","d":null}}"#);
        assert_eq!(PublicJwk::from_json(&json).unwrap_err(), JwkError::Private);
        assert_eq!(
            PublicJwk::from_json(r#"{"kty":"oct","alg":"HS256"}"#).unwrap_err(),
            JwkError::Private
        );
    }

    #[test]
    fn malformed_and_unsupported() {
        assert_eq!(PublicJwk::from_json("[]").unwrap_err(), JwkError::Invalid);
        assert_eq!(
            PublicJwk::from_json(r#""EC""#).unwrap_err(),
            JwkError::Invalid
        );
        assert_eq!(
            PublicJwk::from_json(r#"{"crv":"P-256"}"#).unwrap_err(),
            JwkError::Invalid
        );
        assert_eq!(
            PublicJwk::from_json(r#"{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"}"#)
                .unwrap_err(),
            JwkError::Unsupported
        );
        assert_eq!(
            PublicJwk::from_json(r#"{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}"#).unwrap_err(),
            JwkError::Invalid
        );
        assert_eq!(
            PublicJwk::from_json(r#"{"kty":"OKP","crv":"X25519","x":"AA"}"#).unwrap_err(),
            JwkError::Unsupported
        );
        assert_eq!(
            PublicJwk::from_json(r#"{"kty":"EC","crv":"P-256","x":1,"y":2}"#).unwrap_err(),
            JwkError::Invalid
        );
        // RSA below 2048 bits.
        let small = b64url_encode(&[0xc5u8; 128]);
        assert_eq!(
            PublicJwk::from_json(&format!(r#"{{"kty":"RSA","n":"{small}","e":"AQAB"}}"#))
                .unwrap_err(),
            JwkError::Invalid
        );
        // RSA with a leading zero octet.
        let mut n = vec![0u8];
        n.extend_from_slice(&[0xc5u8; 256]);
        assert_eq!(
            PublicJwk::from_json(&format!(
                r#"{{"kty":"RSA","n":"{}","e":"AQAB"}}"#,
                b64url_encode(&n)
            ))
            .unwrap_err(),
            JwkError::Invalid
        );
        // RSA with an exponent longer than 4 bytes.
        let n = b64url_encode(&[0xc5u8; 256]);
        assert_eq!(
            PublicJwk::from_json(&format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAAAAE"}}"#))
                .unwrap_err(),
            JwkError::Invalid
        );
        // Ed25519: `x` of the wrong length.
        let short = b64url_encode(&[9u8; 31]);
        assert_eq!(
            PublicJwk::from_json(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{short}"}}"#))
                .unwrap_err(),
            JwkError::Invalid
        );
    }

    #[test]
    fn rsa_numbers_that_cannot_be_a_key_are_refused() {
        let good = format!(r#"{{"kty":"RSA","e":"AQAB","n":"{RFC7638_N}"}}"#);
        assert!(PublicJwk::from_json(&good).is_ok());
        // An even modulus (last byte 0x83 → 0x82), an even exponent, e = 1.
        let even_n = RFC7638_N.replace("Kgw", "Kgg");
        assert_ne!(even_n, RFC7638_N);
        for bad in [
            format!(r#"{{"kty":"RSA","e":"AQAB","n":"{even_n}"}}"#),
            format!(r#"{{"kty":"RSA","e":"Ag","n":"{RFC7638_N}"}}"#),
            format!(r#"{{"kty":"RSA","e":"AQ","n":"{RFC7638_N}"}}"#),
        ] {
            assert_eq!(
                PublicJwk::from_json(&bad).unwrap_err(),
                JwkError::Invalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn points_off_the_curve_are_not_keys() {
        // Well-formed members, but (1…1, 1…1) is not on P-256: the backend's
        // validation refuses it when the key is read, not at verification.
        assert_eq!(
            PublicJwk::from_json(&ec(&[1u8; 32], &[1u8; 32])).unwrap_err(),
            JwkError::Invalid
        );
        let mut y = hex32("0757d39c7153a32d8e048d59549b8392881892a4a8d95d4d62b3ab2f071ff6ca");
        let x = hex32("000007070707070707070707070707070707070707070707070707070707070b");
        assert!(PublicJwk::from_json(&ec(&x, &y)).is_ok());
        y[31] ^= 1;
        assert_eq!(
            PublicJwk::from_json(&ec(&x, &y)).unwrap_err(),
            JwkError::Invalid
        );
    }

    /// Every Ed25519 encoding that proves nothing: the ten small-order
    /// encodings with y < p, and all 38 encodings with y ≥ p (the 24 of
    /// them that decode at all are small-order points or second names of
    /// other points; speccheck and "Taming the many EdDSAs" list them).
    fn ed25519_keys_that_prove_nothing() -> Vec<[u8; 32]> {
        let mut keys = ED25519_SMALL_ORDER.to_vec();
        for low in 0xed..=0xff_u8 {
            for high in [0x7f, 0xff] {
                let mut x = [0xff; 32];
                x[0] = low;
                x[31] = high;
                keys.push(x);
            }
        }
        keys
    }

    #[test]
    fn ed25519_keys_of_small_order_or_non_canonical_are_refused() {
        let keys = ed25519_keys_that_prove_nothing();
        assert_eq!(keys.len(), 48);
        // Spot checks against the published lists (hex, little-endian).
        for hex in [
            "0100000000000000000000000000000000000000000000000000000000000000",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ] {
            assert!(keys.contains(&hex32(hex)), "{hex}");
        }
        for x in keys {
            let json = format!(
                r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
                b64url_encode(&x)
            );
            assert_eq!(
                PublicJwk::from_json(&json).unwrap_err(),
                JwkError::Invalid,
                "{json}"
            );
        }
        // Keys next to them are keys: y = p - 1 with x = 0 canonical is the
        // order-2 point (refused above); y = p - 2 is an ordinary point.
        assert!(ed25519_key_proves_possession(&hex32(
            "ebffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
        )));
        let rfc8037 = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED25519_X}"}}"#);
        assert!(PublicJwk::from_json(&rfc8037).is_ok());
    }

    /// The identity key with R = identity, S = 0 "verifies" every message
    /// under RFC 8032's equation: the key is refused before that can matter,
    /// and an R of small order is refused even for a good key.
    #[test]
    fn ed25519_signatures_with_a_small_order_r_are_refused() {
        let key = PublicJwk::from_json(&format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED25519_X}"}}"#
        ))
        .unwrap();
        for r in &ED25519_SMALL_ORDER[..8] {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(r);
            for alg in [Algorithm::EdDSA, Algorithm::Ed25519] {
                assert!(!key.verify(alg, b"anything", &signature));
            }
        }
    }

    /// RFC 8037 §A.4's signature, under both names of the algorithm (RFC
    /// 9864 §2.2), and S + L (the same signature, malleated) refused.
    #[test]
    fn ed25519_rfc8037_example_verifies_under_both_names_and_s_plus_l_does_not() {
        let key = PublicJwk::from_json(&format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED25519_X}"}}"#
        ))
        .unwrap();
        let input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let signature = b64url_decode(
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
        )
        .unwrap();
        assert!(key.verify(Algorithm::EdDSA, input, &signature));
        assert!(key.verify(Algorithm::Ed25519, input, &signature));
        assert!(!key.verify(Algorithm::ES256, input, &signature));
        // S + L, little-endian, with L = 2^252 + 27742317777372353535851937790883648493.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut malleated = signature.clone();
        let mut carry = 0u16;
        for (s, l) in malleated[32..].iter_mut().zip(L) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "S + L still fits 32 bytes");
        assert!(!key.verify(Algorithm::EdDSA, input, &malleated));
    }

    /// x = 0 is on P-256, P-384 and P-521, so x = p is a second encoding of
    /// that point (and a second thumbprint): refused by both backends, as
    /// are points off the curve (0, 0) and, for P-521, y + p.
    #[test]
    fn ec_coordinates_at_or_above_p_are_refused_on_every_curve() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../tests/ec_vectors.json")).unwrap();
        for crv in ["P-256", "P-384", "P-521"] {
            let c = &doc[crv];
            assert!(
                PublicJwk::from_json(&c["valid"].to_string()).is_ok(),
                "{crv} valid"
            );
            for bad in c["refused"].as_array().unwrap() {
                assert_eq!(
                    PublicJwk::from_json(&bad.to_string()).unwrap_err(),
                    JwkError::Invalid,
                    "{crv}: {bad}"
                );
            }
        }
        let p521 = PublicJwk::from_json(&doc["P-521"]["valid"].to_string()).unwrap();
        assert_eq!(p521.key_type(), KeyType::P521);
        assert!(p521.fits(Algorithm::ES512));
        assert!(!p521.fits(Algorithm::ES384));
    }

    #[test]
    fn key_type_must_fit_algorithm() {
        assert!(KeyType::P521.fits(Algorithm::ES512));
        assert!(!KeyType::P521.fits(Algorithm::ES256));
        assert!(KeyType::Ed25519.fits(Algorithm::Ed25519));
        for alg in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            assert!(KeyType::Rsa { bits: 3072 }.fits(alg), "{alg}");
            assert!(!KeyType::P256.fits(alg), "{alg}");
        }
        assert!(KeyType::P256.fits(Algorithm::ES256));
        assert!(!KeyType::P256.fits(Algorithm::ES384));
        assert!(!KeyType::P384.fits(Algorithm::ES256));
        assert!(!KeyType::Ed25519.fits(Algorithm::ES256));
        assert!(KeyType::Rsa { bits: 2048 }.fits(Algorithm::PS256));
        assert!(!KeyType::Rsa { bits: 2048 }.fits(Algorithm::EdDSA));
    }

    #[test]
    fn jwks_skips_unusable_and_refuses_private() {
        let x = b64url_encode(&hex32(
            "000007070707070707070707070707070707070707070707070707070707070b",
        ));
        let y = b64url_encode(&hex32(
            "0757d39c7153a32d8e048d59549b8392881892a4a8d95d4d62b3ab2f071ff6ca",
        ));
        let ed = ED25519_X;
        let doc = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}","kid":"a"}},
            {{"kty":"EC","crv":"P-521","x":"{x}","y":"{x}"}},
            {{"kty":"OKP","crv":"Ed25519","x":"{ed}","use":"enc"}},
            {{"kty":"OKP","crv":"Ed25519","x":"{ed}","kid":"b"}}]}}"#
        );
        let set = JwkSet::from_json(&doc).unwrap();
        assert_eq!(set.keys().len(), 2);
        assert_eq!(set.candidates(Algorithm::EdDSA, None).count(), 1);
        assert_eq!(set.candidates(Algorithm::ES256, Some("b")).count(), 0);
        let bad = format!(r#"{{"keys":[{{"kty":"oct","k":"{x}"}}]}}"#);
        assert_eq!(
            JwkSet::from_json(&bad).unwrap_err(),
            JwkSetError::PrivateKey
        );
        assert_eq!(JwkSet::from_json("{}").unwrap_err(), JwkSetError::Malformed);
    }

    #[test]
    fn jwks_with_more_keys_than_allowed_is_refused_whole() {
        let ed = ED25519_X;
        let doc = |n: usize| {
            let key = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ed}"}}"#);
            format!(r#"{{"keys":[{}]}}"#, vec![key; n].join(","))
        };
        assert_eq!(
            JwkSet::from_json(&doc(MAX_JWKS_KEYS)).unwrap().keys().len(),
            MAX_JWKS_KEYS
        );
        assert_eq!(
            JwkSet::from_json(&doc(MAX_JWKS_KEYS + 1)).unwrap_err(),
            JwkSetError::TooManyKeys
        );
        // Unusable entries count too: the bound is on the work of reading.
        let junk = format!(
            r#"{{"keys":[{}]}}"#,
            vec!["{}"; MAX_JWKS_KEYS + 1].join(",")
        );
        assert_eq!(
            JwkSet::from_json(&junk).unwrap_err(),
            JwkSetError::TooManyKeys
        );
    }

    #[test]
    fn arrays_are_never_read_as_keys_or_key_sets() {
        let ed = ED25519_X;
        assert!(
            PublicJwk::from_json(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ed}"}}"#)).is_ok()
        );
        assert_eq!(
            PublicJwk::from_json(&format!(r#"["OKP","Ed25519","{ed}"]"#)).unwrap_err(),
            JwkError::Invalid
        );
        assert_eq!(
            PublicJwk::from_value(&serde_json::json!(["OKP", "Ed25519", ed])).unwrap_err(),
            JwkError::Invalid
        );
        assert_eq!(
            JwkSet::from_json(&format!(
                r#"[[{{"kty":"OKP","crv":"Ed25519","x":"{ed}"}}]]"#
            ))
            .unwrap_err(),
            JwkSetError::Malformed
        );
    }
}
