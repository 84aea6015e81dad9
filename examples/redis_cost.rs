//! Measures what the Redis stores cost: for the replay store, the round
//! trip per accepted proof (sequential and with concurrency), Redis CPU and
//! memory per remembered proof; for fleet-wide key-sharing detection
//! (`RedisKeyHolders`), Redis CPU and memory per check. Starts its own
//! private `redis-server` on a free loopback port.
//!
//! ```text
//! cargo run --release --example redis_cost -- --entries 200000
//! ```
//!
//! Results go in docs/deployment.md ("A fleet of servers").

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use senderbound::key_sharing::KeyHolders;
use senderbound::replay::{ReplayKey, ReplayStore};
use senderbound_redis::{RedisKeyHolders, RedisReplayStore};
use senderbound_suite::redis_server::RedisServer;

#[derive(Parser, Debug)]
struct Args {
    /// Entries to insert for the memory measurement (and round trips timed).
    #[arg(long, default_value_t = 100_000)]
    entries: u64,
    /// Concurrent tasks for the throughput measurement.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
}

/// The TTL of a default proof window (60 s + 15 s skew).
const TTL: Duration = Duration::from_secs(75);
/// Key-sharing detection's default window.
const HOLD: Duration = Duration::from_secs(3600);

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let redis = RedisServer::start();
    // A private, new Redis: no earlier proofs to protect, so no restart guard.
    let store = Arc::new(
        RedisReplayStore::builder(redis.url())
            .restart_guard(Duration::ZERO)
            .build()
            .expect("store"),
    );
    // Warm up the connection.
    store
        .check_and_insert(ReplayKey::new("warm", "up"), TTL)
        .await
        .expect("Redis answers");

    let before = redis.used_memory();
    // Half the entries (at most 20,000) one by one, the rest concurrently.
    let sequential = (args.entries / 2).min(20_000);
    let mut micros: Vec<u128> = Vec::with_capacity(sequential as usize);
    for i in 0..sequential {
        let started = Instant::now();
        store
            .check_and_insert(ReplayKey::new("seq", &i.to_string()), TTL)
            .await
            .expect("insert");
        micros.push(started.elapsed().as_micros());
    }
    micros.sort_unstable();
    let pct = |p: f64| micros[((micros.len() as f64 - 1.0) * p) as usize];
    let mean = micros.iter().sum::<u128>() as f64 / micros.len() as f64;
    println!(
        "round trip, sequential ({sequential} inserts): mean {mean:.1} us, p50 {} us, p99 {} us, max {} us",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );

    let rest = args.entries - sequential;
    let per_task = rest / args.concurrency.max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    store
                        .check_and_insert(ReplayKey::new(&format!("task-{t}"), &i.to_string()), TTL)
                        .await
                        .expect("insert");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let concurrent = per_task * args.concurrency;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "throughput, {} tasks on one multiplexed connection: {concurrent} inserts in {elapsed:.2} s = {:.0} inserts/s",
        args.concurrency,
        concurrent as f64 / elapsed
    );

    // Redis's own CPU per accepted proof: the script, measured by Redis
    // (`INFO commandstats`, `usec_per_call` of EVALSHA, its inner commands
    // included), the figure to size shards with.
    let stats = redis.command("INFO commandstats").unwrap_or_default();
    let field = |command: &str, name: &str| field_of(&stats, command, name);
    println!(
        "Redis CPU per insert (EVALSHA, server side): {} us over {} calls",
        field("evalsha", "usec_per_call"),
        field("evalsha", "calls")
    );
    // Where it goes: the commands the script runs.
    for command in ["info", "set", "get", "time"] {
        println!(
            "  inside it: {command} {} us per call",
            field(command, "usec_per_call")
        );
    }

    let entries = sequential + concurrent;
    let after = redis.used_memory();
    println!(
        "memory: {entries} entries, used_memory {before} -> {after} bytes = {:.0} bytes per entry",
        (after.saturating_sub(before)) as f64 / entries as f64
    );

    key_holders(&redis, &args, &field_of).await;
}

/// Fleet-wide key-sharing detection: one script per accepted request that
/// records (or reads) the first holder of the request's key; here every
/// check a new key, the costlier case (a record written).
async fn key_holders(redis: &RedisServer, args: &Args, field: &dyn Fn(&str, &str, &str) -> String) {
    let holders = Arc::new(
        RedisKeyHolders::builder(redis.url())
            .build()
            .expect("store"),
    );
    let _ = redis.command("CONFIG RESETSTAT");
    let before = redis.used_memory();
    let per_task = args.entries / args.concurrency.max(1);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|t| {
            let holders = holders.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let key = format!("jkt:thumbprint-{t}-{i}");
                    holders
                        .first_holder(&key, "s:https://as.example\0client-7\0user-42", HOLD)
                        .await
                        .expect("first holder");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let checks = per_task * args.concurrency;
    let stats = redis.command("INFO commandstats").unwrap_or_default();
    println!(
        "key holders: Redis CPU per check (EVALSHA, server side): {} us over {} calls",
        field(&stats, "evalsha", "usec_per_call"),
        field(&stats, "evalsha", "calls")
    );
    println!(
        "key holders: {checks} keys, {:.0} bytes per key",
        redis.used_memory().saturating_sub(before) as f64 / checks as f64
    );
}

/// A field of `INFO commandstats`:
/// `cmdstat_<command>:calls=…,usec=…,usec_per_call=…`.
fn field_of(stats: &str, command: &str, name: &str) -> String {
    stats
        .lines()
        .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
        .and_then(|line| {
            line.split([',', ':'])
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        })
        .unwrap_or("?")
        .to_owned()
}
