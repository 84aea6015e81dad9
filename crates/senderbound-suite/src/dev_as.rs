//! A **demo-only** authorization server: RFC 8414 metadata and a token
//! endpoint that issues DPoP-bound JWT access tokens (RFC 9068, `cnf.jkt`
//! from the proof on the token request, RFC 9449 §5) for the
//! `client_credentials` grant, to fixed clients. It lets the MCP example
//! run without a real AS. No persistence, no refresh tokens, no consent:
//! never use it for anything real.
//!
//! For the agent-governance flows it also takes, on the token request:
//! - `acr_values` (RFC 9470 §4, space-separated): the token records the
//!   first value it supports ([`ACR_VALUES`]) as `acr`, as if the human
//!   behind the agent had just approved the task that way. Every token
//!   records `auth_time` (now) and `amr` `["pwd"]`; without `acr_values`,
//!   `acr` is [`ACR_BASIC`].
//! - `authorization_details` (RFC 9396 §6, a JSON array): copied into the
//!   token and the response (§7) if every detail's `type` is one it
//!   supports ([`DETAIL_TYPES`]); otherwise `invalid_authorization_details`
//!   (§5).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use senderbound_core::htu;
use senderbound_core::proof::{ProofPolicy, RequestFacts};
use serde_json::{Value, json};

use crate::TestIssuer;

/// Lifetime of the tokens issued, in seconds.
pub const TOKEN_LIFETIME: u64 = 300;
/// The `acr` of a token issued without `acr_values`.
pub const ACR_BASIC: &str = "urn:senderbound:demo:basic";
/// The `acr` values the demo AS issues on request; the second stands for
/// "a human approved this task".
pub const ACR_VALUES: [&str; 2] = [ACR_BASIC, "urn:senderbound:demo:approved"];
/// The `authorization_details` types the demo AS issues.
pub const DETAIL_TYPES: [&str; 1] = ["mcp_tools"];

/// A client the demo AS knows (no `Debug`: it holds the secret).
#[derive(Clone)]
pub struct DevClient {
    id: String,
    secret: String,
    scopes: Vec<String>,
}

/// The demo AS; see the [module](self) docs.
#[derive(Clone)]
pub struct DevAs {
    inner: Arc<Inner>,
}

struct Inner {
    signer: TestIssuer,
    /// `{issuer}/token`.
    token_endpoint: String,
    /// Resources (audiences) tokens may be issued for; the first is the default.
    resources: Vec<String>,
    clients: Vec<DevClient>,
}

impl DevAs {
    /// An AS with identifier `issuer` (an `http(s)://host[:port]/path` URL)
    /// that issues tokens for `resources`.
    pub fn new(issuer: &str, resources: &[&str]) -> Self {
        let issuer = issuer.trim_end_matches('/');
        DevAs {
            inner: Arc::new(Inner {
                signer: TestIssuer::new(issuer),
                token_endpoint: format!("{issuer}/token"),
                resources: resources.iter().map(|r| (*r).to_owned()).collect(),
                clients: Vec::new(),
            }),
        }
    }

    /// Registers a client that may ask for (a subset of) `scopes`. Call
    /// before cloning the `DevAs` (or calling [`router`](Self::router)):
    /// afterwards it is ignored.
    pub fn client(mut self, id: &str, secret: &str, scopes: &[&str]) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.clients.push(DevClient {
                id: id.into(),
                secret: secret.into(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            });
        }
        self
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        self.inner.signer.issuer()
    }

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> &str {
        &self.inner.token_endpoint
    }

    /// The public keys, as a JWKS document, for the resource server.
    pub fn jwks_json(&self) -> String {
        self.inner.signer.jwks_json()
    }

    /// The routes: metadata at `/.well-known/oauth-authorization-server{path}`
    /// (RFC 8414 §3.1), the token endpoint at `{path}/token`, keys at
    /// `{path}/jwks`.
    pub fn router(&self) -> Router {
        let path = url::Url::parse(self.issuer())
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        Router::new()
            .route(
                &format!("/.well-known/oauth-authorization-server{path}"),
                get(metadata),
            )
            .route(&format!("{path}/token"), post(token))
            .route(&format!("{path}/jwks"), get(jwks))
            .with_state(self.clone())
    }
}

async fn metadata(State(dev): State<DevAs>) -> Json<Value> {
    Json(json!({
        "issuer": dev.issuer(),
        "token_endpoint": dev.token_endpoint(),
        "jwks_uri": format!("{}/jwks", dev.issuer()),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "dpop_signing_alg_values_supported": senderbound::Algorithm::ALL.map(|a| a.as_str()),
        "acr_values_supported": ACR_VALUES,
        "authorization_details_types_supported": DETAIL_TYPES,
    }))
}

async fn jwks(State(dev): State<DevAs>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        dev.jwks_json(),
    )
        .into_response()
}

/// An OAuth error response (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str) -> Response {
    (
        status,
        [(http::header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": error })),
    )
        .into_response()
}

/// `client_id:client_secret` from HTTP Basic (each form-decoded, RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let form = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((form(id)?, form(secret)?))
}

async fn token(State(dev): State<DevAs>, headers: HeaderMap, body: String) -> Response {
    let inner = &dev.inner;
    let Some((id, secret)) = basic_credentials(&headers) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let Some(client) = inner
        .clients
        .iter()
        .find(|c| c.id == id && c.secret == secret)
    else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if param("grant_type") != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    // The token is bound to the key that signed the proof (RFC 9449 §5).
    let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    };
    let Ok(htu) = htu::normalize(&inner.token_endpoint) else {
        return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    };
    let now = senderbound::clock::Clock::now(&senderbound::clock::SystemClock);
    let facts = RequestFacts {
        method: "POST",
        htu: &htu,
        access_token_hash: None,
        now,
    };
    let Ok(proof) = ProofPolicy::new().verify(proof, &facts) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    };
    let scope = match param("scope") {
        Some(asked) => {
            if !asked
                .split(' ')
                .all(|s| client.scopes.iter().any(|c| c == s))
            {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
            }
            asked.to_owned()
        }
        None => client.scopes.join(" "),
    };
    let resource = match param("resource") {
        Some(r) if inner.resources.iter().any(|known| known == r) => r.to_owned(),
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_target"),
        None => match inner.resources.first() {
            Some(r) => r.clone(),
            None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_target"),
        },
    };
    let acr = match param("acr_values") {
        None => ACR_BASIC,
        Some(asked) => match asked.split(' ').find(|v| ACR_VALUES.contains(v)) {
            Some(acr) => acr,
            None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
        },
    };
    let details = match param("authorization_details").map(serde_json::from_str::<Value>) {
        None => None,
        Some(Ok(Value::Array(details)))
            if details.iter().all(|d| {
                d["type"]
                    .as_str()
                    .is_some_and(|t| DETAIL_TYPES.contains(&t))
            }) =>
        {
            Some(Value::Array(details))
        }
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_authorization_details"),
    };
    let mut claims = inner
        .signer
        .claims(&resource, Some(proof.jkt()), &scope, now);
    claims["client_id"] = json!(client.id);
    claims["sub"] = json!(client.id);
    claims["exp"] = json!(now + TOKEN_LIFETIME);
    claims["acr"] = json!(acr);
    claims["amr"] = json!(["pwd"]);
    claims["auth_time"] = json!(now);
    let mut answer = json!({
        "token_type": "DPoP",
        "expires_in": TOKEN_LIFETIME,
        "scope": scope,
    });
    if let Some(details) = details {
        claims["authorization_details"] = details.clone();
        answer["authorization_details"] = details;
    }
    answer["access_token"] = json!(inner.signer.sign(&claims));
    ([(http::header::CACHE_CONTROL, "no-store")], Json(answer)).into_response()
}
