//! An MCP server (the official Rust SDK, `rmcp`, Streamable HTTP) that
//! accepts only DPoP-bound tokens, with tools that know who called them.
//!
//! ```text
//! cargo run --example mcp_server                 # MCP on 127.0.0.1:3000/mcp, demo AS on :3001
//! cargo run --example mcp_agent                  # in another terminal: an agent calls the tools
//! ```
//!
//! - `/mcp` is the rmcp `StreamableHttpService` (a tower service), behind
//!   `SenderBoundLayer`: every request needs `Authorization: DPoP` and a
//!   fresh proof; the verified `Sender` reaches the tools through the
//!   request extensions (`Extension<http::request::Parts>`).
//! - `Authorize` reads each JSON-RPC message and applies per-tool scopes:
//!   `add_note` needs `notes:write`, everything else `notes:read`. A refusal
//!   is `403 insufficient_scope` with the scope to ask for, and every tool
//!   call is one audit event naming the tool, the token and its key.
//! - The Layer serves the RFC 9728 metadata at
//!   `/.well-known/oauth-protected-resource/mcp`, and every `401` points at
//!   it, so MCP clients find the authorization server.
//! - One key used by two clients is refused (key-sharing detection), and an
//!   MCP session id only works with the key that opened the session.
//! - Without `--issuer`, a **demo-only** authorization server runs on
//!   `--dev-as-listen`, issuing DPoP-bound tokens to the client
//!   `notes-agent` / `notes-agent-secret` (scopes `notes:read notes:write`).
//!   With `--issuer`, tokens come from your AS (its metadata and JWKS are
//!   discovered) and no demo AS runs.
//!
//! Audit events go to stderr; `listening on URL` goes to stdout.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use clap::Parser;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, schemars, tool, tool_router};
use senderbound::authorize::{Authorize, Denied, PolicyRequest};
use senderbound::key_sharing::KeySharing;
use senderbound::metadata::ResourceMetadata;
use senderbound::{Sender, SenderBound};
use senderbound_suite::dev_as::DevAs;
use senderbound_suite::server_cli::{announce, ctrl_c, log_to_stderr};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(about = "An MCP server protected by senderbound (DPoP-bound tokens only)")]
struct Args {
    /// Address of the MCP server.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Trust this authorization server instead of running the demo one.
    #[arg(long)]
    issuer: Option<String>,
    /// Address of the demo-only authorization server (without --issuer).
    #[arg(long, default_value = "127.0.0.1:3001")]
    dev_as_listen: SocketAddr,
}

/// One note, and who wrote it (as verified, not as claimed).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
struct Note {
    text: String,
    client_id: String,
    /// Thumbprint of the key that signed the request that wrote it.
    jkt: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct AddNote {
    /// The note's text.
    text: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct NoteList {
    notes: Vec<Note>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Caller {
    client_id: String,
    subject: String,
    binding: String,
    jkt: String,
    scopes: Vec<String>,
}

/// The MCP server: two notes tools and `whoami`.
#[derive(Clone)]
struct NotesServer {
    notes: Arc<Mutex<Vec<Note>>>,
}

/// The verified sender, put into the request by the Layer; rmcp hands the
/// HTTP request parts to tools as an extension.
fn sender(parts: &http::request::Parts) -> Result<&Sender, ErrorData> {
    parts
        .extensions
        .get::<Sender>()
        .ok_or_else(|| ErrorData::internal_error("no verified sender", None))
}

#[tool_router(server_handler)]
impl NotesServer {
    #[tool(description = "Who is calling: the verified client, subject, key and scopes")]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<Json<Caller>, ErrorData> {
        let sender = sender(&parts)?;
        Ok(Json(Caller {
            client_id: sender.client_id().unwrap_or_default().to_owned(),
            subject: sender.subject().unwrap_or_default().to_owned(),
            binding: sender.binding().as_str().to_owned(),
            jkt: sender.jkt().unwrap_or_default().to_owned(),
            scopes: sender.scopes().to_vec(),
        }))
    }

    #[tool(description = "List the notes (scope notes:read)")]
    async fn list_notes(&self) -> Json<NoteList> {
        let notes = self.notes.lock().map(|n| n.clone()).unwrap_or_default();
        Json(NoteList { notes })
    }

    #[tool(description = "Add a note (scope notes:write)")]
    async fn add_note(
        &self,
        Extension(parts): Extension<http::request::Parts>,
        Parameters(AddNote { text }): Parameters<AddNote>,
    ) -> Result<Json<Note>, ErrorData> {
        let sender = sender(&parts)?;
        let note = Note {
            text,
            client_id: sender.client_id().unwrap_or_default().to_owned(),
            jkt: sender.jkt().unwrap_or_default().to_owned(),
        };
        if let Ok(mut notes) = self.notes.lock() {
            notes.push(note.clone());
        }
        Ok(Json(note))
    }
}

/// MCP session ids bound to the key that first used them: a session id
/// leaked to another client (with a valid token of its own) is useless.
/// (An example: a real server would bound this map or keep it in rmcp's
/// session store.)
#[derive(Clone, Default)]
struct SessionOwners(Arc<Mutex<std::collections::HashMap<String, String>>>);

impl SessionOwners {
    fn check(&self, req: &PolicyRequest) -> Result<(), Denied> {
        let (Some(session), Some(jkt)) = (
            req.headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok()),
            req.sender().jkt(),
        ) else {
            return Ok(());
        };
        let mut owners = self
            .0
            .lock()
            .map_err(|_| Denied::new("session table unavailable"))?;
        let owner = owners
            .entry(session.to_owned())
            .or_insert_with(|| jkt.to_owned());
        if owner == jkt {
            Ok(())
        } else {
            Err(Denied::new("MCP session used with another key").suspicious())
        }
    }
}

/// Per-tool scopes: `add_note` needs `notes:write`, every other MCP
/// message `notes:read`.
fn tool_scopes(req: &PolicyRequest) -> Result<(), Denied> {
    let needed = match req.tool() {
        Some("add_note") => "notes:write",
        _ => "notes:read",
    };
    if req.sender().has_scope(needed) {
        Ok(())
    } else {
        let what = req.tool().unwrap_or("this MCP request");
        Err(Denied::new(format!("{what} needs {needed}")).needs_scopes([needed]))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    log_to_stderr();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let resource = format!("{origin}/mcp");

    let builder = SenderBound::builder()
        .audience(&resource)
        .public_base_url(&origin)
        .resource_metadata(
            ResourceMetadata::new()
                .scopes_supported(["notes:read", "notes:write"])
                .resource_name("senderbound notes (MCP example)"),
        )
        .detect_key_sharing(KeySharing::new().reject());
    let (builder, dev_as) = match &args.issuer {
        Some(issuer) => (builder.issuer(issuer), None),
        None => {
            let as_listener = tokio::net::TcpListener::bind(args.dev_as_listen).await?;
            let issuer = format!("http://{}/dev-as", as_listener.local_addr()?);
            let dev = DevAs::new(&issuer, &[&resource]).client(
                "notes-agent",
                "notes-agent-secret",
                &["notes:read", "notes:write"],
            );
            let builder = builder.issuer(&issuer).jwks_json(dev.jwks_json());
            (builder, Some((as_listener, dev)))
        }
    };
    let auth = builder.build()?;

    let notes = Arc::new(Mutex::new(Vec::new()));
    let sessions = SessionOwners::default();
    let mcp = StreamableHttpService::new(
        move || {
            Ok(NotesServer {
                notes: notes.clone(),
            })
        },
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default(),
    );
    let app = Router::new()
        .route_service("/mcp", mcp)
        .route_layer(
            Authorize::new(move |req: &PolicyRequest| {
                sessions.check(req)?;
                tool_scopes(req)
            })
            .inspect_mcp_calls(),
        )
        .layer(auth.layer());

    if let Some((as_listener, dev)) = dev_as {
        eprintln!(
            "demo-only authorization server: {} (token endpoint {})",
            dev.issuer(),
            dev.token_endpoint()
        );
        tokio::spawn(async move { axum::serve(as_listener, dev.router()).await });
    }
    if let Some(url) = auth.resource_metadata_url() {
        eprintln!("resource metadata: {url}");
    }
    announce(&resource)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(ctrl_c())
        .await?;
    Ok(())
}
