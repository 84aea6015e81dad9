//! senderbound in under a minute.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! Starts a DPoP-protected axum server on 127.0.0.1 (random port) with a
//! **demo-only** token issuer in the same process, then plays a client:
//! a valid call, a replayed proof, a stolen token used with another key, the
//! bound token sent as a plain Bearer token, a call lacking scope, and a call
//! without credentials. Prints what happened and the audit trail, and exits
//! 0 only if every outcome is the expected one.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use senderbound::{Origin, SenderBoundLayer};
use senderbound_client::DpopKey;
use senderbound_suite::TestIssuer;
use senderbound_suite::capture::Captured;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// One client call and what the server should answer.
struct Scenario {
    step: &'static str,
    request: &'static str,
    method: &'static str,
    path: &'static str,
    authorization: Option<String>,
    dpop: Option<String>,
    expected: (u16, Option<&'static str>),
}

struct Outcome {
    step: &'static str,
    request: &'static str,
    expected: (u16, Option<&'static str>),
    status: u16,
    challenge: String,
}

impl Outcome {
    fn error_code(&self) -> Option<String> {
        let start = self.challenge.find("error=\"")? + 7;
        self.challenge[start..].split('"').next().map(str::to_owned)
    }

    fn as_expected(&self) -> bool {
        self.status == self.expected.0 && self.error_code().as_deref() == self.expected.1
    }
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

async fn call(
    client: &HttpClient,
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<String>,
    dpop: Option<String>,
) -> Result<(u16, String, String), Box<dyn std::error::Error>> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if let Some(p) = dpop {
        req = req.header("dpop", p);
    }
    let resp = client.request(req.body(Empty::new())?).await?;
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(" | ");
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((
        status,
        challenge,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

fn short(token: &str) -> String {
    format!("{}…", &token[..token.len().min(12)])
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let audit = Captured::default();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(audit.clone())
                .with_ansi(false)
                .without_time()
                .with_filter(
                    Targets::new().with_target("senderbound::audit", tracing::Level::INFO),
                ),
        )
        .init();

    // --- the server side -------------------------------------------------
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let audience = format!("http://{addr}");

    // DEMO ONLY: an in-process token issuer with a key generated right now.
    // A real resource server trusts an authorization server instead.
    let issuer = TestIssuer::new("https://demo-issuer.invalid");

    let auth = SenderBoundLayer::builder()
        .trust(issuer.trust()) // the demo issuer's key
        .audience(&audience)
        // The host clients address; the demo listens on plain HTTP on loopback.
        .origin(Origin::hosts([addr.to_string()]).plain_http())
        .build()?;
    let app = senderbound_suite::harness::routes().layer(auth.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("server error: {e}");
        }
    });

    println!("senderbound demo");
    println!(
        "  protected API  http://{addr}  (GET /api/read needs scope read, POST /api/write needs scope write)"
    );
    println!(
        "  token issuer   DEMO ONLY, in-process ({})",
        issuer.issuer()
    );
    println!("  signatures     {}", senderbound_core::backend_name());

    // --- the client side -------------------------------------------------
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let key = DpopKey::generate();
    let now = senderbound::clock::Clock::now(&senderbound::clock::SystemClock);
    let token = issuer.sign(&issuer.claims(&audience, Some(key.jkt()), "read", now));
    let url = |path: &str| format!("http://{addr}{path}");
    println!("  client key     jkt {}", key.jkt());
    println!(
        "  access token   {} (scope read, cnf.jkt bound to the client key)\n",
        short(&token)
    );

    let thief = DpopKey::generate();
    let valid_proof = key
        .proof("GET", &url("/api/read"))?
        .access_token(&token)
        .sign();
    let scenarios = [
        Scenario {
            step: "valid DPoP call",
            request: "GET /api/read  DPoP token + fresh proof",
            method: "GET",
            path: "/api/read",
            authorization: Some(format!("DPoP {token}")),
            dpop: Some(valid_proof.clone()),
            expected: (200, None),
        },
        Scenario {
            step: "replayed proof",
            request: "GET /api/read  same proof again",
            method: "GET",
            path: "/api/read",
            authorization: Some(format!("DPoP {token}")),
            dpop: Some(valid_proof),
            expected: (401, Some("invalid_dpop_proof")),
        },
        Scenario {
            step: "stolen token, other key",
            request: "GET /api/read  token + thief's own valid proof",
            method: "GET",
            path: "/api/read",
            authorization: Some(format!("DPoP {token}")),
            dpop: Some(
                thief
                    .proof("GET", &url("/api/read"))?
                    .access_token(&token)
                    .sign(),
            ),
            expected: (401, Some("invalid_token")),
        },
        Scenario {
            step: "downgrade to Bearer",
            request: "GET /api/read  Authorization: Bearer <bound token>",
            method: "GET",
            path: "/api/read",
            authorization: Some(format!("Bearer {token}")),
            dpop: None,
            expected: (401, Some("invalid_token")),
        },
        Scenario {
            step: "missing scope",
            request: "POST /api/write  token has scope read only",
            method: "POST",
            path: "/api/write",
            authorization: Some(format!("DPoP {token}")),
            dpop: Some(
                key.proof("POST", &url("/api/write"))?
                    .access_token(&token)
                    .sign(),
            ),
            expected: (403, Some("insufficient_scope")),
        },
        Scenario {
            step: "no credentials",
            request: "GET /api/read  no Authorization",
            method: "GET",
            path: "/api/read",
            authorization: None,
            dpop: None,
            expected: (401, None),
        },
    ];

    let mut outcomes = Vec::new();
    let mut sender = String::new();
    for s in scenarios {
        let (status, challenge, body) =
            call(&client, addr, s.method, s.path, s.authorization, s.dpop).await?;
        if status == 200 && sender.is_empty() {
            sender = body;
        }
        outcomes.push(Outcome {
            step: s.step,
            request: s.request,
            expected: s.expected,
            status,
            challenge,
        });
    }

    // --- the report --------------------------------------------------------
    println!(
        "{:<3} {:<24} {:<50} {:>6}  {:<4} WWW-Authenticate",
        "#", "scenario", "request", "status", "ok?"
    );
    println!("{}", "-".repeat(140));
    for (i, o) in outcomes.iter().enumerate() {
        println!(
            "{:<3} {:<24} {:<50} {:>6}  {:<4} {}",
            i + 1,
            o.step,
            o.request,
            o.status,
            if o.as_expected() { "yes" } else { "NO" },
            if o.challenge.is_empty() {
                "-"
            } else {
                &o.challenge
            }
        );
    }
    println!("\nSender handed to the handler in call 1:\n  {sender}");

    println!("\nAudit trail (tracing target senderbound::audit; no tokens, proofs or keys):");
    for line in audit.lines() {
        println!("  {line}");
    }

    let failures = outcomes.iter().filter(|o| !o.as_expected()).count();
    println!(
        "\n{} of {} outcomes as expected in {:.2?}",
        outcomes.len() - failures,
        outcomes.len(),
        started.elapsed()
    );
    if failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}
