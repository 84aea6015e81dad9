//! A browser app as a DPoP client, and the API it calls from another
//! origin: the example behind tests/browser.rs and the browser section of
//! docs/deployment.md.
//!
//! ```text
//! cargo run --example browser_app -- \
//!     --listen 127.0.0.1:3000 --page-listen 127.0.0.1:3001 \
//!     --issuer http://127.0.0.1:4000 --audience http://127.0.0.1:3000/ \
//!     --nonce-secret "a secret of 32 bytes or more, test only"
//! ```
//!
//! Three listeners:
//! - **the API** (`--listen`): `GET /api/read`, `POST /api/write`,
//!   `GET /whoami` behind the `SenderBoundLayer`, configured as
//!   `resource_server` is (every `ServerArgs` flag), with
//!   [`DpopCors`](senderbound::cors::DpopCors) outside it allowing the
//!   page's origin only;
//! - **the page** (`--page-listen`): a single page (`examples/browser/`)
//!   that makes a non-extractable ES256 key with WebCrypto, keeps it in
//!   IndexedDB, signs in with the authorization-code flow and PKCE
//!   (oauth4webapi, served from `--oauth4webapi`), and calls the API,
//!   retrying once on `use_dpop_nonce`;
//! - **the same page on an origin the API does not allow**
//!   (`--other-page-listen`, optional): its calls are blocked by CORS.
//!
//! The authorization server must know the public client `--page-client-id`
//! (default `browser-app`) with the redirect URI `http://PAGE/` and allow
//! CORS from the page: `node tests/real_as/as.mjs … --browser-client
//! http://PAGE` does. Prints `listening on http://API`, then `page on
//! http://PAGE` (and `other page on …`). Stops on Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Parser;
use senderbound::cors::DpopCors;
use senderbound_suite::harness::routes;
use senderbound_suite::process::root;
use senderbound_suite::server_cli::{ServerArgs, announce, ctrl_c};
use serde_json::json;

const INDEX: &str = include_str!("browser/index.html");
const APP: &str = include_str!("browser/app.js");

#[derive(Parser, Debug)]
#[command(about = "A browser DPoP client (page) and the API it calls across origins")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Where the page is served (its origin is the one the API allows).
    #[arg(long, default_value = "127.0.0.1:3001")]
    page_listen: SocketAddr,
    /// Also serve the page here: an origin the API does not allow.
    #[arg(long)]
    other_page_listen: Option<SocketAddr>,
    /// The page's client at the authorization server (public, PKCE).
    #[arg(long, default_value = "browser-app")]
    page_client_id: String,
    /// oauth4webapi's ES module (`build/index.js` of the npm package).
    #[arg(long)]
    oauth4webapi: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    args.server.init_logging()?;
    let issuer = args.server.issuer.clone().ok_or("--issuer is required")?;
    let resource = args
        .server
        .audience
        .first()
        .cloned()
        .ok_or("--audience is required")?;

    let api_listener = tokio::net::TcpListener::bind(args.server.listen).await?;
    let api_addr = api_listener.local_addr()?;
    let page_listener = tokio::net::TcpListener::bind(args.page_listen).await?;
    let page_addr = page_listener.local_addr()?;
    let page_origin = format!("http://{page_addr}");

    // The API: the Layer, and CORS outside it, so preflights are answered
    // before authentication and refusals are readable by the page.
    let auth = args.server.build("http", api_addr)?;
    let mut origins = args.server.cors_origin.clone();
    origins.push(page_origin.clone());
    let cors = DpopCors::allow_origins(&origins)?;
    let api = routes().layer(auth).layer(cors.layer());

    let oauth4webapi = args
        .oauth4webapi
        .clone()
        .unwrap_or_else(|| root().join("tests/clients/node_modules/oauth4webapi/build/index.js"));
    let oauth4webapi = std::fs::read_to_string(&oauth4webapi).map_err(|e| {
        format!(
            "{}: {e} (run npm ci in tests/clients)",
            oauth4webapi.display()
        )
    })?;
    let config = json!({
        "issuer": issuer,
        "client_id": args.page_client_id,
        "api": format!("http://{api_addr}"),
        "resource": resource,
    });
    // The page may connect to the authorization server and the API only.
    let connect = format!("'self' {} http://{api_addr}", origin_of(&issuer));
    let page = page_router(config, oauth4webapi, &connect);

    announce(&format!("http://{api_addr}"))?;
    println!("page on {page_origin}");
    let mut servers = tokio::task::JoinSet::new();
    if let Some(other) = args.other_page_listen {
        let listener = tokio::net::TcpListener::bind(other).await?;
        println!("other page on http://{}", listener.local_addr()?);
        let page = page.clone();
        servers.spawn(async move { axum::serve(listener, page).await });
    }
    servers.spawn(async move { axum::serve(page_listener, page).await });
    servers.spawn(async move {
        // senderbound's server: fragments marked, peer addresses recorded.
        senderbound::serve::serve(api_listener, api)
            .await
            .map_err(std::io::Error::other)
    });
    tokio::select! {
        () = ctrl_c() => {}
        Some(ended) = servers.join_next() => ended??,
    }
    Ok(())
}

/// `scheme://authority` of `url`.
fn origin_of(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    url[start..]
        .find('/')
        .map_or(url, |end| &url[..start + end])
}

/// The page's origin: the HTML, the script, oauth4webapi and the config.
fn page_router(config: serde_json::Value, oauth4webapi: String, connect: &str) -> Router {
    // The page runs only its own scripts (no inline script, no other
    // origin's), fetches from the servers it needs only, and cannot be
    // framed. That narrows what injected markup can do; it does not stop a
    // script that does run (docs/deployment.md §8).
    let policy = format!(
        "default-src 'self'; script-src 'self'; connect-src {connect}; \
         img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
         form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
    );
    let file = move |content_type: &'static str, body: String| {
        let policy = policy.clone();
        get(move || {
            let body = body.clone();
            let policy = policy.clone();
            async move {
                (
                    [
                        (CONTENT_TYPE, content_type.to_owned()),
                        (axum::http::header::CONTENT_SECURITY_POLICY, policy),
                    ],
                    body,
                )
                    .into_response()
            }
        })
    };
    Router::new()
        .route("/", file("text/html; charset=utf-8", INDEX.to_owned()))
        .route("/app.js", file("text/javascript", APP.to_owned()))
        .route("/oauth4webapi.js", file("text/javascript", oauth4webapi))
        .route("/config.json", file("application/json", config.to_string()))
}
