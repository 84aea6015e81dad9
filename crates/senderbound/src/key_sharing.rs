//! Key-sharing detection: one DPoP key (or client certificate) used with
//! tokens of different clients or subjects.
//!
//! Sender constraint limits a leaked token to whoever holds the key. When
//! every tool container, browser session and connector of an agent
//! platform signs with the *same* key, that holder is everyone: the binding
//! has become shared ambient authority. Tokens of two different clients (or
//! users) bound to one key are the visible sign of it, and only the
//! resource server sees both.
//!
//! With [`key_sharing`](crate::SenderBoundBuilder::key_sharing)
//! the Layer remembers, per key thumbprint (`jkt`, or `x5t#S256` for
//! certificate-bound tokens), the issuer, `client_id` and `sub` of the first
//! accepted token, for a sliding window. A later token with the same key and
//! another identity gets a *suspicious* audit event (`finding="key_shared"`,
//! with both identities), and is refused with `401 invalid_token` in
//! [`reject`](KeySharing::reject) mode.
//!
//! ```
//! use std::time::Duration;
//! use senderbound::{SenderBoundLayer, key_sharing::KeySharing};
//!
//! # fn main() -> Result<(), senderbound::BuildError> {
//! let auth = SenderBoundLayer::builder()
//!     .issuer("https://login.example.com")
//!     .audience("https://api.example.com")
//!     .origin("https://api.example.com")
//!     .key_sharing(KeySharing::new().window(Duration::from_secs(3600)).reject())
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! The memory is per server process and bounded
//! ([`capacity`](KeySharing::capacity)), unless a fleet store is given with
//! [`holders`](KeySharing::holders) (`senderbound_redis::RedisKeyHolders`):
//! then every instance records and reads the first holder there, and two
//! instances seeing one key with two clients report (or refuse) it exactly
//! as one instance does, at one store round trip per accepted request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::sync::Cache;
pub use senderbound_core::key_sharing::{KeyHolders, KeyHoldersUnavailable};
use senderbound_core::token::AccessToken;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`KeyHolders`] as a trait object.
trait DynKeyHolders: Send + Sync + 'static {
    fn first_holder_boxed<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        window: Duration,
    ) -> BoxFuture<'a, Result<String, KeyHoldersUnavailable>>;
}

impl<H: KeyHolders> DynKeyHolders for H {
    fn first_holder_boxed<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        window: Duration,
    ) -> BoxFuture<'a, Result<String, KeyHoldersUnavailable>> {
        Box::pin(self.first_holder(key, holder, window))
    }
}

/// A fleet store of first holders.
#[derive(Clone)]
struct Holders(Arc<dyn DynKeyHolders>);

impl fmt::Debug for Holders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Holders(..)")
    }
}

/// Default [`KeySharing::window`]: one hour.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// Default [`KeySharing::capacity`]: keys remembered at most.
pub const DEFAULT_CAPACITY: u64 = 100_000;

/// Name of the counter of keys forgotten because the detector was full.
pub const EVICTIONS_TOTAL: &str = "senderbound_key_sharing_evictions_total";

/// Configuration of key-sharing detection; see the [module](self) docs.
#[derive(Debug, Clone)]
#[must_use]
pub struct KeySharing {
    window: Duration,
    capacity: u64,
    reject: bool,
    subjects: bool,
    holders: Option<Holders>,
}

impl Default for KeySharing {
    fn default() -> Self {
        KeySharing {
            window: DEFAULT_WINDOW,
            capacity: DEFAULT_CAPACITY,
            reject: false,
            subjects: true,
            holders: None,
        }
    }
}

impl KeySharing {
    /// Detect (audit) only; a one-hour window; different clients *or*
    /// subjects count.
    pub fn new() -> Self {
        Self::default()
    }

    /// A key's identity is remembered for this long after its last use.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Remember at most this many keys (default 100,000). When full, the
    /// least recently used key is forgotten (and counted in
    /// `senderbound_key_sharing_evictions_total`): a forgotten key seen
    /// again later starts afresh, so size this above the number of keys
    /// active within one window.
    pub fn capacity(mut self, keys: u64) -> Self {
        self.capacity = keys;
        self
    }

    /// Refuse the request (`401 invalid_token`) instead of only auditing it.
    /// The identity seen first keeps working; the other gets the refusal
    /// until the window passes without the key being used.
    pub fn reject(mut self) -> Self {
        self.reject = true;
        self
    }

    /// Keep first holders in `store`, shared by a fleet, instead of this
    /// process's memory (the [`capacity`](Self::capacity) then does not
    /// apply; the store keeps each for the window). When the store cannot
    /// be reached, a request is refused with 503 in
    /// [`reject`](Self::reject) mode, and goes on unobserved otherwise.
    pub fn holders(mut self, store: impl KeyHolders) -> Self {
        self.holders = Some(Holders(Arc::new(store)));
        self
    }

    /// Count only different clients (issuer + `client_id`), not different
    /// subjects: for a backend that legitimately acts for many users with
    /// one key.
    pub fn ignore_subjects(mut self) -> Self {
        self.subjects = false;
        self
    }
}

/// Who a key was first seen with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) issuer: String,
    pub(crate) client_id: Option<String>,
    pub(crate) subject: Option<String>,
}

impl Holder {
    /// As stored in a fleet store: a JSON array `[iss, client_id, sub]`.
    fn encode(&self) -> String {
        serde_json::json!([self.issuer, self.client_id, self.subject]).to_string()
    }

    fn decode(text: &str) -> Option<Self> {
        let (issuer, client_id, subject): (String, Option<String>, Option<String>) =
            serde_json::from_str(text).ok()?;
        Some(Holder {
            issuer,
            client_id,
            subject,
        })
    }

    fn of(token: &AccessToken, subjects: bool) -> Self {
        Holder {
            issuer: token.issuer.clone(),
            client_id: token.client_id.clone(),
            subject: if subjects {
                token.subject.clone()
            } else {
                None
            },
        }
    }
}

/// The detector: thumbprint → first identity.
pub(crate) struct Detector {
    holders: Cache<String, Arc<Holder>>,
    fleet: Option<Holders>,
    window: Duration,
    pub(crate) reject: bool,
    subjects: bool,
    /// The fleet store stopped answering (and has not answered since):
    /// said once when it starts and once when it ends, not per request.
    fleet_failing: Arc<AtomicBool>,
}

/// Name of the counter of requests key-sharing detection could not observe
/// (report mode, the fleet store unreachable).
pub const UNOBSERVED_TOTAL: &str = "senderbound_key_sharing_unobserved_total";

/// The longest window accepted: a week, far longer than any access token
/// should live (moka itself refuses more than 1000 years).
const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

impl Detector {
    /// `None` if the configuration cannot work: no capacity, or a window
    /// of zero or longer than a week.
    pub(crate) fn new(config: &KeySharing) -> Option<Self> {
        if config.capacity == 0 || config.window.is_zero() || config.window > MAX_WINDOW {
            return None;
        }
        Some(Detector {
            holders: Cache::builder()
                .max_capacity(config.capacity)
                .time_to_idle(config.window)
                // LRU, not moka's default TinyLFU: TinyLFU may decline to
                // admit a new key at all, which would silently skip detection.
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .eviction_listener(|_, _, cause| {
                    if cause == moka::notification::RemovalCause::Size {
                        metrics::counter!(EVICTIONS_TOTAL).increment(1);
                    }
                })
                .build(),
            fleet: config.holders.clone(),
            fleet_failing: Arc::new(AtomicBool::new(false)),
            window: config.window,
            reject: config.reject,
            subjects: config.subjects,
        })
    }

    /// [`observe`](Self::observe), with the fleet store when there is one.
    pub(crate) async fn observe_anywhere(
        &self,
        thumbprint: String,
        token: &AccessToken,
    ) -> Result<Option<Arc<Holder>>, KeyHoldersUnavailable> {
        let Some(Holders(store)) = &self.fleet else {
            return Ok(self.observe(thumbprint, token));
        };
        let holder = Holder::of(token, self.subjects);
        let encoded = holder.encode();
        // The mode is part of the key: servers that count subjects and
        // servers that do not record different holders, never compared.
        let mode = if self.subjects { "sub" } else { "client" };
        let first = match store
            .first_holder_boxed(&format!("{mode}:{thumbprint}"), &encoded, self.window)
            .await
        {
            Ok(first) => {
                if self.fleet_failing.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "senderbound::key_sharing",
                        "key-sharing store answering again"
                    );
                }
                first
            }
            Err(e) => {
                if !self.reject {
                    metrics::counter!(UNOBSERVED_TOTAL).increment(1);
                    if !self.fleet_failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            target: "senderbound::key_sharing",
                            "key-sharing store unavailable: requests go on unobserved \
                             (counted in senderbound_key_sharing_unobserved_total) until it answers"
                        );
                    }
                }
                return Err(e);
            }
        };
        if first == encoded {
            return Ok(None);
        }
        // Another identity (or a record this version cannot read: still
        // not this holder).
        Ok(Some(Arc::new(Holder::decode(&first).unwrap_or(Holder {
            issuer: "<unreadable>".to_owned(),
            client_id: None,
            subject: None,
        }))))
    }

    /// Records that `thumbprint` (prefixed by its kind) was used with
    /// `token`; returns the other identity if the key was already used with
    /// a different one.
    pub(crate) fn observe(&self, thumbprint: String, token: &AccessToken) -> Option<Arc<Holder>> {
        let holder = Holder::of(token, self.subjects);
        let entry = self
            .holders
            .entry(thumbprint)
            .or_insert_with(|| Arc::new(holder.clone()));
        if entry.is_fresh() || **entry.value() == holder {
            None
        } else {
            Some(entry.into_value())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(client: &str, sub: &str) -> AccessToken {
        let claims = serde_json::json!({
            "iss": "https://as", "aud": "https://rs", "exp": 0, "client_id": client, "sub": sub,
        });
        AccessToken::from_json_claims(claims.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_second_identity_on_one_key_is_reported_with_the_first() {
        let d = Detector::new(&KeySharing::new()).unwrap();
        assert_eq!(d.observe("dpop:k1".into(), &token("a", "u1")), None);
        assert_eq!(d.observe("dpop:k1".into(), &token("a", "u1")), None);
        let other = d.observe("dpop:k1".into(), &token("b", "u1")).unwrap();
        assert_eq!(other.client_id.as_deref(), Some("a"));
        assert!(d.observe("dpop:k1".into(), &token("a", "u2")).is_some());
        // Another key is independent; the first identity still passes.
        assert_eq!(d.observe("dpop:k2".into(), &token("b", "u1")), None);
        assert_eq!(d.observe("dpop:k1".into(), &token("a", "u1")), None);
    }

    #[test]
    fn unusable_configurations_are_refused() {
        assert!(Detector::new(&KeySharing::new().capacity(0)).is_none());
        assert!(Detector::new(&KeySharing::new().window(Duration::ZERO)).is_none());
        assert!(Detector::new(&KeySharing::new().window(Duration::MAX)).is_none());
        assert!(Detector::new(&KeySharing::new().window(MAX_WINDOW)).is_some());
    }

    #[test]
    fn when_full_the_least_recently_used_key_goes_and_new_keys_are_still_watched() {
        let d = Detector::new(&KeySharing::new().capacity(2)).unwrap();
        for key in ["dpop:a", "dpop:b", "dpop:c", "dpop:d"] {
            assert_eq!(d.observe(key.into(), &token("x", "u")), None);
            d.holders.run_pending_tasks();
        }
        // The newest key is remembered (TinyLFU could have refused it).
        assert!(d.observe("dpop:d".into(), &token("y", "u")).is_some());
    }

    #[test]
    fn subjects_can_be_ignored() {
        let d = Detector::new(&KeySharing::new().ignore_subjects()).unwrap();
        assert_eq!(d.observe("dpop:k".into(), &token("a", "u1")), None);
        assert_eq!(d.observe("dpop:k".into(), &token("a", "u2")), None);
        assert!(d.observe("dpop:k".into(), &token("b", "u1")).is_some());
    }
}
