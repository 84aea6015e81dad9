//! The request pipeline and the [`SenderBoundService`] that runs it.
//!
//! ```text
//! framing (one valid Host/authority, no userinfo or fragment), then
//! DPoP:   credentials ─▶ proof checks + signature ─▶ token (cache or verifier)
//!         ─▶ time ─▶ binding (cnf.jkt) ─▶ revocation ─▶ replay (jti once) ─▶ Sender
//! Bearer: credentials ─▶ token ─▶ time ─▶ binding: cnf["x5t#S256"] = client
//!         certificate (RFC 8705), cnf.jkt = downgrade, none = bearer policy
//!         ─▶ revocation ─▶ Sender
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::Request;
use http::request::Parts;
use pin_project_lite::pin_project;
use senderbound_core::authorization::Scheme;
use senderbound_core::nonce::{NonceCheck, Nonces};
use senderbound_core::proof::{ProofPolicy, RequestFacts};
use senderbound_core::token::{AccessToken, Binding, TokenRules, looks_like_jwt};
use senderbound_core::{Clock, Error, token_hash};
use tower_service::Service;

use crate::audit::{self, AuditRecord};
use crate::challenge::{ChallengeConfig, Rejection};
use crate::credentials::{self, DPOP};
use crate::framing;
use crate::key_sharing::Detector;
use crate::metadata::ServedMetadata;
use crate::mtls::{ClientCertSource, ClientCertificate};
use crate::replay::{ReplayKey, ReplayStore};
use crate::revocation::RevocationCheck;
use crate::sender::{BindingKind, Sender};
use crate::target_uri::{PublicOrigin, original_uri, request_path};
use crate::tokens::TokenVerifier;
use crate::tokens::cache::TokenCache;

/// What [`RequireScope`](crate::RequireScope) needs from the Layer's decision.
#[derive(Clone)]
pub(crate) struct AuthContext {
    pub(crate) challenges: Arc<ChallengeConfig>,
    pub(crate) token: Arc<AccessToken>,
}

/// Everything one Layer shares between its services.
pub(crate) struct Shared {
    pub(crate) proof_policy: ProofPolicy,
    pub(crate) token_rules: TokenRules,
    pub(crate) verifier: Arc<dyn TokenVerifier>,
    pub(crate) token_cache: TokenCache,
    pub(crate) replay: Arc<dyn ReplayStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) accept_bearer: bool,
    pub(crate) origin: PublicOrigin,
    pub(crate) strip_credentials: bool,
    pub(crate) challenges: Arc<ChallengeConfig>,
    pub(crate) revocation: Option<Arc<dyn RevocationCheck>>,
    pub(crate) client_certs: Arc<dyn ClientCertSource>,
    pub(crate) accept_mtls: bool,
    pub(crate) nonces: Option<Nonces>,
    pub(crate) metadata: Option<ServedMetadata>,
    pub(crate) key_sharing: Option<Detector>,
}

/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
pub const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// What passes on to the inner service: the request parts, and a fresh
/// nonce for the response when the client's is aging.
pub(crate) type Admitted = (Parts, Option<http::HeaderValue>);

type Denial = (Error, Option<Scheme>);

impl Shared {
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
        let mut record = AuditRecord::default();
        let result = match framing {
            Ok(()) => self.authenticate(&parts, &mut record).await,
            Err(e) => Err((e, None)),
        };
        match result {
            Ok((sender, certificate, nonce_aging)) => {
                audit::emit(
                    "authenticate",
                    parts.method.as_str(),
                    request_path(&parts),
                    &record,
                    None,
                );
                if self.strip_credentials {
                    parts.headers.remove(http::header::AUTHORIZATION);
                    parts.headers.remove(DPOP);
                }
                if let Some(token) = record.token {
                    parts.extensions.insert(AuthContext {
                        challenges: self.challenges.clone(),
                        token,
                    });
                }
                parts.extensions.insert(sender);
                // The certificate the token is bound to, as verified (behind
                // a proxy: the forwarded one, decoded).
                if let Some(certificate) = certificate {
                    parts.extensions.insert(certificate);
                }
                let fresh_nonce = if nonce_aging {
                    self.fresh_nonce()
                } else {
                    None
                };
                Ok((parts, fresh_nonce))
            }
            Err((error, scheme)) => {
                audit::emit(
                    "authenticate",
                    parts.method.as_str(),
                    request_path(&parts),
                    &record,
                    Some(error),
                );
                let mut response =
                    Rejection::new(error, scheme, self.challenges.clone()).into_response();
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
    ) -> Result<(Sender, Option<ClientCertificate>, bool), Denial> {
        let presented = credentials::extract(
            &parts.headers,
            parts.uri.query(),
            self.token_rules.token_max_bytes(),
            self.proof_policy.proof_max_bytes(),
        )
        .map_err(|e| (e, None))?;
        let scheme = presented.credentials.scheme;
        let token = presented.credentials.token;
        let fail = |e: Error| (e, Some(scheme));
        let now = self.clock.now();
        let hash = token_hash(token);

        match scheme {
            Scheme::DPoP => {
                record.class = audit::CLASS_DPOP;
                let proof = presented.proof.ok_or(fail(Error::ProofMissing))?;
                let htu = self.origin.htu(parts).map_err(fail)?;
                let facts = RequestFacts {
                    method: parts.method.as_str(),
                    htu: &htu,
                    access_token_hash: Some(&hash),
                    now,
                };
                let proof = self.proof_policy.verify(proof, &facts).map_err(fail)?;
                record.jkt = Some(proof.jkt().to_owned());
                let nonce_aging = match &self.nonces {
                    Some(nonces) => nonces.check(proof.nonce(), now).map_err(fail)?,
                    None => NonceCheck::Current,
                } == NonceCheck::Aging;
                let token = self.token(token, &hash, now, record).await.map_err(fail)?;
                token.binding.check_dpop(proof.jkt()).map_err(fail)?;
                self.check_revocation(&token, Some(proof.jkt()))
                    .map_err(fail)?;
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
                self.replay
                    .check_and_insert(ReplayKey::new(proof.jkt(), proof.jti()), ttl)
                    .await
                    .map_err(|e| fail(e.into()))?;
                // After the replay check, so only proofs used for the first
                // time (by the key's holder) are on record.
                self.check_key_sharing("dpop", proof.jkt(), &token, record)
                    .map_err(fail)?;
                let sender =
                    Sender::new(&token, BindingKind::Dpop, record.jkt.clone(), Scheme::DPoP);
                Ok((sender, None, nonce_aging))
            }
            Scheme::Bearer => {
                record.class = audit::CLASS_BEARER;
                // Looked up at most once, and only when a token may need it.
                let mut cert = None;
                // An opaque token that only introspection could tell apart is
                // introspected only if it could be accepted: bearer tokens
                // are, or a client certificate came that it may be bound to.
                // Otherwise it is refused without costing the AS anything.
                if !self.accept_bearer
                    && !looks_like_jwt(token)
                    && self.token_cache.get(&hash).is_none()
                {
                    let presented = match self.accept_mtls {
                        true => self.client_certificate(parts).map_err(fail)?,
                        false => None,
                    };
                    if presented.is_none() {
                        return Err(fail(Error::BearerNotAccepted));
                    }
                    cert = Some(presented);
                }
                let token = self.token(token, &hash, now, record).await.map_err(fail)?;
                match &token.binding {
                    Binding::Dpop { .. } => Err(fail(Error::TokenDowngrade)),
                    Binding::Mtls { .. } => {
                        // RFC 8705 §3: the Bearer scheme, with the certificate.
                        record.class = audit::CLASS_MTLS;
                        if !self.accept_mtls {
                            return Err(fail(Error::CertificateBoundNotAccepted));
                        }
                        let cert = match cert {
                            Some(cert) => cert,
                            None => self.client_certificate(parts).map_err(fail)?,
                        }
                        .ok_or(fail(Error::CertificateMissing))?;
                        record.x5t_s256 = Some(cert.x5t_s256().to_owned());
                        token.binding.check_mtls(cert.x5t_s256()).map_err(fail)?;
                        self.check_revocation(&token, None).map_err(fail)?;
                        self.check_key_sharing("mtls", cert.x5t_s256(), &token, record)
                            .map_err(fail)?;
                        let sender = Sender::new(
                            &token,
                            BindingKind::Mtls,
                            record.x5t_s256.clone(),
                            Scheme::Bearer,
                        );
                        Ok((sender, Some(cert), false))
                    }
                    Binding::Unbound if self.accept_bearer => {
                        self.check_revocation(&token, None).map_err(fail)?;
                        let sender = Sender::new(&token, BindingKind::Bearer, None, Scheme::Bearer);
                        Ok((sender, None, false))
                    }
                    Binding::Unbound => Err(fail(Error::BearerNotAccepted)),
                }
            }
        }
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
    fn check_key_sharing(
        &self,
        kind: &str,
        thumbprint: &str,
        token: &AccessToken,
        record: &mut AuditRecord,
    ) -> Result<(), Error> {
        let Some(detector) = &self.key_sharing else {
            return Ok(());
        };
        record.shared_with = detector.observe(format!("{kind}:{thumbprint}"), token);
        match record.shared_with {
            Some(_) if detector.reject => Err(Error::KeyShared),
            _ => Ok(()),
        }
    }

    /// Run-time revocation, asked on every request (cached tokens too).
    fn check_revocation(&self, token: &AccessToken, proof_jkt: Option<&str>) -> Result<(), Error> {
        match &self.revocation {
            Some(check) if check.is_revoked(token, proof_jkt) => Err(Error::TokenRevoked),
            _ => Ok(()),
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
                let fresh = self.verifier.verify(token).await?;
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

/// The middleware [`Service`] made by [`SenderBoundLayer`](crate::SenderBoundLayer).
///
/// Requests that pass every check reach the inner service with a
/// [`Sender`] in their extensions; all others are answered here.
pub struct SenderBoundService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: Clone> Clone for SenderBoundService<S> {
    fn clone(&self) -> Self {
        SenderBoundService {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for SenderBoundService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderBoundService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Decision = Pin<Box<dyn Future<Output = Result<Admitted, Response>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SenderBoundService<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Framing first: a request that does not name one well-formed
        // authority is refused whatever it asks for.
        let framing = framing::check(req.version(), req.uri(), req.headers(), req.extensions());
        // RFC 9728 metadata is public: answered here, before any check.
        if framing.is_ok()
            && let Some(metadata) = &self.shared.metadata
            && let Some(response) = metadata.answer(
                req.method(),
                original_uri(req.extensions(), req.uri()).path(),
            )
        {
            return ResponseFuture {
                state: State::Answered {
                    response: Some(response),
                },
            };
        }
        // Use the service that was polled ready, leave a fresh clone behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        let shared = self.shared.clone();
        ResponseFuture {
            state: State::Deciding {
                decision: Box::pin(async move { shared.decide(parts, framing).await }),
                body: Some(body),
                inner: Some(inner),
            },
        }
    }
}

pin_project! {
    /// Response future of [`SenderBoundService`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Deciding {
            decision: Decision,
            body: Option<ReqBody>,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            future: S::Future,
            nonce: Option<http::HeaderValue>,
        },
        Answered {
            response: Option<Response>,
        },
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Deciding {
                    decision,
                    body,
                    inner,
                } => {
                    let (parts, nonce) = match ready!(decision.as_mut().poll(cx)) {
                        Ok(admitted) => admitted,
                        Err(refusal) => return Poll::Ready(Ok(refusal)),
                    };
                    let (Some(body), Some(mut inner)) = (body.take(), inner.take()) else {
                        // Only reachable if polled again after completion.
                        return Poll::Ready(Ok(
                            http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                        ));
                    };
                    let future = inner.call(Request::from_parts(parts, body));
                    this.state.set(State::Calling { future, nonce });
                }
                StateProj::Calling { future, nonce } => {
                    let mut response = ready!(future.poll(cx))?;
                    // The client's nonce is aging: hand it the next one.
                    if let Some(nonce) = nonce.take() {
                        response.headers_mut().insert(DPOP_NONCE, nonce);
                    }
                    return Poll::Ready(Ok(response.map(Body::new)));
                }
                StateProj::Answered { response } => {
                    return Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                        http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    })));
                }
            }
        }
    }
}
