#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit, model, crash and integration tests.
# Installs what the tests need (kcat, Python Kafka clients) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
