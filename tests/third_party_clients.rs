//! Clients no one here wrote, against the `resource_server` example and
//! node-oidc-provider (tests/real_as): panva's oauth4webapi (npm) and
//! requests-oauth2client (PyPI), each getting a DPoP-bound token, making a
//! valid call, having a replay refused, and recovering from a nonce change
//! (the server restarted with another nonce secret) with one retry. The
//! programs are in tests/clients (see its README).
//!
//! Ignored by plain `cargo test`: they need Node.js with `npm ci` in
//! tests/real_as and tests/clients, a Python with requests-oauth2client
//! (`CLIENTS_PYTHON`, default target/clients-venv/bin/python) and the built
//! example; `scripts/test.sh` prepares all of it and runs them.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use senderbound_suite::process::{self, Process, free_port, root, start};
use serde_json::Value;

const AUDIENCE: &str = "https://api.example.test/";

fn start_as(port: u16, scratch: &Path) -> Process {
    let mut node = Command::new("node");
    node.current_dir(root().join("tests/real_as"))
        .arg("as.mjs")
        .args(["--port", &port.to_string()])
        .arg("--keys")
        .arg(scratch.join("as-keys.json"));
    start(node, "as ready", &scratch.join("as.log")).0
}

/// The resource server on `port`, trusting the AS on `as_port`, requiring
/// nonces made with `secret`.
fn start_rs(port: u16, as_port: u16, secret: &str, scratch: &Path, log: &str) -> Process {
    let listen = format!("127.0.0.1:{port}");
    let issuer = format!("http://127.0.0.1:{as_port}");
    let args = [
        "--listen",
        &listen,
        "--issuer",
        &issuer,
        "--audience",
        AUDIENCE,
        "--nonce-secret",
        secret,
    ];
    process::start_example("resource_server", &args, scratch, log).0
}

fn python() -> PathBuf {
    std::env::var_os("CLIENTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/clients-venv/bin/python"))
}

/// Runs `client` (a command line) against the servers; when it asks for the
/// nonce change, restarts the resource server with another secret on the
/// same port. Returns the client's summary.
fn run(client: &mut Command, name: &str, nonce_change: bool) -> Value {
    let scratch = process::scratch(&format!("clients-{name}"));
    let (as_port, rs_port) = (free_port(), free_port());
    let _as = start_as(as_port, &scratch);
    let mut rs = start_rs(rs_port, as_port, &"a".repeat(32), &scratch, "rs-a");
    client
        .args(["--issuer", &format!("http://127.0.0.1:{as_port}")])
        .args(["--rs", &format!("http://127.0.0.1:{rs_port}")])
        .args(["--resource", AUDIENCE])
        .args([
            "--nonce-change",
            if nonce_change { "stdin" } else { "none" },
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(scratch.join("client.log")).unwrap());
    let mut child = client
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {client:?}: {e}"));
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut summary = Value::Null;
    for line in stdout.lines().map_while(Result::ok) {
        if line == "awaiting nonce change" {
            drop(rs);
            rs = start_rs(rs_port, as_port, &"b".repeat(32), &scratch, "rs-b");
            writeln!(stdin,).unwrap();
        } else if let Ok(parsed) = serde_json::from_str(&line) {
            summary = parsed;
        }
    }
    let status = child.wait().unwrap();
    drop(rs);
    assert!(
        summary.is_object(),
        "{name} printed no summary ({status}); its log:\n{}",
        std::fs::read_to_string(scratch.join("client.log")).unwrap_or_default()
    );
    summary
}

/// What both libraries must show: a DPoP-bound token, the nonce dance, a
/// valid call, a replay refused, and recovery after the nonce changed.
fn assert_common(summary: &Value, name: &str) {
    let steps = &summary["steps"];
    assert_eq!(
        summary["checks"]["token_dpop_bound"], true,
        "{name}: {summary}"
    );
    // First contact: 401 use_dpop_nonce, then 200 with the nonce.
    assert_eq!(
        steps["first"]["statuses"],
        serde_json::json!([401, 200]),
        "{name}"
    );
    assert_eq!(steps["first"]["errors"][0], "use_dpop_nonce", "{name}");
    assert_eq!(steps["valid"]["status"], 200, "{name}");
    assert_eq!(steps["replay"]["status"], 401, "{name}");
    assert_eq!(steps["replay"]["error"], "invalid_dpop_proof", "{name}");
    assert!(
        steps["replay"]["www_authenticate"]
            .as_str()
            .unwrap_or_default()
            .contains(senderbound::Error::ProofReplayed.description()),
        "{name}: {summary}"
    );
    for step in ["query", "write", "whoami"] {
        assert_eq!(steps[step]["status"], 200, "{name} {step}: {summary}");
    }
    assert_eq!(steps["whoami"]["jkt_matches_key"], true, "{name}");
    let change = &steps["nonce_change"];
    assert_eq!(change["same_origin"], true, "{name}");
    assert_eq!(
        change["statuses"],
        serde_json::json!([401, 200]),
        "{name}: {summary}"
    );
    assert_eq!(change["errors"][0], "use_dpop_nonce", "{name}");
}

fn node(alg: &str) -> Command {
    let mut command = Command::new("node");
    command
        .arg(root().join("tests/clients/oauth4webapi_client.mjs"))
        .args(["--alg", alg]);
    command
}

#[test]
#[ignore = "needs Node.js, npm ci in tests/real_as and tests/clients, and the resource_server example; scripts/test.sh runs it"]
fn oauth4webapi() {
    let summary = run(&mut node("ES256"), "oauth4webapi", true);
    assert_common(&summary, "oauth4webapi");
    assert_eq!(summary["ok"], true, "{summary}");
    // A DPoP 401 that is not about the nonce reaches the application.
    assert_eq!(summary["steps"]["bad_token"]["error"], "invalid_token");
    // Ed25519 keys: oauth4webapi names the alg "Ed25519" (RFC 9864).
    let summary = run(&mut node("EdDSA"), "oauth4webapi-ed25519", false);
    assert_eq!(
        summary["steps"]["valid"]["proof"]["alg"], "Ed25519",
        "{summary}"
    );
    assert_eq!(summary["steps"]["valid"]["status"], 200, "{summary}");
    assert_eq!(summary["steps"]["replay"]["error"], "invalid_dpop_proof");
}

#[test]
#[ignore = "needs Python with requests-oauth2client, Node.js for the AS, and the resource_server example; scripts/test.sh runs it"]
fn requests_oauth2client() {
    let mut command = Command::new(python());
    command.arg(root().join("tests/clients/roc_client.py"));
    let summary = run(&mut command, "requests-oauth2client", true);
    assert_common(&summary, "requests-oauth2client");
    assert_eq!(summary["ok"], true, "{summary}");
    let mut command = Command::new(python());
    command
        .arg(root().join("tests/clients/roc_client.py"))
        .args(["--alg", "EdDSA"]);
    let summary = run(&mut command, "requests-oauth2client-eddsa", false);
    assert_eq!(
        summary["steps"]["valid"]["proof"]["alg"], "EdDSA",
        "{summary}"
    );
    assert_eq!(summary["steps"]["valid"]["status"], 200, "{summary}");
}
