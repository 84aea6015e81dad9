//! Signature verification with public keys parsed once.
//!
//! The backend is chosen at compile time by our own features: `aws-lc-rs`
//! (default) or `rust-crypto` (pure Rust: `p256`, `p384`, `ed25519-dalek`,
//! `rsa`). Enabling both (Cargo unions features) selects aws-lc-rs; enabling
//! neither is a compile error.
//!
//! A [`VerifyingKey`] holds the key as its backend parsed it (EC points are
//! checked to be on the curve, below p and not the identity by both
//! backends; `jwk` checks RSA numbers and refuses Ed25519 keys of small
//! order or non-canonical encoding itself; aws-lc-rs checks that an Ed25519
//! point is on the curve only when verifying), so checking a signature is
//! only the signature arithmetic: no per-call parsing, no verifier object,
//! no copy of the signature. This is the whole cost a proof adds over the
//! bare verification it cannot avoid.
//!
//! Both backends verify the same way: ECDSA signatures as fixed-size
//! R ‖ S with 0 < R, S < n; Ed25519 with S < L and a canonical R
//! (cofactorless, as RFC 8032 §5.1.7 and both libraries do; `jwk` refuses a
//! small-order R); RSA with the signature below the modulus (RFC 8017
//! §5.2.2) and PSS with MGF1 of the same hash and a salt the hash's length
//! (RFC 7518 §3.5).

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "senderbound needs a signature backend: enable the `aws-lc-rs` (default) or the `rust-crypto` feature"
);

use crate::alg::Algorithm;
use crate::jwk::KeyType;

/// Name of the compiled-in signature backend (`"aws-lc-rs"` or `"rust-crypto"`).
pub const fn backend_name() -> &'static str {
    #[cfg(feature = "aws-lc-rs")]
    {
        "aws-lc-rs"
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        "rust-crypto"
    }
}

/// The backend refused a key (not on the curve, inconsistent RSA numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyRejected;

/// A public key parsed and validated by the backend, for one key type.
#[derive(Clone)]
pub(crate) struct VerifyingKey(backend::Key);

impl VerifyingKey {
    /// An EC key from its uncompressed SEC1 point (`04 ‖ x ‖ y`) on the
    /// curve of `curve` (`P256`, `P384` or `P521`).
    pub(crate) fn ec(point: &[u8], curve: KeyType) -> Result<Self, KeyRejected> {
        backend::Key::ec(point, curve).map(VerifyingKey)
    }

    /// An Ed25519 key from its 32 bytes.
    pub(crate) fn ed25519(x: &[u8]) -> Result<Self, KeyRejected> {
        backend::Key::ed25519(x).map(VerifyingKey)
    }

    /// An RSA key from its big-endian modulus and exponent.
    pub(crate) fn rsa(n: &[u8], e: &[u8]) -> Result<Self, KeyRejected> {
        backend::Key::rsa(n, e).map(VerifyingKey)
    }

    /// Verifies `signature` over `message` for `alg`. A key of another type
    /// than `alg` needs, or any error, is `false`.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.0.verify(alg, message, signature)
    }
}

#[cfg(feature = "aws-lc-rs")]
mod backend {
    use std::sync::OnceLock;

    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ECDSA_P521_SHA512_FIXED, ED25519,
        ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384,
        RSA_PKCS1_2048_8192_SHA512, RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384,
        RSA_PSS_2048_8192_SHA512, RsaParameters, RsaPublicKeyComponents,
    };

    use super::KeyRejected;
    use crate::alg::Algorithm;
    use crate::jwk::KeyType;

    #[derive(Clone)]
    pub(super) enum Key {
        P256(ParsedPublicKey),
        P384(ParsedPublicKey),
        P521(ParsedPublicKey),
        Ed25519(ParsedPublicKey),
        Rsa(Box<Rsa>),
    }

    /// An RSA key may sign with any of six algorithms, and aws-lc-rs parses
    /// a key for one: each parse is made when first used (a client signs
    /// with one algorithm), so a cached key holds one, not six.
    #[derive(Clone)]
    pub(super) struct Rsa {
        components: RsaPublicKeyComponents<Box<[u8]>>,
        parsed: [OnceLock<Option<ParsedPublicKey>>; 6],
    }

    fn rsa_slot(alg: Algorithm) -> Option<(usize, &'static RsaParameters)> {
        Some(match alg {
            Algorithm::RS256 => (0, &RSA_PKCS1_2048_8192_SHA256),
            Algorithm::RS384 => (1, &RSA_PKCS1_2048_8192_SHA384),
            Algorithm::RS512 => (2, &RSA_PKCS1_2048_8192_SHA512),
            Algorithm::PS256 => (3, &RSA_PSS_2048_8192_SHA256),
            Algorithm::PS384 => (4, &RSA_PSS_2048_8192_SHA384),
            Algorithm::PS512 => (5, &RSA_PSS_2048_8192_SHA512),
            _ => return None,
        })
    }

    impl Key {
        pub(super) fn ec(point: &[u8], curve: KeyType) -> Result<Self, KeyRejected> {
            match curve {
                KeyType::P256 => {
                    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map(Key::P256)
                }
                KeyType::P384 => {
                    ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point).map(Key::P384)
                }
                KeyType::P521 => {
                    ParsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, point).map(Key::P521)
                }
                KeyType::Ed25519 | KeyType::Rsa { .. } => return Err(KeyRejected),
            }
            .map_err(|_| KeyRejected)
        }

        pub(super) fn ed25519(x: &[u8]) -> Result<Self, KeyRejected> {
            ParsedPublicKey::new(&ED25519, x)
                .map(Key::Ed25519)
                .map_err(|_| KeyRejected)
        }

        pub(super) fn rsa(n: &[u8], e: &[u8]) -> Result<Self, KeyRejected> {
            let rsa = Rsa {
                components: RsaPublicKeyComponents {
                    n: n.into(),
                    e: e.into(),
                },
                parsed: Default::default(),
            };
            // Parsed once now, so a key aws-lc-rs cannot take is refused
            // when read, as on the other backend.
            let first = rsa
                .components
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                .map_err(|_| KeyRejected)?;
            let _ = rsa.parsed[0].set(Some(first));
            Ok(Key::Rsa(Box::new(rsa)))
        }

        pub(super) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
            let key = match (self, alg) {
                (Key::P256(key), Algorithm::ES256)
                | (Key::P384(key), Algorithm::ES384)
                | (Key::P521(key), Algorithm::ES512)
                | (Key::Ed25519(key), Algorithm::EdDSA | Algorithm::Ed25519) => key,
                (Key::Rsa(rsa), _) => {
                    let Some((slot, params)) = rsa_slot(alg) else {
                        return false;
                    };
                    return rsa.parsed[slot]
                        .get_or_init(|| rsa.components.to_parsed_public_key(params).ok())
                        .as_ref()
                        .is_some_and(|key| key.verify_sig(message, signature).is_ok());
                }
                _ => return false,
            };
            key.verify_sig(message, signature).is_ok()
        }
    }
}

#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
mod backend {
    use ed25519_dalek::Verifier as _;
    use rsa::traits::PublicKeyParts as _;
    use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPublicKey};
    use sha2::{Sha256, Sha384, Sha512};

    use super::KeyRejected;
    use crate::alg::Algorithm;
    use crate::jwk::KeyType;

    #[derive(Clone)]
    pub(super) enum Key {
        P256(p256::ecdsa::VerifyingKey),
        P384(p384::ecdsa::VerifyingKey),
        P521(p521::ecdsa::VerifyingKey),
        Ed25519(ed25519_dalek::VerifyingKey),
        Rsa(RsaPublicKey),
    }

    impl Key {
        pub(super) fn ec(point: &[u8], curve: KeyType) -> Result<Self, KeyRejected> {
            match curve {
                KeyType::P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map(Key::P256),
                KeyType::P384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map(Key::P384),
                KeyType::P521 => p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map(Key::P521),
                KeyType::Ed25519 | KeyType::Rsa { .. } => return Err(KeyRejected),
            }
            .map_err(|_| KeyRejected)
        }

        pub(super) fn ed25519(x: &[u8]) -> Result<Self, KeyRejected> {
            let bytes: &[u8; 32] = x.try_into().map_err(|_| KeyRejected)?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| KeyRejected)?;
            // `jwk` refused small-order keys already; ed25519-dalek agrees.
            if key.is_weak() {
                return Err(KeyRejected);
            }
            Ok(Key::Ed25519(key))
        }

        pub(super) fn rsa(n: &[u8], e: &[u8]) -> Result<Self, KeyRejected> {
            RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
                .map(Key::Rsa)
                .map_err(|_| KeyRejected)
        }

        pub(super) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
            match (self, alg) {
                (Key::P256(key), Algorithm::ES256) => p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|s| key.verify(message, &s).is_ok()),
                (Key::P384(key), Algorithm::ES384) => p384::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|s| key.verify(message, &s).is_ok()),
                // p521's verifier hashes with SHA-512, as ES512 requires.
                (Key::P521(key), Algorithm::ES512) => p521::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|s| key.verify(message, &s).is_ok()),
                (Key::Ed25519(key), Algorithm::EdDSA | Algorithm::Ed25519) => {
                    ed25519_dalek::Signature::from_slice(signature)
                        .is_ok_and(|s| key.verify_strict(message, &s).is_ok())
                }
                // RFC 8017 §5.2.2: a signature representative s >= n is
                // refused (the rsa crate's PSS path reduces it instead,
                // so s + n would verify like s; aws-lc-rs refuses both).
                (Key::Rsa(key), _) if BigUint::from_bytes_be(signature) >= *key.n() => false,
                (Key::Rsa(key), Algorithm::RS256) => pkcs1::<Sha256>(key, message, signature),
                (Key::Rsa(key), Algorithm::RS384) => pkcs1::<Sha384>(key, message, signature),
                (Key::Rsa(key), Algorithm::RS512) => pkcs1::<Sha512>(key, message, signature),
                (Key::Rsa(key), Algorithm::PS256) => pss::<Sha256>(key, message, signature),
                (Key::Rsa(key), Algorithm::PS384) => pss::<Sha384>(key, message, signature),
                (Key::Rsa(key), Algorithm::PS512) => pss::<Sha512>(key, message, signature),
                _ => false,
            }
        }
    }

    /// RSASSA-PKCS1-v1_5 with hash `D` (RS256/384/512).
    fn pkcs1<D>(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool
    where
        D: sha2::Digest + rsa::pkcs8::AssociatedOid,
    {
        key.verify(Pkcs1v15Sign::new::<D>(), &D::digest(message), signature)
            .is_ok()
    }

    /// RSASSA-PSS with hash `D`, MGF1 with `D` and a salt of `D`'s length
    /// (PS256/384/512, RFC 7518 §3.5).
    fn pss<D>(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool
    where
        D: 'static + sha2::Digest + sha2::digest::DynDigest + Send + Sync,
    {
        key.verify(Pss::new::<D>(), &D::digest(message), signature)
            .is_ok()
    }
}
