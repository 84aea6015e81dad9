//! Rich authorization requests (RFC 9396) for agents: the token's
//! `authorization_details` name the MCP tools it may call and what their
//! arguments may be; a call outside the grant is 403 `insufficient_scope`
//! with the reason in the audit event; JWTs and introspection answers alike;
//! `authorization_details_types_supported` in the RFC 9728 metadata.

use axum::Router;
use axum::body::Body;
use axum::routing::{any, post};
use http::Request;
use senderbound::metadata::ResourceMetadata;
use senderbound::tool_grants::ToolGrants;
use senderbound::{AuthorizeLayer, Error, Sender};
use senderbound_suite::capture::Captured;
use senderbound_suite::harness::{AUDIENCE, HOST, Harness, Reply};
use senderbound_suite::mock_as::MockAs;
use serde_json::{Value, json};

const RESOURCE: &str = "https://api.example.test/mcp";

async fn echo(sender: Sender, body: String) -> axum::Json<Value> {
    axum::Json(json!({ "body": body, "details": sender.authorization_details().len() }))
}

fn routes(grants: ToolGrants) -> Router {
    Router::new()
        .route("/mcp", post(echo))
        .route_layer(AuthorizeLayer::new(grants).inspect_mcp_calls())
        .route(
            "/uninspected",
            post(echo)
                .get(echo)
                .route_layer(AuthorizeLayer::new(ToolGrants::new())),
        )
        .route(
            "/any",
            any(echo).layer(
                AuthorizeLayer::new(ToolGrants::new().resource(RESOURCE)).inspect_mcp_calls(),
            ),
        )
}

fn grant() -> Value {
    json!([{
        "type": "mcp_tools",
        "locations": [RESOURCE],
        "tools": [
            "list_notes",
            {"name": "send_payment",
             "arguments": {"currency": {"enum": ["EUR"]}, "amount": {"maximum": 100}}}
        ]
    }])
}

fn token_with(h: &Harness, details: Option<Value>) -> String {
    let mut claims = h.claims();
    if let Some(details) = details {
        claims["authorization_details"] = details;
    }
    h.issuer.sign(&claims)
}

async fn post_to(h: &Harness, path: &str, token: &str, body: &str) -> Reply {
    send(h, "POST", path, token, body).await
}

async fn send(h: &Harness, method: &str, path: &str, token: &str, body: &str) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", HOST)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", h.proof(method, path, token))
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body.to_owned()))
        .unwrap();
    h.call(req).await
}

fn call(tool: &str, arguments: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
    .to_string()
}

#[track_caller]
fn assert_grant_refusal(r: &Reply) {
    r.assert_refused(403, "insufficient_scope", Error::InsufficientScope);
    // No scope would help: the parameter is left out.
    assert_eq!(r.param("scope"), None, "{r:?}");
}

#[tokio::test]
async fn a_call_outside_the_grant_is_403_with_the_reason_in_the_audit_event() {
    let (captured, _guard) = Captured::install_json();
    let h = Harness::with_routes(routes(ToolGrants::new().resource(RESOURCE)), |b| b);
    let token = token_with(&h, Some(grant()));

    let ok = post_to(&h, "/mcp", &token, &call("list_notes", json!({}))).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.json()["details"], 1);
    let pay = call("send_payment", json!({"currency": "EUR", "amount": 99.5}));
    assert_eq!(post_to(&h, "/mcp", &token, &pay).await.status, 200);
    // Other methods are not tool calls: not governed.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    assert_eq!(post_to(&h, "/mcp", &token, &list).await.status, 200);

    let refusals = [
        (
            call("delete_notes", json!({})),
            "tool delete_notes is not in the mcp_tools grant",
        ),
        (
            call("send_payment", json!({"currency": "EUR", "amount": 73519})),
            "tool send_payment: argument `amount` outside the grant (`maximum`)",
        ),
        (
            call("send_payment", json!({"currency": "USD", "amount": 5})),
            "tool send_payment: argument `currency` outside the grant (`enum`)",
        ),
        (
            call("send_payment", json!({"currency": "EUR"})),
            "tool send_payment: argument `amount` missing, and the grant constrains it",
        ),
    ];
    for (body, _) in &refusals {
        assert_grant_refusal(&post_to(&h, "/mcp", &token, body).await);
    }
    // A batch with one call outside the grant runs none of it.
    let batch = format!(
        "[{},{}]",
        call("list_notes", json!({})),
        call("delete_notes", json!({}))
    );
    assert_grant_refusal(&post_to(&h, "/mcp", &token, &batch).await);
    // A token without a grant may call no tool.
    let plain = token_with(&h, None);
    assert_grant_refusal(&post_to(&h, "/mcp", &plain, &call("list_notes", json!({}))).await);
    // Without body inspection, the grant cannot be checked: refused; so is
    // a method whose body is not inspected.
    let r = post_to(&h, "/uninspected", &token, &call("list_notes", json!({}))).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.error(), None, "a plain refusal: {r:?}");
    let r = send(&h, "GET", "/uninspected", &token, "").await;
    assert_eq!((r.status, r.error()), (403, None), "{r:?}");
    // A tool call is a tool call whatever the method that carries it.
    for method in ["PUT", "DELETE", "GET"] {
        let r = send(&h, method, "/any", &token, &call("delete_notes", json!({}))).await;
        assert_grant_refusal(&r);
        let r = send(&h, method, "/any", &token, &call("list_notes", json!({}))).await;
        assert_eq!(r.status, 200, "{method}: {r:?}");
    }
    // Without a body: no message (an MCP stream's GET, a session's DELETE).
    assert_eq!(send(&h, "GET", "/any", &token, "").await.status, 200);
    assert_eq!(send(&h, "DELETE", "/any", &token, "").await.status, 200);
    // A body that is not JSON-RPC, whatever the method: malformed.
    send(&h, "DELETE", "/any", &token, "x=1")
        .await
        .assert_refused(400, "invalid_request", Error::McpRequestMalformed);

    let events = captured.json_lines();
    let denials: Vec<&Value> = events
        .iter()
        .filter(|e| e["decision"] == "authorize" && e["outcome"] == "deny")
        .collect();
    let details: Vec<&str> = denials
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = refusals.iter().map(|(_, why)| *why).collect();
    expected.extend([
        "tool delete_notes is not in the mcp_tools grant",
        "no mcp_tools authorization detail for this resource",
        "ToolGrants needs AuthorizeLayer::inspect_mcp_calls to see tool calls",
        "ToolGrants needs AuthorizeLayer::inspect_mcp_calls to see tool calls",
        "tool delete_notes is not in the mcp_tools grant",
        "tool delete_notes is not in the mcp_tools grant",
        "tool delete_notes is not in the mcp_tools grant",
        // The malformed body: refused before any policy, no policy reason.
        "",
    ]);
    assert_eq!(details, expected);
    for e in &denials[..5] {
        assert_eq!(e["status"], 403);
        assert_eq!(e["error"], "insufficient_scope");
        assert_eq!(e["authorization_details"], "mcp_tools");
        assert_eq!(e["schema"], 1);
    }
    assert_eq!(denials[1]["tool"], "send_payment");
    // The argument's value is not in the record.
    assert!(!events.iter().any(|e| e.to_string().contains("73519")));
}

#[tokio::test]
async fn locations_the_detail_type_and_optional_grants() {
    // Without this resource named, a detail restricted to locations grants nothing.
    let h = Harness::with_routes(routes(ToolGrants::new()), |b| b);
    let token = token_with(&h, Some(grant()));
    assert_grant_refusal(&post_to(&h, "/mcp", &token, &call("list_notes", json!({}))).await);
    // Another server's grant is not this one's.
    let h = Harness::with_routes(
        routes(ToolGrants::new().resource("https://other/mcp")),
        |b| b,
    );
    let token = token_with(&h, Some(grant()));
    assert_grant_refusal(&post_to(&h, "/mcp", &token, &call("list_notes", json!({}))).await);
    // A detail type of the AS's choosing.
    let h = Harness::with_routes(routes(ToolGrants::new().detail_type("tools_v2")), |b| b);
    let token = token_with(
        &h,
        Some(json!([{"type": "tools_v2", "tools": ["list_notes"]}])),
    );
    assert_eq!(
        post_to(&h, "/mcp", &token, &call("list_notes", json!({})))
            .await
            .status,
        200
    );
    assert_grant_refusal(&post_to(&h, "/mcp", &token, &call("other", json!({}))).await);
    // Optional: a token without a grant is left to its scopes; one with a grant is held to it.
    let h = Harness::with_routes(routes(ToolGrants::new().optional()), |b| b);
    let plain = token_with(&h, None);
    assert_eq!(
        post_to(&h, "/mcp", &plain, &call("anything", json!({})))
            .await
            .status,
        200
    );
    let granted = token_with(&h, Some(json!([{"type": "mcp_tools", "tools": ["a"]}])));
    assert_eq!(
        post_to(&h, "/mcp", &granted, &call("a", json!({})))
            .await
            .status,
        200
    );
    // A grant for another resource still holds the token to grants.
    let elsewhere = token_with(&h, Some(grant()));
    assert_grant_refusal(&post_to(&h, "/mcp", &elsewhere, &call("list_notes", json!({}))).await);
    assert_grant_refusal(&post_to(&h, "/mcp", &granted, &call("b", json!({}))).await);
}

#[tokio::test]
async fn tokens_with_unreadable_details_and_calls_with_ambiguous_arguments_are_refused() {
    let h = Harness::with_routes(routes(ToolGrants::new().resource(RESOURCE)), |b| b);
    for details in [
        json!({"type": "mcp_tools"}),
        json!([{"tools": ["list_notes"]}]),
        json!(null),
    ] {
        let token = token_with(&h, Some(details.clone()));
        let r = post_to(&h, "/mcp", &token, &call("list_notes", json!({}))).await;
        r.assert_refused(401, "invalid_token", Error::TokenMissingClaim);
    }
    // Arguments named twice could be read two ways: the body is malformed.
    let token = token_with(&h, Some(grant()));
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_payment","arguments":{"currency":"EUR","amount":5,"amount":5000}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_payment","arguments":{"currency":"EUR","amount":5,"amo\u0075nt":5000}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_payment","arguments":[5000]}}"#,
    ] {
        post_to(&h, "/mcp", &token, body).await.assert_refused(
            400,
            "invalid_request",
            Error::McpRequestMalformed,
        );
    }
}

#[tokio::test]
async fn an_introspection_answer_carries_a_grant_as_a_jwt_does() {
    let mock = MockAs::start().await;
    let h = Harness::introspected_by(&mock, routes(ToolGrants::new().resource(RESOURCE)));
    let answer = h.introspection_answer(json!({"authorization_details": grant()}));
    mock.register_opaque("granted", answer);
    assert_eq!(
        post_to(&h, "/mcp", "granted", &call("list_notes", json!({})))
            .await
            .status,
        200
    );
    assert_grant_refusal(&post_to(&h, "/mcp", "granted", &call("delete_notes", json!({}))).await);
}

#[tokio::test]
async fn the_metadata_names_the_detail_types_this_resource_reads() {
    let h = Harness::with(|b| {
        b.resource_metadata(
            ResourceMetadata::new().authorization_details_types_supported(["mcp_tools"]),
        )
    });
    let req = Request::get("/.well-known/oauth-protected-resource")
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    let r = h.call(req).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["resource"], AUDIENCE);
    assert_eq!(
        r.json()["authorization_details_types_supported"],
        json!(["mcp_tools"])
    );
    // Not named unless configured.
    let h = Harness::with(|b| b.resource_metadata(ResourceMetadata::new()));
    let req = Request::get("/.well-known/oauth-protected-resource")
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    assert!(
        h.call(req)
            .await
            .json()
            .get("authorization_details_types_supported")
            .is_none()
    );
}
