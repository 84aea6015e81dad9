//! One structured audit event per decision, on the `tracing` target
//! `senderbound::audit`.
//!
//! These are `tracing` events: nothing is recorded until the application
//! installs a subscriber (for example `tracing_subscriber::fmt().init()`,
//! or one that writes JSON lines), and a filter on the target
//! `senderbound::audit` selects them.
//!
//! Each event answers the incident-review questions: which token (class,
//! issuer, subject, client, audience, scopes, lifetime, the key that signed
//! it), bound to which key (`jkt` of the proof's key, `cnf_jkt` the token is
//! bound to) or certificate (`x5t_s256` presented, `cnf_x5t_s256` bound),
//! with which approval on record (`acr`, `amr`, `auth_time`) and grants
//! (`authorization_details` types), for which request (method, path, MCP
//! method and tool), with which outcome, error code, policy reason, finding
//! and severity. Never the token, the proof, a signature, key material or
//! tool arguments: only public thumbprints and claim values.
//!
//! The fields, when each is empty, and what a reviewer reads from it are
//! the schema documented in the repository's `docs/audit.md` (version
//! [`SCHEMA_VERSION`], in each event's `schema`):
//!
//! | fields | meaning |
//! |---|---|
//! | `schema`, `request_id` | the schema version; one id for every event about one request |
//! | `decision`, `outcome`, `status` | `authenticate` (the Layer) or `authorize` ([`RequireScopeLayer`](crate::RequireScopeLayer), [`AuthorizeLayer`](crate::AuthorizeLayer)); `allow`/`deny`; the refusal's HTTP status (0 when allowed) |
//! | `class`, `method`, `path` | `dpop`, `mtls`, `bearer` or `none`; the request (never the query) |
//! | `jkt`, `cnf_jkt`, `x5t_s256`, `cnf_x5t_s256` | thumbprints presented and bound (a refused proof's `jkt` is the key it claims) |
//! | `iss`, `sub`, `client_id`, `aud`, `scopes`, `token_id`, `token_iat`, `token_exp`, `token_lifetime`, `token_signer` | the verified token |
//! | `acr`, `amr`, `auth_time`, `authorization_details` | the approval on record (RFC 9470) and the types of the token's grants (RFC 9396) |
//! | `iat_offset` | the proof's `iat` minus now (absent when none was read) |
//! | `mcp_method`, `tool` | when [`AuthorizeLayer`](crate::AuthorizeLayer) inspected the call |
//! | `error`, `reason`, `detail` | the RFC error code, the fixed description, a policy's own reason |
//! | `finding`, `other_client_id`, `other_sub` | `key_shared` (and the other identity) or `incident` |
//! | `incident_subject`, `incident_count`, `incident_counts`, `incident_window`, `cool_down` | an [`incident`]'s subject and counts |
//! | `severity` | `routine`, `suspicious`, `infrastructure` or `incident` |
//!
//! Token fields are filled only once the token's signature has been
//! verified: unverified claims are never logged as the token's.
//!
//! Events for allowed requests and routine refusals are `INFO`; suspicious
//! ones (replay, forged signature, a token with another key's proof,
//! downgrade, a shared key) are `WARN`; refusals because a dependency failed,
//! and incidents, are `ERROR`.
//!
//! ## Metrics
//!
//! Each event also counts, through the [`metrics`] facade (install any
//! recorder, such as a Prometheus exporter, to collect them):
//! - `senderbound_decisions_total{decision, outcome, class, error, severity}`;
//! - `senderbound_key_sharing_total{class, outcome}`, once per finding;
//! - `senderbound_key_sharing_evictions_total`, keys the detector forgot
//!   because it was full;
//! - `senderbound_key_sharing_unobserved_total`, requests that went on
//!   unobserved in report mode because the fleet store did not answer;
//! - `senderbound_incidents_total{subject}` and
//!   `senderbound_incident_evictions_total` (the [`incident`] module);
//! - the histogram [`PROOF_IAT_OFFSET_SECONDS`].
//!
//! Label values are fixed strings, so the number of series is bounded.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use senderbound_core::token::{AccessToken, Binding};
use senderbound_core::{Error, Severity};

use crate::incident::{self, Finding};
use crate::key_sharing::Holder;
use crate::pipeline::RouteContext;

/// The version of the event schema (`schema`), documented in
/// `docs/audit.md`: a field renamed, removed or read differently makes a
/// new version; a field added does not.
pub const SCHEMA_VERSION: u64 = 1;

/// The `tracing` target of audit events.
pub const AUDIT_TARGET: &str = "senderbound::audit";

/// `class` of a request with the `DPoP` scheme.
pub(crate) const CLASS_DPOP: &str = "dpop";
/// `class` of a request with a certificate-bound token (RFC 8705).
pub(crate) const CLASS_MTLS: &str = "mtls";
/// `class` of any other `Bearer` request.
pub(crate) const CLASS_BEARER: &str = "bearer";

/// A key's thumbprint, for the record: shared with what holds it rather
/// than copied on every request.
#[derive(Debug, Clone)]
pub(crate) enum Thumbprint {
    /// The proof's key (verified).
    Key(Arc<senderbound_core::jwk::PublicJwk>),
    /// The key the verified token is bound to (`cnf.jkt`).
    Bound(Arc<AccessToken>),
    /// Any other: the key a refused proof claims.
    Text(String),
}

impl Thumbprint {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Thumbprint::Key(key) => key.thumbprint(),
            Thumbprint::Bound(token) => token.binding.jkt().unwrap_or_default(),
            Thumbprint::Text(text) => text,
        }
    }
}

/// What the Layer learned about a request while deciding, for its audit event.
#[derive(Debug, Default)]
pub(crate) struct AuditRecord {
    /// The request's number in this process (`request_id`).
    pub(crate) request: u64,
    pub(crate) class: &'static str,
    pub(crate) jkt: Option<Thumbprint>,
    pub(crate) x5t_s256: Option<String>,
    pub(crate) token: Option<Arc<AccessToken>>,
    /// The MCP JSON-RPC method and tool, if the request was inspected.
    pub(crate) mcp_method: Option<String>,
    pub(crate) tool: Option<String>,
    /// A policy's reason for its denial.
    pub(crate) detail: Option<Cow<'static, str>>,
    /// Overrides the error's severity (a policy may call a denial suspicious).
    pub(crate) severity: Option<Severity>,
    /// The identity this request's key was seen with before (key sharing).
    pub(crate) shared_with: Option<Arc<Holder>>,
    /// The proof's `iat` minus now, seconds, when a proof's `iat` was read.
    pub(crate) iat_offset: Option<i64>,
    /// Set on an incident event only.
    pub(crate) incident: Option<Finding>,
}

impl AuditRecord {
    /// The record of a request the Layer admitted, for a later decision
    /// (scope, policy) on it.
    pub(crate) fn admitted(sender: &crate::Sender) -> Self {
        let binding = sender.binding();
        let token = sender.token().clone();
        AuditRecord {
            request: sender.context().map_or(0, |c| c.request),
            class: match binding {
                Binding::Dpop { .. } => CLASS_DPOP,
                Binding::Mtls { .. } => CLASS_MTLS,
                Binding::Unbound => CLASS_BEARER,
            },
            jkt: binding.jkt().map(|_| Thumbprint::Bound(token.clone())),
            x5t_s256: binding.x5t_s256().map(str::to_owned),
            token: Some(token),
            ..AuditRecord::default()
        }
    }
}

/// The next request number of this process.
pub(crate) fn next_request() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `request_id`: this process's random prefix and the request's number,
/// the same in every event about one request (the Layer's, the route
/// layers', an incident it completed), different across processes.
fn request_id(request: u64) -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    // The standard library's per-process random hash keys: random enough
    // to tell processes apart, with no new dependency.
    let prefix = *PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    format!("{prefix:016x}-{request}")
}

/// The metadata of the metrics recorded without the macros.
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The labels of a routine allowed decision, fixed at compile time.
const fn allowed(decision: &'static str, class: &'static str) -> [metrics::Label; 5] {
    [
        metrics::Label::from_static_parts("decision", decision),
        metrics::Label::from_static_parts("outcome", "allow"),
        metrics::Label::from_static_parts("class", class),
        metrics::Label::from_static_parts("error", ""),
        metrics::Label::from_static_parts("severity", "routine"),
    ]
}

static ALLOWED: [[metrics::Label; 5]; 6] = [
    allowed("authenticate", CLASS_DPOP),
    allowed("authenticate", CLASS_MTLS),
    allowed("authenticate", CLASS_BEARER),
    allowed("authorize", CLASS_DPOP),
    allowed("authorize", CLASS_MTLS),
    allowed("authorize", CLASS_BEARER),
];

/// The labels of the decisions counter for an admitted request, made once:
/// the macro would make (and allocate) them on every request.
fn allowed_labels(
    decision: &str,
    class: &str,
    outcome: &str,
    code: &str,
    severity: Severity,
) -> Option<&'static [metrics::Label]> {
    if outcome != "allow" || !code.is_empty() || severity != Severity::Routine {
        return None;
    }
    let row = match decision {
        "authenticate" => 0,
        "authorize" => 3,
        _ => return None,
    };
    let column = [CLASS_DPOP, CLASS_MTLS, CLASS_BEARER]
        .iter()
        .position(|c| *c == class)?;
    ALLOWED.get(row + column).map(|labels| &labels[..])
}

/// Records a proof's `iat` offset (see [`PROOF_IAT_OFFSET_SECONDS`]).
pub(crate) fn record_iat_offset(offset: f64, verified: bool) {
    static VERIFIED: [metrics::Label; 1] = [metrics::Label::from_static_parts("proof", "verified")];
    static REFUSED: [metrics::Label; 1] = [metrics::Label::from_static_parts("proof", "refused")];
    let labels: &'static [metrics::Label] = if verified { &VERIFIED } else { &REFUSED };
    metrics::with_recorder(|r| {
        r.register_histogram(
            &metrics::Key::from_static_parts(PROOF_IAT_OFFSET_SECONDS, labels),
            &METADATA,
        )
        .record(offset);
    });
}

/// Name of the decisions counter.
pub const DECISIONS_TOTAL: &str = "senderbound_decisions_total";
/// Name of the key-sharing findings counter.
pub const KEY_SHARING_TOTAL: &str = "senderbound_key_sharing_total";

/// Name of the histogram of proof `iat` offsets: the proof's `iat` minus
/// the server's clock, in seconds (negative: made earlier, or the client's
/// clock is behind), clamped to a year either way: `proof="verified"` for
/// every proof whose signature verified, `proof="refused"` for every proof
/// refused for its time (its `iat` unverified).
pub const PROOF_IAT_OFFSET_SECONDS: &str = "senderbound_proof_iat_offset_seconds";

/// The token's `cnf` thumbprints: (`jkt`, `x5t#S256`).
fn cnf(token: Option<&AccessToken>) -> (&str, &str) {
    match token.map(|t| &t.binding) {
        Some(Binding::Dpop { jkt }) => (jkt, ""),
        Some(Binding::Mtls { x5t_s256 }) => ("", x5t_s256),
        _ => ("", ""),
    }
}

/// How the event for `record` and `error` is to be read.
fn severity_of(record: &AuditRecord, error: Option<Error>) -> Severity {
    match (
        record.incident.is_some(),
        record.severity,
        error,
        &record.shared_with,
    ) {
        (true, _, _, _) => Severity::Incident,
        (false, Some(severity), _, _) => severity,
        (false, None, Some(e), _) => e.severity(),
        (false, None, None, Some(_)) => Severity::Suspicious,
        (false, None, None, None) => Severity::Routine,
    }
}

/// Emits the event for one decision (`error` is `None` when the request was
/// allowed), then counts it towards the incident signals of the Layer
/// whose `route` it is, and emits the incidents it completes.
pub(crate) fn emit(
    decision: &'static str,
    method: &str,
    path: &str,
    record: &AuditRecord,
    error: Option<Error>,
    route: &RouteContext,
) {
    emit_event(decision, method, path, record, error);
    let Some(tracker) = &route.incidents else {
        return;
    };
    let severity = severity_of(record, error);
    let Some(kind) = incident::kind(error, severity) else {
        return;
    };
    let mut subjects = Vec::with_capacity(2);
    if let Some(jkt) = &record.jkt {
        subjects.push(("jkt", format!("jkt:{}", jkt.as_str())));
    } else if let Some(x5t) = &record.x5t_s256 {
        subjects.push(("x5t_s256", format!("x5t_s256:{x5t}")));
    }
    if let Some(client) = record.token.as_deref().and_then(|t| t.client_id.as_deref()) {
        subjects.push(("client_id", format!("client_id:{client}")));
    }
    for (finding, index) in tracker.observe(&subjects, kind, route.clock.now()) {
        // The event names the key or the client the incident is about,
        // and the request that completed it.
        let mut incident = AuditRecord {
            request: record.request,
            class: record.class,
            token: record.token.clone(),
            mcp_method: record.mcp_method.clone(),
            tool: record.tool.clone(),
            incident: Some(finding),
            ..AuditRecord::default()
        };
        if subjects[index].0 != "client_id" {
            incident.jkt = record.jkt.clone();
            incident.x5t_s256 = record.x5t_s256.clone();
        }
        emit_event(decision, method, path, &incident, error);
    }
}

/// Emits one event.
fn emit_event(
    decision: &'static str,
    method: &str,
    path: &str,
    record: &AuditRecord,
    error: Option<Error>,
) {
    let token = record.token.as_deref();
    let (outcome, status, code, reason) = match error {
        // Allowed: the handler, not the Layer, decides the final status.
        None => ("allow", 0u16, "", ""),
        Some(e) => (
            "deny",
            e.status(),
            e.code().map_or("", |c| c.as_str()),
            e.description(),
        ),
    };
    let level = severity_of(record, error);
    let severity = level.as_str();
    let class = if record.class.is_empty() {
        "none"
    } else {
        record.class
    };
    if record.incident.is_none() {
        match allowed_labels(decision, class, outcome, code, level) {
            Some(labels) => metrics::with_recorder(|r| {
                r.register_counter(
                    &metrics::Key::from_static_parts(DECISIONS_TOTAL, labels),
                    &METADATA,
                )
                .increment(1);
            }),
            None => {
                metrics::counter!(DECISIONS_TOTAL, "decision" => decision, "outcome" => outcome,
                "class" => class, "error" => code, "severity" => severity)
                .increment(1)
            }
        }
    }
    if record.shared_with.is_some() {
        metrics::counter!(KEY_SHARING_TOTAL, "class" => class, "outcome" => outcome).increment(1);
    }
    let tracing_level = match level {
        Severity::Routine => tracing::Level::INFO,
        Severity::Suspicious => tracing::Level::WARN,
        _ => tracing::Level::ERROR,
    };
    // The fields cost allocations (audience and scopes joined): only for an
    // event someone records. Asked as an event (`event_enabled!`), so a
    // subscriber filtering on event kind answers as it would for the event.
    let enabled = match tracing_level {
        tracing::Level::INFO => tracing::event_enabled!(target: AUDIT_TARGET, tracing::Level::INFO),
        tracing::Level::WARN => tracing::event_enabled!(target: AUDIT_TARGET, tracing::Level::WARN),
        _ => tracing::event_enabled!(target: AUDIT_TARGET, tracing::Level::ERROR),
    };
    if !enabled {
        return;
    }
    let iss = token.map_or("", |t| t.issuer.as_str());
    let sub = token.and_then(|t| t.subject.as_deref()).unwrap_or("");
    let client_id = token.and_then(|t| t.client_id.as_deref()).unwrap_or("");
    let aud = token
        .map(|t| t.audience.values().join(" "))
        .unwrap_or_default();
    let scopes = token.map(|t| t.scopes.join(" ")).unwrap_or_default();
    let token_id = token.and_then(|t| t.token_id.as_deref()).unwrap_or("");
    let token_exp = token.map_or(0, |t| t.expires_at);
    let token_iat = token.and_then(|t| t.issued_at).unwrap_or(0);
    let token_lifetime = token
        .and_then(|t| t.issued_at.map(|iat| t.expires_at.saturating_sub(iat)))
        .unwrap_or(0);
    let mcp_method = record.mcp_method.as_deref().unwrap_or("");
    let tool = record.tool.as_deref().unwrap_or("");
    let detail = record.detail.as_deref().unwrap_or("");
    let shared = record.shared_with.as_deref();
    let finding = match (&record.incident, shared) {
        (Some(_), _) => "incident",
        (None, Some(_)) => "key_shared",
        (None, None) => "",
    };
    let acr = token.and_then(|t| t.acr.as_deref()).unwrap_or("");
    let amr = token.map(|t| t.amr.join(" ")).unwrap_or_default();
    let auth_time = token.and_then(|t| t.auth_time).unwrap_or(0);
    let authorization_details = token
        .map(|t| {
            let mut types: Vec<&str> = t
                .authorization_details
                .iter()
                .map(|d| d.detail_type())
                .collect();
            types.sort_unstable();
            types.dedup();
            types.join(" ")
        })
        .unwrap_or_default();
    let token_signer = token
        .and_then(|t| t.key_thumbprint.as_deref())
        .unwrap_or("");
    let iat_offset = record.iat_offset;
    let request_id = request_id(record.request);
    let incident = record.incident.as_ref();
    let incident_subject = incident.map_or("", |i| i.subject);
    let incident_count = incident.map_or(0, |i| i.count as u64);
    let incident_counts = incident.map_or("", |i| i.counts.as_str());
    let incident_window = incident.map_or(0, |i| i.window);
    let cool_down = incident.map_or(0, |i| i.cool_down);
    let other_client_id = shared.and_then(|h| h.client_id.as_deref()).unwrap_or("");
    let other_sub = shared.and_then(|h| h.subject.as_deref()).unwrap_or("");
    let jkt = record.jkt.as_ref().map_or("", Thumbprint::as_str);
    let x5t_s256 = record.x5t_s256.as_deref().unwrap_or("");
    let (cnf_jkt, cnf_x5t_s256) = cnf(token);

    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                target: AUDIT_TARGET,
                $level,
                schema = SCHEMA_VERSION,
                request_id = request_id.as_str(),
                decision,
                outcome,
                status,
                class,
                method,
                path,
                jkt,
                cnf_jkt,
                x5t_s256,
                cnf_x5t_s256,
                iss,
                sub,
                client_id,
                aud = aud.as_str(),
                scopes = scopes.as_str(),
                token_id,
                token_iat,
                token_exp,
                token_lifetime,
                token_signer,
                acr,
                amr = amr.as_str(),
                auth_time,
                authorization_details = authorization_details.as_str(),
                iat_offset,
                mcp_method,
                tool,
                error = code,
                reason,
                detail,
                finding,
                other_client_id,
                other_sub,
                incident_subject,
                incident_count,
                incident_counts,
                incident_window,
                cool_down,
                severity,
                "{decision} {outcome}"
            )
        };
    }
    match tracing_level {
        tracing::Level::INFO => event!(tracing::Level::INFO),
        tracing::Level::WARN => event!(tracing::Level::WARN),
        _ => event!(tracing::Level::ERROR),
    }
}
