#!/usr/bin/env bash
# Ack latency of a producer while retention deletes segments, builds alternating in each
# round (scripts/bench_retention.py). Writes perf/results/retention-DATE/retention.{json,md}.
#
#   scripts/bench-retention.sh                                 # ~3 minutes
#   BINS=target/ringbroker-OLD,target/release/ringbroker scripts/bench-retention.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ringbroker -p ringbroker-bench
exec python3 scripts/bench_retention.py
