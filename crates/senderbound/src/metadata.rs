//! OAuth 2.0 Protected Resource Metadata (RFC 9728): the document that tells
//! a client (an MCP client, an agent) which authorization servers issue
//! tokens for this resource, which scopes exist, and that tokens must be
//! DPoP- or certificate-bound.
//!
//! The document is built from the Layer's own configuration, so it cannot
//! drift from what the Layer enforces: `resource` is this resource's
//! identifier (an audience), `authorization_servers` the trusted issuers,
//! `dpop_signing_alg_values_supported` the accepted proof algorithms,
//! `dpop_bound_access_tokens_required` and
//! `tls_client_certificate_bound_access_tokens` what the Layer accepts.
//! Enable it with
//! [`resource_metadata`](crate::SenderBoundBuilder::resource_metadata); the
//! Layer then answers `GET` (and `HEAD`) on the well-known URL itself,
//! without asking for credentials, and every `401`/`403` challenge carries
//! `resource_metadata="…"` (RFC 9728 §5.1) so a client can find it.
//!
//! ```
//! use senderbound::{SenderBoundLayer, metadata::ResourceMetadata};
//!
//! # fn main() -> Result<(), senderbound::BuildError> {
//! let auth = SenderBoundLayer::builder()
//!     .issuer("https://login.example.com")
//!     .audience("https://api.example.com/mcp")
//!     .origin("https://api.example.com")
//!     .resource_metadata(
//!         ResourceMetadata::new()
//!             .scopes_supported(["notes:read", "notes:write"])
//!             .resource_name("Notes MCP server"),
//!     )
//!     .build()?;
//! assert_eq!(
//!     auth.resource_metadata_url(),
//!     Some("https://api.example.com/.well-known/oauth-protected-resource/mcp")
//! );
//! # Ok(()) }
//! ```

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::tokens::endpoint_url;

/// The well-known path segment of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// What the metadata document says beyond what the Layer's configuration
/// already determines. Every field is optional.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ResourceMetadata {
    resource: Option<String>,
    scopes_supported: Vec<String>,
    authorization_details_types: Vec<String>,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    resource_policy_uri: Option<String>,
    resource_tos_uri: Option<String>,
    at_root: bool,
}

impl ResourceMetadata {
    /// Metadata with nothing beyond the Layer's configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// The resource identifier to describe, when the Layer accepts several
    /// audiences (default: the first
    /// [`audience`](crate::SenderBoundBuilder::audience)). It must be one of
    /// the audiences: a client asks its authorization server for tokens for
    /// this resource (RFC 8707), and the Layer must accept them.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// `scopes_supported`: the scopes clients may ask for to use this resource.
    pub fn scopes_supported<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        scopes: I,
    ) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// `authorization_details_types_supported` (RFC 9728 §2): the
    /// `authorization_details` types (RFC 9396) this resource reads, such
    /// as [`tool_grants::DEFAULT_DETAIL_TYPE`](crate::tool_grants::DEFAULT_DETAIL_TYPE),
    /// so clients know which to ask their authorization server for.
    pub fn authorization_details_types_supported<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        types: I,
    ) -> Self {
        self.authorization_details_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// `resource_name`: a human-readable name, for consent screens.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// `resource_documentation`: a URL of documentation for developers.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// `resource_policy_uri`: a URL of the resource's data-use policy.
    pub fn resource_policy_uri(mut self, url: impl Into<String>) -> Self {
        self.resource_policy_uri = Some(url.into());
        self
    }

    /// Also answer at `/.well-known/oauth-protected-resource` when the
    /// resource has a path (`https://api.example.com/mcp`), for clients
    /// that only look at the root (MCP clients fall back to it). Off by
    /// default: RFC 9728 §3.3 has clients discard a document whose
    /// `resource` is not the URL they built the well-known URL from, and the
    /// root may belong to another resource on the same host.
    pub fn also_at_root(mut self) -> Self {
        self.at_root = true;
        self
    }

    /// `resource_tos_uri`: a URL of the resource's terms of service.
    pub fn resource_tos_uri(mut self, url: impl Into<String>) -> Self {
        self.resource_tos_uri = Some(url.into());
        self
    }
}

/// What the Layer's configuration contributes to the document.
pub(crate) struct Facts<'a> {
    pub(crate) audiences: &'a [String],
    pub(crate) issuers: Vec<String>,
    pub(crate) dpop_algorithms: Vec<&'static str>,
    pub(crate) accept_bearer: bool,
    pub(crate) accept_mtls: bool,
}

/// Why the metadata could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetadataError {
    /// The resource is not an `https` URL (or `http` on loopback) without
    /// query, fragment or credentials.
    ResourceNotUrl,
    /// The resource is not one of the Layer's audiences.
    ResourceNotAudience,
    /// A documentation, policy or terms URL is not an absolute http(s) URL.
    InvalidUrl,
}

/// The document, rendered once, and where it is served.
#[derive(Debug)]
pub(crate) struct ServedMetadata {
    /// Its URL, for the `resource_metadata` challenge parameter.
    pub(crate) url: String,
    /// Request paths answered with it.
    paths: Vec<String>,
    document: Bytes,
}

impl ServedMetadata {
    pub(crate) fn build(config: ResourceMetadata, facts: Facts<'_>) -> Result<Self, MetadataError> {
        let resource = match config.resource {
            Some(r) => r,
            None => facts
                .audiences
                .first()
                .cloned()
                .ok_or(MetadataError::ResourceNotAudience)?,
        };
        if !facts.audiences.contains(&resource) {
            return Err(MetadataError::ResourceNotAudience);
        }
        let url = endpoint_url(&resource).map_err(|_| MetadataError::ResourceNotUrl)?;
        if url.query().is_some() || resource.contains('#') {
            return Err(MetadataError::ResourceNotUrl);
        }
        for link in [
            &config.resource_documentation,
            &config.resource_policy_uri,
            &config.resource_tos_uri,
        ]
        .into_iter()
        .flatten()
        {
            let parsed = url::Url::parse(link).map_err(|_| MetadataError::InvalidUrl)?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(MetadataError::InvalidUrl);
            }
        }
        // RFC 9728 §3.1: the well-known segment goes between the host and
        // the resource's path, whose terminating slash is dropped.
        let suffix = url.path().trim_end_matches('/');
        let path = format!("{WELL_KNOWN}{suffix}");
        let origin = url.origin().ascii_serialization();
        let metadata_url = format!("{origin}{path}");
        let mut paths = vec![path];
        if config.at_root && !suffix.is_empty() {
            paths.push(WELL_KNOWN.to_owned());
        }

        let mut doc = Map::new();
        doc.insert("resource".into(), json!(resource));
        doc.insert("authorization_servers".into(), json!(facts.issuers));
        if !config.scopes_supported.is_empty() {
            doc.insert("scopes_supported".into(), json!(config.scopes_supported));
        }
        if !config.authorization_details_types.is_empty() {
            doc.insert(
                "authorization_details_types_supported".into(),
                json!(config.authorization_details_types),
            );
        }
        // Tokens are accepted in the Authorization header only (RFC 6750 §2.1).
        doc.insert("bearer_methods_supported".into(), json!(["header"]));
        doc.insert(
            "dpop_signing_alg_values_supported".into(),
            json!(facts.dpop_algorithms),
        );
        doc.insert(
            "dpop_bound_access_tokens_required".into(),
            json!(!facts.accept_bearer && !facts.accept_mtls),
        );
        doc.insert(
            "tls_client_certificate_bound_access_tokens".into(),
            json!(facts.accept_mtls),
        );
        let optional = [
            ("resource_name", config.resource_name),
            ("resource_documentation", config.resource_documentation),
            ("resource_policy_uri", config.resource_policy_uri),
            ("resource_tos_uri", config.resource_tos_uri),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                doc.insert(name.into(), json!(value));
            }
        }
        Ok(ServedMetadata {
            url: metadata_url,
            paths,
            document: Bytes::from(Value::Object(doc).to_string()),
        })
    }

    /// The paths the document is served at.
    pub(crate) fn paths(&self) -> &[String] {
        &self.paths
    }

    /// The response for a request to the metadata, or `None` if `method` and
    /// `path` are not a metadata request.
    pub(crate) fn answer(&self, method: &Method, path: &str) -> Option<Response> {
        if !(method == Method::GET || method == Method::HEAD)
            || !self.paths.iter().any(|p| p == path)
        {
            return None;
        }
        let body = match *method {
            Method::HEAD => Body::empty(),
            _ => Body::from(self.document.clone()),
        };
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
        // Public by nature; browser-based clients must be able to read it.
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(audiences: &[String]) -> Facts<'_> {
        Facts {
            audiences,
            issuers: vec!["https://as.example.com".into()],
            dpop_algorithms: vec!["ES256", "EdDSA"],
            accept_bearer: false,
            accept_mtls: false,
        }
    }

    #[test]
    fn the_well_known_url_goes_between_host_and_path() {
        let cases = [
            (
                "https://api.example.com",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example.com/",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example.com:8443/v1/mcp",
                "https://api.example.com:8443/.well-known/oauth-protected-resource/v1/mcp",
            ),
            (
                "http://127.0.0.1:3000/mcp/",
                "http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp",
            ),
        ];
        for (resource, url) in cases {
            let audiences = [resource.to_owned()];
            let served = ServedMetadata::build(ResourceMetadata::new(), facts(&audiences)).unwrap();
            assert_eq!(served.url, url, "{resource}");
        }
    }

    #[test]
    fn resources_that_cannot_be_described_are_refused() {
        let audiences = [
            "https://api.example.com/mcp".to_owned(),
            "urn:example:api".to_owned(),
        ];
        let build = |m: ResourceMetadata| ServedMetadata::build(m, facts(&audiences)).err();
        assert_eq!(
            build(ResourceMetadata::new().resource("https://other.example.com")),
            Some(MetadataError::ResourceNotAudience)
        );
        assert_eq!(
            build(ResourceMetadata::new().resource("urn:example:api")),
            Some(MetadataError::ResourceNotUrl)
        );
        assert_eq!(
            build(ResourceMetadata::new().resource_documentation("javascript:alert(1)")),
            Some(MetadataError::InvalidUrl)
        );
        let plain = ["http://api.example.com/mcp".to_owned()];
        assert_eq!(
            ServedMetadata::build(ResourceMetadata::new(), facts(&plain)).err(),
            Some(MetadataError::ResourceNotUrl)
        );
        let query = ["https://api.example.com/mcp?x=1".to_owned()];
        assert_eq!(
            ServedMetadata::build(ResourceMetadata::new(), facts(&query)).err(),
            Some(MetadataError::ResourceNotUrl)
        );
    }

    #[test]
    fn only_get_and_head_on_the_metadata_paths_are_answered() {
        let audiences = ["https://api.example.com/mcp".to_owned()];
        let served = ServedMetadata::build(ResourceMetadata::new(), facts(&audiences)).unwrap();
        let path = "/.well-known/oauth-protected-resource/mcp";
        assert!(served.answer(&Method::GET, path).is_some());
        assert!(served.answer(&Method::HEAD, path).is_some());
        assert!(served.answer(&Method::GET, WELL_KNOWN).is_none());
        let rooted =
            ServedMetadata::build(ResourceMetadata::new().also_at_root(), facts(&audiences))
                .unwrap();
        assert!(rooted.answer(&Method::GET, WELL_KNOWN).is_some());
        assert!(served.answer(&Method::POST, path).is_none());
        assert!(
            served
                .answer(&Method::GET, "/.well-known/oauth-protected-resource/other")
                .is_none()
        );
        assert!(served.answer(&Method::GET, "/mcp").is_none());
    }
}
