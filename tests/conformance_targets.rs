//! The example servers as conformance targets, run as their own processes.
//!
//! `mcp_server`, run as its own process
//! the way the MCP conformance suite runs it (scenario
//! `auth/dpop-server-validation`, SEP-1932; docs/security.md has that
//! suite's results): an issuer it trusts by a JWKS file mints a scope-less
//! DPoP-bound token for the server's URL, and every RFC 9449 §4.3 / §7.1
//! check the scenario makes is made here, each with the exact refusal. Then
//! the MCP authorization spec's scope model: any valid token may initialize
//! and list tools; a tool call needs the tool's scope (403
//! `insufficient_scope` with `scope=`).
//!
//! Ignored by plain `cargo test` (it needs the built example);
//! `scripts/test.sh` builds it and runs this with `--ignored`.

use senderbound::Error;
use senderbound_client::DpopKey;
use senderbound_suite::TestIssuer;
use senderbound_suite::answer::Answer;
use senderbound_suite::process::{self, Process};
use serde_json::{Value, json};

const ISSUER: &str = "https://conformance-issuer.example.test";

struct Target {
    _server: Process,
    url: String,
    issuer: TestIssuer,
    key: DpopKey,
    http: reqwest::Client,
    /// A nonce the server issued, put in every proof once known.
    nonce: Option<String>,
}

impl Target {
    fn start(name: &str, extra: &[&str]) -> Target {
        let scratch = process::scratch(name);
        let issuer = TestIssuer::new(ISSUER);
        let jwks = scratch.join("jwks.json");
        std::fs::write(&jwks, issuer.jwks_json()).unwrap();
        let port = process::free_port().to_string();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "--listen",
            &listen,
            "--issuer",
            ISSUER,
            "--jwks-file",
            jwks.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (server, url) = process::start_example("mcp_server", &args, &scratch, name);
        Target {
            _server: server,
            url,
            issuer,
            key: DpopKey::generate(),
            http: reqwest::Client::new(),
            nonce: None,
        }
    }

    /// A token for this server, bound to `key`, with `scope` (none if empty).
    fn token_for(&self, key: &DpopKey, audience: &str, scope: &str) -> String {
        let mut claims = self.issuer.claims(audience, Some(key.jkt()), scope, now());
        if scope.is_empty() {
            claims.as_object_mut().unwrap().remove("scope");
        }
        self.issuer.sign(&claims)
    }

    fn token(&self, scope: &str) -> String {
        self.token_for(&self.key, &self.url, scope)
    }

    /// The header and claims of a valid proof for `POST url` with `token`.
    fn proof_parts(&self, token: &str) -> (Value, Value) {
        let mut builder = self
            .key
            .proof("POST", &self.url)
            .unwrap()
            .access_token(token);
        if let Some(nonce) = &self.nonce {
            builder = builder.nonce(nonce);
        }
        (builder.header(), builder.claims())
    }

    fn proof(&self, token: &str) -> String {
        let (header, claims) = self.proof_parts(token);
        self.key.sign_compact(&header, &claims)
    }

    async fn post(&self, scheme: &str, token: &str, proofs: &[&str], body: &Value) -> Answer {
        let mut request = self
            .http
            .post(&self.url)
            .header("authorization", format!("{scheme} {token}"))
            .header("accept", "application/json, text/event-stream")
            .json(body);
        for proof in proofs {
            request = request.header("dpop", *proof);
        }
        Answer::of(request).await
    }
}

fn now() -> u64 {
    senderbound::clock::Clock::now(&senderbound::clock::SystemClock)
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "conformance", "version": "1"}}})
}

fn b64(value: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A proof whose header and claims `change` edits, signed by `t.key`.
fn edited(t: &Target, token: &str, change: impl FnOnce(&mut Value, &mut Value)) -> String {
    let (mut header, mut claims) = t.proof_parts(token);
    change(&mut header, &mut claims);
    t.key.sign_compact(&header, &claims)
}

async fn refused(t: &Target, token: &str, proof: &str, error: Error) {
    let answer = t.post("DPoP", token, &[proof], &initialize()).await;
    let code = error.code().map(|c| c.as_str());
    answer.refused(401, code, error);
    assert!(answer.www_authenticate.starts_with("DPoP "), "{answer:?}");
}

/// The conformance scenario's checks, in its order, against `t`.
async fn the_scenario_checks(t: &Target) {
    let token = t.token("");
    // 1. A valid proof with a scope-less token: accepted for initialize.
    let answer = t
        .post("DPoP", &token, &[&t.proof(&token)], &initialize())
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");

    // 2 (and 23). Tampered signature.
    let good = t.proof(&token);
    let (input, signature) = good.rsplit_once('.').unwrap();
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{input}.{first}{}", &signature[1..]);
    refused(t, &token, &tampered, Error::ProofSignature).await;
    // 3, 11, 12, 13. Missing claims.
    for claim in ["jti", "htm", "htu", "iat"] {
        let proof = edited(t, &token, |_, c| {
            c.as_object_mut().unwrap().remove(claim);
        });
        refused(t, &token, &proof, Error::ProofMissingClaim).await;
    }
    // 4. typ jwt.
    let proof = edited(t, &token, |h, _| h["typ"] = json!("jwt"));
    refused(t, &token, &proof, Error::ProofType).await;
    // 5, 6. htu and htm of another request.
    let proof = edited(t, &token, |_, c| {
        c["htu"] = json!("https://wrong.example.com/mcp")
    });
    refused(t, &token, &proof, Error::ProofUriMismatch).await;
    let proof = edited(t, &token, |_, c| c["htm"] = json!("GET"));
    refused(t, &token, &proof, Error::ProofMethodMismatch).await;
    // 7. A private member in the jwk.
    let proof = edited(t, &token, |h, _| {
        h["jwk"]["d"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    });
    refused(t, &token, &proof, Error::ProofKeyPrivate).await;
    // 8, 15. ath wrong or absent.
    let proof = edited(t, &token, |_, c| c["ath"] = json!("not-the-right-hash"));
    refused(t, &token, &proof, Error::ProofAthMismatch).await;
    let proof = edited(t, &token, |_, c| {
        c.as_object_mut().unwrap().remove("ath");
    });
    refused(t, &token, &proof, Error::ProofAthMissing).await;
    // 9. The DPoP-bound token as a Bearer token: a downgrade.
    let answer = t
        .post("Bearer", &token, &[&t.proof(&token)], &initialize())
        .await;
    answer.refused(401, Some("invalid_token"), Error::TokenDowngrade);
    // 10. Two DPoP headers, each a valid proof (RFC 9449 §4.3 check 1).
    let (a, b) = (t.proof(&token), t.proof(&token));
    let answer = t.post("DPoP", &token, &[&a, &b], &initialize()).await;
    answer.refused(401, Some("invalid_dpop_proof"), Error::MultipleDpopHeaders);
    // 14. No jwk.
    let proof = edited(t, &token, |h, _| {
        h.as_object_mut().unwrap().remove("jwk");
    });
    refused(t, &token, &proof, Error::ProofKeyInvalid).await;
    // 16. Not a JWT.
    refused(t, &token, "this-is-not-a-jwt", Error::ProofMalformed).await;
    // 17. A token bound to another key.
    let other = t.token_for(&DpopKey::generate(), &t.url, "");
    refused(t, &other, &t.proof(&other), Error::TokenBindingMismatch).await;
    // 18, 19. iat 303 s off either way.
    let proof = edited(t, &token, |_, c| c["iat"] = json!(now() - 303));
    refused(t, &token, &proof, Error::ProofExpired).await;
    let proof = edited(t, &token, |_, c| c["iat"] = json!(now() + 303));
    refused(t, &token, &proof, Error::ProofIssuedInFuture).await;
    // 20, 21. alg none, HS256.
    let (mut header, claims) = t.proof_parts(&token);
    header["alg"] = json!("none");
    let none = format!("{}.{}.", b64(&header), b64(&claims));
    refused(t, &token, &none, Error::ProofMalformed).await;
    header["alg"] = json!("HS256");
    let hs256 = format!("{}.{}.c2lnbmF0dXJl", b64(&header), b64(&claims));
    refused(t, &token, &hs256, Error::ProofAlgorithm).await;
    // 22. A token for another resource.
    let elsewhere = t.token_for(&t.key, "https://not-this-server.example.com/mcp", "");
    refused(t, &elsewhere, &t.proof(&elsewhere), Error::TokenAudience).await;
}

#[tokio::test]
#[ignore = "needs the mcp_server example built; scripts/test.sh runs it"]
async fn mcp_server_passes_the_scenario_checks() {
    let t = Target::start("mcp-conformance", &[]);
    the_scenario_checks(&t).await;
}

#[tokio::test]
#[ignore = "needs the mcp_server example built; scripts/test.sh runs it"]
async fn mcp_server_with_nonces_passes_the_scenario_checks_and_the_nonce_flow() {
    let t = Target::start(
        "mcp-conformance-nonces",
        &[
            "--nonce-secret",
            "conformance-nonce-secret-0123456789abcdef",
        ],
    );
    // The nonce flow (RFC 9449 §9): a proof without one is refused with a
    // fresh nonce, the retry with it passes, a made-up one is refused.
    let token = t.token("");
    let answer = t
        .post("DPoP", &token, &[&t.proof(&token)], &initialize())
        .await;
    answer.refused(401, Some("use_dpop_nonce"), Error::NonceMissing);
    let nonce = answer
        .dpop_nonce
        .clone()
        .expect("a DPoP-Nonce with use_dpop_nonce");
    let with_nonce = |nonce: &str| {
        let (header, mut claims) = t.proof_parts(&token);
        claims["nonce"] = json!(nonce);
        t.key.sign_compact(&header, &claims)
    };
    let answer = t
        .post("DPoP", &token, &[&with_nonce(&nonce)], &initialize())
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let wrong = with_nonce("definitely-not-the-server-nonce");
    t.post("DPoP", &token, &[&wrong], &initialize())
        .await
        .refused(401, Some("use_dpop_nonce"), Error::NonceInvalid);

    // The scenario's checks, each proof carrying the nonce: every refusal
    // is about the proof or the token, never use_dpop_nonce.
    let mut t = t;
    t.nonce = Some(nonce);
    the_scenario_checks(&t).await;
}

/// The MCP authorization spec's scope model, as the example applies it: a
/// valid token for this resource may initialize, notify and list tools; a
/// tool call needs that tool's scope, else 403 `insufficient_scope` naming
/// it (step-up); a tool not offered is refused without a challenge.
#[tokio::test]
#[ignore = "needs the mcp_server example built; scripts/test.sh runs it"]
async fn mcp_server_asks_for_a_tools_scope_only_when_it_is_called() {
    let t = Target::start(
        "mcp-scopes",
        &[
            "--tool-scope",
            "list_notes=notes:read",
            "--tool-scope",
            "add_note=notes:write",
            "--tool-scope",
            "whoami=",
        ],
    );
    let token = t.token("");
    let post = |body: Value, session: Option<String>| {
        let mut request = t
            .http
            .post(&t.url)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", t.proof(&token))
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send()
    };
    let init = post(initialize(), None).await.unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = init.bytes().await;
    let notified = post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(session.clone()),
    )
    .await
    .unwrap();
    assert_eq!(notified.status(), 202);
    let call = |id: u32, method: &str, params: Value| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    for (body, status) in [
        (call(2, "tools/list", json!({})), 200),
        (call(3, "ping", json!({})), 200),
        (
            call(4, "tools/call", json!({"name": "whoami", "arguments": {}})),
            200,
        ),
    ] {
        let r = post(body.clone(), Some(session.clone())).await.unwrap();
        assert_eq!(r.status(), status, "{body}");
    }
    let needs = |name: &str| call(5, "tools/call", json!({"name": name, "arguments": {}}));
    for (tool, scope) in [("list_notes", "notes:read"), ("add_note", "notes:write")] {
        let answer = Answer::read(post(needs(tool), Some(session.clone())).await.unwrap()).await;
        answer.refused(403, Some("insufficient_scope"), Error::InsufficientScope);
        assert!(
            answer
                .www_authenticate
                .contains(&format!("scope=\"{scope}\"")),
            "{answer:?}"
        );
    }
    let answer = Answer::read(post(needs("format_disk"), Some(session)).await.unwrap()).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(
        answer.www_authenticate, "",
        "no scope would help: no challenge"
    );
}

/// `resource_server` as a target for black-box tests: `--allowed-host`
/// takes each request's `Host` as the `htu` host, refusing hosts not listed;
/// framing is refused before anything else, a fragment included (the
/// example serves with `senderbound::serve`); the challenge and the RFC 9728
/// metadata advertise every algorithm.
#[tokio::test]
#[ignore = "needs the resource_server example built; scripts/test.sh runs it"]
async fn resource_server_with_allowed_hosts() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let scratch = process::scratch("resource-server-target");
    let issuer = TestIssuer::new(ISSUER);
    let jwks = scratch.join("jwks.json");
    std::fs::write(&jwks, issuer.jwks_json()).unwrap();
    let port = process::free_port();
    let (listen, a, b) = (
        format!("127.0.0.1:{port}"),
        format!("127.0.0.1:{port}"),
        format!("api.example.test:{port}"),
    );
    let args = [
        "--listen",
        &listen,
        "--issuer",
        ISSUER,
        "--jwks-file",
        jwks.to_str().unwrap(),
        "--audience",
        "https://api.example.test",
        "--allowed-host",
        &a,
        "--allowed-host",
        &b,
    ];
    let (_server, base) =
        process::start_example("resource_server", &args, &scratch, "resource-server");
    let key = DpopKey::generate();
    let claims = issuer.claims("https://api.example.test", Some(key.jkt()), "read", now());
    let token = issuer.sign(&claims);
    // Raw HTTP/1.1: `host` for the Host field, `target` as sent.
    let send = |host: String, target: &str| {
        let proof = key
            .proof("GET", &format!("http://{host}/api/read"))
            .unwrap()
            .access_token(&token)
            .sign();
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: DPoP {token}\r\n\
             DPoP: {proof}\r\nConnection: close\r\n\r\n"
        );
        async move {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        }
    };
    for host in [&a, &b] {
        let answer = send(host.clone(), "/api/read").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
    for (host, target, error) in [
        (
            format!("other.example.test:{port}"),
            "/api/read",
            Error::HostNotAllowed,
        ),
        (a.clone(), "/api/read#fragment", Error::FragmentInTarget),
        (format!("user@{a}"), "/api/read", Error::UserinfoInTarget),
        (
            a.clone(),
            "http://api.example.test/api/read",
            Error::HostMismatch,
        ),
    ] {
        let answer = send(host.clone(), target).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{host} {target}: {answer}"
        );
        assert!(
            answer.contains("error=\"invalid_request\"") && answer.contains(error.description()),
            "{host} {target}: {answer}"
        );
    }
    // No credentials: the bare challenge lists every algorithm.
    let answer = Answer::of(reqwest::Client::new().get(format!("{base}/api/read"))).await;
    assert_eq!(answer.status, 401);
    let all: Vec<&str> = senderbound::Algorithm::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(
        answer.www_authenticate,
        format!("DPoP algs=\"{}\"", all.join(" "))
    );
}
