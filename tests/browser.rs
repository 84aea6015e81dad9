//! A browser as a DPoP client, in a real browser: headless Chromium
//! (Debian's `chromium`, driven by puppeteer-core, tests/browser/run.mjs)
//! loads the `browser_app` example's page, which makes a non-extractable
//! WebCrypto key, signs in at node-oidc-provider (tests/real_as) with the
//! authorization-code flow and PKCE, and calls the API on another origin
//! through `senderbound::cors::DpopCors`.
//!
//! Ignored by plain `cargo test`: it needs Chromium, Node.js, `npm ci` in
//! tests/browser, tests/clients (oauth4webapi, served to the page) and
//! tests/real_as, and the built example; `scripts/test.sh` prepares them.
//! `SENDERBOUND_SCREENSHOTS=docs/browser` keeps the page's screenshots
//! there (as the README shows them); otherwise they go to the scratch
//! directory.

use std::process::Command;

use senderbound_suite::process::{free_port, root, scratch, start, start_example};
use serde_json::Value;

/// The Chromium to drive: `$CHROMIUM`, else Debian's.
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

#[test]
#[ignore = "needs Chromium, Node.js and npm ci in tests/browser, tests/clients and tests/real_as (scripts/test.sh)"]
fn a_browser_page_is_a_dpop_client_and_its_key_cannot_leave() {
    let dir = scratch("browser");
    let (as_port, api_port, page_port, other_port) =
        (free_port(), free_port(), free_port(), free_port());
    let page = format!("http://127.0.0.1:{page_port}");
    let other = format!("http://127.0.0.1:{other_port}");
    let issuer = format!("http://127.0.0.1:{as_port}");

    let mut node = Command::new("node");
    node.current_dir(root().join("tests/real_as"))
        .arg("as.mjs")
        .args(["--port", &as_port.to_string(), "--browser-client", &page])
        .arg("--keys")
        .arg(dir.join("as-keys.json"));
    let _as = start(node, "as ready", &dir.join("as.log")).0;

    let api_listen = format!("127.0.0.1:{api_port}");
    let audience = format!("http://127.0.0.1:{api_port}/");
    let (_app, api) = start_example(
        "browser_app",
        &[
            "--listen",
            &api_listen,
            "--page-listen",
            &page[7..],
            "--other-page-listen",
            &other[7..],
            "--issuer",
            &issuer,
            "--audience",
            &audience,
            "--nonce-secret",
            "browser test nonce secret, 32 bytes or more (test only)",
            "--log-level",
            "warn",
        ],
        &dir,
        "browser_app",
    );

    let shots = std::env::var("SENDERBOUND_SCREENSHOTS")
        .map(|d| root().join(d))
        .unwrap_or_else(|_| dir.join("screenshots"));
    let output = Command::new("node")
        .current_dir(root().join("tests/browser"))
        .arg("run.mjs")
        .args(["--page", &page, "--other-page", &other, "--api", &api])
        .args(["--chromium", &chromium()])
        .arg("--screenshots")
        .arg(&shots)
        .output()
        .expect("node runs tests/browser/run.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "run.mjs failed: {stdout}\n{}\nthe example's log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(dir.join("browser_app.log")).unwrap_or_default()
    );
    let summary: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let step = |name: &str| summary["steps"][name].clone();
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );

    // The key: made by WebCrypto, non-extractable, the same after a reload.
    let key = step("key");
    let jkt = key["jkt"].as_str().expect("a thumbprint").to_owned();
    assert_eq!(jkt.len(), 43, "{key}");
    assert_eq!(key["extractable"], false, "{key}");
    assert_eq!(key["export_error"], "InvalidAccessError", "{key}");
    assert_eq!(step("reload")["same_key"], true);

    // Sign-in: a DPoP-bound token for the page's key, for its client.
    let sign_in = step("sign_in");
    assert_eq!(sign_in["token"], true, "{sign_in}");
    assert_eq!(sign_in["error"], Value::Null, "{sign_in}");
    assert_eq!(sign_in["cnf_jkt_is_the_page_key"], true, "{sign_in}");
    assert_eq!(sign_in["client_id"], "browser-app");

    // The first call: 401 use_dpop_nonce with a nonce the page could read,
    // then 200 with the Sender; the second at once.
    let first = step("first");
    assert_eq!(first["attempts"][0]["status"], 401, "{first}");
    assert_eq!(first["attempts"][0]["error"], "use_dpop_nonce", "{first}");
    assert_eq!(first["attempts"][0]["nonce"], true, "{first}");
    assert_eq!(first["retried"], true);
    assert_eq!(first["status"], 200, "{first}");
    assert_eq!(first["sender"]["binding"], "dpop");
    assert_eq!(first["sender"]["jkt"], jkt.as_str());
    assert_eq!(first["sender"]["sub"], "browser-user");
    assert_eq!(first["sender"]["client_id"], "browser-app");
    let second = step("second");
    assert_eq!(second["status"], 200, "{second}");
    assert_eq!(second["retried"], false, "{second}");

    // The same proof again, from the page: refused, and readable there.
    let replay = step("replay");
    assert_eq!(replay["status"], 401, "{replay}");
    assert_eq!(replay["error"], "invalid_dpop_proof", "{replay}");

    // The token copied out of the page is useless without the key.
    let outside = step("outside");
    for (what, status, error) in [
        ("no_proof", 401, "invalid_dpop_proof"),
        ("thief_key_first", 401, "use_dpop_nonce"),
        ("thief_key", 401, "invalid_token"),
        ("as_bearer", 401, "invalid_token"),
    ] {
        assert_eq!(outside[what]["status"], status, "{what}: {outside}");
        assert_eq!(outside[what]["error"], error, "{what}: {outside}");
    }

    // A page on an origin the API does not allow: blocked by the browser.
    let blocked = step("other_origin");
    assert_eq!(blocked["blocked"], true, "{blocked}");
    assert_eq!(blocked["cors_reported"], true, "{blocked}");
    assert!(blocked.get("status").is_none(), "{blocked}");

    // Nothing else went wrong in the pages (the 401s are expected ones).
    let console = summary["console"].as_array().cloned().unwrap_or_default();
    for line in &console {
        let line = line.as_str().unwrap_or_default();
        assert!(
            !line.starts_with("pageerror") && !line.contains("404"),
            "{line}"
        );
    }
}
