#!/usr/bin/env bash
# CPU seconds per GB produced and consumed, as medians of alternating rounds, with the
# kernel's page-cache floor measured in every round (this machine drifts run to run; see
# scripts/bench_cost.py). Writes perf/results/cost-DATE/cost.{json,md}.
#
#   scripts/bench-cost.sh                                     # ~8 minutes on 2 cores
#   BINS=target/ringbroker-OLD,target/release/ringbroker ROUNDS=5 scripts/bench-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ringbroker -p ringbroker-bench
exec python3 scripts/bench_cost.py
