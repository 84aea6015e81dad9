#!/usr/bin/env bash
# The one test command for senderbound (CI runs exactly this via .ci/run):
# formatting, lints with warnings as errors, the whole test suite with each
# signature backend, the demo (non-zero on any unexpected outcome), the MCP
# example as a conformance target, the end-to-end tests against a real
# authorization server (node-oidc-provider, installed here from the npm
# registry with `npm ci`) with third-party DPoP clients (oauth4webapi from
# npm, requests-oauth2client from PyPI), a browser as the DPoP client
# (Debian's chromium, installed here with apt-get when missing, driven by
# puppeteer-core from npm), and the Redis replay store against
# private redis-server instances (installed here with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# A clean checkout gains nothing from incremental state, which is most of
# target/ on disk.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

# Scratch output goes under target/ (ignored by git), which exists even
# when CARGO_TARGET_DIR puts the build elsewhere.
mkdir -p target

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "rustdoc (broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --quiet

step "every feature of every library crate, built alone"
# A backend feature alone (no default features); any other feature with
# the default backend.
for krate in senderbound-core senderbound senderbound-client senderbound-redis senderbound-test; do
  features=$(cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
pkg = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == sys.argv[1])
print(" ".join(f for f in pkg["features"] if f != "default"))' "$krate")
  for feature in $features; do
    case "$feature" in
      aws-lc-rs|rust-crypto) cargo check --quiet -p "$krate" --no-default-features --features "$feature" ;;
      *) cargo check --quiet -p "$krate" --features "$feature" ;;
    esac
    echo "  $krate: $feature"
  done
done

step "cargo deny: licenses, bans, sources (advisories need GitHub, unreachable here)"
command -v cargo-deny >/dev/null || cargo install --quiet --locked cargo-deny
cargo deny --log-level error check licenses bans sources

step "cargo package: every published crate (packaged together, not verified)"
cargo package --quiet --workspace --exclude senderbound-suite --no-verify --allow-dirty
ls "${CARGO_TARGET_DIR:-target}"/package/*.crate

step "tests, aws-lc-rs backend (default)"
cargo test --workspace

step "tests, rust-crypto backend (pure Rust)"
cargo test --workspace --no-default-features --features rust-crypto

step "fuzz targets: a 10 s smoke run each (the corpus replays in every test run above)"
if cargo +nightly --version >/dev/null 2>&1 && cargo fuzz --version >/dev/null 2>&1; then
  FUZZ_WORK="$(mktemp -d)" fuzz/run.sh 10
else
  echo "skipped: needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz)"
fi

step "benches, each run once as a smoke test (timings: cargo bench, docs/benchmarks.md)"
cargo test --quiet --bench dpop --bench allocations

step "demo"
cargo run --quiet --example demo > target/demo-output.txt
tail -n 1 target/demo-output.txt

step "MCP: the example server, called by the example agent"
cargo build --quiet --example mcp_server --example mcp_agent
bin="${CARGO_TARGET_DIR:-target}/debug/examples"
"$bin/mcp_server" --listen 127.0.0.1:0 --dev-as-listen 127.0.0.1:0 \
  > target/mcp-server.out 2> target/mcp-server.log &
mcp_pid=$!
for _ in $(seq 1 100); do grep -q '^listening on ' target/mcp-server.out && break; sleep 0.1; done
mcp_url=$(sed -n 's/^listening on //p' target/mcp-server.out)
agent_status=0
"$bin/mcp_agent" --server "$mcp_url" > target/mcp-agent.out || agent_status=$?
kill "$mcp_pid" 2>/dev/null || true
wait "$mcp_pid" 2>/dev/null || true
tail -n 1 target/mcp-agent.out
if [ "$agent_status" != 0 ]; then cat target/mcp-agent.out; exit "$agent_status"; fi

step "gRPC: the example server (nonces required), called by the example client through DpopLayer"
cargo build --quiet --example grpc_server --example grpc_client
"$bin/grpc_server" --listen 127.0.0.1:0 --dev-as-listen 127.0.0.1:0 --log-level warn \
  --nonce-secret "grpc example nonce secret, test only, 32+ bytes" \
  > target/grpc-server.out 2> target/grpc-server.log &
grpc_pid=$!
for _ in $(seq 1 100); do grep -q 'token endpoint' target/grpc-server.log && grep -q '^listening on ' target/grpc-server.out && break; sleep 0.1; done
grpc_url=$(sed -n 's/^listening on //p' target/grpc-server.out)
token_endpoint=$(sed -n 's/.*(token endpoint \(.*\))$/\1/p' target/grpc-server.log)
client_status=0
"$bin/grpc_client" --server "$grpc_url" --token-endpoint "$token_endpoint" > target/grpc-client.out || client_status=$?
kill "$grpc_pid" 2>/dev/null || true
wait "$grpc_pid" 2>/dev/null || true
cat target/grpc-client.out
if [ "$client_status" != 0 ]; then cat target/grpc-server.log; exit "$client_status"; fi

step "the MCP example as a conformance target (tests/conformance_targets.rs)"
cargo test --test conformance_targets -- --ignored

step "end to end against node-oidc-provider (tests/real_as), and clients no one here wrote"
command -v node >/dev/null || { echo "Node.js is required for the real-AS test" >&2; exit 1; }
(cd tests/real_as && npm ci --no-audit --no-fund --loglevel=error)
# oauth4webapi (npm) and requests-oauth2client (PyPI), pinned in tests/clients.
(cd tests/clients && npm ci --no-audit --no-fund --loglevel=error)
if [ ! -x target/clients-venv/bin/python ]; then python3 -m venv target/clients-venv; fi
target/clients-venv/bin/pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
cargo build --quiet --example resource_server --example mtls_server
cargo test --test real_as --test third_party_clients -- --ignored

step "a browser as the DPoP client: headless Chromium, the browser_app example, node-oidc-provider (tests/browser.rs)"
# Debian's chromium, installed here when missing; puppeteer-core from npm
# (tests/browser, pinned) drives it. Skipped, saying so, only where Chromium
# cannot be installed (SENDERBOUND_REQUIRE_BROWSER=1 makes that a failure).
if ! command -v chromium >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
    || echo "chromium could not be installed" >&2
fi
if command -v chromium >/dev/null; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  cargo build --quiet --example browser_app
  CHROMIUM="$(command -v chromium)" cargo test --test browser -- --ignored
elif [ -n "${SENDERBOUND_REQUIRE_BROWSER:-}" ]; then
  echo "the browser test needs Chromium (Debian's chromium package), which could not be installed" >&2
  exit 1
else
  echo "SKIPPED: the browser test needs Chromium (Debian's chromium package), which could not be installed here"
fi

step "load generator smoke run: resource_server and node-oidc-provider, 400 requests"
cargo build --quiet --example loadgen
bin="${CARGO_TARGET_DIR:-target}/debug/examples"
smoke=target/loadgen-smoke
rm -rf "$smoke"; mkdir -p "$smoke"
as_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
node tests/real_as/as.mjs --port "$as_port" --keys "$smoke/keys.json" > "$smoke/as.log" 2>&1 &
as_pid=$!
"$bin/resource_server" --listen 127.0.0.1:0 --issuer "http://127.0.0.1:$as_port" \
  --audience https://api.bench.test --log-level warn > "$smoke/rs.out" 2> "$smoke/rs.log" &
rs_pid=$!
for _ in $(seq 1 100); do grep -q "as ready" "$smoke/as.log" && grep -q '^listening on ' "$smoke/rs.out" && break; sleep 0.1; done
rs_url=$(sed -n 's/^listening on //p' "$smoke/rs.out")
load_status=0
"$bin/loadgen" --url "$rs_url/api/read" --connections 4 --requests 400 --json "$smoke/report.json" \
  --token-endpoint "http://127.0.0.1:$as_port/token" --client-id agent --client-secret agent-secret \
  --scope read --resource https://api.bench.test > "$smoke/report.txt" || load_status=$?
kill "$rs_pid" "$as_pid" 2>/dev/null || true
wait "$rs_pid" "$as_pid" 2>/dev/null || true
cat "$smoke/report.txt"
# Every request answered 200: unique proofs, none refused as a replay.
if [ "$load_status" != 0 ] || ! grep -q '"200": 400' "$smoke/report.json"; then
  echo "loadgen smoke run failed" >&2; cat "$smoke/rs.log" >&2; exit 1
fi

step "Redis against private redis-server instances: one node, a cluster, a Sentinel group, a fleet of resource_server processes (tests/redis.rs, redis_fleet.rs, redis_revocation.rs, redis_servers.rs)"
if ! command -v redis-server >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
cargo test --test redis -- --ignored
# One at a time: each starts its own cluster or Sentinel group.
command -v redis-cli >/dev/null || { echo "redis-cli (Debian's redis-tools) is required" >&2; exit 1; }
cargo test --test redis_fleet --test redis_revocation --test redis_servers -- --ignored --test-threads 1
cargo run --quiet --example redis_cost -- --entries 2000 --concurrency 4
