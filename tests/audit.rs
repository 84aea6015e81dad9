//! The audit trail: one event per decision, with the fields an incident
//! review needs, the right severity, and never a secret.

use senderbound::mtls::{ClientCertificate, ConnectionCert};
use senderbound_client::DpopKey;
use senderbound_suite::capture::Captured;
use senderbound_suite::harness::{AUDIENCE, HOST, Harness};

#[tokio::test]
async fn one_event_per_decision_with_severity_and_no_secrets() {
    let (captured, _guard) = Captured::install();

    let h = Harness::new();
    let token = h.token();
    let proof = h.proof("GET", "/api/read", &token);
    let auth = format!("DPoP {token}");
    // 1. allowed
    assert_eq!(
        h.send("GET", "/api/read", Some(&auth), Some(&proof))
            .await
            .status,
        200
    );
    // 2. replay (suspicious)
    assert_eq!(
        h.send("GET", "/api/read", Some(&auth), Some(&proof))
            .await
            .status,
        401
    );
    // 3. stolen token with another key's proof (suspicious)
    let thief = DpopKey::generate();
    let stolen = thief
        .proof("GET", &format!("https://{HOST}/api/read"))
        .unwrap()
        .access_token(&token)
        .issued_at(h.now())
        .sign();
    assert_eq!(
        h.send("GET", "/api/read", Some(&auth), Some(&stolen))
            .await
            .status,
        401
    );
    // 4. downgrade (suspicious)
    let bearer = format!("Bearer {token}");
    assert_eq!(
        h.send("GET", "/api/read", Some(&bearer), None).await.status,
        401
    );
    // 5. no credentials (routine)
    assert_eq!(h.send("GET", "/api/read", None, None).await.status, 401);
    // 6. insufficient scope (routine): authenticated, then refused by RequireScope.
    let write_proof = h.proof("POST", "/api/write", &token);
    assert_eq!(
        h.send("POST", "/api/write", Some(&auth), Some(&write_proof))
            .await
            .status,
        403
    );

    let lines = captured.lines();
    let audit: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("senderbound::audit"))
        .collect();
    assert_eq!(audit.len(), 7, "{audit:#?}");

    let allow = audit[0];
    assert!(allow.contains("INFO"), "{allow}");
    for field in [
        "outcome=\"allow\"",
        "class=\"dpop\"",
        "method=\"GET\"",
        "path=\"/api/read\"",
        "iss=\"https://as.example.test\"",
        "sub=\"user-42\"",
        "client_id=\"test-client\"",
        "scopes=\"read\"",
    ] {
        assert!(allow.contains(field), "{field} missing in {allow}");
    }
    assert!(
        allow.contains(&format!("jkt=\"{}\"", h.client.jkt())),
        "{allow}"
    );

    let replay = audit[1];
    assert!(
        replay.contains("WARN") && replay.contains("severity=\"suspicious\""),
        "{replay}"
    );
    assert!(replay.contains("error=\"invalid_dpop_proof\"") && replay.contains("already used"));

    let stolen_event = audit[2];
    assert!(stolen_event.contains("WARN") && stolen_event.contains("severity=\"suspicious\""));
    // Both keys are on record: the one that signed and the one the token is bound to.
    assert!(
        stolen_event.contains(&format!("jkt=\"{}\"", thief.jkt())),
        "{stolen_event}"
    );
    assert!(
        stolen_event.contains(&format!("cnf_jkt=\"{}\"", h.client.jkt())),
        "{stolen_event}"
    );

    assert!(audit[3].contains("class=\"bearer\"") && audit[3].contains("severity=\"suspicious\""));
    assert!(
        audit[4].contains("INFO") && audit[4].contains("severity=\"routine\""),
        "{}",
        audit[4]
    );
    assert!(audit[4].contains("class=\"none\""));
    assert!(
        audit[5].contains("decision=\"authenticate\"") && audit[5].contains("outcome=\"allow\"")
    );
    assert!(
        audit[6].contains("decision=\"authorize\"")
            && audit[6].contains("error=\"insufficient_scope\"")
    );

    // Never the token, any proof, any signature, or key coordinates.
    let everything = lines.join("\n");
    let jwk = h.client.public_jwk();
    let mut secrets = vec![
        token.clone(),
        proof.clone(),
        stolen.clone(),
        write_proof.clone(),
    ];
    for jws in [&token, &proof, &stolen] {
        secrets.extend(jws.split('.').map(str::to_owned));
    }
    secrets.push(jwk["x"].as_str().unwrap().to_owned());
    secrets.push(jwk["y"].as_str().unwrap().to_owned());
    for secret in secrets {
        assert!(
            !everything.contains(&secret),
            "secret material in the audit log"
        );
    }
}

#[tokio::test]
async fn refusing_because_the_replay_store_is_full_is_audited_as_infrastructure() {
    let (captured, _guard) = Captured::install();

    let h = Harness::with(|b| b.replay_store(senderbound::replay::MemoryReplayStore::new(1)));
    let token = h.token();
    assert_eq!(h.get_with("/api/read", &token).await.status, 200);
    assert_eq!(h.get_with("/api/read", &token).await.status, 503);

    let lines = captured.lines();
    let last = lines
        .iter()
        .rev()
        .find(|l| l.contains("senderbound::audit"))
        .unwrap();
    assert!(last.contains("ERROR"), "{last}");
    assert!(last.contains("severity=\"infrastructure\""), "{last}");
    assert!(last.contains("status=503"), "{last}");
    assert!(
        last.contains(&format!("jkt=\"{}\"", h.client.jkt())),
        "{last}"
    );
}

#[tokio::test]
async fn an_unreachable_authorization_server_is_audited_as_infrastructure() {
    let (captured, _guard) = Captured::install();

    let mock = senderbound_suite::mock_as::MockAs::start().await;
    let (signer, issuer) = (mock.signer(), mock.issuer().to_owned());
    mock.set_down(true);
    let h = Harness::with_issuer(signer, |b| b.issuer(issuer));
    let token = h.token();
    let reply = h.get_with("/whoami", &token).await;
    assert_eq!(reply.status, 503, "{reply:?}");

    let lines = captured.lines();
    let decision = lines
        .iter()
        .find(|l| l.contains("senderbound::audit"))
        .expect("an audit event");
    assert!(decision.contains("ERROR"), "{decision}");
    assert!(
        decision.contains("severity=\"infrastructure\""),
        "{decision}"
    );
    assert!(decision.contains("outcome=\"deny\""), "{decision}");
    let fetch = lines
        .iter()
        .find(|l| l.contains("senderbound::keys"))
        .expect("a key-fetch log line");
    assert!(fetch.contains("WARN") && fetch.contains("503"), "{fetch}");
    let everything = lines.join("\n");
    assert!(
        !everything.contains(&token),
        "the token leaked into the logs"
    );
}

#[tokio::test]
async fn audit_events_name_the_certificate() {
    let (captured, _guard) = Captured::install();
    let h = Harness::with(|b| b.mtls(ConnectionCert));
    let cert = |n: u8| ClientCertificate::from_der(vec![0x30, 0x03, 0x02, 0x01, n]);
    let a = cert(1);
    let mut claims = h.issuer.claims(AUDIENCE, None, "read", h.now());
    claims["cnf"] = serde_json::json!({ "x5t#S256": a.x5t_s256() });
    let token = h.issuer.sign(&claims);
    let send = |cert: ClientCertificate| {
        let mut req = http::Request::builder()
            .uri("/whoami")
            .header("host", HOST)
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut().insert(cert);
        h.call(req)
    };
    assert_eq!(send(a.clone()).await.status, 200);
    assert_eq!(send(cert(2)).await.status, 401);

    let lines: Vec<String> = captured
        .lines()
        .into_iter()
        .filter(|l| l.contains("senderbound::audit"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let (presented, bound) = (cert(2).x5t_s256().to_owned(), a.x5t_s256().to_owned());
    let allow = &lines[0];
    for field in [
        "outcome=\"allow\"".to_owned(),
        "class=\"mtls\"".to_owned(),
        "severity=\"routine\"".to_owned(),
        format!("x5t_s256=\"{bound}\""),
        format!("cnf_x5t_s256=\"{bound}\""),
    ] {
        assert!(allow.contains(&field), "{field} missing in {allow}");
    }
    let deny = &lines[1];
    assert!(deny.contains("WARN"), "{deny}");
    for field in [
        "outcome=\"deny\"".to_owned(),
        "class=\"mtls\"".to_owned(),
        "severity=\"suspicious\"".to_owned(),
        format!("x5t_s256=\"{presented}\""),
        format!("cnf_x5t_s256=\"{bound}\""),
    ] {
        assert!(deny.contains(&field), "{field} missing in {deny}");
    }
    assert!(
        !lines.iter().any(|l| l.contains(&token)),
        "no token in the audit"
    );
}

/// Every kind of decision (authentication, policy with MCP tool calls, key
/// sharing, nonces, replay, downgrade, a stolen token) is on record with the
/// fields an incident review needs, and nothing secret is: no token, proof,
/// signature, key coordinate or private key, nor the tool's arguments.
#[tokio::test]
async fn agent_decisions_are_on_record_without_secrets() {
    use axum::routing::{get, post};
    use senderbound::AuthorizeLayer;
    use senderbound::authorize::{Denied, PolicyRequest};
    use senderbound::key_sharing::KeySharing;
    use senderbound::proof::Nonces;
    use serde_json::json;

    let (captured, _guard) = Captured::install();
    let policy = |req: &PolicyRequest| match req.tool() {
        Some("wire_money") => Err(Denied::new("wire_money is not for agents").suspicious()),
        _ => Ok(()),
    };
    let routes = axum::Router::new()
        .route("/mcp", post(|| async { "{}" }))
        .route_layer(AuthorizeLayer::new(policy).inspect_mcp_calls())
        .route("/whoami", get(|| async { "me" }));
    let secret = [42u8; 32];
    let mut h = senderbound_suite::harness::Harness::with_routes(routes, |b| {
        b.key_sharing(KeySharing::new())
    });
    h.client = DpopKey::from_secret_bytes(&secret).unwrap();
    let token = h.token();
    let auth = format!("DPoP {token}");

    // Allowed, with the token's lifetime on record.
    let proof = h.proof("GET", "/whoami", &token);
    assert_eq!(
        h.send("GET", "/whoami", Some(&auth), Some(&proof))
            .await
            .status,
        200
    );
    // Replayed.
    assert_eq!(
        h.send("GET", "/whoami", Some(&auth), Some(&proof))
            .await
            .status,
        401
    );
    // Downgraded.
    let bearer = format!("Bearer {token}");
    assert_eq!(
        h.send("GET", "/whoami", Some(&bearer), None).await.status,
        401
    );
    // Tool calls: allowed and denied, with arguments that must not be logged.
    let call = |tool: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": tool, "arguments": {"iban": "DE89370400440532013000"}}})
        .to_string()
    };
    let mut proofs = vec![proof.clone()];
    for (tool, status) in [("read_note", 200), ("wire_money", 403)] {
        let proof = h.proof("POST", "/mcp", &token);
        proofs.push(proof.clone());
        let req = http::Request::post("/mcp")
            .header("host", HOST)
            .header("authorization", &auth)
            .header("dpop", &proof)
            .body(axum::body::Body::from(call(tool)))
            .unwrap();
        assert_eq!(h.call(req).await.status, status, "{tool}");
    }
    // The same key with another client's token.
    let mut claims = h.claims();
    claims["client_id"] = json!("other-agent");
    let other = h.issuer.sign(&claims);
    let other_proof = h.proof("GET", "/whoami", &other);
    proofs.push(other_proof.clone());
    let other_auth = format!("DPoP {other}");
    assert_eq!(
        h.send("GET", "/whoami", Some(&other_auth), Some(&other_proof))
            .await
            .status,
        200
    );
    // A stolen token with the thief's proof.
    let thief = DpopKey::generate();
    let stolen = thief
        .proof("GET", &format!("https://{HOST}/whoami"))
        .unwrap()
        .access_token(&token)
        .issued_at(h.now())
        .sign();
    proofs.push(stolen.clone());
    assert_eq!(
        h.send("GET", "/whoami", Some(&auth), Some(&stolen))
            .await
            .status,
        401
    );
    // A server that wants a nonce.
    let n =
        senderbound_suite::harness::Harness::with(|b| b.nonces(Nonces::new(&[9u8; 32]).unwrap()));
    let n_token = n.token();
    let n_proof = n.proof("GET", "/whoami", &n_token);
    proofs.push(n_proof.clone());
    let asked = n
        .send(
            "GET",
            "/whoami",
            Some(&format!("DPoP {n_token}")),
            Some(&n_proof),
        )
        .await;
    assert_eq!(asked.error().as_deref(), Some("use_dpop_nonce"));

    let lines = captured.lines();
    let audit: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("senderbound::audit"))
        .collect();
    // 7 authentications on h (incl. the two MCP posts), 2 authorizations, 1 on n.
    assert_eq!(audit.len(), 10, "{audit:#?}");
    let first = audit[0];
    assert!(
        first.contains(&format!("token_iat={}", h.now()))
            && first.contains(&format!("token_exp={}", h.now() + 300))
            && first.contains("token_lifetime=300")
            && first.contains("aud=\"https://api.example.test\""),
        "{first}"
    );
    let severities = |needle: &str| {
        audit
            .iter()
            .filter(|l| l.contains(needle))
            .map(|l| {
                let s = l.split("severity=\"").nth(1).unwrap_or("");
                s.split('"').next().unwrap_or("").to_owned()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(severities("already used"), ["suspicious"]);
    assert_eq!(severities("presented as a bearer token"), ["suspicious"]);
    assert_eq!(severities("finding=\"key_shared\""), ["suspicious"]);
    assert_eq!(severities("tool=\"wire_money\""), ["suspicious"]);
    assert_eq!(severities("tool=\"read_note\""), ["routine"]);
    assert_eq!(severities("needs a server nonce"), ["routine"]);

    // Nothing secret, anywhere in the output.
    let everything = lines.join("\n");
    let mut secrets = vec![token.clone(), other.clone(), n_token.clone()];
    for jws in proofs.iter().chain([&token, &other, &n_token]) {
        secrets.push(jws.clone());
        secrets.extend(jws.split('.').map(str::to_owned));
    }
    for key in [&h.client, &thief, &n.client] {
        let jwk = key.public_jwk();
        secrets.push(jwk["x"].as_str().unwrap().to_owned());
        secrets.push(jwk["y"].as_str().unwrap().to_owned());
    }
    use base64::Engine as _;
    secrets.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    secrets.push(secret.iter().map(|b| format!("{b:02x}")).collect());
    secrets.push("DE89370400440532013000".to_owned());
    for s in &secrets {
        assert!(
            !everything.contains(s.as_str()),
            "secret material in the log: {s:.12}…"
        );
    }
}
