//! The JWS algorithms senderbound accepts, and nothing else.
//!
//! `none` and every MAC (`HS256`, …) have no variant here: they cannot be put
//! on an allow-list, whatever the configuration says.

use std::fmt;
use std::str::FromStr;

/// An asymmetric JWS signature algorithm (RFC 7518 §3, RFC 8037, RFC 9864).
///
/// Every asymmetric algorithm JOSE defines for the key types senderbound
/// reads: ECDSA on the three NIST curves, EdDSA with Ed25519 under both its
/// names, and RSA with PKCS#1 v1.5 and PSS padding (keys of 2048 to 4096
/// bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256. The one every DPoP party supports.
    ES256,
    /// ECDSA with P-384 and SHA-384.
    ES384,
    /// ECDSA with P-521 and SHA-512.
    ES512,
    /// EdDSA with an Ed25519 key (RFC 8037; deprecated in favour of
    /// `Ed25519` by RFC 9864, still what most clients send).
    EdDSA,
    /// Ed25519, the fully-specified name of EdDSA with Ed25519 (RFC 9864
    /// §2.2). The same key and signature as [`EdDSA`](Algorithm::EdDSA).
    Ed25519,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256 (MGF1 with SHA-256, salt of 32 bytes).
    PS256,
    /// RSASSA-PSS with SHA-384 (MGF1 with SHA-384, salt of 48 bytes).
    PS384,
    /// RSASSA-PSS with SHA-512 (MGF1 with SHA-512, salt of 64 bytes).
    PS512,
}

impl Algorithm {
    /// Every supported algorithm, in the order challenges and metadata
    /// list them.
    pub const ALL: [Algorithm; 11] = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
        Algorithm::Ed25519,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];

    /// The `alg` value on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
        }
    }

    /// Parses an `alg` value. Exact, case-sensitive match (RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "ES512" => Algorithm::ES512,
            "EdDSA" => Algorithm::EdDSA,
            "Ed25519" => Algorithm::Ed25519,
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            _ => return None,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when parsing an algorithm name that is unknown or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedAlgorithm;

impl fmt::Display for UnsupportedAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unsupported or refused JWS algorithm (none and MACs are never accepted)")
    }
}

impl std::error::Error for UnsupportedAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnsupportedAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::from_name(s).ok_or(UnsupportedAlgorithm)
    }
}

/// A set of accepted algorithms (a small bit set: cheap to copy and test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// The empty set.
    pub const EMPTY: AlgorithmSet = AlgorithmSet(0);

    /// Every supported algorithm.
    pub fn all() -> Self {
        Self::from_iter(Algorithm::ALL)
    }

    /// `true` if `alg` is in the set.
    pub const fn contains(self, alg: Algorithm) -> bool {
        self.0 & (1 << alg as u16) != 0
    }

    /// Adds `alg`.
    pub fn insert(&mut self, alg: Algorithm) {
        self.0 |= 1 << alg as u16;
    }

    /// `true` if no algorithm is accepted.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }

    /// Space-separated names, as used in the `algs` challenge parameter.
    pub fn to_space_separated(self) -> String {
        self.iter()
            .map(Algorithm::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Default for AlgorithmSet {
    fn default() -> Self {
        Self::all()
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        let mut set = AlgorithmSet::EMPTY;
        for alg in iter {
            set.insert(alg);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_and_macs_never_parse() {
        for name in [
            "none",
            "None",
            "HS256",
            "HS384",
            "HS512",
            "es256",
            "ed25519",
            "eddsa",
            "ES256K",
            "Ed448",
            "ML-DSA-44",
            "RSA-OAEP",
            "",
        ] {
            assert_eq!(Algorithm::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn every_name_round_trips_and_fits_the_set() {
        let mut set = AlgorithmSet::EMPTY;
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.as_str()), Some(alg));
            assert!(!set.contains(alg));
            set.insert(alg);
        }
        assert_eq!(set, AlgorithmSet::all());
        assert_eq!(set.iter().count(), 11);
    }

    #[test]
    fn set_membership() {
        let set: AlgorithmSet = [Algorithm::ES256, Algorithm::EdDSA].into_iter().collect();
        assert!(set.contains(Algorithm::ES256));
        assert!(!set.contains(Algorithm::RS256));
        assert_eq!(set.to_space_separated(), "ES256 EdDSA");
    }
}
