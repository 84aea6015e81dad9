//! HTTP fetches from authorization servers: metadata, JWKS, introspection.
//!
//! One place decides what an acceptable endpoint is (`https`, or `http` to a
//! loopback address only), how long a fetch may take and how large an answer
//! may be. Failures are [`FetchError`]s that never carry response bodies.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use url::Url;

/// Default timeout for a whole fetch (connect, send, read).
pub(crate) const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest metadata, JWKS or introspection answer read.
pub(crate) const MAX_RESPONSE_BYTES: usize = 512 * 1024;

/// Why an authorization server endpoint could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// Not an absolute URL.
    InvalidUrl,
    /// Plain `http` to a host that is not a loopback address, or another
    /// scheme, or credentials or a fragment in the URL.
    InsecureUrl,
    /// Connection, TLS or timeout failure.
    Unreachable,
    /// The server answered with this non-success status.
    Status(u16),
    /// The answer was larger than 512 KiB.
    TooLarge,
    /// The answer was not the expected JSON document.
    Malformed,
    /// The metadata's `issuer` is not the configured issuer (RFC 8414 §3.3).
    IssuerMismatch,
    /// The metadata has no `jwks_uri` (or no introspection endpoint when one
    /// is needed).
    MissingEndpoint,
    /// The JWKS holds no usable signing key (the cached keys are kept).
    NoUsableKey,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::InvalidUrl => f.write_str("not an absolute URL"),
            FetchError::InsecureUrl => f.write_str(
                "endpoint must be https (plain http only to loopback), without credentials or fragment",
            ),
            FetchError::Unreachable => f.write_str("unreachable or timed out"),
            FetchError::Status(s) => write!(f, "answered HTTP {s}"),
            FetchError::TooLarge => f.write_str("answer too large"),
            FetchError::Malformed => f.write_str("answer is not the expected JSON document"),
            FetchError::IssuerMismatch => {
                f.write_str("metadata issuer differs from the configured issuer")
            }
            FetchError::MissingEndpoint => f.write_str("metadata lacks a needed endpoint"),
            FetchError::NoUsableKey => f.write_str("the JWKS holds no usable signing key"),
        }
    }
}

impl std::error::Error for FetchError {}

/// Parses `url` and checks it may be fetched from: `https`, or `http` to a
/// loopback address (`127.0.0.0/8`, `::1`, `localhost`) for development and
/// tests. No user-info, no fragment.
pub(crate) fn endpoint_url(url: &str) -> Result<Url, FetchError> {
    let parsed = Url::parse(url).map_err(|_| FetchError::InvalidUrl)?;
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.fragment().is_some() {
        return Err(FetchError::InsecureUrl);
    }
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        _ => Err(FetchError::InsecureUrl),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The HTTP client senderbound fetches with, plus its limits.
#[derive(Clone, Debug)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
}

/// The default client: rustls with the platform's trust store, no
/// redirects (a redirect could leave https), a timeout on every fetch.
pub(crate) fn default_client(timeout: Duration) -> Result<reqwest::Client, FetchError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("senderbound/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|_| FetchError::Unreachable)
}

/// How a request to the authorization server authenticates this resource.
pub(crate) enum Auth<'a> {
    None,
    Basic { id: &'a str, secret: &'a str },
}

impl Fetcher {
    /// Every fetch is bounded by `timeout`, whatever the client's settings.
    pub(crate) fn new(client: reqwest::Client, timeout: Duration) -> Self {
        Fetcher { client, timeout }
    }

    /// GETs a JSON document.
    pub(crate) async fn get_json(&self, url: &Url) -> Result<Bytes, FetchError> {
        let request = self
            .client
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json");
        self.read(request).await
    }

    /// POSTs a form, expecting a JSON answer.
    pub(crate) async fn post_form(
        &self,
        url: &Url,
        auth: Auth<'_>,
        form: String,
    ) -> Result<Bytes, FetchError> {
        let mut request = self
            .client
            .post(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        if let Auth::Basic { id, secret } = auth {
            // RFC 6749 §2.3.1: form-encode both parts before Basic.
            request = request.basic_auth(form_encode(id), Some(form_encode(secret)));
        }
        self.read(request).await
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub(crate) fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl Fetcher {
    async fn read(&self, request: reqwest::RequestBuilder) -> Result<Bytes, FetchError> {
        tokio::time::timeout(self.timeout, read(request))
            .await
            .map_err(|_| FetchError::Unreachable)?
    }
}

async fn read(request: reqwest::RequestBuilder) -> Result<Bytes, FetchError> {
    let mut response = request.send().await.map_err(|_| FetchError::Unreachable)?;
    // A custom client may follow redirects: the final URL must still be
    // one we would fetch from.
    endpoint_url(response.url().as_str())?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| FetchError::Unreachable)?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        assert!(endpoint_url("https://as.example.com/jwks").is_ok());
        assert!(endpoint_url("http://127.0.0.1:8080/jwks").is_ok());
        assert_eq!(
            endpoint_url("http://as.example.com/jwks").unwrap_err(),
            FetchError::InsecureUrl
        );
    }

    #[test]
    fn endpoint_rules() {
        for ok in [
            "https://as.example.com/.well-known/jwks.json",
            "http://127.0.0.1:9000/jwks",
            "http://[::1]:9000/jwks",
            "http://localhost/jwks",
            "http://127.8.9.10/jwks",
        ] {
            assert!(endpoint_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://as.example.com/jwks", FetchError::InsecureUrl),
            ("http://10.0.0.1/jwks", FetchError::InsecureUrl),
            ("http://localhost.evil.com/jwks", FetchError::InsecureUrl),
            ("ftp://as.example.com/jwks", FetchError::InsecureUrl),
            (
                "https://user:pw@as.example.com/jwks",
                FetchError::InsecureUrl,
            ),
            ("https://as.example.com/jwks#x", FetchError::InsecureUrl),
            ("/jwks", FetchError::InvalidUrl),
            ("", FetchError::InvalidUrl),
        ] {
            assert_eq!(endpoint_url(bad).unwrap_err(), why, "{bad}");
        }
    }

    #[test]
    fn form_encoding_of_credentials() {
        assert_eq!(form_encode("a b:c/é"), "a+b%3Ac%2F%C3%A9");
    }
}
