//! A private `redis-server` on a free loopback port, for tests and
//! measurements: no persistence, killed when dropped. Nothing depends on a
//! Redis someone else started.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

/// A running (or stopped, restartable) private Redis.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Arguments after the defaults (replication, cluster mode, persistence).
    extra: Vec<String>,
    /// Its own working directory: a replica writes the RDB it syncs, and a
    /// server loads any `dump.rdb` it finds at start.
    dir: std::path::PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` (which must be on the PATH) and waits until it
    /// answers `PING`.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with more `redis-server` arguments (later
    /// ones win: `--appendonly yes --dir …` for persistence, `--replicaof`,
    /// `--cluster-enabled yes`).
    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sb-redis-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        let mut server = RedisServer {
            port,
            child: None,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            dir,
        };
        server.restart();
        server
    }

    /// The port it listens on (loopback).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A field of `INFO replication` or `INFO server` (`role`,
    /// `master_link_status`, `run_id`, …): two short answers that one read
    /// gets whole.
    pub fn info(&self, field: &str) -> Option<String> {
        ["replication", "server"].iter().find_map(|section| {
            let info = self.command(&format!("INFO {section}"))?;
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{field}:")))
                .map(|v| v.trim().to_owned())
        })
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (the port stays reserved for [`restart`](Self::restart)).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success(), "kill {signal}");
        }
    }

    /// Starts the server again on the same port (empty, unless the extra
    /// arguments give it persistence).
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.command("PING").is_some_and(|a| a.starts_with("+PONG")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    /// Sends one inline command and returns the raw first reply, if any.
    pub fn command(&self, command: &str) -> Option<String> {
        raw_command(self.port, command)
    }

    /// `used_memory` from `INFO memory`, in bytes.
    pub fn used_memory(&self) -> u64 {
        let info = self.command("INFO memory").unwrap_or_default();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("used_memory in INFO")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Sentinel group on loopback: one primary, one replica and three
/// sentinels monitoring them as `senderbound` (quorum 2, a primary down
/// after 1 s), each sentinel with its own config file in a temporary
/// directory. Everything is killed when dropped.
#[derive(Debug)]
pub struct SentinelGroup {
    /// The primary at start.
    pub primary: RedisServer,
    /// Its replica at start.
    pub replica: RedisServer,
    sentinels: Vec<(u16, Child)>,
    /// The sentinel the group's own commands go to (not a frozen one).
    asked: usize,
    dir: std::path::PathBuf,
}

/// The service name the sentinels monitor.
pub const SENTINEL_SERVICE: &str = "senderbound";

impl SentinelGroup {
    /// Starts the group and waits until every sentinel knows the replica.
    pub fn start() -> Self {
        // Replicas sync at once (the default waits 5 s for more replicas).
        let fast = ["--repl-diskless-sync-delay", "0"];
        let primary = RedisServer::start_with(&fast);
        let replica = RedisServer::start_with(&[
            fast[0],
            fast[1],
            "--replicaof",
            "127.0.0.1",
            &primary.port.to_string(),
        ]);
        wait_until("the replica to sync", || {
            replica.info("master_link_status").as_deref() == Some("up")
        });
        let dir = std::env::temp_dir().join(format!("sb-sentinel-{}", primary.port));
        let _ = std::fs::create_dir_all(&dir);
        let sentinels = (0..3)
            .map(|i| {
                let port = free_port();
                let conf = dir.join(format!("sentinel-{i}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\n\
                         sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {} 2\n\
                         sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n\
                         sentinel failover-timeout {SENTINEL_SERVICE} 5000\n",
                        dir.display(),
                        primary.port
                    ),
                )
                .expect("sentinel config");
                let child = Command::new("redis-server")
                    .arg(&conf)
                    .arg("--sentinel")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server --sentinel");
                (port, child)
            })
            .collect::<Vec<_>>();
        let group = SentinelGroup {
            primary,
            replica,
            sentinels,
            asked: 0,
            dir,
        };
        for (port, _) in &group.sentinels {
            wait_until("every sentinel to see the replica", || {
                raw_command(*port, &format!("SENTINEL REPLICAS {SENTINEL_SERVICE}"))
                    .is_some_and(|a| a.contains(&group.replica.port.to_string()))
            });
        }
        group
    }

    /// `redis://127.0.0.1:PORT` of each sentinel.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|(port, _)| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// The port the sentinels call the primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let answer = raw_command(
            self.sentinels[self.asked].0,
            &format!("SENTINEL GET-MASTER-ADDR-BY-NAME {SENTINEL_SERVICE}"),
        )?;
        answer
            .lines()
            .filter_map(|l| l.trim().parse::<u16>().ok())
            .next()
    }

    /// Forces a failover (`SENTINEL FAILOVER`) and waits until the
    /// sentinels name the other node and it answers as a primary.
    pub fn failover(&self) {
        let before = self.primary_port();
        let answer = raw_command(
            self.sentinels[self.asked].0,
            &format!("SENTINEL FAILOVER {SENTINEL_SERVICE}"),
        );
        assert!(
            answer.as_deref().is_some_and(|a| a.starts_with("+OK")),
            "SENTINEL FAILOVER: {answer:?}"
        );
        self.wait_for_new_primary(before);
    }

    /// Freezes sentinel `i` (SIGSTOP): connections to it open, and nothing
    /// answers, as with a sentinel on a host that hangs. The group asks
    /// another from now on.
    pub fn freeze_sentinel(&mut self, i: usize) {
        let status = Command::new("kill")
            .args(["-STOP", &self.sentinels[i].1.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -STOP");
        self.asked = (i + 1) % self.sentinels.len();
    }

    /// The node that is the primary now, and the other.
    pub fn roles(&mut self) -> (&mut RedisServer, &mut RedisServer) {
        if self.primary_port() == Some(self.replica.port) {
            (&mut self.replica, &mut self.primary)
        } else {
            (&mut self.primary, &mut self.replica)
        }
    }

    /// Kills the primary (SIGKILL: no goodbye) once its replica holds
    /// everything it was sent, and returns at once: the sentinels notice
    /// after a second, then promote the replica
    /// ([`wait_for_new_primary`](Self::wait_for_new_primary)).
    pub fn kill_primary(&mut self) -> Option<u16> {
        let before = self.primary_port();
        let (primary, replica) = self.roles();
        wait_until("the replica to catch up", || {
            let offset = primary.info("master_repl_offset");
            offset.is_some() && replica.info("slave_repl_offset") == offset
        });
        primary.stop();
        before
    }

    /// Waits until the sentinels name a primary other than `before` and it
    /// answers as one.
    pub fn wait_for_new_primary(&self, before: Option<u16>) {
        wait_until("the sentinels to name the new primary", || {
            let now = self.primary_port();
            now.is_some() && now != before
        });
        let new = self.primary_port();
        let node = if new == Some(self.replica.port) {
            &self.replica
        } else {
            &self.primary
        };
        wait_until("the new primary to answer as one", || {
            node.info("role").as_deref() == Some("master")
        });
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster on loopback: three primaries with one replica each,
/// made with `redis-cli --cluster create`, a node down after 1 s. Killed
/// when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    /// Every node, primaries first as created.
    pub nodes: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts six nodes, joins them and waits for `cluster_state:ok`.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("sb-cluster-{}", free_port()));
        let _ = std::fs::create_dir_all(&dir);
        let nodes: Vec<RedisServer> = (0..6)
            .map(|i| {
                let node_dir = dir.join(i.to_string());
                let _ = std::fs::create_dir_all(&node_dir);
                let log = node_dir.join("redis.log").display().to_string();
                let node_dir = node_dir.display().to_string();
                RedisServer::start_with(&[
                    "--logfile",
                    &log,
                    // Replicas sync at once (the default waits 5 s), so a
                    // test can kill a primary soon after the start.
                    "--repl-diskless-sync-delay",
                    "0",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "1000",
                    "--dir",
                    &node_dir,
                ])
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(node.address());
        }
        let output = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli on the PATH (scripts/test.sh installs it)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = RedisCluster { nodes, dir };
        for node in &cluster.nodes {
            wait_until("cluster_state:ok", || {
                node.command("CLUSTER INFO")
                    .is_some_and(|i| i.contains("cluster_state:ok"))
            });
        }
        // Every replica synced: one that never did cannot take over.
        for node in &cluster.nodes {
            wait_until("every replica to sync", || {
                node.info("role").as_deref() == Some("master")
                    || node.info("master_link_status").as_deref() == Some("up")
            });
        }
        cluster
    }

    /// `redis://127.0.0.1:PORT/` of every node (seeds for a client).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Waits until three live nodes are primaries (a replica took over
    /// from any that died) and every live node says `cluster_state:ok`.
    pub fn wait_for_three_primaries(&self) {
        wait_until("three live primaries", || {
            let roles: Vec<_> = self
                .nodes
                .iter()
                .filter(|n| n.child.is_some())
                .map(|n| n.info("role"))
                .collect();
            roles
                .iter()
                .filter(|r| r.as_deref() == Some("master"))
                .count()
                == 3
        });
        self.wait_ok_without(usize::MAX);
    }

    /// Waits until every live node but `down` says `cluster_state:ok`.
    pub fn wait_ok_without(&self, down: usize) {
        for (_, node) in self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| *i != down && n.child.is_some())
        {
            wait_until("cluster_state:ok", || {
                node.command("CLUSTER INFO")
                    .is_some_and(|i| i.contains("cluster_state:ok"))
            });
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        if std::env::var_os("SB_KEEP_CLUSTER").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One inline command to the loopback port `port`.
fn raw_command(port: u16, command: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Polls `done` every 50 ms for at most 30 s; panics naming `what`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}
