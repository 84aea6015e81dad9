//! [`Origin`]: the public origin requests are addressed to, which every
//! proof's `htu` is checked against.

use crate::layer::BuildError;
use crate::target_uri::PublicOrigin;

/// Where clients address this service: the scheme, host and any path prefix
/// of the URL they sign as the proof's `htu` (RFC 9449 §4.3, check 9).
///
/// - [`Origin::public_url`] (or a plain string): the public URL, including
///   any path prefix a proxy strips, e.g. `https://api.example.com/v1`. The
///   `htu` must be this URL followed by the request path. The usual choice,
///   and the only one that is right behind a TLS-terminating proxy.
/// - [`Origin::hosts`]: requests addressed (by `Host` or the HTTP/2
///   `:authority`) to one of these hosts; the `htu` is `https://` + that
///   host + the path.
/// - [`Origin::any_host`]: whatever host the request names. A proof made
///   for another server that accepts the same tokens could then be replayed
///   here; prefer the other two.
///
/// `Host` is client-controlled and forwarded headers (`X-Forwarded-*`,
/// `Forwarded`) are never trusted for this.
///
/// ```
/// use senderbound::Origin;
///
/// let behind_proxy = Origin::public_url("https://api.example.com/v1");
/// let same: Origin = "https://api.example.com/v1".into();
/// let several = Origin::hosts(["api.example.com", "api.example.org:8443"]);
/// let dev = Origin::hosts(["localhost:3000"]).plain_http();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Origin {
    kind: Kind,
    plain_http: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    PublicUrl(String),
    Hosts(Vec<String>),
    AnyHost,
}

impl Origin {
    /// The public URL (`http(s)://host[:port][/prefix]`, no query or
    /// fragment).
    pub fn public_url(url: impl Into<String>) -> Self {
        Origin {
            kind: Kind::PublicUrl(url.into()),
            plain_http: false,
        }
    }

    /// Requests addressed to these hosts (`name` or `name:port`).
    pub fn hosts<I, S>(hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Origin {
            kind: Kind::Hosts(hosts.into_iter().map(Into::into).collect()),
            plain_http: false,
        }
    }

    /// Requests addressed to any host; see the type's docs for the risk.
    pub fn any_host() -> Self {
        Origin {
            kind: Kind::AnyHost,
            plain_http: false,
        }
    }

    /// With [`hosts`](Self::hosts) or [`any_host`](Self::any_host): the
    /// `htu` starts with `http://`, for plain-HTTP development servers. A
    /// public URL names its scheme itself: with it, this is a build error.
    pub fn plain_http(mut self) -> Self {
        self.plain_http = true;
        self
    }

    pub(crate) fn resolve(&self) -> Result<PublicOrigin, BuildError> {
        let https = !self.plain_http;
        match &self.kind {
            Kind::PublicUrl(_) if self.plain_http => Err(BuildError::InvalidOrigin),
            Kind::PublicUrl(url) => PublicOrigin::base(url).map_err(|_| BuildError::InvalidOrigin),
            Kind::Hosts(hosts) if hosts.is_empty() => Err(BuildError::InvalidOrigin),
            Kind::Hosts(hosts) => PublicOrigin::hosts(https, hosts.iter().map(String::as_str))
                .map_err(|_| BuildError::InvalidOrigin),
            Kind::AnyHost => Ok(PublicOrigin::FromRequest {
                https,
                allowed: None,
            }),
        }
    }
}

impl From<&str> for Origin {
    fn from(url: &str) -> Self {
        Origin::public_url(url)
    }
}

impl From<&String> for Origin {
    fn from(url: &String) -> Self {
        Origin::public_url(url.as_str())
    }
}

impl From<String> for Origin {
    fn from(url: String) -> Self {
        Origin::public_url(url)
    }
}
