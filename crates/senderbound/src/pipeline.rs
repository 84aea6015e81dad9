//! The request pipeline: every check the Layer makes, in order, top to
//! bottom. This is the one place the order is told; the README, the crate
//! docs and `docs/architecture.md` link here.
//!
//! ```text
//! request ─▶ framing: one well-formed Host / :authority, no userinfo or
//!            fragment in the target (checked by the service, before all else)
//!         ─▶ forwarded client certificates dropped unless from a trusted proxy
//!         ─▶ credentials: one Authorization header (DPoP or Bearer), at most
//!            one DPoP header, sizes, no token in the query
//!   DPoP:    proof checks, cheap first, signature last (RFC 9449 §4.3)
//!         ─▶ nonce (if required) ─▶ token (cache by SHA-256, or verifier:
//!            JWT by the issuer's keys, or introspection) ─▶ time
//!         ─▶ binding: cnf.jkt = the proof key's thumbprint ─▶ revocation
//!         ─▶ replay: the jti recorded once, only now ─▶ key sharing ─▶ Sender
//!   Bearer:  token ─▶ time ─▶ binding: cnf.x5t#S256 = the client certificate
//!            (RFC 8705), cnf.jkt = a downgrade (refused), none = the bearer
//!            policy ─▶ revocation ─▶ key sharing (mTLS) ─▶ Sender
//!         ─▶ credential headers removed ─▶ route layers ─▶ handler
//! ```
//!
//! Order by cost and by safety: cheap refusals before any signature work,
//! and the `jti` recorded only after the signature, the token and the
//! binding all verified, so junk cannot fill the replay store. Every
//! decision is one audit event ([`audit`]).

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::request::Parts;
use senderbound_core::authorization::Scheme;
use senderbound_core::nonce::{NonceCheck, Nonces};
use senderbound_core::proof::{Claimed, ProofPolicy, RequestFacts};
use senderbound_core::token::{AccessToken, Binding, TokenRules, looks_like_jwt};
use senderbound_core::{Clock, Error, token_hash};

use crate::audit::{self, AuditRecord, Thumbprint};
use crate::challenge::{ChallengeConfig, Rejection};
use crate::credentials;
use crate::header::{DPOP, DPOP_NONCE};
use crate::incident::Tracker;
use crate::key_sharing::Detector;
use crate::metadata::ServedMetadata;
use crate::mtls::{ClientCertSource, ClientCertificate};
use crate::replay::{DynReplayStore, ReplayKey};
use crate::revocation::DynRevocationCheck;
use crate::sender::Sender;
use crate::target_uri::{PublicOrigin, request_path};
use crate::tokens::DynTokenVerifier;
use crate::tokens::cache::TokenCache;

/// What the route layers ([`RequireScopeLayer`](crate::RequireScopeLayer),
/// [`AuthorizeLayer`](crate::AuthorizeLayer)) need from the Layer's
/// decision besides the verified token: the Layer's settings they share.
/// Carried by the [`Sender`] (one request extension, not two).
#[derive(Clone)]
pub(crate) struct AuthContext {
    /// The request's number, for its events' `request_id`.
    pub(crate) request: u64,
    /// Made once per Layer: one reference count per admitted request.
    pub(crate) route: Arc<RouteContext>,
}

/// The Layer's settings the route layers use, made when the Layer is built.
pub(crate) struct RouteContext {
    pub(crate) challenges: Arc<ChallengeConfig>,
    /// The Layer's clock, for the route layers' time checks (step-up).
    pub(crate) clock: Arc<dyn Clock>,
    /// The token time leeway, seconds.
    pub(crate) leeway: u64,
    /// The Layer's nonces, if required: route layers' refusals carry a
    /// fresh one too, as the Layer's do.
    pub(crate) nonces: Option<Arc<Nonces>>,
    /// The incident signals, if configured: every decision's event counts.
    pub(crate) incidents: Option<Arc<Tracker>>,
}

impl RouteContext {
    /// A fresh `DPoP-Nonce` value, while nonces are required.
    pub(crate) fn fresh_nonce(&self) -> Option<http::HeaderValue> {
        let nonces = self.nonces.as_ref()?;
        http::HeaderValue::from_str(&nonces.issue(self.clock.now())).ok()
    }
}

/// The configured pipeline, shared by every service of one Layer.
pub(crate) struct Pipeline {
    pub(crate) proof_policy: ProofPolicy,
    pub(crate) token_rules: TokenRules,
    pub(crate) verifier: Arc<dyn DynTokenVerifier>,
    pub(crate) token_cache: TokenCache,
    pub(crate) replay: Arc<dyn DynReplayStore>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Unbound bearer tokens accepted.
    pub(crate) allow_bearer: bool,
    pub(crate) origin: PublicOrigin,
    pub(crate) strip_credentials: bool,
    pub(crate) challenges: Arc<ChallengeConfig>,
    pub(crate) revocation: Option<Arc<dyn DynRevocationCheck>>,
    pub(crate) client_certs: Arc<dyn ClientCertSource>,
    /// Certificate-bound tokens accepted.
    pub(crate) mtls: bool,
    pub(crate) nonces: Option<Arc<Nonces>>,
    pub(crate) route: Arc<RouteContext>,
    pub(crate) metadata: Option<ServedMetadata>,
    pub(crate) key_sharing: Option<Detector>,
}

/// A request that passed: its parts (the [`Sender`] added, credentials
/// removed) and, when the client's nonce is aging, the next nonce for the
/// response.
pub(crate) struct Admitted {
    pub(crate) parts: Parts,
    pub(crate) fresh_nonce: Option<http::HeaderValue>,
}

/// A refusal: why, and the scheme the client used (the challenge of that
/// scheme carries the error).
struct Denial {
    error: Error,
    scheme: Option<Scheme>,
    /// Seconds until the refusal ends (a key's cool-down).
    retry_after: Option<u64>,
}

impl Denial {
    fn new(scheme: Scheme) -> impl Fn(Error) -> Denial {
        move |error| Denial {
            error,
            scheme: Some(scheme),
            retry_after: None,
        }
    }

    /// The refusal of a key cooling down after an incident.
    fn cooling_down(scheme: Scheme, seconds_left: u64) -> Denial {
        Denial {
            error: Error::KeyCoolingDown,
            scheme: Some(scheme),
            retry_after: Some(seconds_left),
        }
    }
}

impl From<Error> for Denial {
    /// A refusal before the scheme is known.
    fn from(error: Error) -> Self {
        Denial {
            error,
            scheme: None,
            retry_after: None,
        }
    }
}

/// Who passed, and with what.
struct Authenticated {
    sender: Sender,
    /// The certificate the token is bound to, as verified (behind a proxy:
    /// the forwarded one, decoded).
    certificate: Option<ClientCertificate>,
    /// The proof's nonce is past its first step.
    nonce_aging: bool,
}

impl Pipeline {
    /// Decides on one request: `Ok` with the parts to hand on (Sender added,
    /// credentials stripped), or the refusal response. Emits the audit event.
    pub(crate) async fn decide(
        &self,
        mut parts: Parts,
        framing: Result<(), Error>,
    ) -> Result<Admitted, Response> {
        // Before anything reads the request: drop forwarded certificates
        // from peers that are not trusted to forward them.
        self.client_certs.sanitize(&mut parts);
        let mut record = AuditRecord {
            request: audit::next_request(),
            ..AuditRecord::default()
        };
        let result = match framing {
            Ok(()) => self.authenticate(&parts, &mut record).await,
            Err(e) => Err(Denial::from(e)),
        };
        match result {
            Ok(Authenticated {
                sender,
                certificate,
                nonce_aging,
            }) => {
                audit::emit(
                    "authenticate",
                    parts.method.as_str(),
                    request_path(&parts),
                    &record,
                    None,
                    &self.route,
                );
                if self.strip_credentials {
                    parts.headers.remove(http::header::AUTHORIZATION);
                    parts.headers.remove(DPOP);
                }
                parts.extensions.insert(sender.with_context(AuthContext {
                    request: record.request,
                    route: self.route.clone(),
                }));
                if let Some(certificate) = certificate {
                    parts.extensions.insert(certificate);
                }
                let fresh_nonce = if nonce_aging {
                    self.fresh_nonce()
                } else {
                    None
                };
                Ok(Admitted { parts, fresh_nonce })
            }
            Err(Denial {
                error,
                scheme,
                retry_after,
            }) => {
                audit::emit(
                    "authenticate",
                    parts.method.as_str(),
                    request_path(&parts),
                    &record,
                    Some(error),
                    &self.route,
                );
                let mut response = Rejection::new(error, scheme, self.challenges.clone())
                    .retry_after(retry_after)
                    .answering(&parts.headers)
                    .into_response();
                // RFC 9449 §9: a use_dpop_nonce error comes with the nonce to
                // use; §8 lets a server send one on any response, so every
                // refusal carries it while nonces are required (clients such
                // as requests-oauth2client expect one on every DPoP 401).
                if let Some(nonce) = self.fresh_nonce() {
                    response.headers_mut().insert(DPOP_NONCE, nonce);
                }
                Err(response)
            }
        }
    }

    async fn authenticate(
        &self,
        parts: &Parts,
        record: &mut AuditRecord,
    ) -> Result<Authenticated, Denial> {
        let presented = credentials::extract(
            &parts.headers,
            parts.uri.query(),
            self.token_rules.token_max_bytes(),
            self.proof_policy.proof_max_bytes(),
        )?;
        let scheme = presented.credentials.scheme;
        let token = presented.credentials.token;
        let fail = Denial::new(scheme);
        let now = self.clock.now();
        let hash = token_hash(token);

        match scheme {
            Scheme::DPoP => {
                record.class = audit::CLASS_DPOP;
                let proof = presented.proof.ok_or_else(|| fail(Error::ProofMissing))?;
                let htu = self.origin.htu(parts).map_err(&fail)?;
                let facts = RequestFacts {
                    method: parts.method.as_str(),
                    htu: &htu,
                    access_token_hash: Some(&hash),
                    now,
                };
                let proof = match self.proof_policy.verify(proof, &facts) {
                    Ok(proof) => proof,
                    Err(error) => {
                        note_refused_proof(proof, error, now, record);
                        return Err(fail(error));
                    }
                };
                record.jkt = Some(Thumbprint::Key(proof.shared_jwk().clone()));
                record.iat_offset = Some(iat_offset(proof.iat(), now, true));
                if let Some(left) = self.cooling_down("jkt", proof.jkt(), now) {
                    return Err(Denial::cooling_down(scheme, left));
                }
                let nonce_aging = match &self.nonces {
                    Some(nonces) => nonces.check(proof.nonce(), now).map_err(&fail)?,
                    None => NonceCheck::Current,
                } == NonceCheck::Aging;
                let token = self.token(token, &hash, now, record).await.map_err(&fail)?;
                token.binding.check_dpop(proof.jkt()).map_err(&fail)?;
                self.check_revocation(&token, Some(proof.jkt()))
                    .await
                    .map_err(&fail)?;
                // Remember the jti for as long as its iat would be accepted,
                // plus one second for the rounding of whole seconds, plus
                // the allowed clock skew: another server of a fleet whose
                // clock lags this one's (by up to that much) accepts the
                // proof for that much longer.
                let ttl = Duration::from_secs(
                    proof
                        .accept_until()
                        .saturating_sub(now)
                        .saturating_add(1)
                        .saturating_add(self.proof_policy.proof_max_future_skew()),
                );
                let key = ReplayKey::new(proof.jkt(), proof.jti());
                match self.replay.check_and_insert_at_once(key, ttl) {
                    Some(inserted) => inserted,
                    None => self.replay.check_and_insert_boxed(key, ttl).await,
                }
                .map_err(|e| fail(e.into()))?;
                // After the replay check, so only proofs used for the first
                // time (by the key's holder) are on record.
                self.check_key_sharing("dpop", proof.jkt(), &token, record)
                    .await
                    .map_err(&fail)?;
                Ok(Authenticated {
                    sender: Sender::new(token),
                    certificate: None,
                    nonce_aging,
                })
            }
            Scheme::Bearer => {
                record.class = audit::CLASS_BEARER;
                // Looked up at most once, and only when a token may need it.
                let mut cert = None;
                // An opaque token that only introspection could tell apart is
                // introspected only if it could be accepted: bearer tokens
                // are, or a client certificate came that it may be bound to.
                // Otherwise it is refused without costing the AS anything.
                if !self.allow_bearer
                    && !looks_like_jwt(token)
                    && self.token_cache.get(&hash).is_none()
                {
                    let presented = match self.mtls {
                        true => self.client_certificate(parts).map_err(&fail)?,
                        false => None,
                    };
                    if presented.is_none() {
                        return Err(fail(Error::BearerNotAccepted));
                    }
                    cert = Some(presented);
                }
                let token = self.token(token, &hash, now, record).await.map_err(&fail)?;
                match &token.binding {
                    Binding::Dpop { .. } => Err(fail(Error::TokenDowngrade)),
                    Binding::Mtls { .. } => {
                        // RFC 8705 §3: the Bearer scheme, with the certificate.
                        record.class = audit::CLASS_MTLS;
                        if !self.mtls {
                            return Err(fail(Error::CertificateBoundNotAccepted));
                        }
                        let cert = match cert {
                            Some(cert) => cert,
                            None => self.client_certificate(parts).map_err(&fail)?,
                        }
                        .ok_or_else(|| fail(Error::CertificateMissing))?;
                        record.x5t_s256 = Some(cert.x5t_s256().to_owned());
                        if let Some(left) = self.cooling_down("x5t_s256", cert.x5t_s256(), now) {
                            return Err(Denial::cooling_down(scheme, left));
                        }
                        token.binding.check_mtls(cert.x5t_s256()).map_err(&fail)?;
                        self.check_revocation(&token, None).await.map_err(&fail)?;
                        self.check_key_sharing("mtls", cert.x5t_s256(), &token, record)
                            .await
                            .map_err(&fail)?;
                        Ok(Authenticated {
                            sender: Sender::new(token),
                            certificate: Some(cert),
                            nonce_aging: false,
                        })
                    }
                    Binding::Unbound if self.allow_bearer => {
                        self.check_revocation(&token, None).await.map_err(&fail)?;
                        Ok(Authenticated {
                            sender: Sender::new(token),
                            certificate: None,
                            nonce_aging: false,
                        })
                    }
                    Binding::Unbound => Err(fail(Error::BearerNotAccepted)),
                }
            }
        }
    }

    /// Seconds left of this key's cool-down after an incident, if any.
    fn cooling_down(&self, kind: &str, thumbprint: &str, now: u64) -> Option<u64> {
        self.route
            .incidents
            .as_ref()?
            .cooling_down(kind, thumbprint, now)
    }

    /// A nonce for now, as a header value (if nonces are required).
    fn fresh_nonce(&self) -> Option<http::HeaderValue> {
        let nonces = self.nonces.as_ref()?;
        http::HeaderValue::from_str(&nonces.issue(self.clock.now())).ok()
    }

    /// The request's client certificate, from the configured source.
    fn client_certificate(&self, parts: &Parts) -> Result<Option<ClientCertificate>, Error> {
        self.client_certs.client_certificate(parts)
    }

    /// Key-sharing detection: notes (in the audit record) a key seen with
    /// another identity, and refuses it in reject mode.
    async fn check_key_sharing(
        &self,
        kind: &str,
        thumbprint: &str,
        token: &AccessToken,
        record: &mut AuditRecord,
    ) -> Result<(), Error> {
        let Some(detector) = &self.key_sharing else {
            return Ok(());
        };
        match detector
            .observe_anywhere(format!("{kind}:{thumbprint}"), token)
            .await
        {
            Ok(shared_with) => record.shared_with = shared_with,
            // Refusing needs the answer; reporting goes on without it.
            Err(_) if detector.reject => return Err(Error::KeySharingUnavailable),
            // (Said once, and counted: `Detector::observe_anywhere`.)
            Err(_) => return Ok(()),
        }
        match record.shared_with {
            Some(_) if detector.reject => Err(Error::KeyShared),
            _ => Ok(()),
        }
    }

    /// Run-time revocation, asked on every request (cached tokens too).
    async fn check_revocation(
        &self,
        token: &AccessToken,
        proof_jkt: Option<&str>,
    ) -> Result<(), Error> {
        let Some(check) = &self.revocation else {
            return Ok(());
        };
        match check.is_revoked_boxed(token, proof_jkt).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(Error::TokenRevoked),
            Err(_) => Err(Error::RevocationUnavailable),
        }
    }

    /// The verified token: from the cache, or from the verifier (then cached).
    /// Time is checked on every request, cached or not.
    async fn token(
        &self,
        token: &str,
        hash: &[u8; 32],
        now: u64,
        record: &mut AuditRecord,
    ) -> Result<Arc<AccessToken>, Error> {
        let leeway = self.token_rules.time_leeway();
        self.verifier.on_request();
        let verified = match self.token_cache.get(hash) {
            Some(cached) => {
                // Held to the verifier's current view (its signing key
                // still published, keys not too stale) on every hit.
                record.token = Some(cached.clone());
                self.verifier.check_cached(&cached)?;
                cached
            }
            None => {
                let fresh = self.verifier.verify_boxed(token).await?;
                // Whatever the verifier, issuer and audience are this
                // resource's decision.
                self.token_rules.check_claims(&fresh)?;
                let fresh = Arc::new(fresh);
                if fresh.check_time(now, leeway).is_ok() {
                    let max_ttl = self.verifier.max_cache_ttl(&fresh);
                    self.token_cache.insert(*hash, fresh.clone(), now, max_ttl);
                }
                record.token = Some(fresh.clone());
                fresh
            }
        };
        verified.check_time(now, leeway)?;
        Ok(verified)
    }
}

/// Largest offset recorded in the histogram, either way: a year. A refused
/// proof's `iat` is whatever its sender wrote, and one absurd value must
/// not swamp the histogram's sum.
const MAX_RECORDED_OFFSET: i64 = 365 * 24 * 3600;

/// The proof's `iat` minus now, in seconds; recorded in the clock-skew
/// histogram, labelled by whether the proof's signature verified
/// (`proof="verified"`) or it was refused for its time first
/// (`proof="refused"`, its `iat` unverified).
fn iat_offset(iat: u64, now: u64, verified: bool) -> i64 {
    let offset = i128::from(iat) - i128::from(now);
    let offset =
        i64::try_from(offset.clamp(i128::from(i64::MIN), i128::from(i64::MAX))).unwrap_or_default();
    let recorded = offset.clamp(-MAX_RECORDED_OFFSET, MAX_RECORDED_OFFSET);
    audit::record_iat_offset(recorded as f64, verified);
    offset
}

/// For the audit record of a refused proof, what it claims (unverified):
/// its key and, for a refusal for its time, how far off its `iat` was.
/// Read again only for the refusals that an incident review follows up:
/// time, a forged signature, another token's `ath`.
fn note_refused_proof(proof: &str, error: Error, now: u64, record: &mut AuditRecord) {
    let timing = matches!(
        error,
        Error::ProofExpired
            | Error::ProofIssuedInFuture
            | Error::ProofExpPassed
            | Error::ProofNotYetValid
    );
    if !timing && !matches!(error, Error::ProofSignature | Error::ProofAthMismatch) {
        return;
    }
    let claimed = Claimed::read(proof);
    record.jkt = claimed.jkt.map(Thumbprint::Text);
    if timing {
        record.iat_offset = claimed.iat.map(|iat| iat_offset(iat, now, false));
    }
}
