//! DPoP proof rules ([`ProofRules`]) and server nonces ([`Nonces`]).

use std::time::Duration;

use senderbound_core::Algorithm;
use senderbound_core::proof::ProofPolicy;

pub use senderbound_core::AlgorithmSet;
pub use senderbound_core::nonce::{NonceConfigError, Nonces};

/// What a DPoP proof must look like (RFC 9449 §4.3), beyond what every
/// proof is held to. Every setting has a default; set only what differs. A
/// [profile](crate::profile) fills in what is not set, and refuses to
/// build with a setting it does not allow.
///
/// ```
/// use std::time::Duration;
/// use senderbound::Algorithm;
/// use senderbound::proof::ProofRules;
///
/// let proofs = ProofRules::new()
///     .algorithms([Algorithm::ES256, Algorithm::EdDSA, Algorithm::Ed25519])
///     .max_age(Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ProofRules {
    pub(crate) algorithms: Option<AlgorithmSet>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) max_future_skew: Option<Duration>,
    max_bytes: Option<usize>,
    key_cache_capacity: Option<usize>,
    pub(crate) freshness_from_nonce: bool,
}

impl ProofRules {
    /// The defaults; see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept proofs signed with these algorithms only.
    ///
    /// Default: every asymmetric JOSE algorithm ([`Algorithm::ALL`]: ES256,
    /// ES384, ES512, EdDSA, Ed25519, RS256, RS384, RS512, PS256, PS384,
    /// PS512). The choice is the client's, every one of them is sound with
    /// the key checks made here (Ed25519 keys of small order refused, RSA
    /// keys of 2048 to 4096 bits), and a client whose algorithm is refused
    /// cannot call at all; narrow the list for a profile that requires it
    /// (FAPI 2.0 allows PS256, ES256 and EdDSA/Ed25519 only). `EdDSA` and
    /// RFC 9864's `Ed25519` name the same signature: allow both, or clients
    /// using the other name are refused. `none` and MACs are never accepted.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// Refuse proofs whose `iat` is older than `age` (default 60 s; whole
    /// seconds). Also how long each `jti` is remembered.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Accept proofs whose `iat` is up to `skew` ahead of this server's
    /// clock (default 15 s; whole seconds).
    pub fn max_future_skew(mut self, skew: Duration) -> Self {
        self.max_future_skew = Some(skew);
        self
    }

    /// Refuse `DPoP` headers larger than `bytes` (default 8 KiB).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// How many clients' proof headers to remember, so each client's header
    /// and key are read (decoded, parsed, validated, thumbprinted) once
    /// (default 4,096; 0 reads every proof's header afresh). See
    /// [`senderbound_core::key_cache`].
    pub fn key_cache_capacity(mut self, keys: usize) -> Self {
        self.key_cache_capacity = Some(keys);
        self
    }

    /// With [server nonces](crate::SenderBoundBuilder::nonces): let a
    /// proof's freshness rest on its nonce, accepting an `iat` as old as a
    /// nonce lives (`window × step`) instead of
    /// [`max_age`](Self::max_age). For clients that sign proofs ahead of
    /// use or whose clocks lag; a clock running ahead is still limited by
    /// [`max_future_skew`](Self::max_future_skew). `jti`s are remembered
    /// correspondingly longer. Without nonces it is a build error.
    pub fn freshness_from_nonce(mut self) -> Self {
        self.freshness_from_nonce = true;
        self
    }

    /// The core policy these rules describe (defaults for what is unset).
    pub(crate) fn policy(&self) -> ProofPolicy {
        let mut policy = ProofPolicy::new();
        if let Some(algs) = self.algorithms {
            policy = policy.algorithms(algs.iter());
        }
        if let Some(age) = self.max_age {
            policy = policy.max_age(age);
        }
        if let Some(skew) = self.max_future_skew {
            policy = policy.max_future_skew(skew);
        }
        if let Some(bytes) = self.max_bytes {
            policy = policy.max_proof_bytes(bytes);
        }
        if let Some(keys) = self.key_cache_capacity {
            policy = policy.key_cache_capacity(keys);
        }
        policy
    }
}
