//! A fleet of three `resource_server` processes sharing one Redis, on a
//! Cluster (three primaries, three replicas) and on a Sentinel group (one
//! primary, one replica, three sentinels): the same proof sent to every
//! server at once is accepted exactly once; a revocation made through one
//! server is refused by the others within the poll interval; one key used
//! by two clients on two servers is caught. Over real sockets, the servers
//! configured by their command-line flags only.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use senderbound::Error;
use senderbound_client::DpopKey;
use senderbound_suite::TestIssuer;
use senderbound_suite::harness::Reply;
use senderbound_suite::pki::Identity;
use senderbound_suite::process::{Process, scratch, start_example_with_env};
use senderbound_suite::redis_server::{RedisCluster, RedisServer, SENTINEL_SERVICE, SentinelGroup};

const ISSUER: &str = "https://as.fleet.test";
const AUDIENCE: &str = "https://api.fleet.test";
/// What every server of the fleet is called by (and clients sign as `htu`).
const PUBLIC: &str = "https://api.fleet.test";
/// The servers' revocation poll interval (`--revocation-poll-ms`).
const POLL: Duration = Duration::from_millis(200);

struct Fleet {
    issuer: TestIssuer,
    servers: Vec<(Process, String)>,
    http: reqwest::Client,
    _dir: PathBuf,
}

impl Fleet {
    /// Three servers with `redis_flags`, used proofs, revocations and
    /// first key holders (reject mode) all in that Redis.
    fn start(name: &str, redis_flags: &[String]) -> Fleet {
        Self::start_with_env(name, redis_flags, &[])
    }

    /// [`start`](Self::start) with these environment variables.
    fn start_with_env(name: &str, redis_flags: &[String], env: &[(&str, &str)]) -> Fleet {
        let issuer = TestIssuer::new(ISSUER);
        let dir = scratch(name);
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, issuer.jwks_json()).unwrap();
        let poll = POLL.as_millis().to_string();
        let mut args: Vec<&str> = vec![
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--public-base-url",
            PUBLIC,
            // A Redis started by this test holds nothing to lose (the guard
            // is tested in tests/redis_fleet.rs and tests/redis.rs).
            "--redis-restart-guard-secs",
            "0",
            "--redis-revocations",
            "--revocation-poll-ms",
            &poll,
            "--redis-key-sharing",
            "reject",
            // Six Redis nodes and three servers on a shared two-core
            // machine: a slow moment must not read as an outage.
            "--redis-timeout-ms",
            "1000",
            "--log-level",
            "warn",
        ];
        args.extend(redis_flags.iter().map(String::as_str));
        // The third also accepts unbound bearer tokens (not on its admin
        // route).
        let servers = (0..3)
            .map(|i| {
                let mut args = args.clone();
                if i == 2 {
                    args.push("--allow-bearer");
                }
                start_example_with_env("resource_server", &args, env, &dir, &format!("server-{i}"))
            })
            .collect();
        Fleet {
            issuer,
            servers,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn token(&self, key: &DpopKey, scope: &str, client: &str) -> String {
        self.issuer
            .token(AUDIENCE)
            .bound_to(key)
            .scopes([scope])
            .claim("client_id", client)
            .sign()
    }

    /// A fresh proof for `method` `path` with `token`.
    fn proof(key: &DpopKey, method: &str, path: &str, token: &str) -> String {
        key.proof(method, &format!("{PUBLIC}{path}"))
            .unwrap()
            .access_token(token)
            .sign()
    }

    /// Sends `proof` with `token` to server `i`.
    async fn send(
        &self,
        i: usize,
        method: &str,
        path: &str,
        token: &str,
        proof: &str,
        body: Option<serde_json::Value>,
    ) -> Reply {
        let mut request = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{path}", self.servers[i].1),
            )
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof);
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request).await
    }

    /// `METHOD /admin/revocations` on server `i` with `body`, a fresh
    /// proof by `key` and `token`.
    async fn admin(
        &self,
        i: usize,
        method: &str,
        key: &DpopKey,
        token: &str,
        body: serde_json::Value,
    ) -> Reply {
        let proof = Self::proof(key, method, "/admin/revocations", token);
        self.send(i, method, "/admin/revocations", token, &proof, Some(body))
            .await
    }

    /// `GET /whoami` on server `i` with a fresh proof.
    async fn whoami(&self, i: usize, key: &DpopKey, token: &str) -> Reply {
        let proof = Self::proof(key, "GET", "/whoami", token);
        self.send(i, "GET", "/whoami", token, &proof, None).await
    }

    /// Waits until every server serves (a server answers 503 until its
    /// first read of the revocation list).
    async fn ready(&self) {
        let key = DpopKey::generate();
        let token = self.token(&key, "read", "client-ready");
        let started = Instant::now();
        for i in 0..3 {
            loop {
                let reply = self.whoami(i, &key, &token).await;
                if reply.status == 200 {
                    break;
                }
                assert_eq!(reply.status, 503, "server {i}: {reply:?}");
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "server {i} never served: {reply:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    async fn check(&self) {
        self.ready().await;
        self.same_proof_everywhere_is_accepted_once().await;
        self.a_revocation_through_one_server_is_refused_by_the_others()
            .await;
        self.one_key_with_two_clients_on_two_servers_is_caught()
            .await;
    }

    /// Every round, one proof sent to all three servers at once (three
    /// copies each): one 200, the eight others refused as replays. The
    /// rounds' proofs spread over the store's groups (and, on a Cluster,
    /// its shards).
    async fn same_proof_everywhere_is_accepted_once(&self) {
        let key = DpopKey::generate();
        let token = self.token(&key, "read", "client-replay");
        for round in 0..20 {
            let proof = Self::proof(&key, "GET", "/api/read", &token);
            let sends: Vec<_> = (0..9)
                .map(|n| {
                    let request = self
                        .http
                        .get(format!("{}/api/read", self.servers[n % 3].1))
                        .header("authorization", format!("DPoP {token}"))
                        .header("dpop", &proof);
                    tokio::spawn(reply(request))
                })
                .collect();
            let mut replies = Vec::new();
            for send in sends {
                replies.push(send.await.unwrap());
            }
            let accepted = replies.iter().filter(|r| r.status == 200).count();
            assert_eq!(accepted, 1, "round {round}: {replies:#?}");
            for reply in replies.iter().filter(|r| r.status != 200) {
                reply.assert_refused(401, "invalid_dpop_proof", Error::ProofReplayed);
            }
        }
    }

    /// A token works on every server; revoked (by its key) through server
    /// 0's admin route, server 0 refuses it at once and the others within
    /// the poll interval (plus a read of the list).
    async fn a_revocation_through_one_server_is_refused_by_the_others(&self) {
        let key = DpopKey::generate();
        let token = self.token(&key, "read", "client-revoked");
        for i in 0..3 {
            assert_eq!(self.whoami(i, &key, &token).await.status, 200, "server {i}");
        }
        let admin_key = DpopKey::generate();
        let admin = self.token(&admin_key, "revoke", "operator");
        let revocation = serde_json::json!({
            "revoke": "jkt", "value": key.jkt(), "for_secs": 600,
        });
        // The admin route is a protected route like any other: the admin
        // token as a bearer token, or a token without the scope, never
        // reaches it.
        let url = format!("{}/admin/revocations", self.servers[0].1);
        let as_bearer = self
            .http
            .post(&url)
            .header("authorization", format!("Bearer {admin}"))
            .json(&revocation);
        reply(as_bearer)
            .await
            .assert_refused(401, "invalid_token", Error::TokenDowngrade);
        // On a server that accepts bearer tokens, an unbound token with the
        // scope still may not change the list: 403.
        let unbound = self
            .issuer
            .token(AUDIENCE)
            .scopes(["revoke"])
            .claim("client_id", "operator")
            .sign();
        let url = format!("{}/admin/revocations", self.servers[2].1);
        let unbound_call = self
            .http
            .post(&url)
            .header("authorization", format!("Bearer {unbound}"))
            .json(&revocation);
        let refused = reply(unbound_call).await;
        assert_eq!(refused.status, 403, "{refused:?}");
        let reader = self.token(&admin_key, "read", "operator");
        self.admin(0, "POST", &admin_key, &reader, revocation.clone())
            .await
            .assert_refused(403, "insufficient_scope", Error::InsufficientScope);
        assert_eq!(self.whoami(1, &key, &token).await.status, 200);

        // A value not of its kind's form changes nothing: 422.
        let malformed = serde_json::json!({
            "revoke": "jkt", "value": "not-a-thumbprint", "for_secs": 600,
        });
        let reply = self.admin(0, "POST", &admin_key, &admin, malformed).await;
        assert_eq!(reply.status, 422, "{reply:?}");

        let revoked_at = Instant::now();
        let reply = self.admin(0, "POST", &admin_key, &admin, revocation).await;
        assert_eq!(reply.status, 204, "{reply:?}");
        self.whoami(0, &key, &token).await.assert_refused(
            401,
            "invalid_token",
            Error::TokenRevoked,
        );
        for i in 1..3 {
            loop {
                let reply = self.whoami(i, &key, &token).await;
                if reply.status != 200 {
                    reply.assert_refused(401, "invalid_token", Error::TokenRevoked);
                    break;
                }
                assert!(
                    revoked_at.elapsed() < POLL * 5,
                    "server {i} still accepts a key revoked {:?} ago",
                    revoked_at.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            eprintln!(
                "server {i} refused the revoked key {:?} after the revocation (poll {POLL:?})",
                revoked_at.elapsed()
            );
        }
        // Others are untouched.
        assert_eq!(self.whoami(2, &admin_key, &reader).await.status, 200);

        // Restored through server 1: accepted everywhere again.
        let restoration = serde_json::json!({"revoke": "jkt", "value": key.jkt()});
        let reply = self
            .admin(1, "DELETE", &admin_key, &admin, restoration)
            .await;
        assert_eq!(reply.status, 204, "{reply:?}");
        let restored_at = Instant::now();
        for i in 0..3 {
            while self.whoami(i, &key, &token).await.status != 200 {
                assert!(
                    restored_at.elapsed() < POLL * 5,
                    "server {i} still refuses a key restored {:?} ago",
                    restored_at.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// Client one uses a key through server 1; client two, with the same
    /// key, through server 2, which never saw client one: refused, exactly
    /// as one server would. Client one goes on everywhere.
    async fn one_key_with_two_clients_on_two_servers_is_caught(&self) {
        let shared = DpopKey::generate();
        let one = self.token(&shared, "read", "client-one");
        let two = self.token(&shared, "read", "client-two");
        assert_eq!(self.whoami(1, &shared, &one).await.status, 200);
        self.whoami(2, &shared, &two)
            .await
            .assert_refused(401, "invalid_token", Error::KeyShared);
        self.whoami(0, &shared, &two)
            .await
            .assert_refused(401, "invalid_token", Error::KeyShared);
        for i in 0..3 {
            assert_eq!(
                self.whoami(i, &shared, &one).await.status,
                200,
                "server {i}"
            );
        }
    }
}

/// Sends `request`; the reply as the tests read it.
async fn reply(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Reply {
        status: response.status().as_u16(),
        challenges: response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect(),
        dpop_nonce: header("dpop-nonce"),
        content_type: header("content-type"),
        body: response.text().await.unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server, redis-cli and the resource_server example; scripts/test.sh runs it"]
async fn three_servers_sharing_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let flags: Vec<String> = cluster
        .urls()
        .into_iter()
        .flat_map(|url| ["--redis-cluster".to_owned(), url])
        .collect();
    Fleet::start("servers-cluster", &flags).check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and the resource_server example; scripts/test.sh runs it"]
async fn three_servers_sharing_a_sentinel_group() {
    let group = SentinelGroup::start();
    let mut flags: Vec<String> = group
        .sentinel_urls()
        .into_iter()
        .flat_map(|url| ["--redis-sentinel".to_owned(), url])
        .collect();
    flags.extend(["--redis-service".to_owned(), SENTINEL_SERVICE.to_owned()]);
    Fleet::start("servers-sentinel", &flags).check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and the resource_server example; scripts/test.sh runs it"]
async fn three_servers_sharing_a_redis_over_tls() {
    // A Redis that speaks TLS on a second port, with a test certificate
    // (made now, in memory and a temporary directory; never committed).
    let identity = Identity::localhost();
    let dir = scratch("redis-tls");
    let (cert, key) = (dir.join("redis.pem"), dir.join("redis-key.pem"));
    std::fs::write(&cert, &identity.cert_pem).unwrap();
    std::fs::write(&key, &identity.key_pem).unwrap();
    let tls_port = senderbound_suite::process::free_port().to_string();
    let redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--tls-ca-cert-file",
        cert.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
    ]);
    let flags = vec![
        "--redis-url".to_owned(),
        format!("rediss://127.0.0.1:{tls_port}/"),
    ];
    // Servers that trust the certificate (SSL_CERT_FILE, read by the
    // platform-roots loader) share used proofs, revocations and key
    // holders over TLS.
    let ca = cert.to_str().unwrap();
    let fleet = Fleet::start_with_env("servers-tls", &flags, &[("SSL_CERT_FILE", ca)]);
    fleet.check().await;

    // A server that does not trust it never talks to that Redis: every
    // DPoP request is 503, never 200 (for two seconds: the servers that
    // trust it served within one).
    let distrustful = Fleet::start_with_env("servers-tls-untrusted", &flags, &[]);
    let key = DpopKey::generate();
    let token = distrustful.token(&key, "read", "client-distrust");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let reply = distrustful.whoami(0, &key, &token).await;
        assert_eq!(reply.status, 503, "{reply:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(redis);
}
