//! Example servers and third-party programs run as their own processes by
//! end-to-end tests: started on free loopback ports, waited for, and killed
//! when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A child process killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command`, its stderr going to `log`, and waits (up to 30 s) for
/// a stdout line containing `ready`; returns the process and that line.
pub fn start(mut command: Command, ready: &str, log: &Path) -> (Process, String) {
    let stderr = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let Some(stdout) = child.stdout.take() else {
        panic!("{command:?}: no stdout");
    };
    let (tx, rx) = mpsc::channel();
    let ready = ready.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(&ready) {
                let _ = tx.send(line);
            }
        }
    });
    let process = Process(child);
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "{command:?} did not get ready; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
    (process, line)
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The built example `name` (in `target/debug/examples`); panics with the
/// command that builds it when it is missing.
pub fn example(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let bin = target.join("debug/examples").join(name);
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --example {name}`",
        bin.display()
    );
    bin
}

/// Starts example `name` with `args`, waits for its `listening on URL`
/// line, and returns it with that URL; its stderr goes to `scratch/log.log`.
pub fn start_example(name: &str, args: &[&str], scratch: &Path, log: &str) -> (Process, String) {
    start_example_with_env(name, args, &[], scratch, log)
}

/// [`start_example`] with these environment variables set for it.
pub fn start_example_with_env(
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
    scratch: &Path,
    log: &str,
) -> (Process, String) {
    let mut command = Command::new(example(name));
    command.args(args).envs(env.iter().copied());
    let (process, line) = start(
        command,
        "listening on ",
        &scratch.join(format!("{log}.log")),
    );
    let url = line.trim_start_matches("listening on ").trim().to_owned();
    (process, url)
}

/// A port free on 127.0.0.1 right now, never handed out twice by this
/// process: taken in turn from 10000–22767, below Linux's ephemeral range
/// (32768 and up), and so is a Redis Cluster node's bus port (+10000).
/// (Asking the kernel for port 0 and letting it go raced: the kernel may
/// give the same port to the next `bind(0)`, another test's server or an
/// outgoing connection, before the program told to use it binds it.)
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 10_000;
    const SPAN: u16 = 12_768;
    // Each test process starts elsewhere in the range.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (start.wrapping_add(n) % SPAN);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {FIRST}..{}", FIRST + SPAN)
}

/// A fresh scratch directory under the system's temporary directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("senderbound-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}
