//! [`Sender`]: who made the request, as verified by the Layer, and its axum
//! extractor.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use senderbound_core::authorization::Scheme;
use senderbound_core::token::AccessToken;
use serde::Serialize;

/// How the request proved it came from the token's holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingKind {
    /// A DPoP proof signed by the key the token is bound to (RFC 9449).
    Dpop,
    /// The client certificate the token is bound to (RFC 8705).
    Mtls,
    /// Nothing: an unbound bearer token, accepted because the Layer was
    /// configured with `allow_bearer()`.
    Bearer,
}

impl BindingKind {
    /// `"dpop"`, `"mtls"` or `"bearer"`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            BindingKind::Dpop => "dpop",
            BindingKind::Mtls => "mtls",
            BindingKind::Bearer => "bearer",
        }
    }
}

/// The verified sender of a request: put into the request extensions by
/// [`SenderBoundLayer`](crate::SenderBoundLayer) and extracted in handlers.
///
/// Holds nothing secret: no token, no proof, no key material beyond public
/// thumbprints.
///
/// ```
/// use axum::{Json, Router, routing::get};
/// use senderbound::Sender;
///
/// async fn whoami(sender: Sender) -> Json<Sender> {
///     Json(sender)
/// }
/// let app: Router = Router::new().route("/whoami", get(whoami));
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Sender {
    binding: BindingKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    jkt: Option<String>,
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    x5t_s256: Option<String>,
    #[serde(rename = "iss")]
    issuer: String,
    #[serde(rename = "sub")]
    subject: Option<String>,
    client_id: Option<String>,
    #[serde(rename = "aud")]
    audience: Vec<String>,
    scopes: Vec<String>,
    #[serde(rename = "exp")]
    expires_at: u64,
    #[serde(rename = "token_id")]
    token_id: Option<String>,
    #[serde(skip)]
    scheme: Scheme,
}

impl Sender {
    /// `thumbprint` is the proof key's `jkt` for [`BindingKind::Dpop`], the
    /// certificate's `x5t#S256` for [`BindingKind::Mtls`].
    pub(crate) fn new(
        token: &AccessToken,
        binding: BindingKind,
        thumbprint: Option<String>,
        scheme: Scheme,
    ) -> Self {
        let (jkt, x5t_s256) = match binding {
            BindingKind::Dpop => (thumbprint, None),
            BindingKind::Mtls => (None, thumbprint),
            BindingKind::Bearer => (None, None),
        };
        Sender {
            binding,
            jkt,
            x5t_s256,
            issuer: token.issuer.clone(),
            subject: token.subject.clone(),
            client_id: token.client_id.clone(),
            audience: token.audience.values().to_vec(),
            scopes: token.scopes.clone(),
            expires_at: token.expires_at,
            token_id: token.token_id.clone(),
            scheme,
        }
    }

    /// How the sender was verified.
    pub fn binding(&self) -> &BindingKind {
        &self.binding
    }

    /// RFC 7638 thumbprint of the DPoP key, for DPoP-bound requests.
    pub fn jkt(&self) -> Option<&str> {
        self.jkt.as_deref()
    }

    /// SHA-256 thumbprint of the client certificate, for mTLS-bound requests.
    pub fn x5t_s256(&self) -> Option<&str> {
        self.x5t_s256.as_deref()
    }

    /// The token's issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token's subject (`sub`).
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The OAuth client the token was issued to (`client_id`).
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The token's audiences (`aud`).
    pub fn audience(&self) -> &[String] {
        &self.audience
    }

    /// The token's scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// `true` if the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// When the token expires (`exp`, seconds since the epoch).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The token's identifier (`jti`), if it has one.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }

    /// The `Authorization` scheme the request used.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
}

/// Rejection when a handler asks for a [`Sender`] but none is in the request:
/// the route is not behind [`SenderBoundLayer`](crate::SenderBoundLayer).
/// A server misconfiguration, answered with 500 (never an accept).
#[derive(Debug, Clone, Copy)]
pub struct MissingSender;

impl IntoResponse for MissingSender {
    fn into_response(self) -> Response {
        tracing::error!(
            target: "senderbound",
            "a handler asked for a Sender, but SenderBoundLayer is not installed on this route"
        );
        (StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Sender {
    type Rejection = MissingSender;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Sender>()
            .cloned()
            .ok_or(MissingSender)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Sender {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Sender>().cloned())
    }
}
