//! An agent that calls the MCP server of `examples/mcp_server.rs` with
//! DPoP-bound tokens, one key per task.
//!
//! ```text
//! cargo run --example mcp_server      # first, in another terminal
//! cargo run --example mcp_agent
//! ```
//!
//! 1. Discovers the authorization server from the resource's RFC 9728
//!    metadata (checking that it describes the URL it was fetched for),
//!    then the token endpoint from the AS's RFC 8414 metadata.
//! 2. Gives each task its own key (`TaskKeys`) and a token bound to it,
//!    with only the scopes the task needs: `summarise` gets `notes:read`,
//!    `record` gets `notes:read notes:write`.
//! 3. Talks MCP with the official Rust SDK's client, through
//!    `DpopMcpClient`, which signs a proof for every request.
//! 4. Shows what the server enforces: the read-only task may not call
//!    `add_note` (403, with the scope to ask for); a token copied from one
//!    task is useless with another task's key (401).
//! 5. Step-up (RFC 9470): `delete_notes` is refused with `401
//!    insufficient_user_authentication` and the `acr_values` it needs; the
//!    agent goes back to the AS with those `acr_values` (the demo AS stands
//!    in for the human who approves) and the call goes through.
//! 6. Tool grants (RFC 9396): a task whose token carries an `mcp_tools`
//!    authorization detail may call only the tools it lists, with the
//!    argument constraints it sets: a note too long, or a tool not
//!    granted, is 403.
//!
//! Exits non-zero if any outcome differs from the expected one.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ServiceExt};
use senderbound_client::mcp::DpopMcpClient;
use senderbound_client::{DpopSession, TaskKeys, TokenRequest};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "An MCP agent with one DPoP key per task")]
struct Args {
    /// The MCP server (its resource identifier).
    #[arg(long, default_value = "http://127.0.0.1:3000/mcp")]
    server: String,
    /// Client id at the authorization server.
    #[arg(long, default_value = "notes-agent")]
    client_id: String,
    /// Client secret (or the MCP_AGENT_CLIENT_SECRET variable).
    #[arg(
        long,
        env = "MCP_AGENT_CLIENT_SECRET",
        hide_env_values = true,
        default_value = "notes-agent-secret"
    )]
    client_secret: String,
}

/// The agent has no client-side features (sampling, roots, …).
#[derive(Clone, Default)]
struct Agent;
impl ClientHandler for Agent {}

type Mcp = RunningService<RoleClient, Agent>;
type Failure = Box<dyn std::error::Error>;

/// `scheme://host[:port]` + `/.well-known/{name}` + path (RFC 9728 §3.1,
/// RFC 8414 §3.1).
fn well_known(url: &str, name: &str) -> Result<String, Failure> {
    let url = url::Url::parse(url)?;
    let path = url.path().trim_end_matches('/');
    Ok(format!(
        "{}/.well-known/{name}{path}",
        url.origin().ascii_serialization()
    ))
}

/// The token endpoint of the AS that protects `resource`, discovered.
async fn discover(http: &reqwest::Client, resource: &str) -> Result<String, Failure> {
    let metadata: Value = http
        .get(well_known(resource, "oauth-protected-resource")?)
        .send()
        .await?
        .json()
        .await?;
    // RFC 9728 §3.3: the document must describe the resource asked about.
    if metadata["resource"] != resource {
        return Err(format!("metadata describes {} instead", metadata["resource"]).into());
    }
    println!("resource metadata: {metadata}");
    let issuer = metadata["authorization_servers"][0]
        .as_str()
        .ok_or("no authorization server in the metadata")?;
    let as_metadata: Value = http
        .get(well_known(issuer, "oauth-authorization-server")?)
        .send()
        .await?
        .json()
        .await?;
    if as_metadata["issuer"] != issuer {
        return Err("authorization server metadata for another issuer".into());
    }
    Ok(as_metadata["token_endpoint"]
        .as_str()
        .ok_or("no token endpoint")?
        .to_owned())
}

/// An MCP client session that signs with `session`'s key.
async fn connect(
    http: &reqwest::Client,
    server: &str,
    session: Arc<DpopSession>,
) -> Result<Mcp, Failure> {
    let transport = StreamableHttpClientTransport::with_client(
        DpopMcpClient::new(http.clone(), session),
        StreamableHttpClientTransportConfig::with_uri(server.to_owned()),
    );
    Ok(Agent.serve(transport).await?)
}

async fn call(mcp: &Mcp, tool: &str, arguments: Value) -> Result<Value, ServiceError> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(arguments) = arguments {
        params = params.with_arguments(arguments);
    }
    let result = mcp.call_tool(params).await?;
    Ok(result.structured_content.unwrap_or(Value::Null))
}

/// `true` if `error` is an HTTP refusal with this status and error code.
fn refused(error: &Failure, status: u16, code: &str) -> bool {
    let text = format!("{error:?}");
    let status_matches = match status {
        401 => text.contains("AuthRequired"),
        403 => text.contains("InsufficientScope"),
        _ => false,
    };
    status_matches && text.contains(&format!("error=\\\"{code}\\\""))
}

/// A token request for this agent with `scope`, for the MCP server.
fn token_request(args: &Args, scope: &str) -> TokenRequest {
    TokenRequest::client_credentials(&args.client_id, &args.client_secret)
        .scope(scope)
        .resource(&args.server)
}

/// A challenge parameter's value from an HTTP refusal, as the MCP client
/// reports it.
fn challenge_param(error: &Failure, name: &str) -> Option<String> {
    let text = format!("{error:?}");
    let start = text.find(&format!("{name}=\\\""))? + name.len() + 3;
    text[start..].split("\\\"").next().map(str::to_owned)
}

struct Report {
    failures: usize,
}

impl Report {
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            println!("  ok    {what}: {detail}");
        } else {
            println!("  FAIL  {what}: {detail}");
            self.failures += 1;
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(0) => {
            println!("every outcome as expected");
            ExitCode::SUCCESS
        }
        Ok(n) => {
            println!("{n} unexpected outcome(s)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("mcp_agent: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<usize, Failure> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let token_endpoint = discover(&http, &args.server).await?;
    println!("token endpoint: {token_endpoint}");
    let mut report = Report { failures: 0 };

    // One key per task, each token bound to its task's key, scoped to it.
    let keys = TaskKeys::new();
    let tasks = [
        ("summarise", "notes:read"),
        ("record", "notes:read notes:write"),
    ];
    for (task, scope) in tasks {
        let session = keys.session(task);
        let token = session
            .request_token(&http, &token_endpoint, &token_request(&args, scope))
            .await?;
        println!(
            "task {task}: key {} token scope {:?}",
            session.key().jkt(),
            token.scope
        );
    }

    println!("\ntask record (notes:read notes:write)");
    let record = connect(&http, &args.server, keys.session("record")).await?;
    let tools = record.list_all_tools().await?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    report.check("tools/list", names.len() == 4, format!("{names:?}"));
    let me = call(&record, "whoami", json!({})).await?;
    report.check(
        "whoami names this task's key",
        me["jkt"] == keys.session("record").key().jkt() && me["binding"] == "dpop",
        &me,
    );
    let note = call(&record, "add_note", json!({"text": "from the record task"})).await?;
    report.check(
        "add_note records the verified writer",
        note["jkt"] == keys.session("record").key().jkt(),
        &note,
    );

    println!("\ntask summarise (notes:read)");
    let summarise = connect(&http, &args.server, keys.session("summarise")).await?;
    let notes = call(&summarise, "list_notes", json!({})).await?;
    report.check(
        "list_notes",
        notes["notes"].as_array().is_some_and(|n| !n.is_empty()),
        &notes,
    );
    let denied = call(&summarise, "add_note", json!({"text": "not allowed"}))
        .await
        .map_err(Failure::from);
    match denied {
        Err(e) => report.check(
            "add_note without notes:write is 403 insufficient_scope",
            refused(&e, 403, "insufficient_scope") && format!("{e:?}").contains("notes:write"),
            "refused, scope notes:write named",
        ),
        Ok(v) => report.check("add_note without notes:write", false, v),
    }

    println!("\na token copied from one task, used with another task's key");
    let thief = Arc::new(DpopSession::new(keys.session("summarise").key().clone()));
    thief.hold_token(keys.session("record").access_token().unwrap_or_default());
    match connect(&http, &args.server, thief).await {
        Err(e) => report.check(
            "refused with 401 invalid_token",
            refused(&e, 401, "invalid_token"),
            "the proof's key is not the token's",
        ),
        Ok(_) => report.check("copied token", false, "accepted"),
    }

    println!("\ntask record: delete_notes needs a human's approval (step-up)");
    let acr_values = match call(&record, "delete_notes", json!({}))
        .await
        .map_err(Failure::from)
    {
        Err(e) if refused(&e, 401, "insufficient_user_authentication") => {
            let acr_values = challenge_param(&e, "acr_values");
            report.check(
                "delete_notes without approval is 401 insufficient_user_authentication",
                acr_values.is_some() && challenge_param(&e, "max_age").as_deref() == Some("300"),
                format!("acr_values {acr_values:?}, max_age 300"),
            );
            acr_values.unwrap_or_default()
        }
        Err(e) => {
            report.check("delete_notes without approval", false, format!("{e:?}"));
            String::new()
        }
        Ok(v) => {
            report.check("delete_notes without approval", false, v);
            String::new()
        }
    };
    // Back to the AS, asking for what the challenge named (a real AS would
    // have the human approve here).
    let approved = keys
        .session("record")
        .request_token(
            &http,
            &token_endpoint,
            &token_request(&args, "notes:read notes:write")
                .param("acr_values", &acr_values)
                .param("max_age", "300"),
        )
        .await?;
    println!("  approved token scope {:?}", approved.scope);
    let deleted = call(&record, "delete_notes", json!({})).await;
    report.check(
        "delete_notes with the approval on record",
        deleted.as_ref().is_ok_and(|v| v["notes"].is_array()),
        format!("{deleted:?}"),
    );

    println!("\ntask grant: a token granting whoami and add_note (text at most 40 characters)");
    let grant = keys.session("grant");
    let details = json!([{
        "type": "mcp_tools",
        "locations": [args.server],
        "tools": ["whoami", {"name": "add_note", "arguments": {"text": {"maxLength": 40}}}]
    }]);
    let token = grant
        .request_token(
            &http,
            &token_endpoint,
            &token_request(&args, "notes:read notes:write")
                .param("authorization_details", details.to_string()),
        )
        .await?;
    println!("  token scope {:?}", token.scope);
    let granted = connect(&http, &args.server, grant).await?;
    let short = call(&granted, "add_note", json!({"text": "within the grant"})).await;
    report.check(
        "add_note within the grant",
        short.is_ok(),
        format!("{short:?}"),
    );
    for (what, tool, arguments) in [
        (
            "a note longer than the grant allows",
            "add_note",
            json!({"text": "x".repeat(41)}),
        ),
        ("a tool the grant does not list", "list_notes", json!({})),
    ] {
        match call(&granted, tool, arguments).await.map_err(Failure::from) {
            Err(e) => report.check(
                &format!("{what} is 403 insufficient_scope"),
                refused(&e, 403, "insufficient_scope"),
                "refused, the reason in the audit event",
            ),
            Ok(v) => report.check(what, false, v),
        }
    }

    for mcp in [record, summarise, granted] {
        let _ = mcp.cancel().await;
    }
    // The tasks are over: their keys and tokens are gone.
    for task in ["record", "summarise", "grant"] {
        keys.finish(task);
    }
    Ok(report.failures)
}
