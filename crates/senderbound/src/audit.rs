//! One structured audit event per decision, on the `tracing` target
//! `senderbound::audit`.
//!
//! Each event answers the incident-review questions: which token (issuer,
//! subject, client, token id), bound to which key (`jkt` of the proof's key,
//! `cnf_jkt` the token is bound to) or certificate (`x5t_s256` of the client
//! certificate presented, `cnf_x5t_s256` the token is bound to), for which
//! request (method, path), with
//! which outcome, error code and severity. Never the token, the proof, a
//! signature or key material: only public thumbprints and claim values.
//!
//! Fields: `decision` (`authenticate` by the Layer, `authorize` by
//! `RequireScope`), `outcome` (`allow`/`deny`), `status` (of a refusal; 0
//! when allowed), `class` (`dpop`, `mtls`, `bearer` or `none`), `method`,
//! `path` (never the query), `jkt`, `cnf_jkt`, `x5t_s256`, `cnf_x5t_s256`,
//! `iss`, `sub`, `client_id`, `aud`,
//! `scopes`, `token_id`, `token_exp`, `error` (the RFC error code),
//! `reason` (the fixed description) and `severity` (`routine`,
//! `suspicious`, `infrastructure`). Token fields are filled only once the
//! token's signature has been verified: unverified claims are never logged.
//!
//! Events for allowed requests and routine refusals are `INFO`; suspicious
//! refusals (replay, forged signature, a token with another key's proof,
//! downgrade) are `WARN`; refusals because a dependency failed are `ERROR`.

use senderbound_core::token::{AccessToken, Binding};
use senderbound_core::{Error, Severity};

/// The `tracing` target of audit events.
pub const AUDIT_TARGET: &str = "senderbound::audit";

/// `class` of a request with the `DPoP` scheme.
pub(crate) const CLASS_DPOP: &str = "dpop";
/// `class` of a request with a certificate-bound token (RFC 8705).
pub(crate) const CLASS_MTLS: &str = "mtls";
/// `class` of any other `Bearer` request.
pub(crate) const CLASS_BEARER: &str = "bearer";

/// What the Layer learned about a request while deciding, for its audit event.
#[derive(Debug, Default)]
pub(crate) struct AuditRecord {
    pub(crate) class: &'static str,
    pub(crate) jkt: Option<String>,
    pub(crate) x5t_s256: Option<String>,
    pub(crate) token: Option<std::sync::Arc<AccessToken>>,
}

/// The token's `cnf` thumbprints: (`jkt`, `x5t#S256`).
fn cnf(token: Option<&AccessToken>) -> (&str, &str) {
    match token.map(|t| &t.binding) {
        Some(Binding::Dpop { jkt }) => (jkt, ""),
        Some(Binding::Mtls { x5t_s256 }) => ("", x5t_s256),
        _ => ("", ""),
    }
}

/// Emits the event for one decision. `error` is `None` when the request was allowed.
pub(crate) fn emit(
    decision: &'static str,
    method: &str,
    path: &str,
    record: &AuditRecord,
    error: Option<Error>,
) {
    let token = record.token.as_deref();
    let (outcome, status, code, reason, severity) = match error {
        // Allowed: the handler, not the Layer, decides the final status.
        None => ("allow", 0u16, "", "", "routine"),
        Some(e) => (
            "deny",
            e.status(),
            e.code().map_or("", |c| c.as_str()),
            e.description(),
            e.severity().as_str(),
        ),
    };
    let iss = token.map_or("", |t| t.issuer.as_str());
    let sub = token.and_then(|t| t.subject.as_deref()).unwrap_or("");
    let client_id = token.and_then(|t| t.client_id.as_deref()).unwrap_or("");
    let aud = token
        .map(|t| t.audience.values().join(" "))
        .unwrap_or_default();
    let scopes = token.map(|t| t.scopes.join(" ")).unwrap_or_default();
    let token_id = token.and_then(|t| t.token_id.as_deref()).unwrap_or("");
    let token_exp = token.map_or(0, |t| t.expires_at);
    let jkt = record.jkt.as_deref().unwrap_or("");
    let x5t_s256 = record.x5t_s256.as_deref().unwrap_or("");
    let (cnf_jkt, cnf_x5t_s256) = cnf(token);
    let class = if record.class.is_empty() {
        "none"
    } else {
        record.class
    };

    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                target: AUDIT_TARGET,
                $level,
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
                token_exp,
                error = code,
                reason,
                severity,
                "{decision} {outcome}"
            )
        };
    }
    match error.map(Error::severity) {
        None | Some(Severity::Routine) => event!(tracing::Level::INFO),
        Some(Severity::Suspicious) => event!(tracing::Level::WARN),
        Some(Severity::Infrastructure) => event!(tracing::Level::ERROR),
    }
}
