//! Stateless server nonces (RFC 9449 §8–9): any server that shares the
//! secret accepts any other's nonce, with no shared state.
//!
//! A nonce is `base64url(step ‖ HMAC-SHA256(secret, label ‖ step)[..16])`,
//! where `step` is the current time divided by the step length. It is
//! accepted while its step is one of the last `window` steps (so it lives
//! between `(window - 1) × step` and `window × step` seconds; a nonce from
//! the next step is accepted in the last 5 s before it, for servers whose
//! clocks differ a little), and only if its tag verifies under the current
//! secret or the previous one.
//!
//! Rotating the secret across a fleet without refusing anyone takes three
//! rolling deploys: (1) everywhere, current = old, previous = new (accepts
//! nonces under the new secret, still issues old ones); (2) current = new,
//! previous = old; (3) a nonce lifetime later, current = new alone.
//!
//! ```
//! use senderbound_core::nonce::{NonceCheck, Nonces};
//!
//! let nonces = Nonces::new(b"a shared secret of at least 32 bytes!!").unwrap();
//! let n = nonces.issue(1_700_000_000);
//! assert_eq!(nonces.check(Some(&n), 1_700_000_000), Ok(NonceCheck::Current));
//! assert!(nonces.check(Some(&n), 1_700_000_000 + 3600).is_err());
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::jws::{b64url_decode, b64url_encode};

/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Default step length (seconds).
pub const DEFAULT_STEP_SECS: u64 = 60;
/// Default number of steps a nonce is accepted in (the current one included).
pub const DEFAULT_WINDOW_STEPS: u64 = 3;

const LABEL: &[u8] = b"senderbound dpop-nonce v1";
/// A nonce from the next step is accepted this close to its start (clocks
/// of a fleet differ a little).
const FUTURE_STEP_TOLERANCE_SECS: u64 = 5;
const TAG_BYTES: usize = 16;
const NONCE_BYTES: usize = 8 + TAG_BYTES;

/// A secret shorter than [`MIN_SECRET_BYTES`], or a zero step or window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceConfigError;

impl std::fmt::Display for NonceConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nonce secrets need at least {MIN_SECRET_BYTES} bytes, and step and window must be positive"
        )
    }
}

impl std::error::Error for NonceConfigError {}

/// How an accepted nonce stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Made in the current step.
    Current,
    /// Still accepted, but from an earlier step: hand the client a fresh one.
    Aging,
}

/// Issues and checks nonces. Cheap to clone? No: hold it once (it keeps the
/// keyed HMAC states).
#[derive(Clone)]
pub struct Nonces {
    current: Hmac<Sha256>,
    previous: Option<Hmac<Sha256>>,
    step_secs: u64,
    window_steps: u64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("step_secs", &self.step_secs)
            .field("window_steps", &self.window_steps)
            .field("has_previous_secret", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

fn key(secret: &[u8]) -> Result<Hmac<Sha256>, NonceConfigError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(NonceConfigError);
    }
    Hmac::<Sha256>::new_from_slice(secret).map_err(|_| NonceConfigError)
}

impl Nonces {
    /// Nonces under `secret` (at least 32 bytes, e.g. 32 random bytes shared
    /// by every server of the fleet), 60 s steps, accepted for 3 steps.
    pub fn new(secret: &[u8]) -> Result<Self, NonceConfigError> {
        Ok(Nonces {
            current: key(secret)?,
            previous: None,
            step_secs: DEFAULT_STEP_SECS,
            window_steps: DEFAULT_WINDOW_STEPS,
        })
    }

    /// Also accept nonces made under the previous secret (rotation).
    pub fn previous_secret(mut self, secret: &[u8]) -> Result<Self, NonceConfigError> {
        self.previous = Some(key(secret)?);
        Ok(self)
    }

    /// Step length in seconds (default 60).
    pub fn step_secs(mut self, secs: u64) -> Result<Self, NonceConfigError> {
        if secs == 0 {
            return Err(NonceConfigError);
        }
        self.step_secs = secs;
        Ok(self)
    }

    /// How many steps a nonce is accepted in, its own included (default 3).
    pub fn window_steps(mut self, steps: u64) -> Result<Self, NonceConfigError> {
        if steps == 0 {
            return Err(NonceConfigError);
        }
        self.window_steps = steps;
        Ok(self)
    }

    /// The longest a nonce is accepted, in seconds: `window × step`.
    pub fn lifetime_secs(&self) -> u64 {
        self.window_steps.saturating_mul(self.step_secs)
    }

    /// A fresh nonce for time `now`.
    pub fn issue(&self, now: u64) -> String {
        let step = now / self.step_secs;
        let mut raw = [0u8; NONCE_BYTES];
        raw[..8].copy_from_slice(&step.to_be_bytes());
        raw[8..].copy_from_slice(&tag(&self.current, step));
        b64url_encode(&raw)
    }

    /// Checks a proof's `nonce` claim at time `now`: missing
    /// ([`Error::NonceMissing`]), expired ([`Error::NonceExpired`]), or not
    /// one of ours ([`Error::NonceInvalid`]) are all `use_dpop_nonce`.
    pub fn check(&self, nonce: Option<&str>, now: u64) -> Result<NonceCheck, Error> {
        let nonce = nonce.ok_or(Error::NonceMissing)?;
        if nonce.len() > 64 {
            return Err(Error::NonceInvalid);
        }
        let raw = b64url_decode(nonce).map_err(|_| Error::NonceInvalid)?;
        let (step, claimed) = match raw.split_first_chunk::<8>() {
            Some((step, claimed)) if claimed.len() == TAG_BYTES => {
                (u64::from_be_bytes(*step), claimed)
            }
            _ => return Err(Error::NonceInvalid),
        };
        // The tag first: a forged nonce is invalid whatever its step says.
        let genuine = |k: &Hmac<Sha256>| bool::from(tag(k, step).ct_eq(claimed));
        if !(genuine(&self.current) || self.previous.as_ref().is_some_and(genuine)) {
            return Err(Error::NonceInvalid);
        }
        let current = now / self.step_secs;
        if step > current {
            // Made by a server whose clock is a little ahead, just past a
            // step boundary: fine. Further ahead: refuse.
            let starts = step.saturating_mul(self.step_secs);
            return match step == current + 1 && starts - now <= FUTURE_STEP_TOLERANCE_SECS {
                true => Ok(NonceCheck::Current),
                false => Err(Error::NonceExpired),
            };
        }
        match current - step {
            0 => Ok(NonceCheck::Current),
            age if age < self.window_steps => Ok(NonceCheck::Aging),
            _ => Err(Error::NonceExpired),
        }
    }
}

fn tag(key: &Hmac<Sha256>, step: u64) -> [u8; TAG_BYTES] {
    let mut mac = key.clone();
    mac.update(LABEL);
    mac.update(&step.to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_BYTES];
    out.copy_from_slice(&full[..TAG_BYTES]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"secret A: 32 bytes or more, test";
    const B: &[u8] = b"secret B: 32 bytes or more, test";
    const T: u64 = 1_700_000_040; // step 28_333_334, 0 s into the step

    #[test]
    fn lifetime_and_steps() {
        let n = Nonces::new(A).unwrap();
        let nonce = n.issue(T);
        assert_eq!(nonce.len(), 32);
        assert_eq!(n.check(Some(&nonce), T + 59), Ok(NonceCheck::Current));
        assert_eq!(n.check(Some(&nonce), T + 60), Ok(NonceCheck::Aging));
        assert_eq!(n.check(Some(&nonce), T + 179), Ok(NonceCheck::Aging));
        assert_eq!(n.check(Some(&nonce), T + 180), Err(Error::NonceExpired));
        // From a server up to 5 s ahead, across a step boundary: accepted.
        assert_eq!(n.check(Some(&nonce), T - 5), Ok(NonceCheck::Current));
        assert_eq!(n.check(Some(&nonce), T - 6), Err(Error::NonceExpired));
        assert_eq!(n.check(Some(&nonce), T - 61), Err(Error::NonceExpired));
        assert_eq!(n.lifetime_secs(), 180);
    }

    #[test]
    fn forged_missing_and_malformed() {
        let n = Nonces::new(A).unwrap();
        assert_eq!(n.check(None, T), Err(Error::NonceMissing));
        let other = Nonces::new(B).unwrap().issue(T);
        assert_eq!(n.check(Some(&other), T), Err(Error::NonceInvalid));
        let mut raw = b64url_decode(&n.issue(T)).unwrap();
        raw[7] ^= 1; // another step, same tag
        assert_eq!(
            n.check(Some(&b64url_encode(&raw)), T),
            Err(Error::NonceInvalid)
        );
        for bad in [
            "",
            "x",
            "!!!!",
            &"A".repeat(100),
            &b64url_encode(&[0u8; 24]),
        ] {
            assert_eq!(n.check(Some(bad), T), Err(Error::NonceInvalid), "{bad}");
        }
        let short = &n.issue(T)[..30];
        assert_eq!(n.check(Some(short), T), Err(Error::NonceInvalid));
    }

    #[test]
    fn rotation_accepts_the_previous_secret_only_when_configured() {
        let old = Nonces::new(A).unwrap().issue(T);
        let rotated = Nonces::new(B).unwrap().previous_secret(A).unwrap();
        assert_eq!(rotated.check(Some(&old), T), Ok(NonceCheck::Current));
        let dropped = Nonces::new(B).unwrap();
        assert_eq!(dropped.check(Some(&old), T), Err(Error::NonceInvalid));
        // New nonces are made with the current secret.
        let new = rotated.issue(T);
        assert_eq!(dropped.check(Some(&new), T), Ok(NonceCheck::Current));
    }

    #[test]
    fn configuration_is_checked() {
        assert!(Nonces::new(&[0u8; 31]).is_err());
        assert!(Nonces::new(A).unwrap().previous_secret(b"short").is_err());
        assert!(Nonces::new(A).unwrap().step_secs(0).is_err());
        assert!(Nonces::new(A).unwrap().window_steps(0).is_err());
    }
}
