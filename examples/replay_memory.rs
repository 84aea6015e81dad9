//! Memory per remembered proof, for each in-process replay store: inserts
//! `--entries` distinct proofs (TTL 76 s, the default window) and reports the
//! growth of the process's resident memory per entry, and the mean insert
//! time. One store per run, so the numbers do not mix.
//!
//! ```text
//! cargo run --release --example replay_memory -- --store compact --entries 1000000
//! cargo run --release --example replay_memory -- --store moka --entries 1000000
//! ```

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use senderbound::replay::{
    CompactReplayStore, MemoryReplayStore, ReplayError, ReplayKey, ReplayStore,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Store {
    /// `MemoryReplayStore` (moka).
    Moka,
    /// `CompactReplayStore` (rotating slots of 128-bit keys).
    Compact,
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, value_enum)]
    store: Store,
    /// Proofs to remember (at most 10 million).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    entries: u64,
}

/// Resident set size in bytes, from /proc/self/statm.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Keys are made before measuring, so only the store's memory counts.
    let keys: Vec<ReplayKey> = (0..args.entries)
        .map(|i| ReplayKey::new("bench-jkt", &i.to_string()))
        .collect();
    // `ReplayStore` is generic (`impl Future` in the trait): one type per arm.
    enum AnyStore {
        Moka(MemoryReplayStore),
        Compact(CompactReplayStore),
    }
    impl AnyStore {
        async fn check_and_insert(&self, key: ReplayKey, ttl: Duration) -> Result<(), ReplayError> {
            match self {
                AnyStore::Moka(s) => s.check_and_insert(key, ttl).await,
                AnyStore::Compact(s) => s.check_and_insert(key, ttl).await,
            }
        }
    }
    let store = match args.store {
        Store::Moka => AnyStore::Moka(MemoryReplayStore::new(args.entries + 1)),
        Store::Compact => AnyStore::Compact(CompactReplayStore::new(args.entries + 1)),
    };
    let ttl = Duration::from_secs(76);
    let before = resident();
    let started = Instant::now();
    runtime.block_on(async {
        for key in &keys {
            store.check_and_insert(*key, ttl).await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    // moka applies writes in the background; give it a moment to settle.
    std::thread::sleep(Duration::from_millis(500));
    let after = resident();
    // Every key is still refused: nothing was forgotten.
    let replayed = runtime.block_on(async {
        let mut n = 0u64;
        for key in keys.iter().step_by(1000) {
            n += u64::from(store.check_and_insert(*key, ttl).await.is_err());
        }
        n
    });
    assert_eq!(
        replayed,
        args.entries.div_ceil(1000),
        "a remembered proof was accepted again"
    );
    println!(
        "{:?}: {} entries, resident {} -> {} bytes = {:.0} bytes per entry; mean insert {:.0} ns",
        args.store,
        args.entries,
        before,
        after,
        after.saturating_sub(before) as f64 / args.entries as f64,
        elapsed.as_nanos() as f64 / args.entries as f64
    );
}
