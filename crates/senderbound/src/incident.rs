//! Incident signals: when is a failed proof an incident rather than noise?
//! When the operator's number says so.
//!
//! Every refusal audited as suspicious (a forged signature, a replayed
//! proof, a token with another key's proof, a downgrade, a shared key
//! refused, a revoked token, a policy's suspicious denial) is counted, per
//! key thumbprint (the proof's `jkt`, or the client certificate's) and per
//! client (`client_id` of a verified token), in a sliding window. So are
//! proofs issued in the future: one is a skewed clock (routine), a run of
//! them is the mark of proofs made ahead of time by someone who briefly held
//! the key (RFC 9449 §11.2). Requests that were allowed never count (a
//! shared key in report mode is on record as `finding="key_shared"`).
//!
//! When one key or client reaches [`Incidents::after`] such refusals within
//! [`within`](Incidents::within), the Layer emits one audit event with
//! `finding="incident"` and severity `incident` (`ERROR`), naming the key
//! or client, the count and the count per kind (`incident_counts`, such as
//! `replay=3 bad_signature=2`). The next one for that key or client comes
//! at the earliest a window (or a cool-down, if longer) later, unless it
//! starts a cool-down (which is always reported).
//!
//! Kinds: `bad_signature` (a forged proof, or a forged token), `wrong_token`
//! (a proof for another token: its `ath`) and `future_proof` need no
//! credential of anyone's: they count against the key the proof *names*
//! (or its sender's own), which anyone can do. `replay`, `wrong_key` (a
//! verified proof, or certificate, with a token bound to another),
//! `downgrade`, `key_shared` and `other` come from a verified key or token.
//!
//! With [`cool_down`](Incidents::cool_down), a key is refused (`429 Too
//! Many Requests`, `Retry-After` the seconds left, RFC 6585 §4) for that
//! long, whatever it presents, once the refusals of the verified key alone
//! reach the threshold within the window; starting it is always an
//! incident event (with `cool_down`), quiet period or not. Refusals that
//! name a key without its signature are counted apart: they raise
//! incidents, and neither start nor hold off a cool-down. Off by default,
//! and think before turning it on: a replay of a proof seen on the wire
//! still counts against its key, so a cool-down is also a way for someone
//! who sees a client's traffic to pause it. Clients are counted, never
//! paused.
//!
//! Memory is bounded: [`capacity`](Incidents::capacity) keys and clients
//! are followed (default 10 000), each with at most the threshold's
//! timestamps (16 bytes each, the threshold at most 1 000); beyond, the first
//! followed is forgotten, counted in `senderbound_incident_evictions_total`
//! (a flood of new keys forgets older counts: the metric says so). Keys
//! cooling down are kept apart, up to the same capacity; beyond, no new
//! cool-down starts until one ends (a running one is never lifted early),
//! counted in `senderbound_incident_cool_downs_skipped_total`. The counts are per process: a
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
//!     # .origin(senderbound::Origin::hosts(["api.example.com"]))
//!     .build();
//! # let _ = layer;
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use senderbound_core::{Error, Severity};

/// Default [`Incidents::within`]: one minute.
const DEFAULT_WINDOW_SECS: u64 = 60;
/// Default [`Incidents::capacity`].
const DEFAULT_CAPACITY: usize = 10_000;
/// Largest threshold: the window keeps this many events per key.
const MAX_THRESHOLD: u32 = 1_000;

/// Name of the counter of keys and clients forgotten because the tracker
/// was full.
pub const INCIDENT_EVICTIONS_TOTAL: &str = "senderbound_incident_evictions_total";
/// Name of the counter of cool-downs not started because `capacity` keys
/// were already cooling down.
pub const COOL_DOWNS_SKIPPED_TOTAL: &str = "senderbound_incident_cool_downs_skipped_total";
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
    /// 1 000) for one key or client within the window (default one
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

    /// Refuse the key for this long after its incident (`429`), in whole
    /// seconds (less than one second is no cool-down). Off by default; see
    /// the [module](self) docs for why.
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

/// A counted refusal's kind, as named in `incident_counts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Kind {
    pub(crate) name: &'static str,
    /// The key it counts against was verified (a proof's signature, a TLS
    /// certificate), not only named.
    pub(crate) verified_key: bool,
}

/// The kind of a counted refusal; `None` for what is not counted: allowed
/// requests, routine refusals (but proofs from the future), and the
/// refusals of a cool-down (the consequence of an incident is not another).
pub(crate) fn kind(error: Option<Error>, severity: Severity) -> Option<Kind> {
    use Error::*;
    let (name, verified_key) = match error? {
        // Refused before the proof's signature was checked (or by it).
        ProofSignature => ("bad_signature", false),
        ProofAthMismatch => ("wrong_token", false),
        ProofIssuedInFuture => ("future_proof", false),
        // A forged token with the sender's own key: anyone can make one, so
        // it raises incidents but never starts a cool-down.
        TokenSignature => ("bad_signature", false),
        ProofReplayed => ("replay", true),
        TokenBindingMismatch | TokenCertificateMismatch | CertificateMissing => ("wrong_key", true),
        TokenDowngrade => ("downgrade", true),
        KeyShared => ("key_shared", true),
        KeyCoolingDown => return None,
        _ if severity == Severity::Suspicious => ("other", true),
        _ => return None,
    };
    Some(Kind { name, verified_key })
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
    events: VecDeque<(u64, Kind)>,
    /// Times of those that came from the verified key (at most the
    /// threshold): what a cool-down needs.
    verified: VecDeque<u64>,
    /// No second incident before this time.
    quiet_until: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Keys in the order they were first followed, for eviction.
    order: VecDeque<String>,
    /// Keys cooling down, and until when.
    cooling: HashMap<String, u64>,
}

/// The counts; one per Layer.
pub(crate) struct Tracker {
    rule: Incidents,
    state: Mutex<State>,
    /// The latest end of any cool-down: no lock on the request path once
    /// it has passed (or while none was ever given).
    cooling_until: AtomicU64,
}

impl Tracker {
    pub(crate) fn new(rule: Incidents) -> Self {
        Tracker {
            rule,
            state: Mutex::new(State::default()),
            cooling_until: AtomicU64::new(0),
        }
    }

    /// The state, even if a thread panicked holding it (the counts stay
    /// usable; a cool-down is never lifted by a panic).
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seconds left of this key's cool-down, if it is cooling down.
    /// `kind` is `jkt` or `x5t_s256`.
    pub(crate) fn cooling_down(&self, kind: &str, thumbprint: &str, now: u64) -> Option<u64> {
        if self.cooling_until.load(Ordering::Relaxed) <= now {
            return None;
        }
        let until = *self.state().cooling.get(&format!("{kind}:{thumbprint}"))?;
        (until > now).then(|| until - now)
    }

    /// Counts one refusal of `kind` against each of `subjects` (kind
    /// name, `kind:value` key); the incidents it completes.
    pub(crate) fn observe(
        &self,
        subjects: &[(&'static str, String)],
        kind: Kind,
        now: u64,
    ) -> Vec<(Finding, usize)> {
        if subjects.is_empty() {
            return Vec::new();
        }
        let mut state = self.state();
        let window = self.rule.window.as_secs();
        let threshold = self.rule.threshold as usize;
        let mut findings = Vec::new();
        for (index, (subject, key)) in subjects.iter().enumerate() {
            if !state.entries.contains_key(key) {
                self.make_room(&mut state);
                state.order.push_back(key.clone());
                state.entries.insert(key.clone(), Entry::default());
            }
            let Some(entry) = state.entries.get_mut(key) else {
                continue;
            };
            let in_window = |at: u64| now.saturating_sub(at) < window;
            while entry.events.front().is_some_and(|(at, _)| !in_window(*at)) {
                entry.events.pop_front();
            }
            while entry.verified.front().is_some_and(|at| !in_window(*at)) {
                entry.verified.pop_front();
            }
            entry.events.push_back((now, kind));
            if entry.events.len() > threshold {
                entry.events.pop_front();
            }
            // The key's own signatures (or certificate) are counted apart:
            // refusals that only name it neither start its cool-down nor,
            // mixed in, stop one.
            if kind.verified_key {
                entry.verified.push_back(now);
                if entry.verified.len() > threshold {
                    entry.verified.pop_front();
                }
            }
            let cool_down = match (self.rule.cool_down, *subject) {
                (Some(d), "jkt" | "x5t_s256") if entry.verified.len() >= threshold => d.as_secs(),
                _ => 0,
            };
            let reported = entry.quiet_until <= now && entry.events.len() >= threshold;
            if !reported && cool_down == 0 {
                continue;
            }
            entry.quiet_until = now.saturating_add(window.max(cool_down));
            let mut per_kind: Vec<(&str, usize)> = Vec::new();
            for (_, k) in &entry.events {
                match per_kind.iter_mut().find(|(name, _)| *name == k.name) {
                    Some((_, n)) => *n += 1,
                    None => per_kind.push((k.name, 1)),
                }
            }
            per_kind.sort_unstable();
            let counts = per_kind
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ");
            let count = entry.events.len();
            entry.events = VecDeque::new();
            let cool_down = if cool_down > 0 {
                entry.verified = VecDeque::new();
                let until = now.saturating_add(cool_down);
                if self.start_cool_down(&mut state, key, until, now) {
                    cool_down
                } else {
                    0
                }
            } else {
                0
            };
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

    /// Refuses `key` until `until`, keeping at most `capacity` keys
    /// cooling down (when full, those whose cool-down ended go first, then
    /// the one ending soonest).
    /// `false` when `capacity` keys are already cooling down: a running
    /// cool-down is never lifted early to make room (a flood of new ones
    /// would otherwise end a victim's); the incident is still reported,
    /// without a cool-down, and counted in
    /// `senderbound_incident_cool_downs_skipped_total`.
    fn start_cool_down(&self, state: &mut State, key: &str, until: u64, now: u64) -> bool {
        if state.cooling.len() >= self.rule.capacity && !state.cooling.contains_key(key) {
            state.cooling.retain(|_, end| *end > now);
            if state.cooling.len() >= self.rule.capacity {
                metrics::counter!(COOL_DOWNS_SKIPPED_TOTAL).increment(1);
                return false;
            }
        }
        state.cooling.insert(key.to_owned(), until);
        self.cooling_until.fetch_max(until, Ordering::Relaxed);
        true
    }

    /// Forgets the first followed key or client if the tracker is full.
    fn make_room(&self, state: &mut State) {
        while state.entries.len() >= self.rule.capacity {
            let Some(key) = state.order.pop_front() else {
                return;
            };
            if state.entries.remove(&key).is_some() {
                metrics::counter!(INCIDENT_EVICTIONS_TOTAL).increment(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLAY: Kind = Kind {
        name: "replay",
        verified_key: true,
    };
    const FORGED: Kind = Kind {
        name: "bad_signature",
        verified_key: false,
    };

    fn key(s: &str) -> Vec<(&'static str, String)> {
        vec![("jkt", format!("jkt:{s}"))]
    }

    #[test]
    fn the_threshold_within_the_window_is_one_incident() {
        let t = Tracker::new(Incidents::after(3).within(Duration::from_secs(10)));
        assert!(t.observe(&key("a"), REPLAY, 100).is_empty());
        assert!(t.observe(&key("a"), REPLAY, 105).is_empty());
        // The first fell out of the window: still two.
        assert!(t.observe(&key("a"), FORGED, 110).is_empty());
        let found = t.observe(&key("a"), REPLAY, 111);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.count, 3);
        assert_eq!(found[0].0.counts, "bad_signature=1 replay=2");
        assert_eq!(found[0].0.cool_down, 0);
        // Quiet for a window after, though still counted: a refusal still
        // going on a window later is the next incident.
        for at in 112..121 {
            assert!(t.observe(&key("a"), REPLAY, at).is_empty(), "{at}");
        }
        assert_eq!(t.observe(&key("a"), REPLAY, 121).len(), 1);
        // A quiet spell: the count starts again.
        assert!(t.observe(&key("a"), REPLAY, 200).is_empty());
        assert!(t.observe(&key("a"), REPLAY, 201).is_empty());
        assert_eq!(t.observe(&key("a"), REPLAY, 202).len(), 1);
        // No cool-down configured: never refused.
        assert_eq!(t.cooling_down("jkt", "a", 123), None);
        assert!(t.observe(&[], REPLAY, 124).is_empty());
    }

    #[test]
    fn a_cool_down_refuses_the_key_not_the_client_and_only_for_its_own_signatures() {
        let t = Tracker::new(Incidents::after(2).cool_down(Duration::from_secs(30)));
        let both = vec![
            ("jkt", "jkt:k".to_owned()),
            ("client_id", "client_id:c".to_owned()),
        ];
        assert!(t.observe(&both, REPLAY, 1000).is_empty());
        let found = t.observe(&both, REPLAY, 1001);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].0.subject, found[0].0.cool_down), ("jkt", 30));
        assert_eq!((found[1].0.subject, found[1].0.cool_down), ("client_id", 0));
        assert_eq!(t.cooling_down("jkt", "k", 1001), Some(30));
        assert_eq!(t.cooling_down("jkt", "k", 1030), Some(1));
        assert_eq!(t.cooling_down("jkt", "k", 1031), None);
        assert_eq!(t.cooling_down("client_id", "c", 1001), None);
        assert_eq!(t.cooling_down("jkt", "other", 1001), None);
        // Refusals that only name the key: an incident, no cool-down.
        assert!(t.observe(&key("named"), FORGED, 2000).is_empty());
        let found = t.observe(&key("named"), REPLAY, 2000);
        assert_eq!((found.len(), found[0].0.cool_down), (1, 0));
        assert_eq!(t.cooling_down("jkt", "named", 2000), None);
        // Nor do they hide the key's own: its second verified refusal in
        // the window starts the cool-down, quiet period or not, and says so.
        let found = t.observe(&key("named"), REPLAY, 2001);
        assert_eq!((found.len(), found[0].0.cool_down), (1, 30));
        assert_eq!(t.cooling_down("jkt", "named", 2001), Some(30));
    }

    #[test]
    fn memory_is_bounded_and_cooling_keys_are_kept_apart() {
        let t = Tracker::new(
            Incidents::after(2)
                .cool_down(Duration::from_secs(100))
                .capacity(3),
        );
        assert!(t.observe(&key("hot"), REPLAY, 10).is_empty());
        assert_eq!(t.observe(&key("hot"), REPLAY, 10).len(), 1);
        for i in 0..50 {
            t.observe(&key(&format!("k{i}")), FORGED, 11);
        }
        let state = t.state();
        assert_eq!(state.entries.len(), 3);
        assert!(!state.entries.contains_key("jkt:hot"), "forgotten first");
        drop(state);
        assert_eq!(t.cooling_down("jkt", "hot", 20), Some(90));
        // More cool-downs than the capacity: running ones are kept, the
        // new ones reported without a cool-down.
        let mut last = Vec::new();
        for i in 0..5 {
            let k = key(&format!("c{i}"));
            t.observe(&k, REPLAY, 30 + i);
            last = t.observe(&k, REPLAY, 30 + i);
        }
        assert_eq!(t.state().cooling.len(), 3);
        assert_eq!(t.cooling_down("jkt", "hot", 40), Some(70));
        assert_eq!(t.cooling_down("jkt", "c1", 40), Some(91));
        assert_eq!(t.cooling_down("jkt", "c4", 40), None);
        assert_eq!((last.len(), last[0].0.cool_down), (1, 0));
    }

    #[test]
    fn which_refusals_count() {
        use Severity::{Routine, Suspicious};
        for (error, severity, expected) in [
            (Error::ProofReplayed, Suspicious, Some(("replay", true))),
            (
                Error::ProofIssuedInFuture,
                Routine,
                Some(("future_proof", false)),
            ),
            (
                Error::ProofSignature,
                Suspicious,
                Some(("bad_signature", false)),
            ),
            (
                Error::ProofAthMismatch,
                Suspicious,
                Some(("wrong_token", false)),
            ),
            (
                Error::TokenBindingMismatch,
                Suspicious,
                Some(("wrong_key", true)),
            ),
            (Error::KeyShared, Suspicious, Some(("key_shared", true))),
            // A forged token needs no one's credential: never a cool-down.
            (
                Error::TokenSignature,
                Suspicious,
                Some(("bad_signature", false)),
            ),
            (Error::TokenRevoked, Suspicious, Some(("other", true))),
            (Error::PolicyDenied, Suspicious, Some(("other", true))),
            (Error::TokenExpired, Routine, None),
            (Error::KeyCoolingDown, Suspicious, None),
        ] {
            let counted = kind(Some(error), severity).map(|k| (k.name, k.verified_key));
            assert_eq!(counted, expected, "{error:?}");
        }
        // Allowed requests never count, even with a finding.
        assert!(kind(None, Suspicious).is_none());
    }
}
