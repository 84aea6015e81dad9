//! The governance record: a scripted agent session (valid calls, a stolen
//! token, a step-up, a call outside the grant, a shared key), its audit
//! events written as JSON lines exactly as the example servers'
//! `--audit-log` writes them, and from the JSON alone a
//! who-did-what-with-which-key table (docs/audit.md), every field asserted.
//!
//! `cargo test --test governance_record -- --nocapture` prints the table.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::Request;
use senderbound::authorize::{Denied, PolicyRequest};
use senderbound::incident::Incidents;
use senderbound::key_sharing::KeySharing;
use senderbound::step_up::StepUp;
use senderbound::tool_grants::ToolGrants;
use senderbound::{AuthorizeLayer, Sender};
use senderbound_client::DpopKey;
use senderbound_suite::capture::Captured;
use senderbound_suite::harness::{HOST, Harness, Reply};
use serde_json::{Value, json};

const APPROVED: &str = "urn:example:approved";

async fn ok(_: Sender) -> &'static str {
    "{}"
}

/// The MCP endpoint: tool grants required, `delete_notes` needs a recent
/// approval.
fn mcp() -> Router {
    let grants = ToolGrants::new().resource("https://api.example.test/mcp");
    let approval = StepUp::new()
        .acr_values([APPROVED])
        .max_age(Duration::from_secs(300));
    let policy = move |req: &PolicyRequest| {
        grants.check_call(req)?;
        if req.tool() == Some("delete_notes") && !approval.is_met_by(req) {
            return Err(Denied::new("delete_notes needs a recent approval")
                .needs_authentication(approval.clone()));
        }
        Ok(())
    };
    Router::new()
        .route("/mcp", post(ok))
        .route_layer(AuthorizeLayer::new(policy).inspect_mcp_calls())
}

fn grant() -> Value {
    json!([{"type": "mcp_tools", "locations": ["https://api.example.test/mcp"],
            "tools": ["list_notes", "delete_notes",
                      {"name": "add_note", "arguments": {"text": {"maxLength": 40}}}]}])
}

/// A token for `client`, bound to `key`, with `extra` claims.
fn token(h: &Harness, client: &str, key: &DpopKey, extra: Value) -> String {
    let mut claims = h.claims();
    claims["client_id"] = json!(client);
    claims["sub"] = json!(format!("{client}-user"));
    claims["cnf"] = json!({"jkt": key.jkt()});
    claims["scope"] = json!("notes:read notes:write");
    for (name, value) in extra.as_object().unwrap() {
        claims[name] = value.clone();
    }
    h.issuer.sign(&claims)
}

async fn call(h: &Harness, key: &DpopKey, token: &str, tool: &str, arguments: Value) -> Reply {
    let proof = h.proof_by(key, "POST", "/mcp", token);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": tool, "arguments": arguments}});
    let req = Request::post("/mcp")
        .header("host", HOST)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    h.call(req).await
}

/// One row of the reconstructed record: a request (its events merged by
/// `request_id`) or an incident.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Row {
    who: String,
    key: String,
    bound_to: String,
    approval: String,
    grant: String,
    action: String,
    authenticate: String,
    authorize: String,
    status: String,
    finding: String,
}

/// Reads a string field (every documented field is present).
fn field<'a>(e: &'a Value, name: &str) -> &'a str {
    e[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} missing in {e}"))
}

/// The table, from the JSON lines alone; `label` names key thumbprints.
fn reconstruct(events: &[Value], label: &dyn Fn(&str) -> String) -> Vec<Row> {
    let mut rows: Vec<(String, Row)> = Vec::new();
    for e in events {
        assert_eq!(e["schema"], 1, "{e}");
        let id = field(e, "request_id").to_owned();
        let outcome = match field(e, "outcome") {
            "allow" => "allow".to_owned(),
            _ => format!("deny {}", field(e, "error")),
        };
        let status = e["status"].as_u64().unwrap();
        if field(e, "finding") == "incident" {
            let subject = field(e, "incident_subject");
            rows.push((
                format!("{id}/incident"),
                Row {
                    who: field(e, "client_id").to_owned(),
                    key: label(field(e, "jkt")),
                    finding: format!(
                        "INCIDENT {subject}: {} in {} s ({})",
                        e["incident_count"],
                        e["incident_window"],
                        field(e, "incident_counts")
                    ),
                    ..Row::default()
                },
            ));
            continue;
        }
        let index = match rows.iter().position(|(i, _)| *i == id) {
            Some(index) => index,
            None => {
                rows.push((id.clone(), Row::default()));
                rows.len() - 1
            }
        };
        let row = &mut rows[index].1;
        // Token fields are filled once the token verified.
        if !field(e, "client_id").is_empty() {
            row.who = format!("{} / {}", field(e, "client_id"), field(e, "sub"));
            row.bound_to = label(field(e, "cnf_jkt"));
            row.approval = field(e, "acr").to_owned();
            row.grant = field(e, "authorization_details").to_owned();
        }
        row.key = label(field(e, "jkt"));
        let tool = field(e, "tool");
        row.action = format!("{} {}", field(e, "method"), field(e, "path"));
        if !tool.is_empty() {
            row.action = format!("{} tool {tool}", row.action);
        }
        match field(e, "decision") {
            "authenticate" => row.authenticate = outcome,
            _ => row.authorize = outcome,
        }
        row.status = if status == 0 {
            "200 (handler)".to_owned()
        } else {
            status.to_string()
        };
        let finding = [field(e, "finding"), field(e, "detail")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        if !finding.is_empty() {
            row.finding = match field(e, "finding") {
                "key_shared" => format!("{finding} with {}", field(e, "other_client_id")),
                _ => finding,
            };
        }
    }
    rows.into_iter().map(|(_, row)| row).collect()
}

fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| # | who (client / subject) | key | token bound to | acr | grant | action | authenticate | authorize | status | finding / reason |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (i, r) in rows.iter().enumerate() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            i + 1,
            r.who,
            r.key,
            r.bound_to,
            r.approval,
            r.grant,
            r.action,
            r.authenticate,
            r.authorize,
            r.status,
            r.finding
        ));
    }
    out
}

#[tokio::test]
async fn a_scripted_agent_session_is_reconstructed_from_the_json_lines_alone() {
    let (captured, _guard) = Captured::install_json();
    let mut h = Harness::with(|b| {
        b.key_sharing(KeySharing::new().reject())
            .incidents(Incidents::after(2).within(Duration::from_secs(60)))
    });
    h.app = mcp().layer(h.auth.clone());
    let agent = h.client.clone();
    let thief = DpopKey::generate();
    let basic = json!({"acr": "urn:example:basic", "auth_time": h.now() - 3600,
                       "authorization_details": grant()});
    let t1 = token(&h, "notes-agent", &agent, basic);

    // 1-2. Valid calls within the grant.
    assert_eq!(
        call(&h, &agent, &t1, "list_notes", json!({})).await.status,
        200
    );
    let note = json!({"text": "buy milk"});
    assert_eq!(call(&h, &agent, &t1, "add_note", note).await.status, 200);
    // 3-4. The token, stolen, used twice with the thief's key.
    for _ in 0..2 {
        let r = call(&h, &thief, &t1, "add_note", json!({"text": "x"})).await;
        assert_eq!(r.error().as_deref(), Some("invalid_token"), "{r:?}");
    }
    // 5. A risky tool without approval: step-up.
    let r = call(&h, &agent, &t1, "delete_notes", json!({})).await;
    assert_eq!(
        r.error().as_deref(),
        Some("insufficient_user_authentication")
    );
    // 6. With the approval on record.
    let approved = json!({"acr": APPROVED, "auth_time": h.now() - 30,
                          "authorization_details": grant()});
    let t2 = token(&h, "notes-agent", &agent, approved);
    assert_eq!(
        call(&h, &agent, &t2, "delete_notes", json!({}))
            .await
            .status,
        200
    );
    // 7. Outside the grant: an argument too long.
    let long = json!({"text": "y".repeat(41)});
    assert_eq!(call(&h, &agent, &t2, "add_note", long).await.status, 403);
    // 8. The agent's key, used by another client.
    let t3 = token(
        &h,
        "other-agent",
        &agent,
        json!({"authorization_details": grant()}),
    );
    let r = call(&h, &agent, &t3, "list_notes", json!({})).await;
    assert_eq!(r.error().as_deref(), Some("invalid_token"), "{r:?}");

    let events = captured.json_lines();
    let (agent_jkt, thief_jkt) = (agent.jkt().to_owned(), thief.jkt().to_owned());
    let label = move |jkt: &str| match jkt {
        "" => String::new(),
        j if j == agent_jkt => "agent key".to_owned(),
        j if j == thief_jkt => "thief key".to_owned(),
        other => panic!("an unknown key {other}"),
    };
    let rows = reconstruct(&events, &label);
    let table = markdown(&rows);
    println!("{table}");

    let row = |who: &str,
               key: &str,
               bound: &str,
               acr: &str,
               action: &str,
               authn: &str,
               authz: &str,
               status: &str,
               finding: &str| Row {
        who: who.into(),
        key: key.into(),
        bound_to: bound.into(),
        approval: acr.into(),
        grant: if who.is_empty() { "" } else { "mcp_tools" }.into(),
        action: action.into(),
        authenticate: authn.into(),
        authorize: authz.into(),
        status: status.into(),
        finding: finding.into(),
    };
    let incident = |who: &str, key: &str, text: &str| Row {
        who: who.into(),
        key: key.into(),
        finding: text.into(),
        ..Row::default()
    };
    let agent_id = "notes-agent / notes-agent-user";
    let expected = vec![
        row(
            agent_id,
            "agent key",
            "agent key",
            "urn:example:basic",
            "POST /mcp tool list_notes",
            "allow",
            "allow",
            "200 (handler)",
            "",
        ),
        row(
            agent_id,
            "agent key",
            "agent key",
            "urn:example:basic",
            "POST /mcp tool add_note",
            "allow",
            "allow",
            "200 (handler)",
            "",
        ),
        row(
            agent_id,
            "thief key",
            "agent key",
            "urn:example:basic",
            "POST /mcp",
            "deny invalid_token",
            "",
            "401",
            "",
        ),
        row(
            agent_id,
            "thief key",
            "agent key",
            "urn:example:basic",
            "POST /mcp",
            "deny invalid_token",
            "",
            "401",
            "",
        ),
        incident(
            "notes-agent",
            "thief key",
            "INCIDENT jkt: 2 in 60 s (wrong_key=2)",
        ),
        incident(
            "notes-agent",
            "",
            "INCIDENT client_id: 2 in 60 s (wrong_key=2)",
        ),
        row(
            agent_id,
            "agent key",
            "agent key",
            "urn:example:basic",
            "POST /mcp tool delete_notes",
            "allow",
            "deny insufficient_user_authentication",
            "401",
            "delete_notes needs a recent approval",
        ),
        row(
            agent_id,
            "agent key",
            "agent key",
            APPROVED,
            "POST /mcp tool delete_notes",
            "allow",
            "allow",
            "200 (handler)",
            "",
        ),
        row(
            agent_id,
            "agent key",
            "agent key",
            APPROVED,
            "POST /mcp tool add_note",
            "allow",
            "deny insufficient_scope",
            "403",
            "tool add_note: argument `text` outside the grant (`maxLength`)",
        ),
        row(
            "other-agent / other-agent-user",
            "agent key",
            "agent key",
            "",
            "POST /mcp",
            "deny invalid_token",
            "",
            "401",
            "key_shared with notes-agent",
        ),
    ];
    assert_eq!(rows.len(), expected.len(), "{table}");
    for (i, (got, want)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "row {}\n{table}", i + 1);
    }
    // The severities an alert would select on.
    let severities: Vec<&str> = events.iter().map(|e| field(e, "severity")).collect();
    assert_eq!(
        severities,
        [
            "routine",
            "routine",
            "routine",
            "routine",
            "suspicious",
            "suspicious",
            "incident",
            "incident",
            "routine",
            "routine",
            "routine",
            "routine",
            "routine",
            "routine",
            "suspicious"
        ]
    );
}
