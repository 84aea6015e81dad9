//! [`AuthorizeLayer`]: an async policy hook after authentication: it sees the
//! verified [`Sender`], the request (method, path, headers) and, for MCP,
//! the JSON-RPC method and tool being called, and may refuse (`403`, or
//! `401` when a stronger user authentication would do).
//!
//! Scopes say what a token may do in general; a policy is the place for the
//! rules that depend on the request: which client may call which tool,
//! which tools need a human approval on record, which tenants may touch
//! which paths. Every decision (allowed or not) is one audit event
//! (`decision="authorize"`) that names the tool, so an incident review can
//! tie the token and its key to the action taken.
//!
//! ```
//! use axum::{Router, routing::post};
//! use senderbound::authorize::{AuthorizeLayer, Denied, PolicyRequest};
//!
//! // A synchronous rule is a closure; implement `Policy` for async ones.
//! let policy = |req: &PolicyRequest| match req.tool() {
//!     Some("delete_note") if !req.sender().has_scope("notes:admin") => {
//!         Err(Denied::new("delete_note needs notes:admin").needs_scopes(["notes:admin"]))
//!     }
//!     _ => Ok(()),
//! };
//! let app: Router = Router::new()
//!     .route("/mcp", post(|| async { "…" }))
//!     // Read the JSON-RPC body so the policy sees MCP tool names.
//!     .route_layer(AuthorizeLayer::new(policy).inspect_mcp_calls());
//! // … then `.layer(auth)` around it, so a `Sender` is present.
//! ```
//!
//! Put it *inside* the [`SenderBoundLayer`](crate::SenderBoundLayer): a
//! request without a `Sender` is a misconfiguration and gets `500`, never
//! passes. A denial is `403` with a fixed description; the policy's own
//! reason goes to the audit event only (`detail`). If the policy names the
//! scopes that would allow the request ([`Denied::needs_scopes`]), the 403
//! carries `error="insufficient_scope"` and `scope="…"`, which a client can
//! act on (MCP clients ask for more scopes); if it names the user
//! authentication that would ([`Denied::needs_authentication`], RFC 9470),
//! it is `401 insufficient_user_authentication` with `acr_values` /
//! `max_age` ([`step_up`](crate::step_up)); otherwise it is a plain refusal
//! with no challenge, since no new token would change it.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Limited};
use senderbound_core::{Error, Severity};
use serde::Deserialize;
use serde_json::value::RawValue;
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::{self, AuditRecord};
use crate::challenge::Rejection;
use crate::header::DPOP_NONCE;
use crate::sender::{MissingSender, Sender};
use crate::step_up::StepUp;
use crate::target_uri::original_uri;

/// Default [`AuthorizeLayer::max_body_bytes`]: 4 MiB.
const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;
/// Most messages in one JSON-RPC batch (MCP removed batches in 2025-06-18;
/// older clients send few).
pub(crate) const MAX_BATCH: usize = 64;
/// Longest JSON-RPC `method` or tool name read (MCP names are at most 128
/// characters).
pub(crate) const MAX_NAME_BYTES: usize = 256;

/// What a policy is asked about.
#[derive(Debug, Clone)]
pub struct PolicyRequest {
    sender: Sender,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    mcp: Option<McpCall>,
    now: u64,
    leeway: u64,
    inspected: bool,
}

impl PolicyRequest {
    /// `true` if the body was read as MCP JSON-RPC
    /// ([`AuthorizeLayer::inspect_mcp_calls`]): then a request without
    /// [`mcp`](Self::mcp) has no message.
    pub(crate) fn inspected(&self) -> bool {
        self.inspected
    }

    /// The verified sender: binding, issuer, subject, client, scopes, …
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Now, by the Layer's clock (seconds since the epoch): for policies
    /// that compare times, such as [`StepUp`]'s
    /// `max_age` against `auth_time`.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The Layer's token time leeway, seconds.
    pub(crate) fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The request path as the client sent it (before any router nesting).
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The request URI as the client sent it (path and query).
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The request headers (without `Authorization` and `DPoP`, unless the
    /// Layer was told to keep them).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The MCP message being authorized, when the body was inspected
    /// ([`AuthorizeLayer::inspect_mcp_calls`]) and the request carries one.
    pub fn mcp(&self) -> Option<&McpCall> {
        self.mcp.as_ref()
    }

    /// The MCP tool being called (`tools/call`'s `params.name`), if any.
    pub fn tool(&self) -> Option<&str> {
        self.mcp.as_ref().and_then(McpCall::tool)
    }

    /// The arguments of the MCP tool being called (`tools/call`'s
    /// `params.arguments`), if any.
    pub fn tool_arguments(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.mcp.as_ref().and_then(McpCall::arguments)
    }
}

/// One MCP (JSON-RPC 2.0) message of a request body.
#[derive(Debug, Clone)]
pub struct McpCall {
    method: Option<String>,
    tool: Option<String>,
    /// `arguments` as received, checked strictly; read on first use.
    raw_arguments: Option<Box<str>>,
    arguments: OnceLock<Option<serde_json::Map<String, serde_json::Value>>>,
}

impl PartialEq for McpCall {
    /// The same message, whether or not its arguments were read yet.
    fn eq(&self, other: &Self) -> bool {
        (&self.method, &self.tool, &self.raw_arguments)
            == (&other.method, &other.tool, &other.raw_arguments)
    }
}

impl Eq for McpCall {}

impl McpCall {
    /// The JSON-RPC `method` (`tools/call`, `tools/list`, `initialize`, …);
    /// `None` for a response to a server request.
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The tool name, for `tools/call`.
    pub fn tool(&self) -> Option<&str> {
        self.tool.as_deref()
    }

    /// The tool's arguments, for a `tools/call` that has them: read
    /// strictly (a member named twice at any depth makes the body
    /// malformed), so the policy sees what the MCP server will.
    pub fn arguments(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.arguments
            .get_or_init(|| {
                match senderbound_core::strict_json::from_str(self.raw_arguments.as_deref()?) {
                    Some(serde_json::Value::Object(arguments)) => Some(arguments),
                    _ => None,
                }
            })
            .as_ref()
    }
}

/// A policy's refusal.
#[derive(Debug, Clone)]
pub struct Denied {
    reason: Cow<'static, str>,
    severity: Severity,
    scopes: Vec<String>,
    step_up: Option<StepUp>,
    grant: bool,
}

impl Denied {
    /// A refusal; `reason` is recorded in the audit event (`detail`), never
    /// sent to the client.
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Denied {
            reason: reason.into(),
            severity: Severity::Routine,
            scopes: Vec::new(),
            step_up: None,
            grant: false,
        }
    }

    /// The user authentication that would allow the request (RFC 9470):
    /// the refusal becomes `401 insufficient_user_authentication` with the
    /// requirement's `acr_values` and `max_age` in the challenge, so the
    /// client can go back to the authorization server for a token that
    /// records it (a human's approval, a second factor). Takes precedence
    /// over [`needs_scopes`](Self::needs_scopes).
    pub fn needs_authentication(mut self, step_up: StepUp) -> Self {
        self.step_up = Some(step_up);
        self
    }

    /// Audit the refusal as suspicious (`WARN`), not routine.
    pub fn suspicious(mut self) -> Self {
        self.severity = Severity::Suspicious;
        self
    }

    /// The scopes that would allow the request: the refusal becomes `403
    /// insufficient_scope` with them as the challenge's `scope` parameter,
    /// so the client can ask for them.
    pub fn needs_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A token that grants more would allow the request (a wider
    /// `authorization_details` grant, RFC 9396), though no scope names it:
    /// the refusal becomes `403 insufficient_scope` without a `scope`
    /// parameter ("the request requires higher privileges than provided by
    /// the access token", RFC 6750 §3.1).
    pub fn needs_grant(mut self) -> Self {
        self.grant = true;
        self
    }

    /// The policy's reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// An authorization policy: decides on each request the Layer admitted.
///
/// Any `Fn(&PolicyRequest) -> Result<(), Denied>` closure is a policy; for
/// one that needs to wait (ask a database, an approval service), implement
/// the trait:
///
/// ```
/// use senderbound::authorize::{Denied, Policy, PolicyRequest};
///
/// struct Approvals; // e.g. a client for an approval service
///
/// impl Policy for Approvals {
///     async fn check(&self, req: &PolicyRequest) -> Result<(), Denied> {
///         let approved = async { req.tool() != Some("send_payment") }.await;
///         if approved { Ok(()) } else { Err(Denied::new("no approval on record")) }
///     }
/// }
/// ```
pub trait Policy: Send + Sync + 'static {
    /// `Ok(())` lets the request through; `Err` refuses it with `403`.
    fn check(&self, request: &PolicyRequest) -> impl Future<Output = Result<(), Denied>> + Send;
}

impl<F> Policy for F
where
    F: Fn(&PolicyRequest) -> Result<(), Denied> + Send + Sync + 'static,
{
    fn check(&self, request: &PolicyRequest) -> impl Future<Output = Result<(), Denied>> + Send {
        std::future::ready(self(request))
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Policy`] as a trait object.
trait DynPolicy: Send + Sync + 'static {
    fn check_boxed<'a>(&'a self, request: &'a PolicyRequest) -> BoxFuture<'a, Result<(), Denied>>;
}

impl<P: Policy> DynPolicy for P {
    fn check_boxed<'a>(&'a self, request: &'a PolicyRequest) -> BoxFuture<'a, Result<(), Denied>> {
        Box::pin(self.check(request))
    }
}

/// A route layer that asks a [`Policy`] about every request; see the
/// [module](self) docs.
#[derive(Clone)]
pub struct AuthorizeLayer {
    policy: Arc<dyn DynPolicy>,
    inspect_mcp: bool,
    max_body_bytes: usize,
}

impl std::fmt::Debug for AuthorizeLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeLayer")
            .field("inspect_mcp", &self.inspect_mcp)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl AuthorizeLayer {
    /// Asks `policy` about every request.
    pub fn new(policy: impl Policy) -> Self {
        AuthorizeLayer {
            policy: Arc::new(policy),
            inspect_mcp: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Read request bodies as MCP JSON-RPC (a message or a batch), whatever
    /// the method, so the policy sees the method and tool of each message
    /// (a request of another method than `POST` with an empty body carries
    /// none); the
    /// policy is asked once per message, and one refusal refuses the request.
    /// A body that is not strict JSON-RPC (a non-string `method`, a
    /// `tools/call` without a string `params.name` or with `arguments`
    /// that are not an object, duplicate members) gets
    /// `400 invalid_request` rather than a guess: the MCP server must not
    /// read a tool the policy did not see.
    pub fn inspect_mcp_calls(mut self) -> Self {
        self.inspect_mcp = true;
        self
    }

    /// Refuse (`400`) bodies larger than this when inspecting them
    /// (default 4 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            config: self.clone(),
        }
    }
}

/// The service made by [`AuthorizeLayer`].
#[derive(Debug, Clone)]
pub struct Authorize<S> {
    inner: S,
    config: AuthorizeLayer,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Response future of [`Authorize`].
pub type ResponseFuture<E> = BoxFuture<'static, Result<Response, E>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Authorize<S>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Use the service that was polled ready, leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            match config.decide(&parts, body).await {
                Ok(body) => {
                    let response = inner.call(Request::from_parts(parts, body)).await?;
                    Ok(response.map(Body::new))
                }
                Err(refusal) => Ok(refusal),
            }
        })
    }
}

impl AuthorizeLayer {
    /// The body to hand on, or the refusal. Emits the audit event(s).
    async fn decide<B>(&self, parts: &Parts, body: B) -> Result<Body, Response>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (Some(sender), Some(ctx)) = (
            parts.extensions.get::<Sender>(),
            parts.extensions.get::<Sender>().and_then(Sender::context),
        ) else {
            return Err(MissingSender.into_response());
        };
        let uri = original_uri(&parts.extensions, &parts.uri).clone();
        let path = uri.path().to_owned();
        let refuse =
            |record: AuditRecord, error: Error, scopes: &[String], step_up: Option<&StepUp>| {
                audit::emit(
                    "authorize",
                    parts.method.as_str(),
                    &path,
                    &record,
                    Some(error),
                    &ctx.route,
                );
                let mut rejection =
                    Rejection::new(error, Some(sender.scheme()), ctx.route.challenges.clone())
                        .with_scopes(scopes.iter().map(String::as_str));
                if let Some(step_up) = step_up {
                    rejection = rejection.with_step_up(step_up);
                }
                let mut response = rejection.answering(&parts.headers).into_response();
                // While nonces are required, every refusal carries one, as
                // the Layer's do (docs/security.md 8.21).
                if let Some(nonce) = ctx.route.fresh_nonce() {
                    response.headers_mut().insert(DPOP_NONCE, nonce);
                }
                response
            };
        let record = || AuditRecord::admitted(sender);

        // Every method's body is read: whether a request has one is for
        // the body to say (an HTTP/2 request may carry one with neither
        // Content-Length nor Transfer-Encoding), and a tool call sent with
        // another method than POST must not pass unseen.
        let (body, calls) = if self.inspect_mcp {
            let bytes = match Limited::new(body, self.max_body_bytes).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(refuse(record(), Error::RequestBodyTooLarge, &[], None));
                }
                Err(_) => return Err(refuse(record(), Error::McpRequestMalformed, &[], None)),
            };
            if bytes.is_empty() && parts.method != Method::POST {
                // No message (an MCP stream's GET, a session's DELETE).
                (Body::empty(), vec![None])
            } else {
                let Some(calls) = parse_mcp(&bytes) else {
                    return Err(refuse(record(), Error::McpRequestMalformed, &[], None));
                };
                (Body::from(bytes), calls.into_iter().map(Some).collect())
            }
        } else {
            (Body::new(body), vec![None])
        };

        let mut request = PolicyRequest {
            sender: sender.clone(),
            method: parts.method.clone(),
            uri,
            headers: parts.headers.clone(),
            mcp: None,
            now: ctx.route.clock.now(),
            leeway: ctx.route.leeway,
            inspected: self.inspect_mcp,
        };
        // Allowed messages are recorded once the whole request is allowed:
        // a batch refused for one message runs none of them.
        let mut allowed = Vec::with_capacity(calls.len());
        for call in calls {
            request.mcp = call;
            let mut record = record();
            record.mcp_method = request.mcp().and_then(|c| c.method.clone());
            record.tool = request.tool().map(str::to_owned);
            match self.policy.check_boxed(&request).await {
                Ok(()) => allowed.push(record),
                Err(denied) => {
                    record.detail = Some(denied.reason);
                    record.severity = Some(denied.severity);
                    // Naming the user authentication or the scopes that
                    // would do makes it a problem the client can fix (a
                    // stronger authentication first, RFC 9470); otherwise
                    // a plain refusal, which no new token would change.
                    let error = match (&denied.step_up, denied.scopes.is_empty(), denied.grant) {
                        (Some(_), _, _) => Error::InsufficientUserAuthentication,
                        (None, true, false) => Error::PolicyDenied,
                        (None, _, _) => Error::InsufficientScope,
                    };
                    return Err(refuse(
                        record,
                        error,
                        &denied.scopes,
                        denied.step_up.as_ref(),
                    ));
                }
            }
        }
        for record in &allowed {
            audit::emit(
                "authorize",
                parts.method.as_str(),
                &path,
                record,
                None,
                &ctx.route,
            );
        }
        Ok(body)
    }
}

/// A JSON-RPC message, strictly: duplicate members are an error (serde's
/// derive refuses them), so no two readers can disagree on `method`.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolCallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// A tool call's `arguments`: absent, `null`, or an object with no member
/// named twice at any depth (`Err` for anything else), kept as received:
/// read into values only if a policy asks (a large body of numbers costs
/// no memory until then).
fn tool_arguments(raw: Option<&RawValue>) -> Result<Option<Box<str>>, ()> {
    let Some(raw) = raw.map(RawValue::get) else {
        return Ok(None);
    };
    match raw.trim_start().as_bytes().first() {
        Some(b'n') if raw.trim() == "null" => Ok(None),
        Some(b'{') if senderbound_core::strict_json::is_strict(raw) => Ok(Some(raw.into())),
        _ => Err(()),
    }
}

/// The messages of an MCP request body, or `None` if it is not strict
/// JSON-RPC (a message object or a non-empty batch of them).
fn parse_mcp(body: &[u8]) -> Option<Vec<McpCall>> {
    let body = std::str::from_utf8(body).ok()?;
    let messages: Vec<Message<'_>> = if body.trim_start().starts_with('[') {
        let batch: Vec<&RawValue> = serde_json::from_str(body).ok()?;
        batch
            .into_iter()
            .map(|m| object(m.get()))
            .collect::<Option<_>>()?
    } else {
        vec![object(body)?]
    };
    if messages.is_empty() || messages.len() > MAX_BATCH {
        return None;
    }
    messages
        .into_iter()
        .map(|m| {
            let (tool, arguments) = match (m.method.as_deref(), m.params) {
                (Some("tools/call"), Some(params)) => {
                    let params = object::<ToolCallParams<'_>>(params.get())?;
                    let arguments = tool_arguments(params.arguments).ok()?;
                    (Some(params.name.into_owned()), arguments)
                }
                (Some("tools/call"), None) => return None,
                _ => (None, None),
            };
            let too_long = |name: Option<&str>| name.is_some_and(|n| n.len() > MAX_NAME_BYTES);
            if too_long(m.method.as_deref()) || too_long(tool.as_deref()) {
                return None;
            }
            Some(McpCall {
                method: m.method.map(Cow::into_owned),
                tool,
                raw_arguments: arguments,
                arguments: OnceLock::new(),
            })
        })
        .collect()
}

/// `T` from a JSON *object* only: serde's derive would also read an array
/// positionally, in its own field order, which another reader may not share.
fn object<'a, T: Deserialize<'a>>(json: &'a str) -> Option<T> {
    if !json.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, tool: Option<&str>) -> McpCall {
        McpCall {
            method: Some(method.into()),
            tool: tool.map(str::to_owned),
            raw_arguments: None,
            arguments: OnceLock::new(),
        }
    }

    fn tool_call_body(name: &str) -> String {
        serde_json::json!({"method": "tools/call", "params": {"name": name}}).to_string()
    }

    #[test]
    fn tool_calls_are_read_strictly() {
        assert!(parse_mcp(tool_call_body(&"x".repeat(MAX_NAME_BYTES)).as_bytes()).is_some());
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_note","arguments":{"text":"hi"}}}"#;
        let calls = parse_mcp(body).unwrap();
        assert_eq!(calls[0].tool(), Some("write_note"));
        assert_eq!(
            calls[0].arguments().map(|a| a["text"].clone()),
            Some(serde_json::json!("hi"))
        );
        assert_eq!(
            parse_mcp(br#"{"method":"tools/call","params":{"name":"x","arguments":null}}"#),
            Some(vec![call("tools/call", Some("x"))])
        );
        assert_eq!(
            parse_mcp(
                br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"a\u0062"}}"#
            ),
            Some(vec![call("tools/call", Some("ab"))])
        );
        assert_eq!(
            parse_mcp(br#"[{"method":"tools/list","id":1},{"method":"tools/call","id":2,"params":{"name":"x"}}]"#),
            Some(vec![call("tools/list", None), call("tools/call", Some("x"))])
        );
        assert_eq!(
            parse_mcp(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Some(vec![McpCall {
                method: None,
                tool: None,
                raw_arguments: None,
                arguments: OnceLock::new(),
            }])
        );
        for bad in [
            &br#"{"method":"ping","method":"tools/call","params":{"name":"x"}}"#[..],
            br#"{"method":"tools/call","params":{"name":"x","name":"y"}}"#,
            br#"{"method":"tools/call"}"#,
            br#"{"method":"tools/call","params":{"name":7}}"#,
            br#"{"method":"tools/call","params":["x"]}"#,
            br#"{"method":"tools/call","params":{"name":"x","arguments":{"a":1,"a":2}}}"#,
            br#"{"method":"tools/call","params":{"name":"x","arguments":{"a":{"b":1,"b":2}}}}"#,
            br#"{"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
            br#"{"method":"tools/call","params":{"name":"x","arguments":"a=1"}}"#,
            br#"{"method":"tools/call","params":{"name":"x","arguments":{},"arguments":{}}}"#,
            br#"{"method":5}"#,
            br#"[]"#,
            br#"[1]"#,
            br#"[["tools/call",{"name":"x"}]]"#,
            br#"["tools/call",{"name":"x"}]"#,
            b"",
            b"not json",
            br#"{"method":"tools/list"} trailing"#,
        ] {
            assert_eq!(parse_mcp(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let long_tool = tool_call_body(&"x".repeat(MAX_NAME_BYTES + 1));
        let batch = format!(
            "[{}]",
            vec![r#"{"method":"ping"}"#; MAX_BATCH + 1].join(",")
        );
        for bad in [long_tool.as_bytes(), batch.as_bytes()] {
            assert_eq!(parse_mcp(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
