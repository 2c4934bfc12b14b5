#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit, model, crash and integration tests,
# then the kcat smoke test against a release build.
# Installs what the tests need (kcat, Python Kafka clients) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

cargo fmt --all -- --check
# --workspace: the broker (root package) and the load generator (bench/, ringbroker-bench);
# without it cargo takes the root package only.
cargo clippy --workspace --all-targets -- -D warnings
# Integration tests start real brokers (kept to one heavy broker at a time within a test
# binary; cargo runs the binaries one after another). Every failing binary is reported,
# and the smoke test runs either way.
status=0
cargo test --workspace --all-targets --no-fail-fast || status=$?
scripts/smoke.sh || status=$?
exit "$status"
