//! The audit trail: one event per decision, with the fields an incident
//! review needs, the right severity, and never a secret.

use senderbound::mtls::ClientCertificate;
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
        "client_id=\"demo-client\"",
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
    let h = Harness::with(|b| b.accept_mtls_bound());
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
