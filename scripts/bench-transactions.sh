#!/usr/bin/env bash
# What transactions cost: `ringbroker-bench` against one local broker (release build, one
# shard), the same run measuring an idempotent producer and transactional producers that
# commit every 10,000, 1,000 and 100 records (consumers under read_committed), in
# alternating rounds (ROUNDS, default 3); each setting's median is reported against the
# idempotent producer as ratios: absolute numbers on a shared 2-core machine drift from run
# to run, ratios taken in one run much less.
#
#   scripts/bench-transactions.sh            # writes perf/results/transactions-DATE.{json,md}
#   ROUNDS=5 DURATION=15 scripts/bench-transactions.sh
#
# Closed loop (as fast as the producer goes), 1 KiB records, 3 partitions, acks=all, one
# producer and one consumer on 127.0.0.1 sharing the two cores with the broker.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
RECORD=${RECORD:-1024}
SIZES=${SIZES:-"10000 1000 100"}
DATE=$(date -u +%Y-%m-%d)
OUT=${OUT:-perf/results/transactions-$DATE}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
WORK=$(mktemp -d /tmp/ringbroker-bench-txn.XXXXXX)

cargo build --release -p ringbroker --bin ringbroker >&2
cargo build --release -p ringbroker-bench >&2
BENCH=$TARGET/release/ringbroker-bench
PORT=${PORT:-19392}

# Closed loop writes hundreds of MB/s: retention keeps the disk bounded.
"$TARGET/release/ringbroker" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
  --shards 1 --set log.retention.bytes=268435456 --set log.segment.bytes=33554432 \
  --set transaction.state.log.num.partitions=4 >"$WORK/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true; wait $broker 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
  kcat -L -b "127.0.0.1:$PORT" -m 2 >/dev/null 2>&1 && break
  sleep 0.1
done

cc=$(sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo unknown)
runs=()
for round in $(seq 1 "$ROUNDS"); do
  for txn in 0 $SIZES; do
    json="$WORK/txn$txn-$round.json"
    extra=(--producer-set enable.idempotence=true)
    [[ $txn -gt 0 ]] && extra=(--transactional "$txn")
    "$BENCH" --bootstrap "127.0.0.1:$PORT" --topic "txn-bench-$txn" --partitions 3 \
      --acks all --record-size "$RECORD" --rate 0 --warmup "$WARMUP" --duration "$DURATION" \
      --quiet --broker-config "shards=1" "${extra[@]}" --json "$json" >&2
    runs+=("$json")
  done
done

python3 - "$OUT" "$cc" "${runs[@]}" <<'PY'
import json, statistics, sys
out, cc, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
by = {}
for p in paths:
    r = json.load(open(p))
    key = r["params"]["transactional"]
    res = r["results"]
    by.setdefault(key, []).append({
        "produce_mb_s": res["produce"]["mb_per_s"],
        "ack_p50_ms": res["ack_latency_ms"]["p50"],
        "ack_p99_ms": res["ack_latency_ms"]["p99"],
        "consume_mb_s": res["consume"]["mb_per_s"],
        "e2e_p50_ms": res["e2e_latency_ms"]["p50"],
    })
med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in by.items()}
base = med[0]
rows = []
for k in sorted(med, key=lambda k: (k != 0, -k)):
    m = med[k]
    rows.append({"records_per_transaction": k, "runs": len(by[k]), **m,
                 "produce_vs_idempotent": m["produce_mb_s"] / base["produce_mb_s"]})
doc = {"benchmark": "transactions", "tcp_congestion_control": cc, "medians": rows,
       "runs": {str(k): v for k, v in by.items()}}
json.dump(doc, open(out + ".json", "w"), indent=2)
lines = [f"# Transactions: one broker on 127.0.0.1 (1 shard; TCP congestion control: {cc})", "",
         "Closed-loop produce, 1 KiB records, 3 partitions, acks=all, one producer and one "
         "read_committed consumer; medians of "
         f"{len(by[0])} alternating rounds; ratios against the idempotent producer of the same run.", "",
         "| records per transaction | produce MB/s | vs idempotent | ack p50 ms | ack p99 ms | consume MB/s | end-to-end p50 ms |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
for r in rows:
    label = "idempotent, no transactions" if r["records_per_transaction"] == 0 else str(r["records_per_transaction"])
    lines.append(f"| {label} | {r['produce_mb_s']:.1f} | {r['produce_vs_idempotent']:.2f} | "
                 f"{r['ack_p50_ms']:.2f} | {r['ack_p99_ms']:.2f} | {r['consume_mb_s']:.1f} | "
                 f"{r['e2e_p50_ms']:.2f} |")
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
