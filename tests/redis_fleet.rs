//! The replay store on the Redis deployments operators run: Redis Cluster
//! (three primaries, three replicas) and Sentinel (one primary, one
//! replica, three sentinels), against real servers on loopback. Through
//! failovers and a killed node: no proof is accepted twice, what cannot be
//! answered is 503 (never accepted), and service comes back without a
//! restart of the store.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use senderbound::replay::{ReplayError, ReplayKey, ReplayStore};
use senderbound_redis::{Deployment, Durability, RedisReplayStore};
use senderbound_suite::redis_server::{RedisCluster, SENTINEL_SERVICE, SentinelGroup};

const TTL: Duration = Duration::from_secs(120);

fn key(i: usize) -> ReplayKey {
    ReplayKey::new("fleet-jkt", &format!("jti-{i}"))
}

/// Inserts keys `range`; returns the ones accepted, and counts the 503s.
/// Panics if a key is reported seen that was never accepted (or the other
/// way round, below).
async fn insert_all(
    store: &RedisReplayStore,
    range: std::ops::Range<usize>,
    accepted: &mut HashSet<usize>,
) -> usize {
    let mut unavailable = 0;
    for i in range {
        match store.check_and_insert(key(i), TTL).await {
            Ok(()) => assert!(accepted.insert(i), "key {i} accepted twice"),
            Err(ReplayError::Unavailable) => unavailable += 1,
            Err(e) => panic!("key {i} (new): {e:?}"),
        }
    }
    unavailable
}

/// Every accepted key, sent again: never accepted.
async fn replays_are_refused(store: &RedisReplayStore, accepted: &HashSet<usize>) {
    for &i in accepted {
        match store.check_and_insert(key(i), TTL).await {
            Err(ReplayError::AlreadySeen | ReplayError::Unavailable) => {}
            other => panic!("replay of key {i} gave {other:?}"),
        }
    }
}

/// A probe key, apart from the keys the tests count.
fn probe(i: usize) -> ReplayKey {
    ReplayKey::new("probe-jkt", &format!("probe-{i}"))
}

/// Touches every one of the 256 groups (each starts its restart guard at
/// its first use on a new Redis), then waits out the guard.
async fn warm_up(store: &RedisReplayStore, next: &mut usize, guard: Duration) {
    for _ in 0..4000 {
        *next += 1;
        let _ = store.check_and_insert(probe(*next), TTL).await;
    }
    tokio::time::sleep(guard).await;
}

/// Every accepted key, sent again while the store serves: seen, exactly.
async fn replays_are_seen(store: &RedisReplayStore, accepted: &HashSet<usize>) {
    for &i in accepted {
        assert_eq!(
            store.check_and_insert(key(i), TTL).await,
            Err(ReplayError::AlreadySeen),
            "replay of key {i}"
        );
    }
}

/// Keys `range`, never seen: each accepted (none refused), then seen.
async fn accepts_new_proofs_once(store: &RedisReplayStore, range: std::ops::Range<usize>) {
    let mut accepted = HashSet::new();
    assert_eq!(insert_all(store, range, &mut accepted).await, 0);
    replays_are_seen(store, &accepted).await;
}

/// Polls until a new key is accepted (service recovered), at most `limit`.
async fn until_accepting(store: &RedisReplayStore, next: &mut usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        *next += 1;
        match store.check_and_insert(probe(*next), TTL).await {
            Ok(()) => return,
            Err(ReplayError::Unavailable) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("no recovery within {limit:?}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli; scripts/test.sh installs and runs them"]
async fn cluster_spreads_keys_survives_a_killed_primary_and_never_accepts_twice() {
    let mut cluster = RedisCluster::start();
    let store = Arc::new(
        RedisReplayStore::builder(Deployment::cluster(cluster.urls()))
            .restart_guard(Duration::from_secs(2))
            .operation_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    // A new cluster: every group starts with the guard (no marker yet).
    let mut next = 0;
    warm_up(&store, &mut next, Duration::from_secs(2)).await;

    // Concurrent inserts of one key: exactly one wins, across the cluster.
    let wins = futures_join(store.clone(), key(1_000_000)).await;
    assert_eq!(wins, 1);

    let mut accepted = HashSet::new();
    let refused = insert_all(&store, 0..300, &mut accepted).await;
    assert_eq!((accepted.len(), refused), (300, 0));
    replays_are_seen(&store, &accepted).await;
    // The keys are spread over every primary (256 hash tags).
    let holding: Vec<usize> = cluster.nodes[..3]
        .iter()
        .map(|n| {
            n.command("DBSIZE")
                .and_then(|a| a.trim().trim_start_matches(':').parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert!(
        holding.iter().all(|&n| n > 0),
        "keys per primary: {holding:?}"
    );
    replays_are_refused(&store, &accepted).await;

    // A primary dies in the middle of the stream.
    cluster.nodes[0].stop();
    let killed = Instant::now();
    let during = insert_all(&store, 300..340, &mut accepted).await;
    eprintln!(
        "cluster: 40 inserts in {:?} after the kill",
        killed.elapsed()
    );
    replays_are_refused(&store, &accepted).await;
    eprintln!(
        "cluster: replays checked {:?} after the kill",
        killed.elapsed()
    );
    // Its replica takes over (node timeout 1 s); the store follows, and the
    // promoted replica's groups pause for the guard (another run_id).
    // Kept to the end: dropping it kills the nodes.
    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.wait_for_three_primaries();
        cluster
    })
    .await
    .unwrap();
    eprintln!(
        "cluster: a replica took over {:?} after the kill",
        killed.elapsed()
    );
    until_accepting(&store, &mut next, Duration::from_secs(30)).await;
    eprintln!("cluster: accepting {:?} after the kill", killed.elapsed());
    // Each group of the promoted replica pauses for the guard from its
    // first use after the failover (another run_id: asynchronous
    // replication may have lost its last records).
    let mut paused = 0;
    for _ in 0..300 {
        next += 1;
        if store.check_and_insert(probe(next), TTL).await == Err(ReplayError::Unavailable) {
            paused += 1;
        }
    }
    assert!(paused > 0, "the promoted replica's groups must pause");
    warm_up(&store, &mut next, Duration::from_secs(2)).await;
    let after = insert_all(&store, 600..900, &mut accepted).await;
    replays_are_refused(&store, &accepted).await;
    eprintln!(
        "cluster: {during} of 40 refused (503) while a primary was down, {after} of 300 after recovery, recovered {:?} after the kill",
        killed.elapsed()
    );
    assert!(
        during > 0,
        "requests for the dead primary's slots must be 503"
    );
    assert_eq!(after, 0);
    // Serving again: what survived is seen (the dead primary's records
    // that reached its replica), nothing is accepted twice.
    replays_are_refused(&store, &accepted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli; scripts/test.sh installs and runs them"]
async fn cluster_with_replica_acknowledgement_waits_on_the_shard_that_holds_the_key() {
    let cluster = RedisCluster::start();
    let store = RedisReplayStore::builder(Deployment::cluster(cluster.urls()))
        .restart_guard(Duration::ZERO)
        // Six nodes on two shared cores: a slow moment is not an outage.
        .operation_timeout(Duration::from_secs(1))
        .durability(Durability::Replicas {
            count: 1,
            timeout: Duration::from_millis(300),
        })
        .build()
        .unwrap();
    // Every shard's replica acknowledges: every insert is accepted.
    let mut accepted = HashSet::new();
    assert_eq!(insert_all(&store, 0..100, &mut accepted).await, 0);
    replays_are_seen(&store, &accepted).await;

    // The first shard's replica freezes: inserts whose keys live on that
    // shard cannot be acknowledged (503); the other shards' go on. (WAIT
    // sent anywhere but the connection that wrote would count nothing to
    // wait for, and accept.)
    let first = &cluster.nodes[0];
    let first_port = first.port().to_string();
    let Some(replica) = cluster.nodes[3..]
        .iter()
        .find(|n| n.info("master_port").as_deref() == Some(first_port.as_str()))
    else {
        panic!("no replica of the first primary");
    };
    replica.pause();
    let (mut on_first, mut elsewhere) = (Vec::new(), Vec::new());
    for i in 100..160 {
        let answer = store.check_and_insert(key(i), TTL).await;
        let holds = first
            .command(&format!("EXISTS {}", store.redis_key(&key(i))))
            .is_some_and(|a| a.trim() == ":1");
        if holds {
            on_first.push(answer);
        } else {
            elsewhere.push(answer);
        }
    }
    replica.resume();
    assert!(
        !on_first.is_empty() && !elsewhere.is_empty(),
        "keys on both sides: {} and {}",
        on_first.len(),
        elsewhere.len()
    );
    assert!(
        on_first.iter().all(|a| *a == Err(ReplayError::Unavailable)),
        "on the frozen replica's shard: {on_first:?}"
    );
    assert!(
        elsewhere.iter().all(|a| a.is_ok()),
        "on the other shards: {elsewhere:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn sentinel_failover_with_async_replication_pauses_and_never_accepts_twice() {
    let group = SentinelGroup::start();
    let (store, mut next, mut accepted) = serving_store(&group, Durability::Primary).await;

    group.failover();
    // Until the sentinels demote it (they look every second or so), the
    // old primary still takes writes, which its demotion then throws away:
    // Redis's split brain. The store follows as soon as the old primary
    // answers READONLY. The promoted node runs another process: each group
    // pauses for the guard from its first use there, so no proof the old
    // primary took in its last moments can be replayed on the new one
    // while it could still be accepted (the guard is longer than a proof
    // lives, as the default is; here the proofs stand in for that).
    let started = Instant::now();
    let (mut taken, mut id) = (0, 1_000);
    let mut last_moments = std::collections::VecDeque::new();
    loop {
        id += 1;
        match store.check_and_insert(key(id), TTL).await {
            Ok(()) => {
                taken += 1;
                last_moments.push_back(id);
                if last_moments.len() > 300 {
                    last_moments.pop_front();
                }
            }
            Err(ReplayError::Unavailable) => break,
            Err(e) => panic!("{e:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the store never left the old primary"
        );
    }
    eprintln!(
        "sentinel (primary durability): the old primary took {taken} proofs for {:?} after the failover; then the guard",
        started.elapsed()
    );
    // Inside the guard (checked at once: the test's guard is short): the
    // proofs from before the failover, and the last ones the old primary
    // took, are refused (503 or seen).
    let switched = Instant::now();
    accepted.extend(last_moments);
    replays_are_refused(&store, &accepted).await;
    assert!(
        switched.elapsed() < Duration::from_secs(3),
        "replays checked inside the guard"
    );
    warm_up(&store, &mut next, Duration::from_secs(3)).await;
    let mut after = HashSet::new();
    assert_eq!(insert_all(&store, 200_000..200_200, &mut after).await, 0);
    replays_are_refused(&store, &after).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn sentinel_failover_with_replica_acknowledgement_keeps_serving() {
    let group = SentinelGroup::start();
    let durability = Durability::Replicas {
        count: 1,
        timeout: Duration::from_millis(500),
    };
    let (store, mut next, mut accepted) = serving_store(&group, durability).await;
    // Every accepted record reached the replica before the request went on.
    group.failover();
    replays_are_refused(&store, &accepted).await;
    // Once the store serves from the promoted replica, every record is
    // there: seen, not merely refused.
    let failed_over_at = Instant::now();
    let mut seen = false;
    while !seen && failed_over_at.elapsed() < Duration::from_secs(30) {
        seen = store.check_and_insert(key(0), TTL).await == Err(ReplayError::AlreadySeen);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the promoted replica serves");
    replays_are_seen(&store, &accepted).await;
    // No pause: the promoted replica holds every record. (Until the old
    // primary resyncs as a replica, WAIT may find no replica: 503.)
    let failed_over = Instant::now();
    until_accepting(&store, &mut next, Duration::from_secs(30)).await;
    eprintln!(
        "sentinel (replica durability): accepting {:?} after the failover",
        failed_over.elapsed()
    );
    let refused = insert_all(&store, 200..400, &mut accepted).await;
    assert_eq!(refused, 0);
    replays_are_refused(&store, &accepted).await;

    // With the only replica gone, nothing can be acknowledged: 503.
    let primary = group.primary_port();
    let replica = if primary == Some(group.primary.port()) {
        &group.replica
    } else {
        &group.primary
    };
    replica.pause();
    let refused = insert_all(&store, 400..410, &mut accepted).await;
    replica.resume();
    assert_eq!(refused, 10, "unacknowledged inserts must be 503");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn sentinel_primary_killed_is_503_until_promotion_and_the_guard_then_serves() {
    let mut group = SentinelGroup::start();
    let (store, mut next, accepted) = serving_store(&group, Durability::Primary).await;
    let killed = Instant::now();
    let before = group.kill_primary();
    // The sentinels promote the replica; the promoted node runs another
    // process, so each group pauses for the guard from its first use
    // there. Until then every request is 503, never 200.
    group.wait_for_new_primary(before);
    let promoted = killed.elapsed();
    until_accepting(&store, &mut next, Duration::from_secs(30)).await;
    let accepting = killed.elapsed();
    eprintln!(
        "sentinel (primary durability), primary killed: promoted after {promoted:?}, accepting after {accepting:?}"
    );
    // The sentinels cannot promote before the primary has been silent
    // for a second (down-after-milliseconds), and the guard starts at the
    // store's first use of the promoted node: nothing is accepted before
    // both have passed (without the guard: about 2.2 s).
    assert!(
        accepting >= Duration::from_secs(1) + GUARD - Duration::from_millis(200),
        "the guard held after the promotion: promoted {promoted:?}, accepting {accepting:?}"
    );
    // Once every group's guard has passed: the replica had every record
    // (the test waited for it), so replays are seen, exactly, and new
    // proofs are accepted once.
    warm_up(&store, &mut next, Duration::from_secs(3)).await;
    replays_are_seen(&store, &accepted).await;
    accepts_new_proofs_once(&store, 2_000..2_200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn sentinel_primary_killed_with_replica_acknowledgement_loses_nothing() {
    let mut group = SentinelGroup::start();
    let durability = Durability::Replicas {
        count: 1,
        timeout: Duration::from_millis(500),
    };
    // A long guard, to tell "no pause" from "a pause" apart.
    let guard = Duration::from_secs(8);
    let (store, mut next, accepted) = serving_store_with_guard(&group, durability, guard).await;
    let killed = Instant::now();
    let before = group.kill_primary();
    group.wait_for_new_primary(before);
    let promoted = killed.elapsed();
    // Every record reached the promoted replica before its request went
    // on: seen, with no guard pause (each answer waits out WAIT's timeout:
    // no replica is left to acknowledge).
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.check_and_insert(key(0), TTL).await != Err(ReplayError::AlreadySeen) {
        assert!(
            Instant::now() < deadline,
            "the promoted replica never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let served = killed.elapsed();
    assert!(
        served < promoted + guard / 2,
        "no guard pause after a promotion: promoted {promoted:?}, served {served:?}"
    );
    // New proofs are 503: nothing can be acknowledged …
    let mut pending = HashSet::new();
    assert_eq!(insert_all(&store, 1_000..1_010, &mut pending).await, 10);
    // … until the killed node comes back, and the sentinels make it a
    // replica of the new primary.
    let (_, old) = group.roles();
    old.restart();
    let back = Instant::now();
    until_accepting(&store, &mut next, Duration::from_secs(30)).await;
    eprintln!(
        "sentinel (replica durability), primary killed: promoted after {promoted:?}, replays seen after {served:?}; accepting {:?} after the old primary came back as a replica",
        back.elapsed()
    );
    replays_are_seen(&store, &accepted).await;
    accepts_new_proofs_once(&store, 2_000..2_200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn sentinel_failover_with_the_first_sentinel_frozen_still_recovers() {
    let mut group = SentinelGroup::start();
    let (store, mut next, accepted) = serving_store(&group, Durability::Primary).await;
    // The first sentinel the store knows hangs (connections open, no
    // answer): asking it takes longer than a request may wait. The two
    // others still make a quorum and fail over.
    group.freeze_sentinel(0);
    group.failover();
    let failed_over = Instant::now();
    // The old primary takes writes until the sentinels demote it; then
    // the store asks the sentinels again, and must not stay stuck behind
    // the frozen one.
    while store.check_and_insert(probe(next), TTL).await.is_ok() {
        next += 1;
        assert!(
            failed_over.elapsed() < Duration::from_secs(20),
            "the store never left the old primary"
        );
    }
    let left = failed_over.elapsed();
    until_accepting(&store, &mut next, Duration::from_secs(30)).await;
    eprintln!(
        "sentinel, first sentinel frozen: left the old primary {left:?} after the failover, accepting again after {:?}",
        failed_over.elapsed()
    );
    warm_up(&store, &mut next, GUARD).await;
    replays_are_refused(&store, &accepted).await;
    accepts_new_proofs_once(&store, 1_000..1_100).await;
}

/// A store on the Sentinel group with a 3 s guard ([`GUARD`]), every group's guard
/// waited out, and 200 proofs accepted and seen: the probe counter and the
/// accepted keys.
async fn serving_store(
    group: &SentinelGroup,
    durability: Durability,
) -> (RedisReplayStore, usize, HashSet<usize>) {
    serving_store_with_guard(group, durability, GUARD).await
}

/// The Sentinel tests' restart guard.
const GUARD: Duration = Duration::from_secs(3);

/// [`serving_store`] with another guard.
async fn serving_store_with_guard(
    group: &SentinelGroup,
    durability: Durability,
    guard: Duration,
) -> (RedisReplayStore, usize, HashSet<usize>) {
    let store = RedisReplayStore::builder(Deployment::sentinel(
        group.sentinel_urls(),
        SENTINEL_SERVICE,
    ))
    .restart_guard(guard)
    .durability(durability)
    .build()
    .unwrap();
    let mut next = 0;
    warm_up(&store, &mut next, guard).await;
    let mut accepted = HashSet::new();
    assert_eq!(insert_all(&store, 0..200, &mut accepted).await, 0);
    replays_are_seen(&store, &accepted).await;
    (store, next, accepted)
}

async fn futures_join(store: Arc<RedisReplayStore>, key: ReplayKey) -> usize {
    let attempts: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.check_and_insert(key, TTL).await })
        })
        .collect();
    let mut wins = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => wins += 1,
            Err(ReplayError::AlreadySeen) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    wins
}
