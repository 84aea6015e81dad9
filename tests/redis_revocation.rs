//! Fleet-wide revocation (`RedisRevocations`) and key-sharing detection
//! (`RedisKeyHolders`) against a real, private Redis: a revocation made
//! through one server is refused by another within the poll interval;
//! entries expire; an unreachable Redis is served from the last list for
//! the staleness bound, then refused with 503, and service comes back on
//! its own; one key used by two clients on two servers is caught.

use std::time::{Duration, Instant};

use senderbound::Error;
use senderbound::key_sharing::KeySharing;
use senderbound_client::DpopKey;
use senderbound_redis::{Deployment, Durability, RedisKeyHolders, RedisRevocations, Revoked};
use senderbound_suite::TestIssuer;
use senderbound_suite::capture::Captured;
use senderbound_suite::harness::{Harness, ISSUER, Reply};
use senderbound_suite::redis_server::{RedisServer, SENTINEL_SERVICE, SentinelGroup};

const POLL: Duration = Duration::from_millis(200);

/// A server (same issuer and client key as its peers) whose revocations
/// are `revocations`.
fn server(issuer: &TestIssuer, client: &DpopKey, revocations: RedisRevocations) -> Harness {
    let trusted = issuer.trust();
    Harness {
        client: client.clone(),
        ..Harness::with_issuer(issuer.clone(), |b| {
            b.trust(trusted).revocations(revocations)
        })
    }
}

fn list(redis: &RedisServer, staleness: Duration) -> RedisRevocations {
    RedisRevocations::builder(redis.url())
        .poll_interval(POLL)
        .max_staleness(staleness)
        .build()
        .unwrap()
}

/// Calls until `done(reply)`, at most `limit`; returns the last reply and
/// how long it took.
async fn until(
    h: &Harness,
    token: &str,
    limit: Duration,
    done: impl Fn(&Reply) -> bool,
) -> (Reply, Duration) {
    let started = Instant::now();
    loop {
        let reply = h.get_with("/whoami", token).await;
        if done(&reply) || started.elapsed() > limit {
            return (reply, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn a_revocation_made_through_one_server_is_refused_by_the_others() {
    let redis = RedisServer::start();
    let issuer = TestIssuer::new(ISSUER);
    let client = DpopKey::generate();
    let (list_a, list_b) = (
        list(&redis, Duration::from_secs(30)),
        list(&redis, Duration::from_secs(30)),
    );
    let a = server(&issuer, &client, list_a.clone());
    let b = server(&issuer, &client, list_b.clone());
    let token = a.token();
    let (reply, _) = until(&b, &token, Duration::from_secs(5), |r| r.status == 200).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // Revoked through A: A refuses at once, B within the poll interval.
    list_a
        .revoke(Revoked::Key, client.jkt(), Duration::from_secs(60))
        .await
        .unwrap();
    a.get_with("/whoami", &token)
        .await
        .assert_refused(401, "invalid_token", Error::TokenRevoked);
    let (reply, delay) = until(&b, &token, Duration::from_secs(5), |r| r.status != 200).await;
    reply.assert_refused(401, "invalid_token", Error::TokenRevoked);
    eprintln!("revocation seen by another server after {delay:?} (poll interval {POLL:?})");
    assert!(delay <= POLL + Duration::from_millis(300), "{delay:?}");

    // Restored through B: accepted everywhere again.
    list_a.restore(Revoked::Key, client.jkt()).await.unwrap();
    let (reply, _) = until(&b, &token, Duration::from_secs(5), |r| r.status == 200).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // "Forever" is kept (capped at a century, never dropped for its form).
    list_a
        .revoke(Revoked::Key, client.jkt(), Duration::MAX)
        .await
        .unwrap();
    let (reply, _) = until(&b, &token, Duration::from_secs(5), |r| r.status != 200).await;
    reply.assert_refused(401, "invalid_token", Error::TokenRevoked);
    list_a.restore(Revoked::Key, client.jkt()).await.unwrap();
    let (reply, _) = until(&b, &token, Duration::from_secs(5), |r| r.status == 200).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // Redis loses everything and the list starts again (its version from
    // 1): a server holding the old list sees the new one, never mistakes
    // one for the other.
    // As many changes after the loss as before it: a bare counter would
    // read the same, and B would keep its old list.
    let version = redis
        .command("GET {senderbound:revoked}:version")
        .unwrap_or_default();
    let changes: usize = version
        .lines()
        .nth(1)
        .and_then(|v| v.split(':').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("version {version:?}"));
    assert!(
        redis
            .command("FLUSHALL")
            .is_some_and(|a| a.starts_with("+OK"))
    );
    for i in 1..changes {
        list_a
            .revoke(
                Revoked::Subject,
                &format!("nobody-{i}"),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
    }
    list_a
        .revoke(Revoked::Key, client.jkt(), Duration::from_secs(60))
        .await
        .unwrap();
    let (reply, _) = until(&b, &token, Duration::from_secs(5), |r| r.status != 200).await;
    reply.assert_refused(401, "invalid_token", Error::TokenRevoked);
    list_a.restore(Revoked::Key, client.jkt()).await.unwrap();

    // A failover to a replica that missed the last change: Redis counts
    // again from the change before. B, which read the lost change, must
    // still see the next one as new (a bare generation:counter would read
    // the same, and B would keep its list without the new revocation).
    let other = DpopKey::generate();
    let b_other = server(&issuer, &other, list_b.clone());
    let other_token = b_other.token();
    let version = |redis: &RedisServer| {
        let answer = redis
            .command("GET {senderbound:revoked}:version")
            .unwrap_or_default();
        answer.lines().nth(1).unwrap_or_default().to_owned()
    };
    let before_loss = version(&redis);
    list_a
        .revoke(Revoked::Key, other.jkt(), Duration::from_secs(60))
        .await
        .unwrap();
    let (reply, _) = until(&b_other, &other_token, Duration::from_secs(5), |r| {
        r.status != 200
    })
    .await;
    reply.assert_refused(401, "invalid_token", Error::TokenRevoked);
    for lose in [
        format!("SET {{senderbound:revoked}}:version {before_loss}"),
        format!("HDEL {{senderbound:revoked}}:list jkt:{}", other.jkt()),
    ] {
        assert!(redis.command(&lose).is_some(), "{lose}");
    }
    list_a
        .revoke(Revoked::Key, client.jkt(), Duration::from_secs(60))
        .await
        .unwrap();
    let (reply, _) = until(&b, &token, Duration::from_secs(5), |r| r.status != 200).await;
    reply.assert_refused(401, "invalid_token", Error::TokenRevoked);
    // And B holds the list as Redis has it now: the lost change is gone.
    let (reply, _) = until(&b_other, &other_token, Duration::from_secs(5), |r| {
        r.status == 200
    })
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    list_a.restore(Revoked::Key, client.jkt()).await.unwrap();

    // Each kind of entry, with its expiry.
    let claims = a.claims();
    for (what, value) in [
        (Revoked::Subject, claims["sub"].as_str().unwrap().to_owned()),
        (
            Revoked::Client,
            claims["client_id"].as_str().unwrap().to_owned(),
        ),
        (Revoked::TokenId, claims["jti"].as_str().unwrap().to_owned()),
    ] {
        let token = a.issuer.sign(&claims);
        list_a
            .revoke(what, &value, Duration::from_millis(700))
            .await
            .unwrap();
        let (reply, _) = until(&b, &token, Duration::from_secs(5), |r| r.status != 200).await;
        reply.assert_refused(401, "invalid_token", Error::TokenRevoked);
        // Expired: accepted again without anyone restoring it.
        let (reply, _) = until(&b, &token, Duration::from_secs(5), |r| r.status == 200).await;
        assert_eq!(reply.status, 200, "{what:?} after expiry: {reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn an_unreachable_list_is_served_for_its_staleness_then_refused_with_503() {
    let mut redis = RedisServer::start();
    let issuer = TestIssuer::new(ISSUER);
    let client = DpopKey::generate();
    let list = list(&redis, Duration::from_secs(1));
    let h = server(&issuer, &client, list.clone());
    let token = h.token();
    // Until the first read nothing is known (503); then served.
    let (reply, _) = until(&h, &token, Duration::from_secs(5), |r| r.status == 200).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    redis.stop();
    let stopped = Instant::now();
    // The last list is served for the staleness bound...
    let reply = h.get_with("/whoami", &token).await;
    assert_eq!(reply.status, 200, "inside the staleness bound: {reply:?}");
    // ...then every request is refused with 503, never accepted.
    let (reply, _) = until(&h, &token, Duration::from_secs(5), |r| r.status != 200).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.challenges.is_empty());
    // Which dependency failed (RFC 9110 §15.6.4: no challenge on a 503).
    assert_eq!(
        reply.json()["error_description"],
        Error::RevocationUnavailable.description()
    );
    // Not before the bound (the last successful poll was at most one poll
    // interval before Redis stopped).
    assert!(
        stopped.elapsed() + POLL >= Duration::from_secs(1),
        "503 after {:?}",
        stopped.elapsed()
    );
    eprintln!(
        "503 after {:?} without Redis (staleness 1 s)",
        stopped.elapsed()
    );

    redis.restart();
    let (reply, back) = until(&h, &token, Duration::from_secs(10), |r| r.status == 200).await;
    assert_eq!(reply.status, 200, "recovers once Redis is back: {reply:?}");
    eprintln!("served again {back:?} after Redis came back");
}

/// A server whose key-sharing detection (reject mode) keeps first holders
/// in `redis`.
fn sharing_server(issuer: &TestIssuer, client: &DpopKey, redis: &RedisServer) -> Harness {
    let trusted = issuer.trust();
    let holders = RedisKeyHolders::builder(redis.url()).build().unwrap();
    Harness {
        client: client.clone(),
        ..Harness::with_issuer(issuer.clone(), |b| {
            b.trust(trusted)
                .key_sharing(KeySharing::new().reject().holders(holders))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn one_key_used_by_two_clients_on_two_servers_is_caught() {
    let mut redis = RedisServer::start();
    let issuer = TestIssuer::new(ISSUER);
    let shared_key = DpopKey::generate();
    let a = sharing_server(&issuer, &shared_key, &redis);
    let b = sharing_server(&issuer, &shared_key, &redis);

    // Client one uses the key through server A: the first holder.
    let mut one = a.claims();
    one["client_id"] = serde_json::json!("client-one");
    let token_one = a.issuer.sign(&one);
    assert_eq!(a.get_with("/whoami", &token_one).await.status, 200);
    // Client two uses the same key through server B, which never saw client
    // one: refused, exactly as one server would.
    let mut two = b.claims();
    two["client_id"] = serde_json::json!("client-two");
    let token_two = b.issuer.sign(&two);
    b.get_with("/whoami", &token_two)
        .await
        .assert_refused(401, "invalid_token", Error::KeyShared);
    // The first holder goes on everywhere.
    assert_eq!(b.get_with("/whoami", &token_one).await.status, 200);
    assert_eq!(a.get_with("/whoami", &token_one).await.status, 200);

    // Without the store, refusing needs an answer it cannot have: 503.
    redis.stop();
    let reply = a.get_with("/whoami", &token_one).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.challenges.is_empty());
    // Which dependency failed (RFC 9110 §15.6.4: no challenge on a 503).
    assert_eq!(
        reply.json()["error_description"],
        Error::KeySharingUnavailable.description()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn on_sentinel_revocations_are_acknowledged_by_the_replica_and_survive_a_killed_primary() {
    let mut group = SentinelGroup::start();
    let list = RedisRevocations::builder(Deployment::sentinel(
        group.sentinel_urls(),
        SENTINEL_SERVICE,
    ))
    .poll_interval(POLL)
    // Long enough for a loaded machine's replica to acknowledge (a CI run
    // timed out at 300 ms); the frozen replica below costs that much.
    .durability(Durability::Replicas {
        count: 1,
        timeout: Duration::from_secs(2),
    })
    .build()
    .unwrap();
    let issuer = TestIssuer::new(ISSUER);
    let client = DpopKey::generate();
    let h = server(&issuer, &client, list.clone());
    let token = h.token();
    let (reply, _) = until(&h, &token, Duration::from_secs(5), |r| r.status == 200).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // Acknowledged by the replica: Ok, and refused here at once.
    list.revoke(Revoked::Key, client.jkt(), Duration::from_secs(600))
        .await
        .unwrap();
    h.get_with("/whoami", &token)
        .await
        .assert_refused(401, "invalid_token", Error::TokenRevoked);
    // With the replica frozen, a change is made but not acknowledged: an
    // error says a failover could lose it.
    let (_, replica) = group.roles();
    replica.pause();
    let unacknowledged = list
        .revoke(Revoked::Subject, "someone", Duration::from_secs(600))
        .await;
    replica.resume();
    let Err(why) = unacknowledged else {
        panic!("an unacknowledged change reported as made durably");
    };
    assert!(why.to_string().contains("too few replicas"), "{why}");

    // The primary dies; the promoted replica has the list, and the server
    // follows it: still refused, and new changes are made there.
    let before = group.kill_primary();
    group.wait_for_new_primary(before);
    // A server starting now reads the list from the promoted node alone
    // (the first server could be serving its copy from before).
    let fresh = RedisRevocations::builder(Deployment::sentinel(
        group.sentinel_urls(),
        SENTINEL_SERVICE,
    ))
    .poll_interval(POLL)
    .build()
    .unwrap();
    let newcomer = server(&issuer, &client, fresh);
    let (reply, _) = until(&newcomer, &token, Duration::from_secs(10), |r| {
        r.status != 503
    })
    .await;
    reply.assert_refused(401, "invalid_token", Error::TokenRevoked);
    let restored = Instant::now();
    loop {
        // No replica is left to acknowledge: made, but an error.
        let answer = list.restore(Revoked::Key, client.jkt()).await;
        let reply = h.get_with("/whoami", &token).await;
        if reply.status == 200 {
            assert!(answer.is_err(), "no replica acknowledged: {answer:?}");
            break;
        }
        assert!(
            restored.elapsed() < Duration::from_secs(10),
            "never restored on the new primary: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server; scripts/test.sh installs and runs it"]
async fn report_mode_goes_on_without_the_store_and_says_so_once() {
    let mut redis = RedisServer::start();
    let issuer = TestIssuer::new(ISSUER);
    let client = DpopKey::generate();
    let trusted = issuer.trust();
    let holders = RedisKeyHolders::builder(redis.url()).build().unwrap();
    let h = Harness {
        client: client.clone(),
        ..Harness::with_issuer(issuer.clone(), |b| {
            b.trust(trusted)
                .key_sharing(KeySharing::new().holders(holders))
        })
    };
    let token = h.token();
    assert_eq!(h.get_with("/whoami", &token).await.status, 200);
    redis.stop();
    let (captured, _guard) = Captured::install();
    // Reporting needs no answer: every request goes on, unobserved …
    for _ in 0..5 {
        assert_eq!(h.get_with("/whoami", &token).await.status, 200);
    }
    // … and the outage is said once, not per request.
    let said = |needle: &str| {
        captured
            .lines()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    };
    assert_eq!(
        said("key-sharing store unavailable"),
        1,
        "{:#?}",
        captured.lines()
    );
    redis.restart();
    let back = Instant::now();
    while said("key-sharing store answering again") == 0 {
        assert_eq!(h.get_with("/whoami", &token).await.status, 200);
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "{:#?}",
            captured.lines()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
