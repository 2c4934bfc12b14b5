#!/usr/bin/env bash
# Compares ringbroker with Tansu (libSQL/SQLite storage engine) at the same client settings:
# a ringbroker sweep, a Tansu sweep, then one combined table and plots.
#
#   scripts/compare-tansu.sh                         # rates 2000,5000,10000, 5 s each
#   RATES=20000 DURATION=10 WARMUP=2 CODECS=none,gzip,snappy,lz4,zstd scripts/compare-tansu.sh
#
# Tansu is built with cargo if it is not on PATH (or in $TANSU): that takes ~15-20 minutes
# on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU=${TANSU:-$(command -v tansu || echo "$PWD/target/tansu/bin/tansu")}
if [ ! -x "$TANSU" ]; then
  echo "compare-tansu: building tansu (slow)" >&2
  cargo install tansu --no-default-features --features dynostore,libsql --root target/tansu
  TANSU="$PWD/target/tansu/bin/tansu"
fi
TANSU=$(realpath "$TANSU")
OUT=${OUT:-perf/results/$(date -u +%F)/ringbroker-vs-tansu}
PORT=${PORT:-19096}
common=(--codecs "${CODECS:-none}" --batch-sizes "${BATCH_SIZES:-131072}" --acks "${ACKS:-all}"
  --rates "${RATES:-2000,5000,10000}" --duration "${DURATION:-5}" --warmup "${WARMUP:-1}")

scripts/compare.sh --pairs "${PAIRS:-buffered:none,buffered:fsync,direct:fsync}" "${common[@]}" \
  --out "$OUT/ringbroker"

data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
target/release/ringbroker-bench sweep --bootstrap "127.0.0.1:$PORT" --peer-name tansu-sqlite \
  --peer "cd $data && exec $TANSU broker --listener-url tcp://127.0.0.1:$PORT \
    --advertised-listener-url tcp://127.0.0.1:$PORT --storage-engine sqlite://tansu.db" \
  "${common[@]}" --out "$OUT/tansu"

target/release/ringbroker-bench combine --input "$OUT/ringbroker/sweep.json" \
  --input "$OUT/tansu/sweep.json" --out "$OUT"
