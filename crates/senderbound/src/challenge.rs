//! Rendering refusals: status, `WWW-Authenticate` challenges (RFC 9449 §7.1,
//! RFC 6750 §3) and a body. All responses senderbound itself produces are
//! built here.
//!
//! A gRPC request (`content-type: application/grpc` or `application/grpc+…`)
//! is refused the way gRPC clients understand: a trailers-only response
//! (HTTP 200, no body) whose `grpc-status` says why, mapped from the HTTP
//! status (401 → 16 `UNAUTHENTICATED`, 403 → 7 `PERMISSION_DENIED`, 503
//! and 429 → 14 `UNAVAILABLE`, 400 → 3 `INVALID_ARGUMENT`), with the
//! error's description as `grpc-message`. The `WWW-Authenticate` challenges
//! and `DPoP-Nonce` are sent as for any request, so a gRPC client can read
//! the challenge and retry with the nonce; `Cache-Control: no-store` and,
//! on a 503 or a 429, `Retry-After` too (and for a 429, a key's cool-down
//! after an [incident](crate::incident), `grpc-retry-pushback-ms`, which
//! gRPC's retry policies read: the wait up to ten seconds, `-1`, do not
//! retry, beyond). A [custom body](RefusalBody) does not apply:
//! a trailers-only response has none. (gRPC-Web requests,
//! `application/grpc-web…`, carry trailers in the body and get the plain
//! HTTP refusal, from whose status gRPC-Web clients derive their own code.)
//!
//! The status, the challenges, `Cache-Control: no-store`, `Retry-After` on a
//! 503 or a 429 and `DPoP-Nonce` are always senderbound's: clients and the RFCs
//! depend on them. The body is yours to choose with
//! [`refusal_body`](crate::SenderBoundBuilder::refusal_body): the OAuth
//! JSON error object (the default), RFC 9457 problem details, none, or your
//! own.
//!
//! ```
//! use senderbound::challenge::RefusalBody;
//!
//! // RFC 9457 `application/problem+json`.
//! let problem = RefusalBody::ProblemJson;
//! // Your own, from the refusal's status and error.
//! let custom = RefusalBody::custom(|refusal| {
//!     let text = format!("{} ({})", refusal.error().description(), refusal.status().as_u16());
//!     Some((http::HeaderValue::from_static("text/plain; charset=utf-8"), text.into()))
//! });
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use senderbound_core::authorization::Scheme;
use senderbound_core::{Error, ErrorCode};

/// What every challenge from one Layer has in common.
#[derive(Debug, Clone)]
pub(crate) struct ChallengeConfig {
    /// Space-separated DPoP algorithms, for the `algs` parameter.
    pub(crate) algs: String,
    /// Whether the `Bearer` scheme is accepted (unbound bearer tokens
    /// allowed, or certificate-bound tokens, RFC 8705): then a `Bearer`
    /// challenge is sent too.
    pub(crate) offer_bearer: bool,
    /// Optional `realm`.
    pub(crate) realm: Option<String>,
    /// The URL of this resource's metadata (RFC 9728 §5.1), if served.
    pub(crate) resource_metadata: Option<String>,
    /// How the body is rendered.
    pub(crate) body: RefusalBody,
}

/// A custom body renderer: the content type and the bytes, or `None` for no body.
type Render = dyn Fn(&Rejection) -> Option<(HeaderValue, Bytes)> + Send + Sync;

/// The body of a refusal; the status and headers stay senderbound's (see the
/// [module docs](self)).
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum RefusalBody {
    /// `application/json`: `{"error": "<code>", "error_description": "…"}`,
    /// the OAuth error object (RFC 6749 §5.2 members); 503s say
    /// `temporarily_unavailable`, policy refusals and a key's cool-down
    /// (429) `access_denied`, and a request without credentials gets no
    /// body. The default.
    #[default]
    OAuthJson,
    /// `application/problem+json` (RFC 9457): `type` `about:blank`, `title`
    /// (the status's reason phrase), `status`, `detail` (the fixed
    /// description) and, as an extension member, the OAuth `error` code.
    ProblemJson,
    /// No body at all.
    Empty,
    /// Rendered by a function of the refusal.
    Custom(Arc<Render>),
}

impl fmt::Debug for RefusalBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefusalBody::OAuthJson => "OAuthJson",
            RefusalBody::ProblemJson => "ProblemJson",
            RefusalBody::Empty => "Empty",
            RefusalBody::Custom(_) => "Custom(..)",
        })
    }
}

impl RefusalBody {
    /// A body rendered by `render`: the content type and the bytes, or
    /// `None` for no body. Never put request data (tokens, proofs) in it.
    pub fn custom<F>(render: F) -> Self
    where
        F: Fn(&Rejection) -> Option<(HeaderValue, Bytes)> + Send + Sync + 'static,
    {
        RefusalBody::Custom(Arc::new(render))
    }

    fn render(&self, refusal: &Rejection) -> Option<(HeaderValue, Bytes)> {
        let error = refusal.error;
        // The OAuth error code, or the one a body without a challenge code uses.
        let code = match error.code() {
            Some(code) => Some(code.as_str()),
            None if error.is_unavailable() => Some("temporarily_unavailable"),
            // RFC 6585 §4: a 429 SHOULD say why; no OAuth code names a
            // pause, and access is what is denied, for now.
            None if matches!(error, Error::PolicyDenied | Error::KeyCoolingDown) => {
                Some("access_denied")
            }
            None => None,
        };
        match self {
            RefusalBody::OAuthJson => code.map(|code| {
                let body = serde_json::json!({
                    "error": code,
                    "error_description": error.description(),
                });
                (
                    HeaderValue::from_static("application/json"),
                    Bytes::from(body.to_string()),
                )
            }),
            RefusalBody::ProblemJson => {
                let status = refusal.status();
                let mut body = serde_json::json!({
                    "type": "about:blank",
                    "title": status.canonical_reason().unwrap_or("Error"),
                    "status": status.as_u16(),
                    "detail": error.description(),
                });
                if let Some(code) = code {
                    body["error"] = serde_json::Value::from(code);
                }
                Some((
                    HeaderValue::from_static("application/problem+json"),
                    Bytes::from(body.to_string()),
                ))
            }
            RefusalBody::Empty => None,
            RefusalBody::Custom(render) => render(refusal),
        }
    }
}

/// A refused request, ready to become a response.
///
/// Made by the Layer and the route layers; it carries the [`Error`] and how
/// to word the challenge. A [custom body](RefusalBody::custom) reads it.
#[derive(Debug, Clone)]
pub struct Rejection {
    error: Error,
    scheme: Option<Scheme>,
    scope: Option<String>,
    /// Step-up (RFC 9470 §3): the `acr_values` and `max_age` parameters.
    acr_values: Option<String>,
    max_age: Option<u64>,
    config: std::sync::Arc<ChallengeConfig>,
    /// The request was a gRPC call: refused in gRPC's terms.
    grpc: bool,
    /// `Retry-After` seconds of a 429 (a key's cool-down).
    retry_after: Option<u64>,
}

impl Rejection {
    pub(crate) fn new(
        error: Error,
        scheme: Option<Scheme>,
        config: std::sync::Arc<ChallengeConfig>,
    ) -> Self {
        Rejection {
            error,
            scheme,
            scope: None,
            acr_values: None,
            max_age: None,
            config,
            grpc: false,
            retry_after: None,
        }
    }

    /// The seconds until a temporary refusal ends, for `Retry-After`.
    pub(crate) fn retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after = seconds;
        self
    }

    /// `Retry-After`: one second for a dependency's failure (503), the
    /// seconds left of a cool-down (429).
    fn retry_after_value(&self) -> Option<HeaderValue> {
        if self.error.is_unavailable() {
            return Some(HeaderValue::from_static("1"));
        }
        self.retry_after.map(|s| HeaderValue::from(s.max(1)))
    }

    /// Adds the `acr_values` and `max_age` parameters of an
    /// `insufficient_user_authentication` challenge (RFC 9470 §3); the
    /// values are named only if each is a safe token to quote.
    pub(crate) fn with_step_up(mut self, step_up: &crate::step_up::StepUp) -> Self {
        let values: Vec<&str> = step_up.acr().iter().map(String::as_str).collect();
        if !values.is_empty() && values.iter().all(|v| quotable_token(v)) {
            self.acr_values = Some(values.join(" "));
        }
        self.max_age = step_up.age().map(|d| d.as_secs());
        self
    }

    /// Words the refusal for the request with these headers: in gRPC's
    /// terms for a gRPC call (see the [module docs](self)).
    pub(crate) fn answering(mut self, request: &http::HeaderMap) -> Self {
        self.grpc = is_grpc(request);
        self
    }

    /// Adds the `scope` parameter of an `insufficient_scope` challenge: the
    /// scopes needed, if each is a valid scope token (RFC 6749 §3.3) and so
    /// safe to quote; otherwise the parameter is left out.
    pub(crate) fn with_scopes<'a>(mut self, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        let scopes: Vec<&str> = scopes.into_iter().collect();
        if !scopes.is_empty() && scopes.iter().all(|s| quotable_token(s)) {
            self.scope = Some(scopes.join(" "));
        }
        self
    }

    /// Why the request was refused.
    pub fn error(&self) -> Error {
        self.error
    }

    /// The response status (one per [`Error`] variant). A gRPC call's
    /// refusal is sent with HTTP status 200 and this status's
    /// [`grpc_status`](Self::grpc_status).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::UNAUTHORIZED)
    }

    /// The gRPC status code a gRPC call is refused with: 16
    /// `UNAUTHENTICATED` for a 401, 7 `PERMISSION_DENIED` for a 403, 14
    /// `UNAVAILABLE` for a 503 or a 429, 3 `INVALID_ARGUMENT` for a 400
    /// (gRPC's status codes, `grpc/doc/statuscodes.md`: the credentials are
    /// missing or invalid; valid but not allowed; the server cannot take
    /// the call now, retry later — as `http-grpc-status-mapping.md` maps
    /// 429 and 503; the request itself is malformed).
    pub fn grpc_status(&self) -> u8 {
        match self.error.status() {
            401 => 16,
            403 => 7,
            503 | 429 => 14,
            400 => 3,
            _ => 2, // UNKNOWN; no refusal has another status
        }
    }

    /// The `WWW-Authenticate` field values for this refusal, one challenge each.
    pub fn challenges(&self) -> Vec<String> {
        // The server's failure, or a refusal no credentials would change:
        // no challenge (RFC 9110 §15.5.4 does not call for one on a 403).
        if self.error.is_unavailable()
            || matches!(self.error, Error::PolicyDenied | Error::KeyCoolingDown)
        {
            return Vec::new();
        }
        let code = self.error.code();
        // The error belongs on the challenge of the scheme the client used,
        // if this resource accepts that scheme; otherwise on DPoP's.
        let bearer_accepted = self.config.offer_bearer;
        let error_on_bearer =
            code.is_some() && bearer_accepted && self.scheme == Some(Scheme::Bearer);
        let mut dpop = String::from("DPoP");
        let mut params = Vec::new();
        if let Some(realm) = &self.config.realm {
            params.push(format!("realm=\"{realm}\""));
        }
        if let Some(url) = &self.config.resource_metadata {
            params.push(format!("resource_metadata=\"{url}\""));
        }
        let mut error_params = Vec::new();
        if let Some(code) = code {
            error_params.push(format!("error=\"{}\"", code.as_str()));
            error_params.push(format!(
                "error_description=\"{}\"",
                self.error.description()
            ));
            if let (ErrorCode::InsufficientScope, Some(scope)) = (code, &self.scope) {
                error_params.push(format!("scope=\"{scope}\""));
            }
            if code == ErrorCode::InsufficientUserAuthentication {
                if let Some(acr_values) = &self.acr_values {
                    error_params.push(format!("acr_values=\"{acr_values}\""));
                }
                if let Some(max_age) = self.max_age {
                    error_params.push(format!("max_age=\"{max_age}\""));
                }
            }
        }
        let mut dpop_params = params.clone();
        if !error_on_bearer {
            dpop_params.extend(error_params.iter().cloned());
        }
        dpop_params.push(format!("algs=\"{}\"", self.config.algs));
        dpop.push(' ');
        dpop.push_str(&dpop_params.join(", "));
        let mut out = vec![dpop];
        if bearer_accepted {
            let mut bearer_params = params;
            if error_on_bearer {
                bearer_params.extend(error_params);
            }
            out.push(if bearer_params.is_empty() {
                "Bearer".to_owned()
            } else {
                format!("Bearer {}", bearer_params.join(", "))
            });
        }
        out
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        if self.grpc {
            return self.into_grpc_response();
        }
        let body = self.config.body.render(&self);
        let (content_type, bytes) = match body {
            Some((content_type, bytes)) => (Some(content_type), Body::from(bytes)),
            None => (None, Body::empty()),
        };
        let mut response = Response::new(bytes);
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        for challenge in self.challenges() {
            // Challenges are built from fixed strings and validated config;
            // a value that is not a valid header is dropped rather than sent.
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                headers.append(WWW_AUTHENTICATE, v);
            }
        }
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, content_type);
        }
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(retry_after) = self.retry_after_value() {
            headers.insert(http::header::RETRY_AFTER, retry_after);
        }
        response
    }
}

impl Rejection {
    /// A trailers-only gRPC response: HTTP 200, no body, `grpc-status` and
    /// `grpc-message` in the headers with the challenges.
    fn into_grpc_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(
            GRPC_STATUS,
            HeaderValue::from(u16::from(self.grpc_status())),
        );
        if let Ok(message) = HeaderValue::from_str(&grpc_message(self.error.description())) {
            headers.insert(GRPC_MESSAGE, message);
        }
        for challenge in self.challenges() {
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                headers.append(WWW_AUTHENTICATE, v);
            }
        }
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(retry_after) = self.retry_after_value() {
            headers.insert(http::header::RETRY_AFTER, retry_after);
        }
        // gRPC clients do not read Retry-After; their retry policies read
        // this (gRFC A6), and would otherwise retry UNAVAILABLE at once. A
        // wait longer than a call should sit idle is "do not retry" (a
        // negative value): the application decides.
        if let Some(seconds) = self.retry_after {
            let pushback = if seconds <= MAX_GRPC_PUSHBACK_SECS {
                HeaderValue::from(seconds.max(1).saturating_mul(1000))
            } else {
                HeaderValue::from_static("-1")
            };
            headers.insert(GRPC_RETRY_PUSHBACK_MS, pushback);
        }
        response
    }
}

/// A scope-token (RFC 6749 §3.3: `%x21 / %x23-5B / %x5D-7E`), safe to put
/// between quotes in a challenge; `acr` values are held to the same.
fn quotable_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: http::HeaderName = http::HeaderName::from_static("grpc-message");
const GRPC_RETRY_PUSHBACK_MS: http::HeaderName =
    http::HeaderName::from_static("grpc-retry-pushback-ms");
/// The longest wait a gRPC client's retry is told to make; beyond, it is
/// told not to retry.
const MAX_GRPC_PUSHBACK_SECS: u64 = 10;

/// `true` for a gRPC call (`application/grpc`, `application/grpc+proto`, …;
/// not gRPC-Web).
fn is_grpc(request: &http::HeaderMap) -> bool {
    request
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/grpc"
                || v.starts_with("application/grpc+")
                || v.starts_with("application/grpc;")
        })
}

/// `grpc-message` is percent-encoded: every byte outside printable ASCII,
/// and `%` itself (gRPC over HTTP/2, "Responses").
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(offer_bearer: bool) -> Arc<ChallengeConfig> {
        Arc::new(ChallengeConfig {
            algs: "ES256 EdDSA".into(),
            offer_bearer,
            realm: None,
            resource_metadata: None,
            body: RefusalBody::default(),
        })
    }

    #[test]
    fn every_challenge_points_at_the_resource_metadata() {
        let config = Arc::new(ChallengeConfig {
            algs: "ES256".into(),
            offer_bearer: true,
            realm: None,
            resource_metadata: Some("https://rs/.well-known/oauth-protected-resource".into()),
            body: RefusalBody::default(),
        });
        let r = Rejection::new(Error::TokenExpired, Some(Scheme::DPoP), config);
        assert_eq!(
            r.challenges(),
            [
                "DPoP resource_metadata=\"https://rs/.well-known/oauth-protected-resource\", error=\"invalid_token\", error_description=\"access token expired\", algs=\"ES256\"",
                "Bearer resource_metadata=\"https://rs/.well-known/oauth-protected-resource\""
            ]
        );
    }

    #[test]
    fn no_credentials_has_no_error_code() {
        let r = Rejection::new(Error::MissingCredentials, None, config(false));
        assert_eq!(r.challenges(), ["DPoP algs=\"ES256 EdDSA\""]);
        let r = Rejection::new(Error::MissingCredentials, None, config(true));
        assert_eq!(r.challenges(), ["DPoP algs=\"ES256 EdDSA\"", "Bearer"]);
    }

    #[test]
    fn error_goes_on_the_scheme_used() {
        let r = Rejection::new(Error::TokenExpired, Some(Scheme::Bearer), config(true));
        assert_eq!(
            r.challenges(),
            [
                "DPoP algs=\"ES256 EdDSA\"",
                "Bearer error=\"invalid_token\", error_description=\"access token expired\""
            ]
        );
        let r = Rejection::new(Error::ProofReplayed, Some(Scheme::DPoP), config(false));
        assert_eq!(
            r.challenges(),
            [
                "DPoP error=\"invalid_dpop_proof\", error_description=\"DPoP proof already used\", algs=\"ES256 EdDSA\""
            ]
        );
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let r = Rejection::new(Error::InsufficientScope, Some(Scheme::DPoP), config(false))
            .with_scopes(["write", "admin"]);
        assert_eq!(
            r.challenges(),
            [
                "DPoP error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"write admin\", algs=\"ES256 EdDSA\""
            ]
        );
    }

    fn grpc_call() -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        headers
    }

    #[test]
    fn a_grpc_call_is_refused_trailers_only_with_its_status() {
        for (error, status) in [
            (Error::ProofReplayed, "16"),
            (Error::InsufficientScope, "7"),
            (Error::ReplayStoreUnavailable, "14"),
            (Error::MalformedAuthorization, "3"),
        ] {
            let response = Rejection::new(error, Some(Scheme::DPoP), config(false))
                .answering(&grpc_call())
                .into_response();
            assert_eq!(response.status(), StatusCode::OK, "{error:?}");
            let headers = response.headers();
            assert_eq!(headers["content-type"], "application/grpc");
            assert_eq!(headers["grpc-status"], status, "{error:?}");
            assert_eq!(headers["grpc-message"], error.description());
            assert_eq!(headers["cache-control"], "no-store");
            assert_eq!(
                headers.contains_key("retry-after"),
                error.is_unavailable(),
                "{error:?}"
            );
            // The challenge still reaches the client (none on a 503).
            assert_eq!(
                headers.get_all(WWW_AUTHENTICATE).iter().count(),
                usize::from(!error.is_unavailable()),
                "{error:?}"
            );
            // Trailers-only: nothing after the headers.
            assert!(http_body::Body::is_end_stream(response.body()), "{error:?}");
        }
    }

    #[test]
    fn only_grpc_calls_are_refused_in_grpc_terms() {
        for content_type in [
            "application/grpc",
            "Application/GRPC+json",
            "application/grpc; charset=x",
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
            assert!(is_grpc(&headers), "{content_type}");
        }
        for content_type in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/json",
            "application/grpcx",
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
            assert!(!is_grpc(&headers), "{content_type}");
            let response = Rejection::new(Error::ProofReplayed, Some(Scheme::DPoP), config(false))
                .answering(&headers)
                .into_response();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{content_type}"
            );
        }
        assert_eq!(grpc_message("50% of a naïve"), "50%25 of a na%C3%AFve");
    }

    #[test]
    fn step_up_names_acr_values_and_max_age_on_the_scheme_used() {
        use crate::step_up::StepUp;
        let step_up = StepUp::new()
            .acr_values(["urn:mfa", "phr"])
            .max_age(std::time::Duration::from_secs(300));
        let r = Rejection::new(
            Error::InsufficientUserAuthentication,
            Some(Scheme::Bearer),
            config(true),
        )
        .with_step_up(&step_up);
        assert_eq!(
            r.challenges(),
            [
                "DPoP algs=\"ES256 EdDSA\"",
                "Bearer error=\"insufficient_user_authentication\", error_description=\"a stronger or more recent user authentication is required\", acr_values=\"urn:mfa phr\", max_age=\"300\""
            ]
        );
        // A value that could not be quoted safely is left out; max_age stays.
        let odd = StepUp::new()
            .acr_values(["a\"b"])
            .max_age(std::time::Duration::from_secs(5));
        let r = Rejection::new(
            Error::InsufficientUserAuthentication,
            Some(Scheme::DPoP),
            config(false),
        )
        .with_step_up(&odd);
        assert_eq!(
            r.challenges(),
            [
                "DPoP error=\"insufficient_user_authentication\", error_description=\"a stronger or more recent user authentication is required\", max_age=\"5\", algs=\"ES256 EdDSA\""
            ]
        );
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn unavailable_sends_no_challenge() {
        let r = Rejection::new(Error::ReplayStoreFull, Some(Scheme::DPoP), config(false));
        assert!(r.challenges().is_empty());
        assert_eq!(r.into_response().status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
