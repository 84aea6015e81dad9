//! Signature verification, delegated to jsonwebtoken's crypto providers.
//!
//! The backend is chosen at compile time by our own features: `aws-lc-rs`
//! (default) or `rust-crypto` (pure Rust). We call the provider directly
//! instead of jsonwebtoken's process-wide default, so enabling both features
//! (Cargo unions them) selects aws-lc-rs instead of panicking at run time,
//! and enabling neither is a compile error.

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "senderbound needs a signature backend: enable the `aws-lc-rs` (default) or the `rust-crypto` feature"
);

use jsonwebtoken::DecodingKey;
use jsonwebtoken::crypto::CryptoProvider;

use crate::alg::Algorithm;

#[cfg(feature = "aws-lc-rs")]
fn provider() -> &'static CryptoProvider {
    &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
}

#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
fn provider() -> &'static CryptoProvider {
    &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
}

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

/// Verifies `signature` over `message` with `key` for `alg`. Any error is `false`.
pub(crate) fn verify(alg: Algorithm, key: &DecodingKey, message: &[u8], signature: &[u8]) -> bool {
    match (provider().verifier_factory)(&alg.to_jsonwebtoken(), key) {
        Ok(verifier) => verifier.verify(message, &signature.to_vec()).is_ok(),
        Err(_) => false,
    }
}
