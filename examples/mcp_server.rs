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
//! - `AuthorizeLayer` reads each JSON-RPC message and applies the MCP
//!   authorization spec's scope model: any valid token for this resource
//!   may `initialize`, send notifications, `ping` and list tools; calling a
//!   tool needs that tool's scope (`list_notes` needs `notes:read`,
//!   `add_note` `notes:write`, `whoami` none; `--tool-scope TOOL=SCOPE`
//!   changes them, a tool not listed is refused). A refusal is
//!   `403 insufficient_scope` with the scope to ask for, and every
//!   tool call is one audit event naming the tool, the token and its key.
//! - `delete_notes` is risky: it needs a human's approval on record, the
//!   `acr` `urn:senderbound:demo:approved` at most five minutes old
//!   (`auth_time`). A token without is refused with `401
//!   insufficient_user_authentication` and `acr_values`/`max_age` (RFC
//!   9470), so the agent goes back to the AS for one.
//! - Tool grants (RFC 9396): a token whose `authorization_details` hold an
//!   `mcp_tools` detail may call only the tools it lists, with the argument
//!   constraints it sets (403 and the reason in the audit event otherwise);
//!   `--require-tool-grants` holds every token to one. The metadata names
//!   the type in `authorization_details_types_supported`.
//! - `--incident-threshold N` turns suspicious refusals into incident
//!   events; `--audit-log FILE` writes every audit event as a JSON line
//!   (docs/audit.md).
//! - The Layer serves the RFC 9728 metadata at
//!   `/.well-known/oauth-protected-resource/mcp`, and every `401` points at
//!   it, so MCP clients find the authorization server.
//! - One key used by two clients is refused (key-sharing detection), and an
//!   MCP session id only works with the key that opened the session.
//! - Without `--issuer`, a **demo-only** authorization server runs on
//!   `--dev-as-listen`, issuing DPoP-bound tokens to the client
//!   `notes-agent` / `notes-agent-secret` (scopes `notes:read notes:write`).
//!   With `--issuer`, tokens come from your AS and no demo AS runs: the
//!   flags are `resource_server`'s (`--audience`, default `ORIGIN/mcp`;
//!   `--public-base-url` or `--allowed-host`; `--jwks-uri`, `--jwks-file`;
//!   `--nonce-secret`; `--algs`; `--redis-url`; `--profile`; `--log-level`;
//!   see `--help`), so it can stand in front of any authorization server,
//!   or be the target of the MCP conformance suite (docs/security.md).
//! - `--cors-origin ORIGIN` (repeatable) lets browser MCP clients on that
//!   origin call it: `Authorization`, `DPoP` and the Streamable HTTP headers
//!   (`mcp-protocol-version`, `mcp-session-id`, `last-event-id`) and
//!   `Content-Type` allowed; `WWW-Authenticate`, `DPoP-Nonce`, `Retry-After`
//!   and `mcp-session-id` exposed; and rmcp checks `Origin` against the
//!   same list.
//!
//! Audit events go to stderr; `listening on URL` goes to stdout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use clap::Parser;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, schemars, tool, tool_router};
use senderbound::Sender;
use senderbound::authorize::{AuthorizeLayer, Denied, PolicyRequest};
use senderbound::cors::DpopCors;
use senderbound::key_sharing::KeySharing;
use senderbound::metadata::ResourceMetadata;
use senderbound::step_up::StepUp;
use senderbound::tokens::{Binding, Issuer};
use senderbound::tool_grants::{self, ToolGrants};
use senderbound_suite::dev_as::DevAs;
use senderbound_suite::server_cli::{ServerArgs, announce, ctrl_c};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(about = "An MCP server protected by senderbound (DPoP-bound tokens only)")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Address of the demo-only authorization server (without --issuer).
    #[arg(long, default_value = "127.0.0.1:3001")]
    dev_as_listen: SocketAddr,
    /// The scope a tool call needs, as TOOL=SCOPE (TOOL= for none).
    /// Repeatable; replaces the defaults (whoami=, list_notes=notes:read,
    /// add_note=notes:write). Tools not listed cannot be called.
    #[arg(long, value_parser = tool_scope)]
    tool_scope: Vec<(String, String)>,
    /// Every tool call needs an `mcp_tools` authorization detail granting
    /// it (by default only tokens that carry one are held to it).
    #[arg(long)]
    require_tool_grants: bool,
}

/// The `acr` a human approval is recorded as (see the demo AS).
const APPROVED: &str = "urn:senderbound:demo:approved";

fn tool_scope(arg: &str) -> Result<(String, String), String> {
    arg.split_once('=')
        .map(|(tool, scope)| (tool.to_owned(), scope.to_owned()))
        .ok_or_else(|| format!("expected TOOL=SCOPE, got {arg}"))
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
            binding: match sender.binding() {
                Binding::Dpop { .. } => "dpop",
                Binding::Mtls { .. } => "mtls",
                Binding::Unbound => "bearer",
            }
            .to_owned(),
            jkt: sender.binding().jkt().unwrap_or_default().to_owned(),
            scopes: sender.scopes().to_vec(),
        }))
    }

    #[tool(description = "List the notes (scope notes:read)")]
    async fn list_notes(&self) -> Json<NoteList> {
        let notes = self.notes.lock().map(|n| n.clone()).unwrap_or_default();
        Json(NoteList { notes })
    }

    #[tool(description = "Delete every note (scope notes:write, and a human's approval)")]
    async fn delete_notes(&self) -> Json<NoteList> {
        let notes = self
            .notes
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default();
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
            jkt: sender.binding().jkt().unwrap_or_default().to_owned(),
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
            req.sender().binding().jkt(),
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

/// The MCP authorization spec's scope model: a valid token for this
/// resource may do everything but call tools; a tool call needs the tool's
/// scope (403 `insufficient_scope` naming it, so the client can step up),
/// and a tool with no entry cannot be called.
#[derive(Clone)]
struct ToolScopes(Arc<HashMap<String, String>>);

impl ToolScopes {
    fn new(configured: Vec<(String, String)>) -> Self {
        let scopes = if configured.is_empty() {
            vec![
                ("whoami".to_owned(), String::new()),
                ("list_notes".to_owned(), "notes:read".to_owned()),
                ("add_note".to_owned(), "notes:write".to_owned()),
                ("delete_notes".to_owned(), "notes:write".to_owned()),
            ]
        } else {
            configured
        };
        ToolScopes(Arc::new(scopes.into_iter().collect()))
    }

    fn supported(&self) -> Vec<String> {
        let mut scopes: Vec<String> = self.0.values().filter(|s| !s.is_empty()).cloned().collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    fn check(&self, req: &PolicyRequest) -> Result<(), Denied> {
        let Some(tool) = req.tool() else {
            return Ok(()); // initialize, notifications, ping, tools/list, …
        };
        match self.0.get(tool).map(String::as_str) {
            None => Err(Denied::new(format!("tool {tool} is not offered"))),
            Some("") => Ok(()),
            Some(needed) if req.sender().has_scope(needed) => Ok(()),
            Some(needed) => {
                Err(Denied::new(format!("{tool} needs {needed}")).needs_scopes([needed]))
            }
        }
    }
}

/// rmcp's Streamable HTTP settings. With `--cors-origin`, rmcp also checks
/// `Origin` itself (the MCP transport asks servers to, against DNS
/// rebinding): the same origins, each with its port written out (rmcp reads
/// an origin without a port as any port).
fn mcp_config(cors: Option<&DpopCors>) -> StreamableHttpServerConfig {
    let config = StreamableHttpServerConfig::default();
    let Some(cors) = cors else { return config };
    config.with_allowed_origins(cors.origins().filter_map(|origin| {
        let url = url::Url::parse(origin).ok()?;
        let port = url.port_or_known_default()?;
        Some(format!("{}://{}:{port}", url.scheme(), url.host_str()?))
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    args.server.init_logging()?;
    let listener = tokio::net::TcpListener::bind(args.server.listen).await?;
    let addr = listener.local_addr()?;
    let scopes = ToolScopes::new(args.tool_scope.clone());
    let require_tool_grants = args.require_tool_grants;
    let mut server = args.server;
    if server.audience.is_empty() {
        let origin = server.public_base_url("http", addr);
        server
            .audience
            .push(format!("{}/mcp", origin.trim_end_matches('/')));
    }
    let resource = server.audience[0].clone();
    let grants = ToolGrants::new().resource(&resource);
    let grants = if require_tool_grants {
        grants
    } else {
        grants.optional()
    };
    // A risky tool needs a human's approval on record, recent.
    let approval = StepUp::new()
        .acr_values([APPROVED])
        .max_age(Duration::from_secs(300));

    let builder = server
        .builder("http", addr)?
        .resource_metadata(
            ResourceMetadata::new()
                .resource(&resource)
                .scopes_supported(scopes.supported())
                .authorization_details_types_supported([tool_grants::DEFAULT_DETAIL_TYPE])
                .resource_name("senderbound notes (MCP example)"),
        )
        .key_sharing(KeySharing::new().reject());
    let (builder, dev_as) = match &server.issuer {
        Some(issuer) => {
            if !server.names_token_keys() {
                eprintln!("keys of {issuer}: discovered from its metadata");
            }
            (builder.trust(server.trusted_issuer(issuer)?), None)
        }
        None if server.names_token_keys() => {
            return Err("--jwks-uri, --jwks-file and introspection need --issuer".into());
        }
        None => {
            let as_listener = tokio::net::TcpListener::bind(args.dev_as_listen).await?;
            let issuer = format!("http://{}/dev-as", as_listener.local_addr()?);
            let dev = DevAs::new(&issuer, &[&resource]).client(
                "notes-agent",
                "notes-agent-secret",
                &["notes:read", "notes:write"],
            );
            let builder = builder.trust(Issuer::new(&issuer).keys(dev.jwks_json()));
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
        mcp_config(server.cors()?.as_ref()),
    );
    let app = Router::new()
        .route_service("/mcp", mcp)
        .route_layer(
            AuthorizeLayer::new(move |req: &PolicyRequest| {
                sessions.check(req)?;
                scopes.check(req)?;
                grants.check_call(req)?;
                if req.tool() == Some("delete_notes") && !approval.is_met_by(req) {
                    return Err(Denied::new("delete_notes needs a recent human approval")
                        .needs_authentication(approval.clone()));
                }
                Ok(())
            })
            .inspect_mcp_calls(),
        )
        .layer(auth.clone());
    // Browser MCP clients on --cors-origin: the Streamable HTTP headers too.
    let app = match server.cors()? {
        Some(cors) => app.layer(
            cors.request_headers(
                ["mcp-protocol-version", "mcp-session-id", "last-event-id"]
                    .map(axum::http::HeaderName::from_static),
            )
            .expose_headers([axum::http::HeaderName::from_static("mcp-session-id")])
            .layer(),
        ),
        None => app,
    };

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
    senderbound::serve::serve(listener, app)
        .with_graceful_shutdown(ctrl_c())
        .await?;
    Ok(())
}
