//! Asking an authorization server for a DPoP-bound access token (RFC 9449
//! §5): the token request carries a proof, so the token is bound to the
//! session's key, and the nonce an AS may ask for (§8) is handled.

use std::fmt;

use serde::Deserialize;

use crate::DpopSession;

/// A token request: grant type, client authentication and parameters.
///
/// ```
/// use senderbound_client::TokenRequest;
///
/// let request = TokenRequest::client_credentials("notes-agent", "secret")
///     .scope("notes:read")
///     .resource("https://api.example.com/mcp");
/// # let _ = request;
/// ```
#[derive(Clone)]
#[must_use]
pub struct TokenRequest {
    params: Vec<(String, String)>,
    client_id: String,
    client_secret: Option<String>,
}

impl fmt::Debug for TokenRequest {
    // Never the client secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenRequest {
    /// The `client_credentials` grant, authenticated with HTTP Basic
    /// (`client_secret_basic`, RFC 6749 §2.3.1).
    pub fn client_credentials(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        TokenRequest {
            params: vec![("grant_type".into(), "client_credentials".into())],
            client_id: client_id.into(),
            client_secret: Some(client_secret.into()),
        }
    }

    /// Any grant, for a public client (`client_id` in the form).
    pub fn grant(grant_type: impl Into<String>, client_id: impl Into<String>) -> Self {
        TokenRequest {
            params: vec![("grant_type".into(), grant_type.into())],
            client_id: client_id.into(),
            client_secret: None,
        }
    }

    /// `scope`: what the token should allow.
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.param("scope", scope)
    }

    /// `resource` (RFC 8707): where the token will be used, so the AS
    /// restricts its audience. Repeatable.
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.param("resource", resource)
    }

    /// Any other form parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    fn form(&self) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.params {
            form.append_pair(name, value);
        }
        if self.client_secret.is_none() {
            form.append_pair("client_id", &self.client_id);
        }
        form.finish()
    }
}

/// A successful token response. `Debug` does not show the token.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// `DPoP` (anything else is refused by [`DpopSession::request_token`]).
    pub token_type: String,
    /// Lifetime in seconds, if the AS said.
    pub expires_in: Option<u64>,
    /// The scopes granted, if the AS said.
    pub scope: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Why no bound token was obtained.
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenError {
    /// The request could not be sent or the answer read.
    Http(reqwest::Error),
    /// The AS refused: its HTTP status and `error` code, if any.
    Refused {
        /// HTTP status.
        status: u16,
        /// The OAuth `error` code.
        error: Option<String>,
    },
    /// The AS answered with a token that is not DPoP-bound (`token_type`
    /// other than `DPoP`): it ignored the proof, and a bearer token is
    /// not what was asked for.
    NotBound,
    /// The answer is not a token response.
    Malformed,
    /// The token endpoint is not an absolute `http(s)` URL with a host.
    InvalidUrl,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Http(e) => write!(f, "token request failed: {e}"),
            TokenError::Refused { status, error } => write!(
                f,
                "token request refused: HTTP {status} {}",
                error.as_deref().unwrap_or("")
            ),
            TokenError::NotBound => f.write_str("the authorization server issued an unbound token"),
            TokenError::Malformed => f.write_str("the token response is malformed"),
            TokenError::InvalidUrl => f.write_str("the token endpoint is not an http(s) URL"),
        }
    }
}

impl std::error::Error for TokenError {}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
}

impl DpopSession {
    /// Asks `token_endpoint` for an access token bound to this session's
    /// key, and holds it with the key
    /// ([`send_with_token`](Self::send_with_token) uses it). If the AS asks
    /// for a nonce (`400 use_dpop_nonce` with `DPoP-Nonce`, RFC 9449 §8),
    /// the request is sent once more with it.
    pub async fn request_token(
        &self,
        http: &reqwest::Client,
        token_endpoint: &str,
        request: &TokenRequest,
    ) -> Result<TokenResponse, TokenError> {
        // Parsed once, as reqwest parses it: the proof names the server the
        // request goes to.
        let endpoint = crate::parse_target(token_endpoint).map_err(|_| TokenError::InvalidUrl)?;
        let mut retried = false;
        loop {
            let mut builder = http
                .post(endpoint.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .header("dpop", self.proof_for_url("POST", &endpoint, None))
                .body(request.form());
            if let Some(secret) = &request.client_secret {
                // RFC 6749 §2.3.1: both are form-encoded before Basic.
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                builder = builder.basic_auth(encode(&request.client_id), Some(encode(secret)));
            }
            let response = builder.send().await.map_err(TokenError::Http)?;
            let status = response.status().as_u16();
            let nonce = response
                .headers()
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Under the origin that answered (after any redirect).
            if let Some(nonce) = &nonce {
                self.remember_nonce_for_url(response.url(), nonce);
            }
            let body = response.bytes().await.map_err(TokenError::Http)?;
            if status != 200 {
                let error = serde_json::from_slice::<ErrorBody>(&body)
                    .ok()
                    .and_then(|b| b.error);
                if status == 400
                    && error.as_deref() == Some("use_dpop_nonce")
                    && nonce.is_some()
                    && !retried
                {
                    retried = true;
                    continue;
                }
                return Err(TokenError::Refused { status, error });
            }
            let token: TokenResponse =
                serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)?;
            if !token.token_type.eq_ignore_ascii_case("DPoP") {
                return Err(TokenError::NotBound);
            }
            self.hold_token(token.access_token.clone());
            return Ok(token);
        }
    }
}
