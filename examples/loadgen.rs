//! A load generator for DPoP-protected endpoints on loopback.
//!
//! It obtains a DPoP-bound token (or is given one with its key), signs one
//! unique proof per request *before* the run (so signing never limits the
//! load), then sends a fixed number of requests, or runs for a fixed time,
//! over keep-alive HTTP/1.1 connections, one request in flight per
//! connection. It reports requests/s, latency percentiles from an HDR
//! histogram, and the status code mix, as text and as JSON.
//!
//! ```text
//! # against resource_server, with a token from node-oidc-provider:
//! cargo run --release --example loadgen -- \
//!     --url http://127.0.0.1:3000/api/read --connections 8 --requests 100000 \
//!     --token-endpoint http://127.0.0.1:4000/token --client-id agent \
//!     --client-secret agent-secret --scope read --resource https://api.bench.test
//!
//! # given a token and the key it is bound to (hex of the P-256 secret scalar):
//! cargo run --release --example loadgen -- --url http://127.0.0.1:3000/api/read \
//!     --token-file token.txt --key-file key.hex --duration 10
//! ```
//!
//! Bounded: at most 5,000,000 requests per round, 50 s per round (a proof is
//! accepted for 60 s after its `iat`, which is set when the round's proofs
//! are signed), 20 rounds, 1,024 connections; the target must be a loopback
//! address. `--rounds N` repeats sign-then-load N times and, with
//! `--server-pid`, reads the server's resident memory after each round: a
//! long run in bounded pieces.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use senderbound_client::{DpopKey, DpopSession, TokenRequest};
use serde_json::json;

const MAX_REQUESTS: u64 = 5_000_000;
const MAX_ROUND_SECS: u64 = 50;
const MAX_ROUNDS: u32 = 20;
const MAX_CONNECTIONS: usize = 1024;

#[derive(Parser, Debug)]
#[command(about = "Load generator for DPoP-protected endpoints (loopback only)")]
struct Args {
    /// The endpoint to load (http, loopback address only).
    #[arg(long)]
    url: String,
    /// HTTP method (the proofs' htm).
    #[arg(long, default_value = "GET")]
    method: String,
    /// Concurrent keep-alive connections, one request in flight on each.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Requests per round (default 10,000 unless --duration is given).
    #[arg(long)]
    requests: Option<u64>,
    /// Run each round for this many seconds instead (at most 50); needs
    /// --proofs, the number of proofs signed for it.
    #[arg(long, requires = "proofs")]
    duration: Option<u64>,
    /// Proofs to sign for a --duration round; the round ends early if they
    /// run out.
    #[arg(long)]
    proofs: Option<u64>,
    /// Sign one proof and send it with every request. Only for a target that
    /// checks nothing (the unprotected ceiling): a DPoP server refuses the
    /// replays.
    #[arg(long)]
    same_proof: bool,
    /// Sign-then-load this many times.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Read this process's resident memory after each round (the server's).
    #[arg(long)]
    server_pid: Option<u32>,
    /// The AS token endpoint to get a DPoP-bound token from (client_credentials).
    #[arg(long, requires_all = ["client_id", "client_secret"])]
    token_endpoint: Option<String>,
    #[arg(long)]
    client_id: Option<String>,
    /// Or the LOADGEN_CLIENT_SECRET variable.
    #[arg(long, env = "LOADGEN_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    #[arg(long)]
    scope: Option<String>,
    #[arg(long)]
    resource: Option<String>,
    /// A file holding the access token to use, instead of --token-endpoint.
    #[arg(long, requires = "key_file", conflicts_with = "token_endpoint")]
    token_file: Option<std::path::PathBuf>,
    /// A file holding the hex of the 32-byte P-256 secret the token is bound to.
    #[arg(long, requires = "token_file")]
    key_file: Option<std::path::PathBuf>,
    /// Write the report as JSON to this file as well.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// A name for this target in the report (default: the URL).
    #[arg(long)]
    label: Option<String>,
    /// Show progress even when stderr is not a terminal.
    #[arg(long)]
    progress: bool,
}

/// What one connection saw.
struct Tally {
    latency_us: Histogram<u64>,
    status: BTreeMap<u16, u64>,
    errors: u64,
}

impl Tally {
    fn new() -> Self {
        Tally {
            // 1 µs to 60 s, 3 significant digits.
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            status: BTreeMap::new(),
            errors: 0,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms of the same bounds");
        for (code, n) in other.status {
            *self.status.entry(code).or_default() += n;
        }
        self.errors += other.errors;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let url: url::Url = args.url.parse()?;
    let addr = loopback_target(&url)?;
    if args.connections == 0 || args.connections > MAX_CONNECTIONS {
        return Err(format!("--connections must be 1 to {MAX_CONNECTIONS}").into());
    }
    if !(1..=MAX_ROUNDS).contains(&args.rounds) {
        return Err(format!("--rounds must be 1 to {MAX_ROUNDS}").into());
    }
    if args.duration.is_some_and(|d| d == 0 || d > MAX_ROUND_SECS) {
        return Err(format!("--duration must be 1 to {MAX_ROUND_SECS} seconds").into());
    }
    let count = match (args.duration, args.requests, args.proofs) {
        (Some(_), None, Some(proofs)) => proofs,
        (Some(_), Some(_), _) => return Err("give --requests or --duration, not both".into()),
        (None, requests, _) => requests.unwrap_or(10_000),
        (Some(_), None, None) => unreachable!("clap requires --proofs with --duration"),
    };
    if count == 0 || count > MAX_REQUESTS {
        return Err(format!("requests (or proofs) must be 1 to {MAX_REQUESTS}").into());
    }

    // One thread drives the load: the server gets the rest of the machine.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (key, token) = runtime.block_on(credentials(&args))?;
    let authorization = http::HeaderValue::from_str(&format!("DPoP {token}"))?;
    let host = http::HeaderValue::from_str(url.authority())?;
    let label = args.label.clone().unwrap_or_else(|| args.url.clone());

    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let signing = Instant::now();
        let proofs = sign_proofs(&key, &args, &url, &token, count);
        eprintln!(
            "round {round}: signed {} proof(s) in {:.1} s",
            proofs.len(),
            signing.elapsed().as_secs_f64()
        );
        let target = Target {
            addr,
            method: args.method.parse()?,
            path: url[url::Position::BeforePath..].to_owned(),
            host: host.clone(),
            authorization: authorization.clone(),
        };
        let limit = args.duration.unwrap_or(MAX_ROUND_SECS);
        let (tally, elapsed, sent) = runtime.block_on(run(
            Arc::new(target),
            Arc::new(proofs),
            args.same_proof.then_some(count),
            args.connections,
            Duration::from_secs(limit),
            args.progress || std::io::stderr().is_terminal(),
        ))?;
        let rss_kib = args.server_pid.and_then(resident_kib);
        let report = Report {
            label: &label,
            url: args.url.as_str(),
            round,
            connections: args.connections,
            tally,
            elapsed,
            sent,
            rss_kib,
        };
        println!("{}", report.text());
        rounds.push(report.json());
    }
    if let Some(path) = &args.json {
        let doc = json!({ "label": label, "url": args.url, "connections": args.connections,
            "rounds": rounds });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")?;
    }
    Ok(())
}

/// The target's socket address, if the URL is plain http to loopback.
fn loopback_target(url: &url::Url) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    if url.scheme() != "http" {
        return Err("only http:// targets (loopback) are supported".into());
    }
    let port = url.port_or_known_default().ok_or("no port")?;
    let ip: IpAddr = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.into(),
        Some(url::Host::Ipv6(ip)) => ip.into(),
        Some(url::Host::Domain("localhost")) => IpAddr::from([127, 0, 0, 1]),
        _ => return Err("the target must be a loopback address".into()),
    };
    if !ip.is_loopback() {
        return Err("the target must be a loopback address".into());
    }
    Ok(SocketAddr::new(ip, port))
}

/// The key and the token bound to it: given, or from the token endpoint.
async fn credentials(args: &Args) -> Result<(DpopKey, String), Box<dyn std::error::Error>> {
    if let (Some(token_file), Some(key_file)) = (&args.token_file, &args.key_file) {
        let token = std::fs::read_to_string(token_file)?.trim().to_owned();
        let secret = decode_hex32(std::fs::read_to_string(key_file)?.trim())
            .ok_or("--key-file must hold 64 hex digits")?;
        let key = DpopKey::from_secret_bytes(&secret).ok_or("not a P-256 secret")?;
        return Ok((key, token));
    }
    let endpoint = args
        .token_endpoint
        .as_deref()
        .ok_or("give --token-endpoint (with --client-id, --client-secret) or --token-file")?;
    let (Some(id), Some(secret)) = (&args.client_id, &args.client_secret) else {
        return Err("--token-endpoint needs --client-id and --client-secret".into());
    };
    let mut request = TokenRequest::client_credentials(id, secret);
    if let Some(scope) = &args.scope {
        request = request.scope(scope);
    }
    if let Some(resource) = &args.resource {
        request = request.resource(resource);
    }
    let session = DpopSession::new(DpopKey::generate());
    let response = session
        .request_token(&reqwest::Client::new(), endpoint, &request)
        .await?;
    Ok((session.key().clone(), response.access_token))
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Signs `count` unique proofs (or one, with --same-proof) on every core,
/// all with the same `iat`: now.
fn sign_proofs(
    key: &DpopKey,
    args: &Args,
    url: &url::Url,
    token: &str,
    count: u64,
) -> Vec<http::HeaderValue> {
    let count = if args.same_proof { 1 } else { count as usize };
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let n = per_thread.min(count.saturating_sub(t * per_thread));
                scope.spawn(move || {
                    (0..n)
                        .map(|_| {
                            let proof = key
                                .proof(&args.method, url.as_str())
                                .unwrap()
                                .access_token(token)
                                .issued_at(iat)
                                .sign();
                            http::HeaderValue::from_str(&proof).expect("a JWS is a header value")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("signing thread"))
            .collect()
    })
}

struct Target {
    addr: SocketAddr,
    method: http::Method,
    path: String,
    host: http::HeaderValue,
    authorization: http::HeaderValue,
}

type RunResult = Result<(Tally, Duration, u64), Box<dyn std::error::Error>>;

/// Sends the proofs (each once; or the one proof `repeat` times) over
/// `connections` keep-alive connections, for at most `limit`.
async fn run(
    target: Arc<Target>,
    proofs: Arc<Vec<http::HeaderValue>>,
    repeat: Option<u64>,
    connections: usize,
    limit: Duration,
    progress: bool,
) -> RunResult {
    let total = repeat.unwrap_or(proofs.len() as u64);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + limit;

    let mut workers = Vec::new();
    for _ in 0..connections {
        let (target, proofs, next, done, stop) = (
            target.clone(),
            proofs.clone(),
            next.clone(),
            done.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            connection(target, proofs, repeat, total, next, done, stop, deadline).await
        }));
    }
    let reporter = progress.then(|| {
        let (done, stop) = (done.clone(), stop.clone());
        tokio::spawn(async move {
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = done.load(Ordering::Relaxed);
                eprint!("\r  {now}/{total} requests, {} req/s   ", now - last);
                let _ = std::io::stderr().flush();
                last = now;
            }
            eprintln!();
        })
    });

    let mut tally = Tally::new();
    for worker in workers {
        tally.merge(worker.await??);
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    if let Some(reporter) = reporter {
        reporter.await?;
    }
    Ok((tally, elapsed, done.load(Ordering::Relaxed)))
}

/// One keep-alive connection: takes the next proof, sends, waits for the
/// whole response, records, until the proofs or the time run out. A
/// failed connection is counted as an error and reopened.
#[allow(clippy::too_many_arguments)]
async fn connection(
    target: Arc<Target>,
    proofs: Arc<Vec<http::HeaderValue>>,
    repeat: Option<u64>,
    total: u64,
    next: Arc<AtomicUsize>,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    deadline: Instant,
) -> Result<Tally, std::io::Error> {
    let mut tally = Tally::new();
    let mut sender = None;
    loop {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return Ok(tally);
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i as u64 >= total {
            return Ok(tally);
        }
        let proof = match repeat {
            Some(_) => &proofs[0],
            None => &proofs[i],
        };
        if sender.is_none() {
            match open(target.addr).await {
                Ok(s) => sender = Some(s),
                Err(_) => {
                    tally.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(conn) = sender.as_mut() else {
            continue;
        };
        let mut request = http::Request::new(Empty::<Bytes>::new());
        *request.method_mut() = target.method.clone();
        *request.uri_mut() = target.path.parse().expect("a URL path is a URI");
        let headers = request.headers_mut();
        headers.insert(http::header::HOST, target.host.clone());
        headers.insert(http::header::AUTHORIZATION, target.authorization.clone());
        headers.insert("dpop", proof.clone());
        let sent = Instant::now();
        let outcome = async {
            conn.ready().await?;
            let response = conn.send_request(request).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        }
        .await;
        match outcome {
            Ok(status) => {
                let micros = sent.elapsed().as_micros().max(1) as u64;
                tally.latency_us.saturating_record(micros);
                *tally.status.entry(status).or_default() += 1;
            }
            Err(_) => {
                tally.errors += 1;
                sender = None;
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn open(addr: SocketAddr) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// VmRSS of a process, in KiB (Linux).
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

struct Report<'a> {
    label: &'a str,
    url: &'a str,
    round: u32,
    connections: usize,
    tally: Tally,
    elapsed: Duration,
    sent: u64,
    rss_kib: Option<u64>,
}

impl Report<'_> {
    fn rps(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentiles(&self) -> [(&'static str, u64); 6] {
        let h = &self.tally.latency_us;
        [
            ("p50", h.value_at_quantile(0.50)),
            ("p90", h.value_at_quantile(0.90)),
            ("p99", h.value_at_quantile(0.99)),
            ("p99.9", h.value_at_quantile(0.999)),
            ("max", h.max()),
            ("mean", h.mean() as u64),
        ]
    }

    fn text(&self) -> String {
        let latency: Vec<String> = self
            .percentiles()
            .iter()
            .map(|(name, us)| format!("{name} {:.2} ms", *us as f64 / 1000.0))
            .collect();
        let status: Vec<String> = self
            .tally
            .status
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        let mut out = format!(
            "{} ({}) round {}\n  {} requests in {:.2} s over {} connections: {:.0} req/s\n  latency {}\n  status {}; connection errors {}",
            self.label,
            self.url,
            self.round,
            self.sent,
            self.elapsed.as_secs_f64(),
            self.connections,
            self.rps(),
            latency.join(", "),
            status.join(", "),
            self.tally.errors
        );
        if let Some(kib) = self.rss_kib {
            out.push_str(&format!(
                "\n  server resident memory {:.1} MiB",
                kib as f64 / 1024.0
            ));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let latency: serde_json::Map<String, serde_json::Value> = self
            .percentiles()
            .iter()
            .map(|(name, us)| (name.to_string(), json!(us)))
            .collect();
        let status: serde_json::Map<String, serde_json::Value> = self
            .tally
            .status
            .iter()
            .map(|(code, n)| (code.to_string(), json!(n)))
            .collect();
        json!({
            "round": self.round,
            "requests": self.sent,
            "seconds": self.elapsed.as_secs_f64(),
            "requests_per_second": self.rps(),
            "latency_us": latency,
            "status": status,
            "connection_errors": self.tally.errors,
            "server_rss_kib": self.rss_kib,
        })
    }
}
