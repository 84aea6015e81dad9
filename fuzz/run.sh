#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, one after another,
# starting from the committed corpus (fuzz/corpus/<target>, read only) and
# keeping what it finds in fuzz/corpus-work/<target> (not committed; another
# folder with FUZZ_WORK=...).
# Prints, per target, libFuzzer's final executions, speed and coverage.
# A crash stops the run: its input is in fuzz/artifacts/<target>/; minimise
# it (`cargo +nightly fuzz tmin <target> <file>`), copy it to
# fuzz/regressions/<target>/ and fix the bug (tests/fuzz_corpus.rs replays it).
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#   fuzz/run.sh            # 60 s per target
#   fuzz/run.sh 600 jwk    # 10 minutes, one target
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O >/dev/null
work="${FUZZ_WORK:-corpus-work}"
for target in "${targets[@]}"; do
    mkdir -p "$work/$target"
    log="$work/$target.log"
    cargo +nightly fuzz run -O "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -max_len=16384 \
        -dict=dict/jose.dict >"$log" 2>&1 || {
        echo "$target: CRASH, see $log and fuzz/artifacts/$target/"
        tail -30 "$log"
        exit 1
    }
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$')
    last=$(grep -E '#[0-9]+.*(cov|ft):' "$log" | tail -1)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || true)
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || true)
    corpus=$(find "$work/$target" -type f | wc -l)
    printf '%-14s %12s execs  %8s/s  cov %5s  ft %6s  new corpus %5s\n' \
        "$target" "$execs" "$speed" "$cov" "$ft" "$corpus"
done
