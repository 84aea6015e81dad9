//! The Redis replay store against real, private Redis servers (started by
//! the test on free loopback ports): atomicity, a fleet of two resource
//! servers sharing one Redis and one nonce secret, Redis going away (503,
//! never 200) and coming back. Ignored by plain `cargo test` because it
//! needs `redis-server`; `scripts/test.sh` installs it and runs these.

use std::sync::Arc;
use std::time::{Duration, Instant};

use senderbound::Error;
use senderbound::proof::Nonces;
use senderbound::replay::{ReplayError, ReplayKey, ReplayStore};
use senderbound::tokens::Issuer;
use senderbound_client::DpopKey;
use senderbound_redis::RedisReplayStore;
use senderbound_suite::TestIssuer;
use senderbound_suite::harness::{HOST, Harness, ISSUER, Reply};
use senderbound_suite::redis_server::RedisServer;

const SECRET: &[u8] = b"fleet nonce secret, 32 bytes+ (test)";

/// A store on `redis` without the restart guard (each test's Redis is new).
fn store(redis: &RedisServer) -> RedisReplayStore {
    RedisReplayStore::builder(redis.url())
        .restart_guard(Duration::ZERO)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn one_of_a_hundred_concurrent_inserts_wins() {
    let redis = RedisServer::start();
    let store = Arc::new(store(&redis));
    let key = ReplayKey::new("some-jkt", "one-jti");
    let attempts = (0..100).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.check_and_insert(key, Duration::from_secs(60)).await })
    });
    let mut wins = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => wins += 1,
            Err(ReplayError::AlreadySeen) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
    // The entry expires with the proof's window, and is namespaced+hashed.
    let redis_key = store.redis_key(&key);
    // `{namespace:tag}:key`: the tag (one of 256 groups) puts a key and its
    // group's marker in one cluster slot.
    assert!(redis_key.starts_with("{senderbound:jti:") && !redis_key.contains("one-jti"));
    let pttl = redis.command(&format!("PTTL {redis_key}")).unwrap();
    let pttl: u64 = pttl.trim_start_matches(':').trim().parse().unwrap();
    assert!((59_000..=60_000).contains(&pttl), "PTTL {pttl}");
    // Another namespace on the same Redis is independent.
    let other = RedisReplayStore::builder(redis.url())
        .namespace("other-api")
        .restart_guard(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(
        other.check_and_insert(key, Duration::from_secs(60)).await,
        Ok(())
    );
}

/// Two resource servers (same issuer, same client key) sharing `redis` and
/// one nonce secret.
fn fleet(redis: &RedisServer) -> (Harness, Harness) {
    let issuer = TestIssuer::new(ISSUER);
    let client = DpopKey::generate();
    let server = || {
        let jwks = issuer.jwks_json();
        let replay = store(redis);
        let nonces = Nonces::new(SECRET).unwrap();
        Harness {
            client: client.clone(),
            ..Harness::with_issuer(issuer.clone(), |b| {
                b.trust(Issuer::new(ISSUER).keys(jwks))
                    .replay_store(replay)
                    .nonces(nonces)
            })
        }
    };
    (server(), server())
}

async fn call(h: &Harness, token: &str, proof: &str) -> Reply {
    h.send(
        "GET",
        "/whoami",
        Some(&format!("DPoP {token}")),
        Some(proof),
    )
    .await
}

/// Fresh proofs get 503 (never anything else) until Redis answers, then 200.
async fn assert_recovers(h: &Harness, token: &str, nonce: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut r = call(h, token, &proof(h, token, nonce)).await;
    while r.status != 200 && Instant::now() < deadline {
        assert_eq!(r.status, 503, "only 503 while reconnecting: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = call(h, token, &proof(h, token, nonce)).await;
    }
    assert_eq!(r.status, 200, "recovers once Redis is back: {r:?}");
}

fn proof(h: &Harness, token: &str, nonce: &str) -> String {
    h.client
        .proof("GET", &format!("https://{HOST}/whoami"))
        .unwrap()
        .access_token(token)
        .issued_at(h.now())
        .nonce(nonce)
        .sign()
}

#[tokio::test]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn a_proof_accepted_by_one_server_is_refused_by_the_other() {
    let redis = RedisServer::start();
    let (a, b) = fleet(&redis);
    let token = a.token();
    // The nonce comes from A; B accepts it (shared secret, no shared state).
    let nonce = a
        .send(
            "GET",
            "/whoami",
            Some(&format!("DPoP {token}")),
            Some(&a.proof("GET", "/whoami", &token)),
        )
        .await
        .dpop_nonce
        .expect("A hands out a nonce");
    let p = proof(&a, &token, &nonce);
    let r = call(&b, &token, &p).await;
    assert_eq!(r.status, 200, "B accepts A's nonce: {r:?}");
    // The same proof replayed to A (another server): refused.
    call(&a, &token, &p)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofReplayed);
    call(&b, &token, &p)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofReplayed);
    // A fresh proof is fine on either.
    assert_eq!(
        call(&a, &token, &proof(&a, &token, &nonce)).await.status,
        200
    );
    // Every entry lives as long as its proof is accepted anywhere: here
    // (iat = now) 60 s of iat window + 1 s, plus the 15 s skew as a margin
    // for servers whose clocks lag (61 s without it).
    let keys = redis.command("KEYS {senderbound:jti:*").unwrap();
    let key = keys
        .lines()
        .find(|l| l.starts_with("{senderbound:jti:") && !l.ends_with(":since"))
        .unwrap();
    let pttl = redis.command(&format!("PTTL {key}")).unwrap();
    let pttl: u64 = pttl.trim_start_matches(':').trim().parse().unwrap();
    assert!((75_000..=76_000).contains(&pttl), "PTTL {pttl}");
}

#[tokio::test]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn a_slow_redis_is_503_after_the_operation_timeout() {
    let redis = RedisServer::start();
    let (a, _) = fleet(&redis);
    let token = a.token();
    let nonce = Nonces::new(SECRET).unwrap().issue(a.now());
    assert_eq!(
        call(&a, &token, &proof(&a, &token, &nonce)).await.status,
        200
    );
    redis.pause();
    let r = call(&a, &token, &proof(&a, &token, &nonce)).await;
    redis.resume();
    assert_eq!(r.status, 503, "a frozen Redis must never accept: {r:?}");
}

#[tokio::test]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn after_redis_loses_its_data_earlier_proofs_are_not_accepted_again() {
    let mut redis = RedisServer::start();
    let store = RedisReplayStore::builder(redis.url())
        .restart_guard(Duration::from_secs(2))
        .build()
        .unwrap();
    let key = ReplayKey::new("jkt", "used-before-the-restart");
    let ttl = Duration::from_secs(90);
    // Polls while the store answers Unavailable; the first other answer.
    let settle = |deadline: Instant| {
        let store = &store;
        async move {
            loop {
                let result = store.check_and_insert(key, ttl).await;
                if result != Err(ReplayError::Unavailable) || Instant::now() > deadline {
                    return result;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // A new, empty Redis: the guard holds first.
    assert_eq!(
        store.check_and_insert(key, ttl).await,
        Err(ReplayError::Unavailable)
    );
    let started = Instant::now();
    assert_eq!(
        settle(Instant::now() + Duration::from_secs(10)).await,
        Ok(())
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the guard held"
    );
    assert_eq!(
        store.check_and_insert(key, ttl).await,
        Err(ReplayError::AlreadySeen)
    );
    // Redis restarts empty: the proof used before is refused (503) while
    // the guard holds. Only after the guard (2 s here, shorter than the
    // proof's 90 s: unsafe, which is why the default is longer than any
    // replay window) does it pass again.
    redis.restart();
    let restarted = Instant::now();
    assert_eq!(
        store.check_and_insert(key, ttl).await,
        Err(ReplayError::Unavailable)
    );
    assert_eq!(
        settle(Instant::now() + Duration::from_secs(10)).await,
        Ok(())
    );
    assert!(
        restarted.elapsed() >= Duration::from_millis(1500),
        "the guard held"
    );
}

#[tokio::test]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn redis_down_is_503_never_200_and_recovery_is_automatic() {
    let mut redis = RedisServer::start();
    let (a, _) = fleet(&redis);
    let token = a.token();
    let nonce = Nonces::new(SECRET).unwrap().issue(a.now());
    assert_eq!(
        call(&a, &token, &proof(&a, &token, &nonce)).await.status,
        200
    );

    redis.stop();
    for _ in 0..5 {
        let r = call(&a, &token, &proof(&a, &token, &nonce)).await;
        assert_eq!(r.status, 503, "Redis down must never accept: {r:?}");
        assert_eq!(r.error(), None, "the client is not blamed: {r:?}");
    }

    redis.restart();
    assert_recovers(&a, &token, &nonce).await;
}

#[tokio::test]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn a_server_started_while_redis_is_down_answers_503_then_recovers() {
    let mut redis = RedisServer::start();
    redis.stop();
    let (a, _) = fleet(&redis);
    let token = a.token();
    let nonce = Nonces::new(SECRET).unwrap().issue(a.now());
    let r = call(&a, &token, &proof(&a, &token, &nonce)).await;
    assert_eq!(r.status, 503, "{r:?}");
    redis.restart();
    assert_recovers(&a, &token, &nonce).await;
}

#[tokio::test]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn a_redis_that_may_evict_records_is_refused() {
    let key = ReplayKey::new("jkt", "evictable");
    let ttl = Duration::from_secs(60);
    // `volatile-*` evicts the records (they expire) and keeps the markers
    // (they do not): a replay would pass unnoticed. `allkeys-*` may evict
    // a record and keep its marker just as well. Refused (503).
    for policy in ["volatile-lru", "allkeys-lru", "volatile-ttl"] {
        let redis = RedisServer::start_with(&["--maxmemory", "64mb", "--maxmemory-policy", policy]);
        let (captured, guard) = senderbound_suite::capture::Captured::install();
        assert_eq!(
            store(&redis).check_and_insert(key, ttl).await,
            Err(ReplayError::Unavailable),
            "{policy}"
        );
        drop(guard);
        // For that reason, not another.
        assert!(
            captured
                .lines()
                .iter()
                .any(|l| l.contains("may evict records")),
            "{policy}: {:#?}",
            captured.lines()
        );
    }
    // A full Redis that refuses writes (noeviction), or one without a
    // memory limit (it never evicts, whatever the policy): served.
    for args in [
        ["--maxmemory", "64mb", "--maxmemory-policy", "noeviction"],
        ["--maxmemory", "0", "--maxmemory-policy", "allkeys-lru"],
    ] {
        let redis = RedisServer::start_with(&args);
        assert_eq!(
            store(&redis).check_and_insert(key, ttl).await,
            Ok(()),
            "{args:?}"
        );
    }
}

/// Polls `done` every 50 ms for at most 30 s.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `count` keys whose records fall in the same group (hash tag) as
/// `first`'s.
fn same_group(store: &RedisReplayStore, count: usize) -> Vec<ReplayKey> {
    let tag = |key: &ReplayKey| store.redis_key(key).split('}').next().map(str::to_owned);
    let first = ReplayKey::new("jkt", "same-group-0");
    let mut keys = vec![first];
    let mut i = 1;
    while keys.len() < count {
        let candidate = ReplayKey::new("jkt", &format!("same-group-{i}"));
        if tag(&candidate) == tag(&first) {
            keys.push(candidate);
        }
        i += 1;
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn a_promotion_is_trusted_only_if_every_write_was_acknowledged_by_replicas() {
    use senderbound_redis::Durability;
    let ttl = Duration::from_secs(60);
    let acknowledged = Durability::Replicas {
        count: 1,
        timeout: Duration::from_millis(500),
    };
    // `mixed`: one server of the fleet writes without replica
    // acknowledgement (`Durability::Primary`): its records may be lost at a
    // failover, so a promotion must start the guard again.
    for mixed in [false, true] {
        let fast = ["--repl-diskless-sync-delay", "0"];
        let primary = RedisServer::start_with(&fast);
        let port = primary.port().to_string();
        let replica =
            RedisServer::start_with(&[fast[0], fast[1], "--replicaof", "127.0.0.1", &port]);
        wait_for("the replica to sync", || {
            replica.info("master_link_status").as_deref() == Some("up")
        });
        // A guard long enough that the checks after the promotion run
        // inside it.
        let guard = Duration::from_secs(3);
        let build = |redis: &RedisServer, durability| {
            RedisReplayStore::builder(redis.url())
                .restart_guard(guard)
                .durability(durability)
                .build()
                .unwrap()
        };
        let store = build(&primary, acknowledged);
        let keys = same_group(&store, 3);
        // A new Redis: the group's guard, then served.
        assert_eq!(
            store.check_and_insert(keys[0], ttl).await,
            Err(ReplayError::Unavailable)
        );
        tokio::time::sleep(guard + Duration::from_millis(100)).await;
        assert_eq!(store.check_and_insert(keys[0], ttl).await, Ok(()));
        if mixed {
            let unacknowledged = build(&primary, Durability::Primary);
            let (captured, guard) = senderbound_suite::capture::Captured::install();
            assert_eq!(unacknowledged.check_and_insert(keys[1], ttl).await, Ok(()));
            drop(guard);
            // The server that differs says so.
            assert!(
                captured
                    .lines()
                    .iter()
                    .any(|l| l.contains("use different durabilities")),
                "{:#?}",
                captured.lines()
            );
        }
        wait_for("the replica to catch up", || {
            let offset = primary.info("master_repl_offset");
            offset.is_some() && replica.info("slave_repl_offset") == offset
        });

        // The replica is promoted; the old primary becomes its replica (so
        // writes can be acknowledged again).
        assert!(
            replica
                .command("REPLICAOF NO ONE")
                .is_some_and(|a| a.starts_with("+OK"))
        );
        let new_port = replica.port().to_string();
        assert!(
            primary
                .command(&format!("REPLICAOF 127.0.0.1 {new_port}"))
                .is_some_and(|a| a.starts_with("+OK"))
        );
        wait_for("the old primary to follow", || {
            primary.info("master_link_status").as_deref() == Some("up")
        });
        let promoted = build(&replica, acknowledged);
        if mixed {
            // A record may have been lost: the guard starts again.
            assert_eq!(
                promoted.check_and_insert(keys[2], ttl).await,
                Err(ReplayError::Unavailable)
            );
            assert_eq!(
                promoted.check_and_insert(keys[1], ttl).await,
                Err(ReplayError::Unavailable)
            );
        } else {
            // Every record reached the promoted node: no pause.
            assert_eq!(promoted.check_and_insert(keys[2], ttl).await, Ok(()));
            assert_eq!(
                promoted.check_and_insert(keys[0], ttl).await,
                Err(ReplayError::AlreadySeen)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn a_restart_from_a_snapshot_starts_the_guard_even_with_replica_acknowledgement() {
    use senderbound_redis::Durability;
    let ttl = Duration::from_secs(60);
    let fast = ["--repl-diskless-sync-delay", "0"];
    let mut primary = RedisServer::start_with(&fast);
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&[fast[0], fast[1], "--replicaof", "127.0.0.1", &port]);
    wait_for("the replica to sync", || {
        replica.info("master_link_status").as_deref() == Some("up")
    });
    let store = RedisReplayStore::builder(primary.url())
        .restart_guard(Duration::from_secs(2))
        .durability(Durability::Replicas {
            count: 1,
            timeout: Duration::from_millis(500),
        })
        .build()
        .unwrap();
    let keys = same_group(&store, 3);
    assert_eq!(
        store.check_and_insert(keys[0], ttl).await,
        Err(ReplayError::Unavailable)
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.check_and_insert(keys[0], ttl).await, Ok(()));
    // A snapshot, then a proof recorded (and acknowledged by the replica)
    // after it: a restart from the snapshot loses that record.
    assert!(
        primary
            .command("SAVE")
            .is_some_and(|a| a.starts_with("+OK"))
    );
    assert_eq!(store.check_and_insert(keys[1], ttl).await, Ok(()));
    primary.stop();
    primary.restart();
    eprintln!(
        "restarted from the snapshot: master_replid2 {:?}",
        primary.info("master_replid2")
    );
    wait_for("the replica to follow the restarted primary", || {
        replica.info("master_link_status").as_deref() == Some("up")
    });
    // The restarted node may keep its old replication id (as replid2), as
    // a promoted replica does; it has run for less than the guard, so the
    // guard holds: the lost record's proof is refused, not accepted again.
    assert_eq!(
        store.check_and_insert(keys[1], ttl).await,
        Err(ReplayError::Unavailable)
    );
    assert_eq!(
        store.check_and_insert(keys[2], ttl).await,
        Err(ReplayError::Unavailable)
    );
}
