#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit, model, crash and integration tests,
# then the kcat smoke test against a release build.
# Installs what the tests need (kcat, Python Kafka clients) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# Integration tests start real brokers; the heavy ones serialise themselves within a test
# binary, and cargo runs the test binaries one after another.
cargo test --all-targets --no-fail-fast
scripts/smoke.sh
