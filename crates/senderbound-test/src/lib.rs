//! # senderbound-test
//!
//! Test support for services protected by [senderbound]: an issuer the Layer
//! trusts, access tokens bound to a client key with the claims you choose,
//! and DPoP proofs, so your own protected handlers can be tested end to end
//! through the real Layer, without an authorization server.
//!
//! **For tests only**: a [`TestIssuer`] generates its signing key in process
//! and signs whatever it is asked to. Put this crate in
//! `[dev-dependencies]`.
//!
//! ```
//! use axum::{Router, routing::get};
//! use http::StatusCode;
//! use senderbound::{Sender, SenderBoundLayer};
//! use senderbound_test::{DpopKey, TestIssuer, dpop_request};
//! use tower::ServiceExt as _;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let issuer = TestIssuer::new("https://issuer.test");
//! let auth = SenderBoundLayer::builder()
//!     .trust(issuer.trust()) // the Layer trusts this issuer's key
//!     .audience("https://api.test")
//!     .origin("https://api.test")
//!     .build()?;
//! let app = Router::new()
//!     .route("/me", get(|s: Sender| async move { s.subject().unwrap_or("").to_owned() }))
//!     .layer(auth);
//!
//! // The three lines: a client key, a token bound to it, a request with a proof.
//! let key = DpopKey::generate();
//! let token = issuer.token("https://api.test").bound_to(&key).subject("alice").sign();
//! let request = dpop_request("GET", "https://api.test/me", &token, &key)?;
//!
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # Ok(()) }
//! ```
//!
//! [`dpop_request`] sets `Host` from the URL (the Layer refuses an HTTP/1.1
//! request without one, RFC 9112 §3.2), `Authorization: DPoP <token>` and
//! a fresh proof for that method and URL. Build the request yourself to
//! test refusals (a proof for another URL, a replayed proof, the `Bearer`
//! scheme): `key.proof(method, url)?.access_token(&token).sign()` is the
//! proof.
//!
//! [senderbound]: https://docs.rs/senderbound

#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use senderbound_client::DpopKey;
use senderbound_client::InvalidUrl;
use serde_json::{Value, json};

/// A request for the router under test: `method` to the absolute `url`,
/// with `Host` set from the URL, `Authorization: DPoP <token>` and a fresh
/// proof by `key` for that method and URL (bound to `token` with `ath`).
///
/// Only the path and query of `url` become the request target, as a
/// client's HTTP/1.1 request would send it; give the Layer an
/// [`origin`](senderbound::SenderBoundBuilder::origin) that matches the
/// URL's scheme and host.
///
/// # Errors
/// [`InvalidUrl`] unless `url` is an absolute `http(s)` URL with a host
/// (what a proof can name).
pub fn dpop_request(
    method: &str,
    url: &str,
    token: &str,
    key: &DpopKey,
) -> Result<http::Request<axum::body::Body>, InvalidUrl> {
    let proof = key.proof(method, url)?.access_token(token).sign();
    let parsed = senderbound_client::url::Url::parse(url).map_err(|_| InvalidUrl)?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => return Err(InvalidUrl),
    };
    let target = match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    http::Request::builder()
        .method(method)
        .uri(target)
        .header(http::header::HOST, host)
        .header(http::header::AUTHORIZATION, format!("DPoP {token}"))
        .header("dpop", proof)
        .body(axum::body::Body::empty())
        .map_err(|_| InvalidUrl)
}

/// A **test-only** token issuer: signs RFC 9068 JWT access tokens (ES256)
/// with a key generated in memory, and hands the Layer its public key.
#[derive(Debug, Clone)]
pub struct TestIssuer {
    key: DpopKey,
    kid: String,
    issuer: String,
}

impl TestIssuer {
    /// A new issuer with identifier `issuer` and a fresh signing key.
    pub fn new(issuer: impl Into<String>) -> Self {
        let key = DpopKey::generate();
        let kid = key.jkt()[..8].to_owned();
        TestIssuer {
            key,
            kid,
            issuer: issuer.into(),
        }
    }

    /// This issuer as the Layer should trust it: its identifier and its
    /// public key (no discovery, no network). Pass it to
    /// [`SenderBoundBuilder::trust`](senderbound::SenderBoundBuilder::trust).
    pub fn trust(&self) -> senderbound::tokens::Issuer {
        senderbound::tokens::Issuer::new(self.issuer.clone()).keys(self.jwks_json())
    }

    /// The issuer identifier (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `kid` of the signing key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWKS document, for servers configured by JSON (or to
    /// serve from a mock `jwks_uri`).
    pub fn jwks_json(&self) -> String {
        json!({ "keys": [self.public_jwk()] }).to_string()
    }

    /// The public signing key as a JWK, with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.key.public_jwk().clone();
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!("ES256");
        jwk["use"] = json!("sig");
        jwk
    }

    /// A token for `audience`: unbound, subject `user-42`, client
    /// `test-client`, no scopes, valid for 5 minutes from now. Change what
    /// you need, then [`sign`](TokenBuilder::sign).
    pub fn token(&self, audience: impl Into<String>) -> TokenBuilder<'_> {
        let now = now();
        let audience = audience.into();
        TokenBuilder {
            issuer: self,
            claims: self.claims(&audience, None, "", now),
        }
    }

    /// Default claims of a token for `audience`, bound to the DPoP key with
    /// thumbprint `jkt` (unbound if `None`), with the space-separated
    /// `scope`, issued at `now` (seconds since the epoch), valid 5 minutes.
    pub fn claims(&self, audience: &str, jkt: Option<&str>, scope: &str, now: u64) -> Value {
        let mut claims = json!({
            "iss": self.issuer,
            "sub": "user-42",
            "client_id": "test-client",
            "aud": audience,
            "scope": scope,
            "iat": now,
            "exp": now + 300,
            "jti": format!("at-{now}-{}", senderbound_client::random_jti()),
        });
        if let Some(jkt) = jkt {
            claims["cnf"] = json!({ "jkt": jkt });
        }
        claims
    }

    /// Signs `claims` as an `at+jwt` access token.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"typ": "at+jwt", "alg": "ES256", "kid": self.kid}),
            claims,
        )
    }

    /// Signs `claims` under an arbitrary JOSE header (for negative tests).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.key.sign_compact(header, claims)
    }
}

/// An access token being made by [`TestIssuer::token`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenBuilder<'a> {
    issuer: &'a TestIssuer,
    claims: Value,
}

impl TokenBuilder<'_> {
    /// Bind the token to `key` (`cnf.jkt`, RFC 9449 §6).
    pub fn bound_to(mut self, key: &DpopKey) -> Self {
        self.claims["cnf"] = json!({ "jkt": key.jkt() });
        self
    }

    /// Bind the token to the client certificate with this SHA-256
    /// thumbprint (`cnf["x5t#S256"]`, RFC 8705 §3).
    pub fn bound_to_certificate(mut self, x5t_s256: &str) -> Self {
        self.claims["cnf"] = json!({ "x5t#S256": x5t_s256 });
        self
    }

    /// The token's scopes (`scope`, space-separated).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self.claims["scope"] = json!(scopes.join(" "));
        self
    }

    /// The token's subject (`sub`).
    pub fn subject(self, subject: impl Into<String>) -> Self {
        self.claim("sub", subject.into())
    }

    /// Valid for `lifetime` from its `iat` (default 5 minutes).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        let iat = self.claims["iat"].as_u64().unwrap_or_else(now);
        self.claims["exp"] = json!(iat.saturating_add(lifetime.as_secs()));
        self
    }

    /// Sets any claim (`acr`, `auth_time`, `authorization_details`, …);
    /// `Value::Null` removes it.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        let value = value.into();
        if let Some(claims) = self.claims.as_object_mut() {
            if value.is_null() {
                claims.remove(name);
            } else {
                claims.insert(name.to_owned(), value);
            }
        }
        self
    }

    /// The claims as they stand.
    pub fn claims(&self) -> &Value {
        &self.claims
    }

    /// Signs the token (`typ` `at+jwt`, ES256).
    pub fn sign(self) -> String {
        self.issuer.sign(&self.claims)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpop_request_names_the_host_and_carries_both_headers() {
        let key = DpopKey::generate();
        let request = dpop_request("POST", "https://api.test:8443/a/b?x=1#f", "tok", &key)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.method(), "POST");
        assert_eq!(request.uri(), "/a/b?x=1");
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("host").as_deref(), Some("api.test:8443"));
        assert_eq!(header("authorization").as_deref(), Some("DPoP tok"));
        let proof = header("dpop").unwrap_or_default();
        let payload = proof.split('.').nth(1).unwrap_or_default();
        use base64::Engine as _;
        let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://api.test:8443/a/b");
        assert_eq!(claims["ath"], senderbound_core::ath("tok"));
    }

    #[test]
    fn dpop_request_needs_an_absolute_url() {
        let key = DpopKey::generate();
        assert!(dpop_request("GET", "/relative", "tok", &key).is_err());
        assert!(dpop_request("GET", "ftp://api.test/", "tok", &key).is_err());
    }
}
