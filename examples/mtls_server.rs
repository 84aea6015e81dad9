//! A resource server that terminates TLS itself and asks clients for
//! certificates, so it accepts mTLS certificate-bound tokens (RFC 8705)
//! next to DPoP-bound ones. Same flags as `resource_server`, plus TLS:
//!
//! ```text
//! cargo run --example mtls_server -- \
//!     --listen 127.0.0.1:8443 \
//!     --tls-cert server.pem --tls-key server-key.pem \
//!     --issuer https://login.example.com \
//!     --audience https://api.example.com
//! ```
//!
//! `--self-signed-cert-out server.pem` instead makes a throw-away
//! certificate for `localhost` / `127.0.0.1` and writes it (the certificate
//! only, for clients' `--cacert`); its key never leaves memory.
//!
//! Client certificates may be self-signed: the token's `cnf["x5t#S256"]`
//! names the exact certificate, and the handshake proves the client holds
//! its key. Clients without a certificate can still connect (DPoP) unless
//! `--require-client-cert`. A token bound to a certificate is sent as
//! `Authorization: Bearer` over the connection that presents it:
//!
//! ```text
//! curl --cacert server.pem --cert client.pem --key client-key.pem \
//!     -H "Authorization: Bearer $TOKEN" https://127.0.0.1:8443/whoami
//! ```
//!
//! Prints `listening on https://ADDR` once bound; audit events go to
//! stderr. Stops on Ctrl-C.

use std::path::PathBuf;

use clap::Parser;
use senderbound::tls::{self, AnyClientCert};
use senderbound_suite::harness::routes;
use senderbound_suite::pki::Identity;
use senderbound_suite::server_cli::{ServerArgs, announce, ctrl_c, log_to_stderr};

#[derive(Parser, Debug)]
#[command(about = "A resource server over TLS that accepts DPoP- and certificate-bound tokens")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// The server's certificate chain (PEM).
    #[arg(
        long,
        requires = "tls_key",
        required_unless_present = "self_signed_cert_out"
    )]
    tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Make a throw-away certificate for localhost/127.0.0.1 and write it here.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    self_signed_cert_out: Option<PathBuf>,
    /// Refuse TLS handshakes without a client certificate.
    #[arg(long)]
    require_client_cert: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = Args::parse();
    // Certificate-bound tokens are what this server is for.
    args.server.accept_mtls_bound = true;
    log_to_stderr();

    let (cert_pem, key_pem) = match (&args.tls_cert, &args.tls_key, &args.self_signed_cert_out) {
        (Some(cert), Some(key), _) => (std::fs::read(cert)?, std::fs::read(key)?),
        (_, _, Some(out)) => {
            let identity = Identity::localhost();
            std::fs::write(out, &identity.cert_pem)?;
            (
                identity.cert_pem.into_bytes(),
                identity.key_pem.into_bytes(),
            )
        }
        _ => return Err("give --tls-cert and --tls-key, or --self-signed-cert-out".into()),
    };
    let client_auth = if args.require_client_cert {
        AnyClientCert::required
    } else {
        AnyClientCert::optional
    };
    let config = tls::server_config(&cert_pem, &key_pem, client_auth)?;

    let listener = tokio::net::TcpListener::bind(args.server.listen).await?;
    let addr = listener.local_addr()?;
    let auth = args.server.build("https", addr)?;

    let mut app = routes().layer(auth.clone());
    // Browser pages on --cors-origin: CORS outside the Layer.
    if let Some(cors) = args.server.cors()? {
        app = app.layer(cors.layer());
    }
    announce(&format!("https://{addr}"))?;
    tracing::info!(%addr, issuer = ?args.server.issuer, "mTLS resource server ready");
    tls::serve(listener, config, app)
        .with_graceful_shutdown(ctrl_c())
        .await?;
    Ok(())
}
