#!/usr/bin/env bash
# Peak throughput against the machine's limits, in one run: closed-loop produce for each
# io/flush pair, record size, producer count and acks; consume CPU per GB; open-loop
# latency at 50/80/95 % of the peak; shards 1 vs 2; Tansu beside it when its binary is
# found. See scripts/bench_peak.py for what is measured and the knobs (PAIRS, SIZES,
# PRODUCERS, ACKS, DURATION, ...). Writes perf/results/peak-DATE/peak.{json,md}.
#
#   scripts/bench-peak.sh                                  # ~8 minutes on 2 cores
#   PRODUCERS=1,2,4,8 DURATION=10 scripts/bench-peak.sh    # the long version
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ringbroker -p ringbroker-bench
exec python3 scripts/bench_peak.py
