//! Governance for agents and MCP servers: RFC 9728 metadata, the policy hook
//! (with MCP tool names), key-sharing detection and the decision counters.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http::Request;
use senderbound::authorize::{Denied, Policy, PolicyRequest};
use senderbound::key_sharing::KeySharing;
use senderbound::metadata::ResourceMetadata;
use senderbound::mtls::ConnectionCert;
use senderbound::proof::ProofRules;
use senderbound::tokens::Issuer;
use senderbound::{AuthorizeLayer, Error, Origin, Sender};
use senderbound_suite::capture::Captured;
use senderbound_suite::harness::{AUDIENCE, HOST, Harness, ISSUER, Reply};
use senderbound_suite::recorded::Recorded;
use serde_json::{Value, json};

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

fn get_plain(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", HOST)
        .body(Body::empty())
        .unwrap()
}

// ---------------------------------------------------------------- metadata

#[tokio::test]
async fn the_metadata_document_reflects_the_configuration() {
    let h = Harness::with(|b| {
        b.proofs(
            ProofRules::new()
                .algorithms([senderbound::Algorithm::ES256, senderbound::Algorithm::EdDSA]),
        )
        .resource_metadata(
            ResourceMetadata::new()
                .scopes_supported(["read", "write"])
                .resource_name("Test API")
                .resource_documentation("https://docs.example.test/api"),
        )
    });
    // Served without credentials, at the root (the resource has no path).
    let reply = h.call(get_plain(WELL_KNOWN)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let doc = reply.json();
    assert_eq!(doc["resource"], AUDIENCE);
    assert_eq!(doc["authorization_servers"], json!([ISSUER]));
    assert_eq!(doc["scopes_supported"], json!(["read", "write"]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );
    assert_eq!(doc["dpop_bound_access_tokens_required"], true);
    assert_eq!(doc["tls_client_certificate_bound_access_tokens"], false);
    assert_eq!(doc["resource_name"], "Test API");
    assert_eq!(
        doc["resource_documentation"],
        "https://docs.example.test/api"
    );

    // Every challenge names it (RFC 9728 §5.1).
    let url = format!("{AUDIENCE}{WELL_KNOWN}");
    assert_eq!(h.auth.resource_metadata_url(), Some(url.as_str()));
    let refused = h.send("GET", "/whoami", None, None).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.param("resource_metadata"), Some(url.clone()));
    let expired = {
        let mut claims = h.claims();
        claims["exp"] = json!(h.now() - 100);
        h.get_with("/whoami", &h.issuer.sign(&claims)).await
    };
    expired.assert_refused(401, "invalid_token", Error::TokenExpired);
    assert_eq!(expired.param("resource_metadata"), Some(url));

    // Only GET and HEAD on the metadata path are answered without a token.
    let post = Request::post(WELL_KNOWN)
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.call(post).await.status, 401);
    let other = h
        .call(get_plain("/.well-known/oauth-protected-resource/x"))
        .await;
    assert_eq!(other.status, 401);
    let head = Request::head(WELL_KNOWN)
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    let head = h.call(head).await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
}

#[tokio::test]
async fn a_resource_with_a_path_is_described_at_the_path_suffixed_url_and_the_root() {
    let mcp = format!("{AUDIENCE}/mcp");
    // The root form is opt-in (RFC 9728 §3.3 clients would discard it).
    let h = Harness::with(|b| {
        b.audience(&mcp)
            .resource_metadata(ResourceMetadata::new().resource(&mcp))
    });
    assert_eq!(
        h.call(get_plain(&format!("{WELL_KNOWN}/mcp"))).await.status,
        200
    );
    assert_eq!(h.call(get_plain(WELL_KNOWN)).await.status, 401);
    let h = Harness::with(|b| {
        b.audience(&mcp)
            .mtls(ConnectionCert)
            .resource_metadata(ResourceMetadata::new().resource(&mcp).also_at_root())
    });
    for path in [format!("{WELL_KNOWN}/mcp"), WELL_KNOWN.to_owned()] {
        let reply = h.call(get_plain(&path)).await;
        assert_eq!(reply.status, 200, "{path}");
        let doc = reply.json();
        assert_eq!(doc["resource"], mcp.as_str());
        // With mTLS-bound tokens accepted, DPoP is not always required.
        assert_eq!(doc["dpop_bound_access_tokens_required"], false);
        assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
        assert!(doc.get("scopes_supported").is_none());
    }
    assert_eq!(
        h.auth.resource_metadata_url(),
        Some(format!("{AUDIENCE}{WELL_KNOWN}/mcp").as_str())
    );
}

#[tokio::test]
async fn a_nested_layer_gets_its_metadata_served_at_the_root_by_the_metadata_router() {
    let resource = format!("{AUDIENCE}/api/mcp");
    let h = Harness::with(|b| {
        b.audience(&resource)
            .resource_metadata(ResourceMetadata::new().resource(&resource))
    });
    let api = Router::new()
        .route("/mcp", get(|| async { "mcp" }))
        .layer(h.auth.clone());
    let nested_only = Router::new().nest("/api", api.clone());
    let path = format!("{WELL_KNOWN}/api/mcp");
    let call = |app: Router| {
        let path = path.clone();
        async move {
            tower::ServiceExt::oneshot(app, get_plain(&path))
                .await
                .unwrap()
        }
    };
    // The request never reaches the nested Layer...
    assert_eq!(call(nested_only).await.status(), 404);
    // ...so the metadata router is merged at the root.
    let app = Router::new()
        .nest("/api", api)
        .merge(h.auth.resource_metadata_router());
    let response = call(app).await;
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["resource"], resource.as_str());
}

#[test]
fn metadata_that_cannot_describe_the_resource_is_a_build_error() {
    let build =
        |configure: fn(senderbound::SenderBoundBuilder) -> senderbound::SenderBoundBuilder| {
            configure(
                senderbound::SenderBoundLayer::builder()
                    .trust(
                        Issuer::new(ISSUER)
                            .keys(senderbound_suite::TestIssuer::new(ISSUER).jwks_json()),
                    )
                    .origin(Origin::hosts([HOST])),
            )
            .build()
            .err()
        };
    let invalid = Some(senderbound::BuildError::InvalidResourceMetadata);
    // Not an audience: tokens for it would be refused.
    assert_eq!(
        build(|b| b
            .audience(AUDIENCE)
            .resource_metadata(ResourceMetadata::new().resource("https://other.example.test"))),
        invalid
    );
    // Not an https URL.
    assert_eq!(
        build(|b| b
            .audience("urn:example:api")
            .resource_metadata(ResourceMetadata::new())),
        invalid
    );
    assert_eq!(
        build(|b| b
            .audience("http://api.example.test")
            .resource_metadata(ResourceMetadata::new())),
        invalid
    );
    assert_eq!(build(|b| b.audience("urn:example:api")), None);
    let sharing = Some(senderbound::BuildError::InvalidKeySharing);
    assert_eq!(
        build(|b| b
            .audience(AUDIENCE)
            .key_sharing(KeySharing::new().capacity(0))),
        sharing
    );
    assert_eq!(
        build(|b| b
            .audience(AUDIENCE)
            .key_sharing(KeySharing::new().window(std::time::Duration::MAX))),
        sharing
    );
}

// ------------------------------------------------------------------ policy

/// Echoes the body and the caller, to prove the handler got both intact.
async fn echo(sender: Sender, body: String) -> axum::Json<Value> {
    axum::Json(json!({ "body": body, "client_id": sender.client_id() }))
}

fn mcp_routes(policy: impl Policy) -> Router {
    Router::new().route("/mcp", post(echo)).route_layer(
        AuthorizeLayer::new(policy)
            .inspect_mcp_calls()
            .max_body_bytes(1024),
    )
}

/// Allows everything except `delete_note` without scope `admin`.
fn tool_rule(req: &PolicyRequest) -> Result<(), Denied> {
    match req.tool() {
        Some("delete_note") if !req.sender().has_scope("admin") => {
            Err(Denied::new("delete_note needs admin").needs_scopes(["admin"]))
        }
        _ => Ok(()),
    }
}

async fn post_mcp(h: &Harness, token: &str, body: &str) -> Reply {
    let proof = h.proof("POST", "/mcp", token);
    let req = Request::post("/mcp")
        .header("host", HOST)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    h.call(req).await
}

fn tool_call(name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": name, "arguments": {"id": 7}}})
    .to_string()
}

#[tokio::test]
async fn the_policy_sees_the_tool_and_denies_with_403_and_the_scope_to_ask_for() {
    let (captured, _guard) = Captured::install();
    let h = Harness::with_routes(mcp_routes(tool_rule), |b| b);
    let token = h.token();

    let allowed = post_mcp(&h, &token, &tool_call("read_note")).await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    // The handler got the body the policy read, byte for byte.
    assert_eq!(allowed.json()["body"], tool_call("read_note"));
    assert_eq!(allowed.json()["client_id"], "test-client");

    let denied = post_mcp(&h, &token, &tool_call("delete_note")).await;
    // The policy named the scope that would do: a step-up challenge.
    denied.assert_refused(403, "insufficient_scope", Error::InsufficientScope);
    assert_eq!(denied.param("scope").as_deref(), Some("admin"));
    // The policy's reason is for the audit trail, not the client.
    assert!(!denied.body.contains("needs admin"), "{}", denied.body);

    // A token with the scope passes.
    let mut claims = h.claims();
    claims["scope"] = json!("read admin");
    let admin = h.issuer.sign(&claims);
    assert_eq!(
        post_mcp(&h, &admin, &tool_call("delete_note")).await.status,
        200
    );

    // One denied message in a batch refuses the whole request.
    let batch = format!(
        "[{},{}]",
        tool_call("read_note"),
        tool_call("delete_note").replace("\"id\":1", "\"id\":2")
    );
    post_mcp(&h, &token, &batch).await.assert_refused(
        403,
        "insufficient_scope",
        Error::InsufficientScope,
    );

    let lines = captured.lines();
    let authorize: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("decision=\"authorize\""))
        .collect();
    // read_note allowed, delete_note denied, delete_note allowed (admin),
    // the batch denied: its read_note never ran, so it is not on record.
    assert_eq!(authorize.len(), 4, "{authorize:#?}");
    let allow = authorize[0];
    assert!(
        allow.contains("outcome=\"allow\"")
            && allow.contains("tool=\"read_note\"")
            && allow.contains("mcp_method=\"tools/call\""),
        "{allow}"
    );
    assert!(
        authorize[3].contains("outcome=\"deny\""),
        "{}",
        authorize[3]
    );
    let deny = authorize[1];
    for field in [
        "outcome=\"deny\"",
        "status=403",
        "tool=\"delete_note\"",
        "error=\"insufficient_scope\"",
        "detail=\"delete_note needs admin\"",
        "severity=\"routine\"",
        "client_id=\"test-client\"",
    ] {
        assert!(deny.contains(field), "{field} missing in {deny}");
    }
}

#[tokio::test]
async fn bodies_the_policy_cannot_read_are_refused_not_passed() {
    let h = Harness::with_routes(mcp_routes(|_: &PolicyRequest| Ok(())), |b| b);
    let token = h.token();
    for body in [
        "not json",
        // Two `method`s: the MCP server might read the other one.
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["x"]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
    ] {
        post_mcp(&h, &token, body).await.assert_refused(
            400,
            "invalid_request",
            Error::McpRequestMalformed,
        );
    }
    let huge = tool_call(&"x".repeat(2000));
    post_mcp(&h, &token, &huge).await.assert_refused(
        400,
        "invalid_request",
        Error::RequestBodyTooLarge,
    );
}

/// An async policy: looks the client up in a (simulated) remote registry.
struct Registry(HashMap<&'static str, &'static [&'static str]>);

impl Policy for Registry {
    async fn check(&self, req: &PolicyRequest) -> Result<(), Denied> {
        tokio::task::yield_now().await;
        let client = req.sender().client_id().unwrap_or("");
        let allowed = self.0.get(client).copied().unwrap_or(&[]);
        match (req.method().as_str(), req.path()) {
            ("GET", path) if allowed.contains(&path) => Ok(()),
            _ => Err(
                Denied::new(format!("{client} may not {} {}", req.method(), req.path()))
                    .suspicious(),
            ),
        }
    }
}

#[tokio::test]
async fn an_async_policy_decides_on_method_and_path() {
    let (captured, _guard) = Captured::install();
    let routes = Router::new()
        .route("/reports", get(|| async { "reports" }))
        .route("/admin", get(|| async { "admin" }))
        .route_layer(AuthorizeLayer::new(Registry(HashMap::from([(
            "test-client",
            &["/reports"][..],
        )]))));
    let h = Harness::with_routes(routes, |b| b);
    let token = h.token();
    assert_eq!(h.get_with("/reports", &token).await.status, 200);
    // No scope would help: a plain 403, no challenge to step up with.
    let denied = h.get_with("/admin", &token).await;
    assert_eq!(denied.status, 403, "{denied:?}");
    assert!(denied.challenges.is_empty(), "{denied:?}");
    assert_eq!(denied.json()["error"], "access_denied");
    assert_eq!(
        denied.json()["error_description"],
        Error::PolicyDenied.description()
    );
    let lines = captured.lines();
    let deny = lines
        .iter()
        .find(|l| l.contains("outcome=\"deny\""))
        .expect("a denial event");
    assert!(
        deny.contains("WARN")
            && deny.contains("severity=\"suspicious\"")
            && deny.contains("detail=\"test-client may not GET /admin\""),
        "{deny}"
    );
}

#[tokio::test]
async fn a_policy_outside_the_layer_refuses_with_500() {
    let app = Router::new()
        .route("/x", get(|| async { "x" }))
        .route_layer(AuthorizeLayer::new(|_: &PolicyRequest| Ok(())));
    let response = tower::ServiceExt::oneshot(app, get_plain("/x"))
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
}

// ------------------------------------------------------------ key sharing

/// A token bound to the harness client's key, for another client and user.
fn token_for(h: &Harness, client_id: &str, sub: &str) -> String {
    let mut claims = h.claims();
    claims["client_id"] = json!(client_id);
    claims["sub"] = json!(sub);
    h.issuer.sign(&claims)
}

#[tokio::test]
async fn one_key_with_two_clients_is_audited_as_suspicious() {
    let (captured, _guard) = Captured::install();
    let h = Harness::with(|b| b.key_sharing(KeySharing::new()));
    assert_eq!(
        h.get_with("/whoami", &token_for(&h, "agent-a", "u1"))
            .await
            .status,
        200
    );
    assert_eq!(
        h.get_with("/whoami", &token_for(&h, "agent-a", "u1"))
            .await
            .status,
        200
    );
    // Detect-only: the other client still gets through, but on record.
    assert_eq!(
        h.get_with("/whoami", &token_for(&h, "agent-b", "u1"))
            .await
            .status,
        200
    );

    let lines = captured.lines();
    let events: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("senderbound::audit"))
        .collect();
    assert_eq!(events.len(), 3, "{events:#?}");
    for routine in &events[..2] {
        assert!(
            routine.contains("INFO") && routine.contains("finding=\"\""),
            "{routine}"
        );
    }
    let shared = events[2];
    for field in [
        "outcome=\"allow\"",
        "finding=\"key_shared\"",
        "client_id=\"agent-b\"",
        "other_client_id=\"agent-a\"",
        "other_sub=\"u1\"",
        "severity=\"suspicious\"",
    ] {
        assert!(shared.contains(field), "{field} missing in {shared}");
    }
    assert!(shared.contains("WARN"), "{shared}");
    assert!(shared.contains(&format!("jkt=\"{}\"", h.client.jkt())));
}

#[tokio::test]
async fn in_reject_mode_the_second_identity_is_refused_and_the_first_keeps_working() {
    let h = Harness::with(|b| b.key_sharing(KeySharing::new().reject()));
    let first = token_for(&h, "agent-a", "u1");
    assert_eq!(h.get_with("/whoami", &first).await.status, 200);
    h.get_with("/whoami", &token_for(&h, "agent-b", "u1"))
        .await
        .assert_refused(401, "invalid_token", Error::KeyShared);
    // Another subject with the same key counts too, by default.
    h.get_with("/whoami", &token_for(&h, "agent-a", "u2"))
        .await
        .assert_refused(401, "invalid_token", Error::KeyShared);
    assert_eq!(h.get_with("/whoami", &first).await.status, 200);

    // A backend acting for many users with one key can ignore subjects.
    let backend = Harness::with(|b| b.key_sharing(KeySharing::new().ignore_subjects().reject()));
    let backend = Harness {
        client: h.client.clone(),
        ..backend
    };
    assert_eq!(
        backend
            .get_with("/whoami", &token_for(&backend, "web", "u1"))
            .await
            .status,
        200
    );
    assert_eq!(
        backend
            .get_with("/whoami", &token_for(&backend, "web", "u2"))
            .await
            .status,
        200
    );
    backend
        .get_with("/whoami", &token_for(&backend, "other", "u1"))
        .await
        .assert_refused(401, "invalid_token", Error::KeyShared);

    // Without detection, nothing is remembered or refused.
    let plain = Harness {
        client: h.client.clone(),
        ..Harness::new()
    };
    assert_eq!(
        plain
            .get_with("/whoami", &token_for(&plain, "agent-a", "u1"))
            .await
            .status,
        200
    );
    assert_eq!(
        plain
            .get_with("/whoami", &token_for(&plain, "agent-b", "u2"))
            .await
            .status,
        200
    );
}

// ---------------------------------------------------------------- metrics

#[test]
fn decisions_are_counted_by_outcome_class_and_error() {
    let counters = Recorded::default();
    // A current-thread runtime keeps every decision on this thread, where
    // the local recorder is installed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    metrics::with_local_recorder(&counters, || {
        runtime.block_on(async {
            let h = Harness::with(|b| b.key_sharing(KeySharing::new()));
            let token = h.token();
            for _ in 0..3 {
                assert_eq!(h.get_with("/whoami", &token).await.status, 200);
            }
            let proof = h.proof("GET", "/whoami", &token);
            let auth = format!("DPoP {token}");
            for _ in 0..2 {
                h.send("GET", "/whoami", Some(&auth), Some(&proof)).await;
            }
            assert_eq!(h.send("GET", "/whoami", None, None).await.status, 401);
            assert_eq!(
                h.get_with("/whoami", &token_for(&h, "other", "u9"))
                    .await
                    .status,
                200
            );
        })
    });
    let counts = counters.counters();
    let decisions = |outcome: &str, class: &str, error: &str, severity: &str| {
        counts
            .get(&format!(
                "senderbound_decisions_total{{decision=authenticate,outcome={outcome},class={class},error={error},severity={severity}}}"
            ))
            .copied()
            .unwrap_or(0)
    };
    // Three allowed, plus the first use of the replayed proof.
    assert_eq!(decisions("allow", "dpop", "", "routine"), 4, "{counts:#?}");
    assert_eq!(
        decisions("deny", "dpop", "invalid_dpop_proof", "suspicious"),
        1,
        "{counts:#?}"
    );
    assert_eq!(decisions("deny", "none", "", "routine"), 1, "{counts:#?}");
    assert_eq!(
        decisions("allow", "dpop", "", "suspicious"),
        1,
        "{counts:#?}"
    );
    assert_eq!(
        counts.get("senderbound_key_sharing_total{class=dpop,outcome=allow}"),
        Some(&1),
        "{counts:#?}"
    );
}

#[tokio::test]
async fn one_client_certificate_with_two_clients_is_refused_in_reject_mode() {
    use senderbound::mtls::ClientCertificate;
    let h = Harness::with(|b| {
        b.mtls(ConnectionCert)
            .key_sharing(KeySharing::new().reject())
    });
    let cert = ClientCertificate::from_der(vec![0x30, 0x03, 0x02, 0x01, 0x07]);
    let token = |client: &str| {
        let mut claims = h.issuer.claims(AUDIENCE, None, "read", h.now());
        claims["cnf"] = json!({ "x5t#S256": cert.x5t_s256() });
        claims["client_id"] = json!(client);
        h.issuer.sign(&claims)
    };
    let send = |token: String| {
        let mut req = Request::get("/whoami")
            .header("host", HOST)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(cert.clone());
        h.call(req)
    };
    assert_eq!(send(token("agent-a")).await.status, 200);
    send(token("agent-b"))
        .await
        .assert_refused(401, "invalid_token", Error::KeyShared);
    assert_eq!(send(token("agent-a")).await.status, 200);
}
