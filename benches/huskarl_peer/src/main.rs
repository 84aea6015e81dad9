//! The Rust peer of `benches/compare.sh`: `GET /api/read` (scope `read`)
//! behind huskarl-axum's `ValidatorLayer`, DPoP required, proofs' `jti`
//! remembered in memory.
//!
//! ```text
//! huskarl-peer --port 0 --issuer http://127.0.0.1:4000 --audience https://api.bench.test
//! ```
//!
//! Prints `listening on URL` when ready.

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::Mutex;

use axum::{Router, routing::get};
use huskarl_axum::layers::ValidatorLayer;
use huskarl_axum::resource_server::core::error::Error;
use huskarl_axum::resource_server::core::jwt::JtiUniquenessChecker;
use huskarl_axum::resource_server::core::platform::MaybeSendBoxFuture;
use huskarl_axum::resource_server::core::server_metadata::AuthorizationServerMetadata;
use huskarl_axum::resource_server::validator::rfc9068::Rfc9068Validator;

/// Proofs' `jti`s, remembered for the run (a benchmark: never forgotten).
#[derive(Debug, Default)]
struct SeenJtis(Mutex<HashSet<String>>);

impl JtiUniquenessChecker for SeenJtis {
    fn check_and_mark_seen(&self, jti: &str) -> MaybeSendBoxFuture<'_, Result<bool, Error>> {
        let jti = jti.to_owned();
        Box::pin(async move {
            let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
            Ok(!seen.insert(jti))
        })
    }
}

fn arg(name: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| panic!("{name} is required"))
}

#[tokio::main]
async fn main() {
    let (port, issuer, audience) = (arg("--port"), arg("--issuer"), arg("--audience"));
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("listen");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let client = huskarl_reqwest::ReqwestClient::builder()
        .mtls(huskarl_reqwest::mtls::NoMtls)
        .build()
        .await
        .expect("HTTP client");
    let metadata = AuthorizationServerMetadata::fetch()
        .http_client(&client)
        .issuer(&issuer)
        .call()
        .await
        .expect("authorization server metadata");
    let validator = Rfc9068Validator::builder_from_metadata(&metadata)
        .audience(&audience)
        .require_dpop(true)
        .dpop_jti_checker(SeenJtis::default())
        .jwks_source(client)
        .build()
        .await
        .expect("validator");
    let auth = ValidatorLayer::builder()
        .validator(validator)
        .base_url(&base)
        .expect("base URL")
        .build();
    let app = Router::new().route(
        "/api/read",
        get(|| async { "ok" }).layer(auth.require_scopes(["read"])),
    );
    println!("listening on {base}");
    std::io::stdout().flush().expect("stdout");
    axum::serve(listener, app).await.expect("serve");
}
