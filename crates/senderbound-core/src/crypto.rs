//! Signature verification with public keys parsed once.
//!
//! The backend is chosen at compile time by our own features: `aws-lc-rs`
//! (default) or `rust-crypto` (pure Rust: `p256`, `p384`, `ed25519-dalek`,
//! `rsa`). Enabling both (Cargo unions features) selects aws-lc-rs; enabling
//! neither is a compile error.
//!
//! A [`VerifyingKey`] holds the key as its backend parsed it (EC points are
//! checked to be on the curve by both backends; `jwk` checks RSA numbers
//! itself; aws-lc-rs checks an Ed25519 point only when verifying), so checking a signature
//! is only the signature arithmetic: no per-call parsing, no verifier object,
//! no copy of the signature. This is the whole cost a proof adds over the
//! bare verification it cannot avoid.

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "senderbound needs a signature backend: enable the `aws-lc-rs` (default) or the `rust-crypto` feature"
);

use crate::alg::Algorithm;

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
    /// An EC key from its uncompressed SEC1 point (`04 ‖ x ‖ y`);
    /// `p384` selects P-384 over P-256.
    pub(crate) fn ec(point: &[u8], p384: bool) -> Result<Self, KeyRejected> {
        backend::Key::ec(point, p384).map(VerifyingKey)
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
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
        RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents,
    };

    use super::KeyRejected;
    use crate::alg::Algorithm;

    #[derive(Clone)]
    pub(super) enum Key {
        P256(ParsedPublicKey),
        P384(ParsedPublicKey),
        Ed25519(ParsedPublicKey),
        /// An RSA key may sign with either padding; each needs its own parse.
        Rsa {
            pkcs1: ParsedPublicKey,
            pss: ParsedPublicKey,
        },
    }

    impl Key {
        pub(super) fn ec(point: &[u8], p384: bool) -> Result<Self, KeyRejected> {
            if p384 {
                ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point).map(Key::P384)
            } else {
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map(Key::P256)
            }
            .map_err(|_| KeyRejected)
        }

        pub(super) fn ed25519(x: &[u8]) -> Result<Self, KeyRejected> {
            ParsedPublicKey::new(&ED25519, x)
                .map(Key::Ed25519)
                .map_err(|_| KeyRejected)
        }

        pub(super) fn rsa(n: &[u8], e: &[u8]) -> Result<Self, KeyRejected> {
            let components = RsaPublicKeyComponents { n, e };
            Ok(Key::Rsa {
                pkcs1: components
                    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                    .map_err(|_| KeyRejected)?,
                pss: components
                    .to_parsed_public_key(&RSA_PSS_2048_8192_SHA256)
                    .map_err(|_| KeyRejected)?,
            })
        }

        pub(super) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
            let key = match (self, alg) {
                (Key::P256(key), Algorithm::ES256)
                | (Key::P384(key), Algorithm::ES384)
                | (Key::Ed25519(key), Algorithm::EdDSA)
                | (Key::Rsa { pkcs1: key, .. }, Algorithm::RS256)
                | (Key::Rsa { pss: key, .. }, Algorithm::PS256) => key,
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
    use sha2::{Digest as _, Sha256};

    use super::KeyRejected;
    use crate::alg::Algorithm;

    #[derive(Clone)]
    pub(super) enum Key {
        P256(p256::ecdsa::VerifyingKey),
        P384(p384::ecdsa::VerifyingKey),
        Ed25519(ed25519_dalek::VerifyingKey),
        Rsa(RsaPublicKey),
    }

    impl Key {
        pub(super) fn ec(point: &[u8], p384: bool) -> Result<Self, KeyRejected> {
            if p384 {
                p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map(Key::P384)
            } else {
                p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map(Key::P256)
            }
            .map_err(|_| KeyRejected)
        }

        pub(super) fn ed25519(x: &[u8]) -> Result<Self, KeyRejected> {
            let bytes: &[u8; 32] = x.try_into().map_err(|_| KeyRejected)?;
            ed25519_dalek::VerifyingKey::from_bytes(bytes)
                .map(Key::Ed25519)
                .map_err(|_| KeyRejected)
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
                (Key::Ed25519(key), Algorithm::EdDSA) => {
                    ed25519_dalek::Signature::from_slice(signature)
                        .is_ok_and(|s| key.verify(message, &s).is_ok())
                }
                // RFC 8017 §5.2.2: a signature representative s >= n is
                // refused (the rsa crate's PSS path reduces it instead,
                // so s + n would verify like s; aws-lc-rs refuses both).
                (Key::Rsa(key), _) if BigUint::from_bytes_be(signature) >= *key.n() => false,
                (Key::Rsa(key), Algorithm::RS256) => key
                    .verify(
                        Pkcs1v15Sign::new::<Sha256>(),
                        &Sha256::digest(message),
                        signature,
                    )
                    .is_ok(),
                (Key::Rsa(key), Algorithm::PS256) => key
                    .verify(Pss::new::<Sha256>(), &Sha256::digest(message), signature)
                    .is_ok(),
                _ => false,
            }
        }
    }
}
