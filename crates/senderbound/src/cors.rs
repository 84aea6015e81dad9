//! CORS for browser DPoP clients: a [`tower_http::cors::CorsLayer`] made
//! for the DPoP and Bearer schemes (feature `cors`).
//!
//! A browser app on another origin calls the API with two request headers
//! that are not CORS-safelisted, `Authorization` and `DPoP`, so the browser
//! first sends a preflight (`OPTIONS` with `Access-Control-Request-*`). It
//! then hides every response header that is not exposed, and the two a DPoP
//! client must read are not safelisted either: `WWW-Authenticate` (which
//! error, which algorithms; RFC 9449 §7.1) and `DPoP-Nonce` (the nonce to
//! retry with; §9). §7.1 asks for exactly this exposure. [`DpopCors`] makes the layer that gets all of this
//! right:
//!
//! - **only the origins you list**, compared exactly as browsers send them
//!   (`https://app.example.com`: the host as the URL Standard parses it, a
//!   default port dropped). No wildcard, no `null`, never the request's
//!   `Origin` reflected;
//! - **no credentials**: `Access-Control-Allow-Credentials` is never sent. A
//!   DPoP client puts its token in `Authorization` itself; cookies are not
//!   needed, and not allowed to ride along;
//! - **https origins only**, except loopback (`http://localhost`,
//!   `http://127.0.0.1`, `http://[::1]`): WebCrypto, which holds the DPoP
//!   key, only works in a secure context, so any other `http` page could not
//!   be a DPoP client anyway;
//! - allowed request headers `Authorization`, `DPoP`, `Content-Type` (and
//!   any you add); exposed `WWW-Authenticate`, `DPoP-Nonce` and
//!   `Retry-After` (the incident cool-down's 429);
//! - **preflights answered before authentication**: put the CORS layer
//!   *outside* the [`SenderBoundLayer`](crate::SenderBoundLayer) (in axum,
//!   `.layer(cors)` after `.layer(senderbound)`). Every `OPTIONS` request,
//!   with or without `Origin`, is then answered by the CORS layer and never
//!   reaches a handler (an `OPTIONS` handler of your own would be hidden),
//!   and every other response, refusals included, carries the CORS
//!   headers, so the browser app can read the challenge. A request from an
//!   origin not listed still reaches the Layer and is checked as any other:
//!   CORS only decides whether the page may read the answer.
//!
//! ```
//! use axum::{Router, routing::get};
//! use senderbound::SenderBoundLayer;
//! use senderbound::cors::DpopCors;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = SenderBoundLayer::builder()
//!     .issuer("https://login.example.com")
//!     .audience("https://api.example.com")
//!     .origin("https://api.example.com")
//!     .build()?;
//! let cors = DpopCors::allow_origins(["https://app.example.com"])?;
//! let app: Router = Router::new()
//!     .route("/notes", get(|| async { "notes" }))
//!     .layer(auth)
//!     .layer(cors.layer()); // outermost: preflights never meet authentication
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};
use url::{Host, Url};

use crate::header::{DPOP, DPOP_NONCE};

/// How long browsers may cache a preflight's answer by default: ten
/// minutes (Chromium caps it at two hours, Firefox at one day).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(600);

/// Why an origin was refused by [`DpopCors::allow_origins`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidOrigin {
    /// `*` or `null`: any page at all, or pages with an opaque origin
    /// (sandboxed frames, `file:` URLs, redirects across origins).
    NotASingleOrigin,
    /// Not `scheme://host[:port]` with nothing after it (no path, not even
    /// `/`; no query, fragment or user information), or a host that is not
    /// a DNS name or an IP address (a wildcard, say).
    Syntax,
    /// An `http` origin that is not loopback: WebCrypto, which holds the
    /// DPoP key, is unavailable to such a page (not a secure context).
    NotSecure,
    /// No origin at all: use no CORS layer instead.
    Empty,
}

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidOrigin::NotASingleOrigin => "`*` and `null` are not origins one can trust",
            InvalidOrigin::Syntax => "an origin is scheme://host[:port], nothing more",
            InvalidOrigin::NotSecure => {
                "an http origin other than loopback cannot hold a WebCrypto key"
            }
            InvalidOrigin::Empty => "no origin given",
        })
    }
}

impl std::error::Error for InvalidOrigin {}

/// A CORS configuration for browser DPoP clients: see the
/// [module docs](self).
#[derive(Debug, Clone)]
#[must_use]
pub struct DpopCors {
    origins: Vec<HeaderValue>,
    methods: Vec<Method>,
    request_headers: Vec<HeaderName>,
    exposed_headers: Vec<HeaderName>,
    max_age: Duration,
}

impl DpopCors {
    /// Allows exactly these origins (`https://app.example.com`,
    /// `http://127.0.0.1:5173`), each as its browser serialisation: the
    /// scheme and host in lower case, a default port dropped.
    ///
    /// ```
    /// use senderbound::cors::{DpopCors, InvalidOrigin};
    ///
    /// assert!(DpopCors::allow_origins(["https://App.Example.com:443"]).is_ok());
    /// assert_eq!(DpopCors::allow_origins(["*"]).unwrap_err(), InvalidOrigin::NotASingleOrigin);
    /// assert_eq!(DpopCors::allow_origins(["https://app.example.com/"]).unwrap_err(), InvalidOrigin::Syntax);
    /// assert_eq!(DpopCors::allow_origins(["http://app.example.com"]).unwrap_err(), InvalidOrigin::NotSecure);
    /// ```
    pub fn allow_origins<I, S>(origins: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut serialised = Vec::new();
        for origin in origins {
            let origin = browser_origin(origin.as_ref())?;
            if !serialised.contains(&origin) {
                serialised.push(origin);
            }
        }
        if serialised.is_empty() {
            return Err(InvalidOrigin::Empty);
        }
        Ok(DpopCors {
            origins: serialised
                .into_iter()
                .map(HeaderValue::try_from)
                .collect::<Result<_, _>>()
                .map_err(|_| InvalidOrigin::Syntax)?,
            methods: vec![
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ],
            request_headers: vec![AUTHORIZATION, DPOP, CONTENT_TYPE],
            exposed_headers: vec![WWW_AUTHENTICATE, DPOP_NONCE, RETRY_AFTER],
            max_age: DEFAULT_MAX_AGE,
        })
    }

    /// The methods a preflight allows (default `GET`, `HEAD`, `POST`, `PUT`,
    /// `PATCH`, `DELETE`).
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// Request headers allowed besides `Authorization`, `DPoP` and
    /// `Content-Type` (for example `mcp-protocol-version` for an MCP server).
    pub fn request_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        for header in headers {
            if !self.request_headers.contains(&header) {
                self.request_headers.push(header);
            }
        }
        self
    }

    /// Response headers exposed besides `WWW-Authenticate`, `DPoP-Nonce`
    /// and `Retry-After` (for example `mcp-session-id` for an MCP server).
    ///
    /// ```
    /// use http::HeaderName;
    /// use senderbound::cors::DpopCors;
    ///
    /// // An MCP server's Streamable HTTP headers, for browser MCP clients.
    /// let cors = DpopCors::allow_origins(["https://inspector.example.com"])?
    ///     .request_headers([
    ///         HeaderName::from_static("mcp-protocol-version"),
    ///         HeaderName::from_static("mcp-session-id"),
    ///         HeaderName::from_static("last-event-id"),
    ///     ])
    ///     .expose_headers([HeaderName::from_static("mcp-session-id")]);
    /// # let _ = cors.layer();
    /// # Ok::<(), senderbound::cors::InvalidOrigin>(())
    /// ```
    pub fn expose_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        for header in headers {
            if !self.exposed_headers.contains(&header) {
                self.exposed_headers.push(header);
            }
        }
        self
    }

    /// How long a browser may reuse a preflight's answer (default
    /// [`DEFAULT_MAX_AGE`]).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The origins allowed, as sent in `Access-Control-Allow-Origin`.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.origins.iter().filter_map(|o| o.to_str().ok())
    }

    /// The tower-http layer. Add it outside the
    /// [`SenderBoundLayer`](crate::SenderBoundLayer).
    pub fn layer(&self) -> CorsLayer {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(self.origins.iter().cloned()))
            .allow_methods(self.methods.clone())
            .allow_headers(self.request_headers.clone())
            .expose_headers(self.exposed_headers.clone())
            .max_age(self.max_age)
    }
}

/// The ASCII serialisation of an origin (HTML's "serialization of an
/// origin"), as browsers send it in `Origin`: `scheme://host[:port]`, the
/// host as the URL Standard parses it (lower case, IDNs in punycode, IPv4
/// in dotted decimal, IPv6 compressed), without a default port.
fn browser_origin(text: &str) -> Result<String, InvalidOrigin> {
    let text = text.trim();
    if text == "*" || text.eq_ignore_ascii_case("null") {
        return Err(InvalidOrigin::NotASingleOrigin);
    }
    // An origin, not a URL: nothing after the authority, not even `/`.
    let (_, authority) = text.split_once("://").ok_or(InvalidOrigin::Syntax)?;
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', '\\']) {
        return Err(InvalidOrigin::Syntax);
    }
    let url = Url::parse(text).map_err(|_| InvalidOrigin::Syntax)?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(InvalidOrigin::Syntax);
    }
    let host = url.host().ok_or(InvalidOrigin::Syntax)?;
    // A wildcard or any other sub-delimiter is a valid URL host but never
    // an origin a browser sends: DNS names are letters, digits, `-`, `.`.
    if let Host::Domain(name) = host
        && !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(InvalidOrigin::Syntax);
    }
    if url.scheme() == "http" && !is_loopback(&host) {
        return Err(InvalidOrigin::NotSecure);
    }
    Ok(url.origin().ascii_serialization())
}

/// Hosts browsers treat as potentially trustworthy over plain http
/// (W3C Secure Contexts §3.1: `localhost` names and loopback addresses).
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => {
            let name = name.strip_suffix('.').unwrap_or(name);
            name == "localhost" || name.ends_with(".localhost")
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_serialised_as_browsers_send_them() {
        for (given, expected) in [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://App.Example.COM:443", "https://app.example.com"),
            (
                "https://app.example.com:8443",
                "https://app.example.com:8443",
            ),
            ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
            ("http://localhost:80", "http://localhost"),
            ("http://[::1]:3000", "http://[::1]:3000"),
            ("http://app.localhost:3000", "http://app.localhost:3000"),
            ("https://[2001:db8::1]", "https://[2001:db8::1]"),
            // As the URL Standard parses hosts, which is what browsers send.
            ("https://[2001:DB8:0:0::1]", "https://[2001:db8::1]"),
            ("http://[0:0:0:0:0:0:0:1]", "http://[::1]"),
            ("https://127.1", "https://127.0.0.1"),
            ("http://0x7f.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
            ("https://app.example.com:0443", "https://app.example.com"),
            ("http://localhost.:3000", "http://localhost.:3000"),
            ("https://app%2Eexample.com", "https://app.example.com"),
        ] {
            assert_eq!(browser_origin(given).as_deref(), Ok(expected), "{given}");
        }
    }

    #[test]
    fn anything_but_one_origin_is_refused() {
        for (given, error) in [
            ("*", InvalidOrigin::NotASingleOrigin),
            ("null", InvalidOrigin::NotASingleOrigin),
            ("NULL", InvalidOrigin::NotASingleOrigin),
            ("app.example.com", InvalidOrigin::Syntax),
            ("https://app.example.com/", InvalidOrigin::Syntax),
            ("https://app.example.com/app", InvalidOrigin::Syntax),
            ("https://app.example.com?x", InvalidOrigin::Syntax),
            ("https://app.example.com#x", InvalidOrigin::Syntax),
            ("https://user@app.example.com", InvalidOrigin::Syntax),
            ("https://", InvalidOrigin::Syntax),
            ("https://app.example.com\\", InvalidOrigin::Syntax),
            ("https://*.example.com", InvalidOrigin::Syntax),
            ("https://app!.example.com", InvalidOrigin::Syntax),
            ("ftp://app.example.com", InvalidOrigin::Syntax),
            ("chrome-extension://abc", InvalidOrigin::Syntax),
            ("https://app.example.com:99999", InvalidOrigin::Syntax),
            ("http://app.example.com", InvalidOrigin::NotSecure),
            ("http://10.0.0.1", InvalidOrigin::NotSecure),
            ("http://localhost.example.com", InvalidOrigin::NotSecure),
        ] {
            assert_eq!(browser_origin(given), Err(error), "{given}");
        }
        assert_eq!(
            DpopCors::allow_origins(Vec::<String>::new()).unwrap_err(),
            InvalidOrigin::Empty
        );
    }

    #[test]
    fn the_same_origin_twice_is_listed_once() {
        let cors =
            DpopCors::allow_origins(["https://app.example.com", "https://APP.example.com:443"])
                .unwrap();
        assert_eq!(
            cors.origins().collect::<Vec<_>>(),
            ["https://app.example.com"]
        );
    }
}
