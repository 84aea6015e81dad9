//! DPoP for MCP clients built with the official Rust SDK (`rmcp`): a
//! Streamable HTTP client that sends every request with `Authorization:
//! DPoP <token>` and a fresh proof for that request (feature `rmcp`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use rmcp::ServiceExt;
//! use rmcp::transport::StreamableHttpClientTransport;
//! use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
//! use senderbound_client::{DpopKey, DpopSession, mcp::DpopMcpClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let session = Arc::new(DpopSession::new(DpopKey::generate()));
//! // … session.request_token(…) first, so it holds a token bound to its key.
//! let client = DpopMcpClient::new(reqwest::Client::new(), session);
//! let transport = StreamableHttpClientTransport::with_client(
//!     client,
//!     StreamableHttpClientTransportConfig::with_uri("https://api.example.com/mcp"),
//! );
//! let mcp = ().serve(transport).await?;
//! let tools = mcp.list_all_tools().await?;
//! # let _ = tools; Ok(()) }
//! ```
//!
//! When the server asks for a nonce (`401 use_dpop_nonce`), the rmcp
//! transport does not hand on the `DPoP-Nonce` header, so the client learns
//! the nonce from one `HEAD` request to the same URL (refused, with the
//! nonce) and retries once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_core::stream::BoxStream;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::Sse;

/// rmcp's own default limit for one server-sent event (16 MiB).
const MAX_SSE_EVENT_SIZE: usize = 16 * 1024 * 1024;

use crate::{DpopSession, asks_for_nonce};

/// An rmcp [`StreamableHttpClient`] that signs each request with the
/// session's key and sends the token held with it.
#[derive(Clone, Debug)]
pub struct DpopMcpClient {
    http: reqwest::Client,
    session: Arc<DpopSession>,
}

impl DpopMcpClient {
    /// Requests go out with `http`, signed by `session` (which must hold a
    /// token bound to its key, see [`DpopSession::hold_token`]).
    pub fn new(http: reqwest::Client, session: Arc<DpopSession>) -> Self {
        DpopMcpClient { http, session }
    }

    /// `custom` plus `Authorization` and a proof for `method` `uri`, read
    /// as reqwest will read it when rmcp sends the request. A `uri` reqwest
    /// cannot send to gets neither: its request fails before it leaves.
    fn headers(
        &self,
        method: &str,
        uri: &str,
        mut custom: HashMap<HeaderName, HeaderValue>,
    ) -> HashMap<HeaderName, HeaderValue> {
        let token = self.session.access_token();
        let Ok(proof) = self.session.proof(method, uri, token.as_deref()) else {
            return custom;
        };
        if let Some(token) = token
            && let Ok(value) = HeaderValue::from_str(&format!("DPoP {token}"))
        {
            custom.insert(reqwest::header::AUTHORIZATION, value);
        }
        if let Ok(value) = HeaderValue::from_str(&proof) {
            custom.insert(HeaderName::from_static("dpop"), value);
        }
        custom
    }

    /// After `401 use_dpop_nonce`: learns the server's current nonce;
    /// `true` if there is a new one to retry with.
    async fn fresh_nonce<E: std::error::Error + Send + Sync + 'static>(
        &self,
        uri: &str,
        error: &StreamableHttpError<E>,
    ) -> bool {
        let StreamableHttpError::AuthRequired(e) = error else {
            return false;
        };
        if !asks_for_nonce(401, [e.www_authenticate_header.as_str()]) {
            return false;
        }
        self.session.probe_nonce(&self.http, uri).await
    }
}

type Failure = StreamableHttpError<reqwest::Error>;

impl DpopMcpClient {
    /// Runs `send` with signed headers for `method` `uri`; once more with a
    /// new proof if the server asked for a (new) nonce.
    async fn signed<T, F, Fut>(
        &self,
        method: &str,
        uri: &str,
        custom: &HashMap<HeaderName, HeaderValue>,
        mut send: F,
    ) -> Result<T, Failure>
    where
        F: FnMut(HashMap<HeaderName, HeaderValue>) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let first = send(self.headers(method, uri, custom.clone())).await;
        match first {
            Err(e) if self.fresh_nonce(uri, &e).await => {
                send(self.headers(method, uri, custom.clone())).await
            }
            other => other,
        }
    }
}

impl StreamableHttpClient for DpopMcpClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.post_message_with_max_sse_event_size(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            MAX_SSE_EVENT_SIZE,
        )
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.signed("POST", &uri, &custom_headers, |headers| {
            self.http.post_message_with_max_sse_event_size(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                None,
                headers,
                max_sse_event_size,
            )
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.signed("DELETE", &uri, &custom_headers, |headers| {
            self.http
                .delete_session(uri.clone(), session_id.clone(), None, headers)
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_header,
            custom_headers,
            MAX_SSE_EVENT_SIZE,
        )
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.signed("GET", &uri, &custom_headers, |headers| {
            self.http.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                None,
                headers,
                max_sse_event_size,
            )
        })
        .await
    }
}
