//! The public URI of a request, which the proof's `htu` must match.
//!
//! Behind a TLS-terminating proxy or under a path prefix, the URI the server
//! sees is not the one the client signed, so deployments can give the public
//! base URL explicitly. Forwarded headers (`X-Forwarded-*`, `Forwarded`) are
//! never trusted for this: a client could set them to anything. `Host` is
//! client-controlled too, so without a base URL it must be one of the
//! configured hosts: otherwise a proof made for another server that accepts
//! the same token could be replayed here with that server's `Host`.

use axum::extract::OriginalUri;
use http::request::Parts;
use senderbound_core::{Error, htu};

/// The request path as the client sent it: inside a nested axum router the
/// URI has lost its prefix, and the original URI still has it.
pub(crate) fn request_path(parts: &Parts) -> &str {
    original_uri(&parts.extensions, &parts.uri).path()
}

/// The request URI as the client sent it: axum's `OriginalUri` if a nested
/// router recorded one, else `uri`.
pub(crate) fn original_uri<'a>(
    extensions: &'a http::Extensions,
    uri: &'a http::Uri,
) -> &'a http::Uri {
    extensions.get::<OriginalUri>().map_or(uri, |o| &o.0)
}

/// How the public URI of a request is formed.
#[derive(Debug, Clone)]
pub(crate) enum PublicOrigin {
    /// `{scheme}://{Host or :authority}{path}`, the host checked against
    /// `allowed` (normalised origins such as `https://api.example.com`),
    /// or any host when `allowed` is `None` (explicit opt-in only).
    FromRequest {
        https: bool,
        allowed: Option<Vec<String>>,
    },
    /// `{base}{path}`: `base` is normalised, without a trailing slash.
    Base(String),
}

/// Why a public base URL or host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidOrigin;

impl PublicOrigin {
    pub(crate) fn base(url: &str) -> Result<Self, InvalidOrigin> {
        if url.contains(['?', '#']) {
            return Err(InvalidOrigin);
        }
        let mut normalized = htu::normalize(url).map_err(|_| InvalidOrigin)?;
        while normalized.ends_with('/') {
            normalized.pop();
        }
        Ok(PublicOrigin::Base(normalized))
    }

    /// Hosts (`name` or `name:port`) requests may be addressed to.
    pub(crate) fn hosts<'h>(
        https: bool,
        hosts: impl IntoIterator<Item = &'h str>,
    ) -> Result<Self, InvalidOrigin> {
        let scheme = if https { "https" } else { "http" };
        let allowed = hosts
            .into_iter()
            .map(|h| {
                let mut origin =
                    htu::normalize(&format!("{scheme}://{h}/")).map_err(|_| InvalidOrigin)?;
                origin.pop(); // the trailing slash
                if origin.matches('/').count() != 2 {
                    return Err(InvalidOrigin); // a path in a host name
                }
                Ok(origin)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PublicOrigin::FromRequest {
            https,
            allowed: Some(allowed),
        })
    }

    /// The normalised `htu` this request must carry.
    pub(crate) fn htu(&self, parts: &Parts) -> Result<String, Error> {
        let path = request_path(parts);
        if !htu::is_normalized_path(path) {
            return Err(Error::PathNotNormalized);
        }
        let joined = |parts: &[&str]| {
            let mut uri = String::with_capacity(parts.iter().map(|p| p.len()).sum());
            parts.iter().for_each(|p| uri.push_str(p));
            uri
        };
        match self {
            // `base` is normalised and a plain path changes nothing: the
            // two side by side are the htu, in one allocation.
            PublicOrigin::Base(base) if htu::is_plain_path(path) => Ok(joined(&[base, path])),
            PublicOrigin::Base(base) => {
                htu::normalize_owned(joined(&[base, path])).map_err(|_| Error::ProofUriMismatch)
            }
            PublicOrigin::FromRequest { https, allowed } => {
                let host = match parts.uri.authority() {
                    Some(authority) => authority.as_str(),
                    None => {
                        let mut hosts = parts.headers.get_all(http::header::HOST).iter();
                        match (hosts.next(), hosts.next()) {
                            (Some(h), None) => h.to_str().map_err(|_| Error::MissingHost)?,
                            _ => return Err(Error::MissingHost),
                        }
                    }
                };
                let scheme = if *https { "https://" } else { "http://" };
                let uri = htu::normalize_owned(joined(&[scheme, host, path]))
                    .map_err(|_| Error::HostNotAllowed)?;
                let served = allowed.as_ref().is_none_or(|origins| {
                    origins.iter().any(|o| {
                        uri.strip_prefix(o.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                    })
                });
                if served {
                    Ok(uri)
                } else {
                    Err(Error::HostNotAllowed)
                }
            }
        }
    }
}
