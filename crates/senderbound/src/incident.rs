//! Incident signals: when is a failed proof an incident rather than noise?
//! When the operator's number says so.
//!
//! Every refusal audited as suspicious (a forged signature, a replayed
//! proof, a token with another key's proof, a downgrade, a shared key, a
//! revoked token, a policy's suspicious denial) is counted, per key
//! thumbprint (the proof's `jkt`, as presented, or the client
//! certificate's) and per client (`client_id` of a verified token), in a
//! sliding window. So are proofs issued in the future: one is a skewed
//! clock (routine), a run of them is the mark of proofs made ahead of time
//! by someone who briefly held the key (RFC 9449 §11.1).
//!
//! When one key or client reaches [`Incidents::after`] such refusals within
//! [`within`](Incidents::within), the Layer emits one audit event with
//! `finding="incident"` and severity `incident` (`ERROR`), naming the key
//! or client, the count and the count per kind (`incident_counts`, such as
//! `replay=3 bad_signature=2`). The next one for that key or client comes
//! at the earliest a window later.
//!
//! With [`cool_down`](Incidents::cool_down), the key is then refused (`429
//! Too Many Requests`, `Retry-After` the seconds left, RFC 6585 §4) for
//! that long, whatever it presents. Off by default, and think before
//! turning it on: the counts for a key include refusals anyone can cause
//! (a replay of a proof seen on the wire, a forged signature naming the
//! key), so a cool-down is also a way for others to pause a key. Clients
//! are counted, never paused.
//!
//! Memory is bounded: [`capacity`](Incidents::capacity) keys and clients
//! are followed (default 10 000); beyond, the first followed is forgotten
//! (one still cooling down only after the others), counted in
//! `senderbound_incident_evictions_total`. The counts are per process: a
//! fleet's events go to one place, where the same rule can run across it.
//!
//! ```
//! use std::time::Duration;
//! use senderbound::SenderBoundLayer;
//! use senderbound::incident::Incidents;
//!
//! let layer = SenderBoundLayer::builder()
//!     // Five suspicious refusals within a minute: an incident.
//!     .incidents(Incidents::after(5).within(Duration::from_secs(60)))
//!     # .audience("https://api.example.com")
//!     # .trust(senderbound::tokens::Issuer::new("https://as.example.com").keys(r#"{"keys":[]}"#))
//!     # .origin(senderbound::Origin::https("api.example.com").unwrap())
//!     .build();
//! # let _ = layer;
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use senderbound_core::{Error, Severity};

/// Default [`Incidents::within`]: one minute.
const DEFAULT_WINDOW_SECS: u64 = 60;
/// Default [`Incidents::capacity`].
const DEFAULT_CAPACITY: usize = 10_000;
/// Largest threshold: the window keeps this many events per key.
const MAX_THRESHOLD: u32 = 10_000;

/// Name of the counter of keys and clients forgotten because the tracker
/// was full.
pub const INCIDENT_EVICTIONS_TOTAL: &str = "senderbound_incident_evictions_total";
/// Name of the counter of incidents, labelled by `subject` (`jkt`,
/// `x5t_s256` or `client_id`).
pub const INCIDENTS_TOTAL: &str = "senderbound_incidents_total";

/// The incident rule; see the [module](self) docs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Incidents {
    threshold: u32,
    window: Duration,
    cool_down: Option<Duration>,
    capacity: usize,
}

impl Incidents {
    /// An incident at `threshold` suspicious refusals (at least 1, at most
    /// 10 000) for one key or client within the window (default one
    /// minute).
    pub fn after(threshold: u32) -> Self {
        Incidents {
            threshold: threshold.clamp(1, MAX_THRESHOLD),
            window: Duration::from_secs(DEFAULT_WINDOW_SECS),
            cool_down: None,
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// The sliding window the refusals are counted in (whole seconds, at
    /// least one).
    pub fn within(mut self, window: Duration) -> Self {
        self.window = window.max(Duration::from_secs(1));
        self
    }

    /// Refuse the key for this long after its incident (`429`). Off by
    /// default; see the [module](self) docs for why.
    pub fn cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = Some(cool_down).filter(|d| d.as_secs() > 0);
        self
    }

    /// How many keys and clients are followed at most (default 10 000).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }
}

/// The kind of a counted refusal, as named in `incident_counts`; `None`
/// for refusals that are not counted.
pub(crate) fn kind(error: Option<Error>, severity: Severity, shared: bool) -> Option<&'static str> {
    use Error::*;
    Some(match error {
        Some(ProofSignature | TokenSignature) => "bad_signature",
        Some(ProofReplayed) => "replay",
        Some(TokenBindingMismatch | TokenCertificateMismatch | ProofAthMismatch) => "wrong_key",
        Some(CertificateMissing) => "wrong_key",
        Some(TokenDowngrade) => "downgrade",
        Some(KeyShared) => "key_shared",
        Some(ProofIssuedInFuture) => "future_proof",
        // The consequence of an incident is not another one.
        Some(KeyCoolingDown) => return None,
        None if shared => "key_shared",
        _ if severity == Severity::Suspicious => "other",
        _ => return None,
    })
}

/// An incident, for its audit event.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    /// `jkt`, `x5t_s256` or `client_id`.
    pub(crate) subject: &'static str,
    pub(crate) count: usize,
    /// `kind=n` pairs, by kind.
    pub(crate) counts: String,
    pub(crate) window: u64,
    /// Seconds the key is refused (0: not refused).
    pub(crate) cool_down: u64,
}

/// What one key or client did lately.
#[derive(Default)]
struct Entry {
    /// Times and kinds of the counted refusals in the window (at most the
    /// threshold).
    events: VecDeque<(u64, &'static str)>,
    /// No second incident before this time.
    quiet_until: u64,
    /// Refused until this time (keys, with a cool-down).
    cooling_until: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Keys in the order they were first followed, for eviction.
    order: VecDeque<String>,
}

/// The counts; one per Layer.
pub(crate) struct Tracker {
    rule: Incidents,
    state: Mutex<State>,
    /// Keys cooling down (or that were): no lock on the request path while
    /// none is.
    cooling: AtomicUsize,
}

impl Tracker {
    pub(crate) fn new(rule: Incidents) -> Self {
        Tracker {
            rule,
            state: Mutex::new(State::default()),
            cooling: AtomicUsize::new(0),
        }
    }

    /// Seconds left of this key's cool-down, if it is cooling down.
    /// `kind` is `jkt` or `x5t_s256`.
    pub(crate) fn cooling_down(&self, kind: &str, thumbprint: &str, now: u64) -> Option<u64> {
        if self.cooling.load(Ordering::Relaxed) == 0 {
            return None;
        }
        // A poisoned lock refuses nothing more than before: the counts are
        // signals, and the request goes through every other check.
        let state = self.state.lock().ok()?;
        let until = state
            .entries
            .get(&format!("{kind}:{thumbprint}"))?
            .cooling_until;
        (until > now).then(|| until - now)
    }

    /// Counts one refusal of `kind` against each of `subjects` (kind
    /// name, `kind:value` key); the incidents it completes.
    pub(crate) fn observe(
        &self,
        subjects: &[(&'static str, String)],
        kind: &'static str,
        now: u64,
    ) -> Vec<(Finding, usize)> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        let window = self.rule.window.as_secs();
        let threshold = self.rule.threshold as usize;
        let mut findings = Vec::new();
        for (index, (subject, key)) in subjects.iter().enumerate() {
            if !state.entries.contains_key(key) {
                self.make_room(&mut state, now);
                state.order.push_back(key.clone());
                state.entries.insert(key.clone(), Entry::default());
            }
            let Some(entry) = state.entries.get_mut(key) else {
                continue;
            };
            while entry
                .events
                .front()
                .is_some_and(|(at, _)| now.saturating_sub(*at) >= window)
            {
                entry.events.pop_front();
            }
            if entry.quiet_until > now {
                continue;
            }
            entry.events.push_back((now, kind));
            if entry.events.len() > threshold {
                entry.events.pop_front();
            }
            if entry.events.len() < threshold {
                continue;
            }
            let cool_down = match (self.rule.cool_down, *subject) {
                (Some(d), "jkt" | "x5t_s256") => d.as_secs(),
                _ => 0,
            };
            entry.quiet_until = now.saturating_add(window.max(cool_down));
            if cool_down > 0 {
                if entry.cooling_until == 0 {
                    self.cooling.fetch_add(1, Ordering::Relaxed);
                }
                entry.cooling_until = now.saturating_add(cool_down);
            }
            let mut per_kind: Vec<(&str, usize)> = Vec::new();
            for (_, k) in &entry.events {
                match per_kind.iter_mut().find(|(name, _)| name == k) {
                    Some((_, n)) => *n += 1,
                    None => per_kind.push((k, 1)),
                }
            }
            per_kind.sort_unstable();
            let counts = per_kind
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ");
            let count = entry.events.len();
            entry.events.clear();
            metrics::counter!(INCIDENTS_TOTAL, "subject" => *subject).increment(1);
            findings.push((
                Finding {
                    subject,
                    count,
                    counts,
                    window,
                    cool_down,
                },
                index,
            ));
        }
        findings
    }

    /// Forgets one followed key or client if the tracker is full: the
    /// first followed that is not cooling down, or else the first.
    fn make_room(&self, state: &mut State, now: u64) {
        if state.entries.len() < self.rule.capacity {
            return;
        }
        let mut tries = state.order.len();
        while let Some(key) = state.order.pop_front() {
            let cooling = state
                .entries
                .get(&key)
                .is_some_and(|e| e.cooling_until > now);
            if cooling && tries > 0 {
                tries -= 1;
                state.order.push_back(key);
                continue;
            }
            if let Some(entry) = state.entries.remove(&key) {
                if entry.cooling_until != 0 {
                    self.cooling.fetch_sub(1, Ordering::Relaxed);
                }
                metrics::counter!(INCIDENT_EVICTIONS_TOTAL).increment(1);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Vec<(&'static str, String)> {
        vec![("jkt", format!("jkt:{s}"))]
    }

    #[test]
    fn the_threshold_within_the_window_is_one_incident() {
        let t = Tracker::new(Incidents::after(3).within(Duration::from_secs(10)));
        assert!(t.observe(&key("a"), "replay", 100).is_empty());
        assert!(t.observe(&key("a"), "replay", 105).is_empty());
        // The first fell out of the window: still two.
        assert!(t.observe(&key("a"), "bad_signature", 110).is_empty());
        let found = t.observe(&key("a"), "replay", 111);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.count, 3);
        assert_eq!(found[0].0.counts, "bad_signature=1 replay=2");
        assert_eq!(found[0].0.cool_down, 0);
        // Quiet for a window after; counted again after it.
        for at in 112..121 {
            assert!(t.observe(&key("a"), "replay", at).is_empty(), "{at}");
        }
        assert!(t.observe(&key("a"), "replay", 121).is_empty());
        assert!(t.observe(&key("a"), "replay", 122).is_empty());
        assert_eq!(t.observe(&key("a"), "replay", 123).len(), 1);
        // No cool-down configured: never refused.
        assert_eq!(t.cooling_down("jkt", "a", 123), None);
    }

    #[test]
    fn a_cool_down_refuses_the_key_not_the_client() {
        let t = Tracker::new(Incidents::after(2).cool_down(Duration::from_secs(30)));
        let both = vec![
            ("jkt", "jkt:k".to_owned()),
            ("client_id", "client_id:c".to_owned()),
        ];
        assert!(t.observe(&both, "wrong_key", 1000).is_empty());
        let found = t.observe(&both, "wrong_key", 1001);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].0.subject, found[0].0.cool_down), ("jkt", 30));
        assert_eq!((found[1].0.subject, found[1].0.cool_down), ("client_id", 0));
        assert_eq!(t.cooling_down("jkt", "k", 1001), Some(30));
        assert_eq!(t.cooling_down("jkt", "k", 1030), Some(1));
        assert_eq!(t.cooling_down("jkt", "k", 1031), None);
        assert_eq!(t.cooling_down("client_id", "c", 1001), None);
        assert_eq!(t.cooling_down("jkt", "other", 1001), None);
    }

    #[test]
    fn memory_is_bounded_and_cooling_keys_go_last() {
        let t = Tracker::new(
            Incidents::after(2)
                .cool_down(Duration::from_secs(100))
                .capacity(3),
        );
        assert!(t.observe(&key("hot"), "replay", 10).is_empty());
        assert_eq!(t.observe(&key("hot"), "replay", 10).len(), 1);
        for i in 0..50 {
            t.observe(&key(&format!("k{i}")), "replay", 11);
        }
        let state = t.state.lock().unwrap();
        assert_eq!(state.entries.len(), 3);
        assert!(state.entries.contains_key("jkt:hot"));
        drop(state);
        assert_eq!(t.cooling_down("jkt", "hot", 20), Some(90));
    }

    #[test]
    fn which_refusals_count() {
        assert_eq!(
            kind(Some(Error::ProofReplayed), Severity::Suspicious, false),
            Some("replay")
        );
        assert_eq!(
            kind(Some(Error::ProofIssuedInFuture), Severity::Routine, false),
            Some("future_proof")
        );
        assert_eq!(kind(None, Severity::Suspicious, true), Some("key_shared"));
        assert_eq!(
            kind(Some(Error::TokenRevoked), Severity::Suspicious, false),
            Some("other")
        );
        assert_eq!(
            kind(Some(Error::PolicyDenied), Severity::Suspicious, false),
            Some("other")
        );
        assert_eq!(
            kind(Some(Error::TokenExpired), Severity::Routine, false),
            None
        );
        assert_eq!(
            kind(Some(Error::KeyCoolingDown), Severity::Suspicious, false),
            None
        );
        assert_eq!(kind(None, Severity::Routine, false), None);
    }
}
