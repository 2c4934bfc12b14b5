#!/usr/bin/env bash
# Runs the broker comparison sweep (`ringbroker-bench sweep`) with a release build and writes
# sweep.json, sweep.md, ack-p99.svg and e2e-p99.svg into perf/results/<UTC date>/ (or --out).
#
# Every ringbroker setting gets a fresh broker on a fresh data directory; the machine's own
# limits (loopback TCP, sequential disk write, fdatasync) are measured in the same run, with
# iperf3 and fio when available (installed here if missing), else built-in equivalents.
#
#   scripts/compare.sh                       # short default matrix: a few minutes on 2 cores
#   scripts/compare.sh --rates 20000 --duration 10 --warmup 2 --batch-sizes 131072 --acks 1
#   scripts/compare.sh --pairs buffered:none,direct:fsync --rates 5000,20000,50000
#   scripts/compare.sh --bootstrap 127.0.0.1:9092 --peer-name kafka   # an already-running broker
#   scripts/compare.sh --bootstrap 127.0.0.1:9092 --peer 'tansu ...' --peer-name tansu
#
# Any `ringbroker-bench sweep --help` flag is passed through.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
command -v fio >/dev/null 2>&1 || need+=(fio)
if ((${#need[@]})) && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    $SUDO apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
      echo "compare: could not install ${need[*]}; using the built-in measurements" >&2
  fi
fi

# The broker and the load generator are two packages of the workspace, built one at a time
# so the broker is the same build as `cargo run --release -- serve` and scripts/smoke.sh's.
cargo build --release --bin ringbroker
cargo build --release -p ringbroker-bench
exec target/release/ringbroker-bench sweep --broker-bin target/release/ringbroker "$@"
