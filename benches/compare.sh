#!/usr/bin/env bash
# The load comparison of docs/benchmarks.md, on this machine, in one run:
#   senderbound   examples/resource_server (GET /api/read, scope read)
#   node          benches/node_peer: express + express-oauth2-jwt-bearer, DPoP required
#   huskarl       benches/huskarl_peer: huskarl-axum + huskarl-resource-server, DPoP required,
#                 an in-memory jti checker (a project of its own, built into target/)
#   axum          the same resource_server's GET /healthz, outside the Layer: the ceiling
# All trust the same authorization server (node-oidc-provider, tests/real_as),
# and examples/loadgen drives each with unique pre-signed ES256 proofs at each
# concurrency in turn. Then a long run against senderbound reads its resident
# memory after each round. Loopback only; bounded in time (about 5 minutes).
#
#   benches/compare.sh                      # everything, plots into docs/img
#   CONNECTIONS="8" SECONDS_PER_RUN=3 benches/compare.sh   # a quick look
#
# Not part of scripts/test.sh: these are measurements, not tests.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-1 2 4 8 16 32}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-5}"
LONG_ROUNDS="${LONG_ROUNDS:-6}"
OUT="${OUT:-target/bench/compare}"
PLOTS="${PLOTS:-docs/img}"
AUDIENCE=https://api.bench.test

step() { printf '\n==> %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # file pattern
  for _ in $(seq 1 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

rm -rf "$OUT"; mkdir -p "$OUT/runs"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

step "build (release) and install the Node packages"
cargo build --release --quiet --example resource_server --example loadgen --example bench_plot
(cd tests/real_as && npm ci --no-audit --no-fund --loglevel=error)
(cd benches/node_peer && npm ci --no-audit --no-fund --loglevel=error)
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo build --release --quiet \
  --manifest-path benches/huskarl_peer/Cargo.toml
huskarl_bin="${CARGO_TARGET_DIR:-$PWD/target}/release/huskarl-peer"
bin=target/release/examples

step "start the authorization server, senderbound and the peers"
as_port=$(free_port)
issuer="http://127.0.0.1:$as_port"
node tests/real_as/as.mjs --port "$as_port" --keys "$OUT/as-keys.json" > "$OUT/as.log" 2>&1 &
pids+=($!)
wait_for "$OUT/as.log" "as ready"

# Audit events at warn: only suspicious refusals are logged (the Node peer
# logs nothing); see docs/benchmarks.md for the cost of logging every event.
"$bin/resource_server" --listen 127.0.0.1:0 --issuer "$issuer" --audience "$AUDIENCE" \
  --log-level warn > "$OUT/senderbound.out" 2> "$OUT/senderbound.log" &
rs_pid=$!
pids+=($rs_pid)
wait_for "$OUT/senderbound.out" "^listening on "
rs_url=$(sed -n 's/^listening on //p' "$OUT/senderbound.out")

node benches/node_peer/server.mjs --port 0 --issuer "$issuer" --audience "$AUDIENCE" \
  > "$OUT/node.out" 2> "$OUT/node.log" &
pids+=($!)
wait_for "$OUT/node.out" "^listening on "
node_url=$(sed -n 's/^listening on //p' "$OUT/node.out")

"$huskarl_bin" --port 0 --issuer "$issuer" --audience "$AUDIENCE" \
  > "$OUT/huskarl.out" 2> "$OUT/huskarl.log" &
pids+=($!)
wait_for "$OUT/huskarl.out" "^listening on "
huskarl_url=$(sed -n 's/^listening on //p' "$OUT/huskarl.out")

token=(--token-endpoint "$issuer/token" --client-id agent --client-secret agent-secret
       --scope read --resource "$AUDIENCE")
# CPU time (user + system) a process has used, in clock ticks.
cpu_ticks() { awk '{print $14 " " $15}' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)
printf 'label\tconnections\trequests\tcpu_seconds\tuser_us_per_request\tsystem_us_per_request\tcpu_us_per_request\n' > "$OUT/cpu.tsv"
load() { # label url connections extra-args...
  local label=$1 url=$2 c=$3; shift 3
  local before; before=$(cpu_ticks "$rs_pid")
  "$bin/loadgen" --url "$url" --connections "$c" --duration "$SECONDS_PER_RUN" \
    --label "$label" --json "$OUT/runs/$label-c$c.json" "${token[@]}" "$@"
  if [ "$label" = senderbound ]; then
    # The server's own CPU over the run (the load generator's is not in it).
    python3 - "$OUT/runs/$label-c$c.json" "$before" "$(cpu_ticks "$rs_pid")" "$ticks_per_second" "$c" >> "$OUT/cpu.tsv" <<'PY'
import json, sys
report, before, after, hz, c = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4]), sys.argv[5]
n = sum(sum(r["status"].values()) for r in json.load(open(report))["rounds"])
user, system = ((int(a) - int(b)) / hz for a, b in zip(after, before))
us = lambda s: s / n * 1e6
print(f"senderbound\t{c}\t{n}\t{user + system:.2f}\t{us(user):.1f}\t{us(system):.1f}\t{us(user + system):.1f}")
PY
  fi
}

step "compare at ${CONNECTIONS} connections, ${SECONDS_PER_RUN} s each"
for c in $CONNECTIONS; do
  load senderbound "$rs_url/api/read" "$c" --proofs 100000
  load node "$node_url/api/read" "$c" --proofs 20000
  load huskarl "$huskarl_url/api/read" "$c" --proofs 50000
  load axum-unprotected "$rs_url/healthz" "$c" --proofs 5000000 --same-proof
done

step "plots and table"
"$bin/bench_plot" --input "$OUT/runs" --out "$PLOTS" --baseline node | tee "$OUT/table.md"
echo "server CPU per request under load:"; column -t "$OUT/cpu.tsv"

step "long run against senderbound: resident memory after each round"
"$bin/loadgen" --url "$rs_url/api/read" --connections 8 --rounds "$LONG_ROUNDS" \
  --requests 150000 --server-pid "$rs_pid" --label senderbound-long-run \
  --json "$OUT/long-run.json" "${token[@]}"
echo "reports in $OUT, plots in $PLOTS"
