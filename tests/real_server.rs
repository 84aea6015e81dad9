//! Over real sockets: a protected axum server on 127.0.0.1 and concurrent
//! clients.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use senderbound_suite::harness::{HOST, Harness};

async fn serve(h: &Harness) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_proof_sent_50_times_concurrently_succeeds_exactly_once() {
    let h = Harness::new();
    let addr = serve(&h).await;
    let token = h.token();
    let proof = h.proof("GET", "/api/read", &token);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();

    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, token, proof) = (client.clone(), token.clone(), proof.clone());
        tasks.push(tokio::spawn(async move {
            let req = http::Request::get(format!("http://{addr}/api/read"))
                .header("host", HOST)
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
                .body(Empty::new())
                .unwrap();
            let resp = client.request(req).await.unwrap();
            let status = resp.status().as_u16();
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let _ = resp.into_body().collect().await;
            (status, challenge)
        }));
    }
    let mut ok = 0;
    let mut replayed = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (401, Some(c))
                if c.contains("error=\"invalid_dpop_proof\"") && c.contains("already used") =>
            {
                replayed += 1
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert_eq!((ok, replayed), (1, 49));
}
