#!/usr/bin/env bash
# The one test command for senderbound (CI runs exactly this via .ci/run):
# formatting, lints with warnings as errors, the whole test suite with each
# signature backend, and the demo, which exits non-zero on any unexpected outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "rustdoc (broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --quiet

step "tests, aws-lc-rs backend (default)"
cargo test --workspace

step "tests, rust-crypto backend (pure Rust)"
cargo test --workspace --no-default-features --features rust-crypto

step "demo"
cargo run --quiet --example demo > target/demo-output.txt
tail -n 1 target/demo-output.txt
