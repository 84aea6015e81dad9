//! The ES256 signing key, on the backend the crate's features choose: the
//! same one that verifies signatures in `senderbound-core`, so one build
//! carries one crypto stack. aws-lc-rs wins when both are enabled.

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "senderbound-client needs a crypto backend: enable `aws-lc-rs` (default) or `rust-crypto`"
);

/// An ES256 (P-256, SHA-256) private key.
#[derive(Clone)]
pub(crate) struct Signer {
    #[cfg(feature = "aws-lc-rs")]
    key: std::sync::Arc<aws_lc_rs::signature::EcdsaKeyPair>,
    #[cfg(not(feature = "aws-lc-rs"))]
    key: p256::ecdsa::SigningKey,
}

#[cfg(feature = "aws-lc-rs")]
impl Signer {
    fn algorithm() -> &'static aws_lc_rs::signature::EcdsaSigningAlgorithm {
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING
    }

    /// A fresh key from the operating system's RNG; `None` only if the
    /// RNG fails.
    pub(crate) fn generate() -> Option<Self> {
        let key = aws_lc_rs::signature::EcdsaKeyPair::generate(Self::algorithm()).ok()?;
        Some(Signer {
            key: std::sync::Arc::new(key),
        })
    }

    /// The key with this big-endian secret scalar, if it is one.
    pub(crate) fn from_secret_bytes(secret: &[u8; 32]) -> Option<Self> {
        // RFC 5915 ECPrivateKey { version 1, privateKey, [0] prime256v1 };
        // the public key is computed from the scalar.
        // Wiped when dropped: it holds the secret.
        let mut der = zeroize::Zeroizing::new(Vec::with_capacity(51));
        der.extend_from_slice(&[0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20]);
        der.extend_from_slice(secret);
        der.extend_from_slice(&[
            0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ]);
        let key = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_der(Self::algorithm(), &der)
            .ok()?;
        Some(Signer {
            key: std::sync::Arc::new(key),
        })
    }

    /// The public point, uncompressed: `04 || x || y`.
    pub(crate) fn public_point(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair as _;
        self.key.public_key().as_ref().to_vec()
    }

    /// The JWS signature (`r || s`, 64 bytes) of `message`; `None` only on
    /// an internal failure of the backend.
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.key
            .sign(&rng, message)
            .ok()
            .map(|s| s.as_ref().to_vec())
    }
}

#[cfg(not(feature = "aws-lc-rs"))]
impl Signer {
    /// A fresh key from the operating system's RNG.
    pub(crate) fn generate() -> Option<Self> {
        Some(Signer {
            key: p256::ecdsa::SigningKey::random(&mut rand_core::OsRng),
        })
    }

    /// The key with this big-endian secret scalar, if it is one.
    pub(crate) fn from_secret_bytes(secret: &[u8; 32]) -> Option<Self> {
        let key = p256::ecdsa::SigningKey::from_bytes(secret.into()).ok()?;
        Some(Signer { key })
    }

    /// The public point, uncompressed: `04 || x || y`.
    pub(crate) fn public_point(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    /// The JWS signature (`r || s`, 64 bytes) of `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        use p256::ecdsa::signature::Signer as _;
        let signature: p256::ecdsa::Signature = self.key.sign(message);
        Some(signature.to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::Signer;

    #[test]
    fn the_secret_scalar_one_is_the_generator() {
        let mut one = [0u8; 32];
        one[31] = 1;
        let point = Signer::from_secret_bytes(&one).map(|s| s.public_point());
        let hex = point.map(|p| p.iter().map(|b| format!("{b:02x}")).collect::<String>());
        // P-256's base point G (SEC 2 §2.4.2), uncompressed.
        assert_eq!(
            hex.as_deref(),
            Some(concat!(
                "04",
                "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
                "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
            ))
        );
    }

    #[test]
    fn zero_and_the_order_are_not_keys() {
        assert!(Signer::from_secret_bytes(&[0u8; 32]).is_none());
        // n, the order of P-256.
        let n = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
            0xfc, 0x63, 0x25, 0x51,
        ];
        assert!(Signer::from_secret_bytes(&n).is_none());
    }

    #[test]
    fn signatures_are_jws_sized() {
        let Some(key) = Signer::generate() else {
            panic!("no RNG");
        };
        // JWS ES256: r || s, 32 bytes each (RFC 7518 §3.4), never DER.
        assert_eq!(key.sign(b"m").map(|s| s.len()), Some(64));
    }
}
