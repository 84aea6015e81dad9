//! The public URI of a request, which the proof's `htu` must match.
//!
//! Behind a TLS-terminating proxy or under a path prefix, the URI the server
//! sees is not the one the client signed, so deployments can give the public
//! base URL explicitly. Forwarded headers (`X-Forwarded-*`, `Forwarded`) are
//! never trusted for this: a client could set them to anything.

use axum::extract::OriginalUri;
use http::request::Parts;
use senderbound_core::{Error, htu};

/// The request path as the client sent it: inside a nested axum router the
/// URI has lost its prefix, and the original URI still has it.
pub(crate) fn request_path(parts: &Parts) -> &str {
    parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.path(), |o| o.0.path())
}

/// How the public URI of a request is formed.
#[derive(Debug, Clone)]
pub(crate) enum PublicOrigin {
    /// `{scheme}://{Host or :authority}{path}`.
    FromRequest { https: bool },
    /// `{base}{path}`: `base` is normalised, without a trailing slash.
    Base(String),
}

/// Why a public base URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidBaseUrl;

impl PublicOrigin {
    pub(crate) fn base(url: &str) -> Result<Self, InvalidBaseUrl> {
        if url.contains(['?', '#']) {
            return Err(InvalidBaseUrl);
        }
        let mut normalized = htu::normalize(url).map_err(|_| InvalidBaseUrl)?;
        while normalized.ends_with('/') {
            normalized.pop();
        }
        Ok(PublicOrigin::Base(normalized))
    }

    /// The normalised `htu` this request must carry.
    pub(crate) fn htu(&self, parts: &Parts) -> Result<String, Error> {
        let path = request_path(parts);
        let uri = match self {
            PublicOrigin::Base(base) => format!("{base}{path}"),
            PublicOrigin::FromRequest { https } => {
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
                let scheme = if *https { "https" } else { "http" };
                format!("{scheme}://{host}{path}")
            }
        };
        htu::normalize(&uri).map_err(|_| Error::ProofUriMismatch)
    }
}
