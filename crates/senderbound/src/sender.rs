//! [`Sender`]: who made the request, as verified by the Layer, and its axum
//! extractor.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use senderbound_core::authorization_details::AuthorizationDetail;
use senderbound_core::token::{AccessToken, Binding};

use crate::pipeline::AuthContext;
use serde::de::DeserializeOwned;
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// The verified sender of a request: put into the request extensions by
/// [`SenderBoundLayer`](crate::SenderBoundLayer) and extracted in handlers.
///
/// Holds the verified token's claims and how the request proved it holds
/// the token ([`binding`](Self::binding)), nothing secret: no token, no
/// proof, no key material beyond public thumbprints. Cloning it is cheap
/// (the claims are shared).
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
///
/// Serialized (as above) it is a JSON object named after the token's claims
/// where it has them; members that are absent are left out:
///
/// | Member | Accessor | Value |
/// |---|---|---|
/// | `binding` | [`binding`](Self::binding) | `"dpop"`, `"mtls"` or `"bearer"` |
/// | `jkt` | [`binding`](Self::binding) | the DPoP key's RFC 7638 thumbprint |
/// | `x5t#S256` | [`binding`](Self::binding) | the client certificate's SHA-256 thumbprint |
/// | `iss` | [`issuer`](Self::issuer) | |
/// | `sub` | [`subject`](Self::subject) | `null` when absent |
/// | `client_id` | [`client_id`](Self::client_id) | `null` when absent |
/// | `aud` | [`audience`](Self::audience) | an array |
/// | `scopes` | [`scopes`](Self::scopes) | an array |
/// | `exp` | [`expires_at`](Self::expires_at) | seconds since the epoch |
/// | `token_id` | [`token_id`](Self::token_id) | the token's `jti`, `null` when absent |
/// | `acr`, `amr`, `auth_time` | [`acr`](Self::acr), [`amr`](Self::amr), [`auth_time`](Self::auth_time) | when the token has them |
/// | `authorization_details` | [`authorization_details`](Self::authorization_details) | RFC 9396 objects, when the token has some |
#[derive(Clone)]
pub struct Sender {
    token: Arc<AccessToken>,
    /// The Layer's decision, for the route layers.
    context: Option<AuthContext>,
}

impl std::fmt::Debug for Sender {
    /// The named claims only: [`claims`](Sender::claims) may hold personal
    /// data (names, e-mail addresses) that has no place in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = &self.token;
        f.debug_struct("Sender")
            .field("binding", &token.binding)
            .field("iss", &token.issuer)
            .field("sub", &token.subject)
            .field("client_id", &token.client_id)
            .field("aud", &token.audience.values())
            .field("scopes", &token.scopes)
            .field("exp", &token.expires_at)
            .field("token_id", &token.token_id)
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub(crate) fn new(token: Arc<AccessToken>) -> Self {
        Sender {
            token,
            context: None,
        }
    }

    /// The same sender, with what the route layers need from the Layer.
    pub(crate) fn with_context(mut self, context: AuthContext) -> Self {
        self.context = Some(context);
        self
    }

    /// What the route layers need from the Layer's decision.
    pub(crate) fn context(&self) -> Option<&AuthContext> {
        self.context.as_ref()
    }

    /// The verified token.
    pub(crate) fn token(&self) -> &Arc<AccessToken> {
        &self.token
    }

    /// How the request proved it holds the token: a DPoP proof by the key
    /// with this thumbprint ([`Binding::Dpop`], RFC 9449), the client
    /// certificate with this thumbprint ([`Binding::Mtls`], RFC 8705), or
    /// nothing ([`Binding::Unbound`]: a bearer token, accepted only with
    /// [`allow_bearer`](crate::SenderBoundBuilder::allow_bearer)).
    ///
    /// ```
    /// use senderbound::{Sender, tokens::Binding};
    ///
    /// fn key_of(sender: &Sender) -> Option<&str> {
    ///     match sender.binding() {
    ///         Binding::Dpop { jkt } => Some(jkt),
    ///         _ => None,
    ///     }
    /// }
    /// ```
    pub fn binding(&self) -> &Binding {
        &self.token.binding
    }

    /// The token's issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.token.issuer
    }

    /// The token's subject (`sub`).
    pub fn subject(&self) -> Option<&str> {
        self.token.subject.as_deref()
    }

    /// The OAuth client the token was issued to (`client_id`, or `azp`).
    pub fn client_id(&self) -> Option<&str> {
        self.token.client_id.as_deref()
    }

    /// The token's audiences (`aud`).
    pub fn audience(&self) -> &[String] {
        self.token.audience.values()
    }

    /// The token's scopes.
    pub fn scopes(&self) -> &[String] {
        &self.token.scopes
    }

    /// `true` if the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.token.scopes.iter().any(|s| s == scope)
    }

    /// When the token expires (`exp`, seconds since the epoch).
    pub fn expires_at(&self) -> u64 {
        self.token.expires_at
    }

    /// The token's identifier (`jti`), if it has one.
    pub fn token_id(&self) -> Option<&str> {
        self.token.token_id.as_deref()
    }

    /// The authentication context class the user authenticated with
    /// (`acr`), if the token says.
    pub fn acr(&self) -> Option<&str> {
        self.token.acr.as_deref()
    }

    /// The authentication methods used (`amr`, RFC 8176); empty if the
    /// token does not say.
    pub fn amr(&self) -> &[String] {
        &self.token.amr
    }

    /// When the user authenticated (`auth_time`, seconds since the epoch),
    /// if the token says.
    pub fn auth_time(&self) -> Option<u64> {
        self.token.auth_time
    }

    /// The token's `authorization_details` (RFC 9396): what it grants,
    /// beyond scopes, as typed objects; empty if it has none. A token whose
    /// `authorization_details` are malformed never gets this far.
    ///
    /// ```
    /// # fn f(sender: senderbound::Sender) {
    /// #[derive(serde::Deserialize)]
    /// struct Payment { #[serde(rename = "instructedAmount")] amount: serde_json::Value }
    ///
    /// let payments: Vec<Payment> = sender
    ///     .authorization_details_of("payment_initiation")
    ///     .filter_map(|d| d.deserialize().ok())
    ///     .collect();
    /// # }
    /// ```
    pub fn authorization_details(&self) -> &[AuthorizationDetail] {
        &self.token.authorization_details
    }

    /// The token's authorization details of one `type`.
    pub fn authorization_details_of<'a>(
        &'a self,
        detail_type: &'a str,
    ) -> impl Iterator<Item = &'a AuthorizationDetail> + 'a {
        self.token
            .authorization_details
            .iter()
            .filter(move |d| d.detail_type() == detail_type)
    }

    /// Any claim of the verified token (the JWT payload or the
    /// introspection answer), read as `T`: `None` if it is absent or not a
    /// `T`.
    ///
    /// ```
    /// # fn f(sender: senderbound::Sender) {
    /// let tenant: Option<String> = sender.claim("tenant");
    /// let details: Option<Vec<serde_json::Value>> = sender.claim("authorization_details");
    /// # }
    /// ```
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let value = self.token.claims.get(name)?;
        T::deserialize(value).ok()
    }

    /// Every claim of the verified token, as received.
    pub fn claims(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.token.claims
    }
}

impl Sender {
    /// The `Authorization` scheme the request used: `DPoP` for a DPoP-bound
    /// token, `Bearer` otherwise (RFC 8705 §3 for certificate-bound ones).
    pub(crate) fn scheme(&self) -> senderbound_core::authorization::Scheme {
        match self.token.binding {
            Binding::Dpop { .. } => senderbound_core::authorization::Scheme::DPoP,
            _ => senderbound_core::authorization::Scheme::Bearer,
        }
    }
}

impl Serialize for Sender {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let token = &self.token;
        let mut out = serializer.serialize_struct("Sender", 14)?;
        let (binding, jkt, x5t_s256) = match &token.binding {
            Binding::Dpop { jkt } => ("dpop", Some(jkt), None),
            Binding::Mtls { x5t_s256 } => ("mtls", None, Some(x5t_s256)),
            Binding::Unbound => ("bearer", None, None),
        };
        out.serialize_field("binding", binding)?;
        match jkt {
            Some(jkt) => out.serialize_field("jkt", jkt)?,
            None => out.skip_field("jkt")?,
        }
        match x5t_s256 {
            Some(x5t) => out.serialize_field("x5t#S256", x5t)?,
            None => out.skip_field("x5t#S256")?,
        }
        out.serialize_field("iss", &token.issuer)?;
        out.serialize_field("sub", &token.subject)?;
        out.serialize_field("client_id", &token.client_id)?;
        out.serialize_field("aud", token.audience.values())?;
        out.serialize_field("scopes", &token.scopes)?;
        out.serialize_field("exp", &token.expires_at)?;
        out.serialize_field("token_id", &token.token_id)?;
        match &token.acr {
            Some(acr) => out.serialize_field("acr", acr)?,
            None => out.skip_field("acr")?,
        }
        if token.amr.is_empty() {
            out.skip_field("amr")?;
        } else {
            out.serialize_field("amr", &token.amr)?;
        }
        match token.auth_time {
            Some(auth_time) => out.serialize_field("auth_time", &auth_time)?,
            None => out.skip_field("auth_time")?,
        }
        if token.authorization_details.is_empty() {
            out.skip_field("authorization_details")?;
        } else {
            let details: Vec<_> = token
                .authorization_details
                .iter()
                .map(AuthorizationDetail::members)
                .collect();
            out.serialize_field("authorization_details", &details)?;
        }
        out.end()
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
