//! Profiles: one builder call for the rules a deployment must comply with.
//!
//! With [`SenderBoundBuilder::profile`](crate::SenderBoundBuilder::profile),
//! every setting of the table below that was not set explicitly (before or
//! after the call) takes the profile's value, and
//! [`build`](crate::SenderBoundBuilder::build) checks that the explicit ones
//! comply (a [`BuildError::Profile`](crate::BuildError::Profile) otherwise):
//! a profile never loosens what was set. Without a profile the defaults
//! stay.
//!
//! | Setting | Default | [`Fapi2Security`](Profile::Fapi2Security) | [`McpDpop`](Profile::McpDpop) |
//! |---|---|---|---|
//! | DPoP proof algorithms | all eleven ([`Algorithm::ALL`]) | PS256, ES256, EdDSA, Ed25519 (FAPI 2.0 §5.4.1) | default |
//! | access token algorithms | all eleven | PS256, ES256, EdDSA, Ed25519 (§5.4.1) | default |
//! | proof `iat` age | 60 s | 60 s | 300 s (SEP-1932: ±5 minutes when no nonce) |
//! | proof `iat` ahead of our clock | 15 s | 10 s (§5.3.2: accept 0–10 s, refuse > 60 s) | 300 s |
//! | proof `exp`/`nbf` leeway | as `iat` ahead | 10 s | 300 s |
//! | unbound bearer tokens | refused | refused; `allow_bearer` is a build error (§5.3.4: sender-constrained only) | refused; `allow_bearer` is a build error |
//! | RSA keys | 2048–4096 bits | the same (§5.4.1: at least 2048) | the same |
//! | where tokens are accepted | `Authorization` header only | the same (§5.3.4) | the same |
//! | server nonces | optional ([`nonces`](crate::SenderBoundBuilder::nonces)) | optional: clients must support them (§5.3.2.2); require them for a fleet | optional; with `ProofRules::freshness_from_nonce` the window rests on the nonce |
//! | `jti` replay store | on | on | on (SEP-1932's window alone is for servers that keep no state) |
//! | RFC 9728 metadata | off | off | served (the MCP authorization spec requires it) |
//!
//! ```
//! use senderbound::{SenderBoundLayer, profile::Profile};
//!
//! # fn main() -> Result<(), senderbound::BuildError> {
//! let auth = SenderBoundLayer::builder()
//!     .issuer("https://as.example.com")
//!     .audience("https://api.example.com")
//!     .origin("https://api.example.com")
//!     .profile(Profile::Fapi2Security)
//!     .build()?;
//! # let _ = auth; Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use senderbound_core::{Algorithm, AlgorithmSet};

/// A profile a deployment complies with; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// The FAPI 2.0 Security Profile (final, 2025), resource server part:
    /// sender-constrained tokens only, PS256/ES256/EdDSA, proofs up to 10 s
    /// ahead of the server's clock.
    Fapi2Security,
    /// The MCP DPoP profile (SEP-1932, draft): RFC 9449 as is, a ±5-minute
    /// `iat` window, RFC 9728 metadata served, DPoP-bound tokens only.
    McpDpop,
}

impl Profile {
    /// The profile's name, for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Profile::Fapi2Security => "FAPI 2.0 Security Profile",
            Profile::McpDpop => "MCP DPoP profile (SEP-1932)",
        }
    }

    /// The algorithms the profile allows, for proofs and tokens alike.
    pub fn algorithms(self) -> AlgorithmSet {
        match self {
            Profile::Fapi2Security => [
                Algorithm::PS256,
                Algorithm::ES256,
                Algorithm::EdDSA,
                Algorithm::Ed25519,
            ]
            .into_iter()
            .collect(),
            Profile::McpDpop => AlgorithmSet::all(),
        }
    }

    /// How old a proof's `iat` may be.
    pub const fn max_proof_age(self) -> Duration {
        match self {
            Profile::Fapi2Security => Duration::from_secs(60),
            Profile::McpDpop => Duration::from_secs(300),
        }
    }

    /// How far ahead of the server's clock a proof's `iat` may be.
    pub const fn max_proof_future_skew(self) -> Duration {
        match self {
            Profile::Fapi2Security => Duration::from_secs(10),
            Profile::McpDpop => Duration::from_secs(300),
        }
    }

    /// Whether the profile wants the RFC 9728 metadata served.
    pub const fn serves_resource_metadata(self) -> bool {
        matches!(self, Profile::McpDpop)
    }

    /// Checks a finished configuration against the profile.
    pub(crate) fn check(self, config: &Checked) -> Result<(), ProfileViolation> {
        let allowed = self.algorithms();
        let within = |set: AlgorithmSet| set.iter().all(|a| allowed.contains(a));
        let skew = config.proof_max_future_skew;
        let violation = if config.accept_bearer {
            Some("unbound bearer tokens are accepted")
        } else if !within(config.dpop_algorithms) {
            Some("a DPoP algorithm outside the profile is allowed")
        } else if !within(config.token_algorithms) {
            Some("a token algorithm outside the profile is allowed")
        } else {
            match self {
                // FAPI 2.0 §5.3.2: accept an iat up to 10 s ahead, refuse
                // one more than 60 s ahead.
                Profile::Fapi2Security if skew < 10 => Some("proofs 10 s ahead are refused"),
                Profile::Fapi2Security if skew > 60 => Some("proofs over 60 s ahead are accepted"),
                Profile::McpDpop if config.proof_max_age > 300 || skew > 300 => {
                    Some("the iat window is wider than ±5 minutes")
                }
                Profile::McpDpop if !config.serves_resource_metadata => {
                    Some("the RFC 9728 resource metadata is not served")
                }
                _ => None,
            }
        };
        match violation {
            Some(what) => Err(ProfileViolation {
                profile: self,
                what,
            }),
            None => Ok(()),
        }
    }
}

/// What a profile checks in a finished configuration.
pub(crate) struct Checked {
    pub(crate) accept_bearer: bool,
    pub(crate) dpop_algorithms: AlgorithmSet,
    pub(crate) token_algorithms: AlgorithmSet,
    pub(crate) proof_max_age: u64,
    pub(crate) proof_max_future_skew: u64,
    pub(crate) serves_resource_metadata: bool,
}

/// A configuration that does not comply with the profile it chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileViolation {
    profile: Profile,
    what: &'static str,
}

impl ProfileViolation {
    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }
}

impl fmt::Display for ProfileViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.profile.name(), self.what)
    }
}

impl std::error::Error for ProfileViolation {}
