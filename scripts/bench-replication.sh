#!/usr/bin/env bash
# What replication costs: `ringbroker-bench` against a local three-broker cluster
# (scripts/cluster.sh, release build, one shard each), the same run measuring
#   RF=1 acks=1, RF=1 acks=all, RF=3 acks=1, RF=3 acks=all
# on topics created for it, in alternating rounds (ROUNDS, default 3), and reports each
# setting's median against RF=1 acks=1 as ratios: absolute numbers on a shared 2-core
# machine drift from run to run, ratios taken in one run much less.
#
#   scripts/bench-replication.sh            # writes perf/results/replication-DATE.{json,md}
#   ROUNDS=5 DURATION=15 scripts/bench-replication.sh
#
# Everything runs on 127.0.0.1 (three brokers and the client share the cores), so the
# replication traffic competes with the client for CPU: the ratios show the broker-side
# cost of copying each batch to two followers, not a network's.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
RECORD=${RECORD:-1024}
DATE=$(date -u +%Y-%m-%d)
OUT=${OUT:-perf/results/replication-$DATE}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
if [[ -z ${CLUSTER_DATA:-} ]]; then
  CLUSTER_DATA=$(mktemp -d /tmp/ringbroker-bench-repl.XXXXXX)
  scratch=$CLUSTER_DATA
fi
export CLUSTER_DATA

cargo build --release -p ringbroker --bin ringbroker >&2
cargo build --release -p ringbroker-bench >&2
BENCH=$TARGET/release/ringbroker-bench
export RINGBROKER_BIN=$TARGET/release/ringbroker

# Closed loop writes hundreds of MB/s to three copies: retention keeps the disk bounded
# (two topics x 3 partitions x 128 MiB x 3 brokers).
scripts/cluster.sh start --release --set log.retention.bytes=134217728 \
  --set log.segment.bytes=33554432 >"$CLUSTER_DATA/cluster.out" 2>&1 &
cluster=$!
trap 'scripts/cluster.sh stop >/dev/null 2>&1 || true; kill $cluster 2>/dev/null || true; [[ -n ${scratch:-} ]] && rm -rf "$scratch"/node-*' EXIT
for _ in $(seq 1 100); do
  grep -q "Ctrl-C stops" "$CLUSTER_DATA/cluster.out" 2>/dev/null && break
  sleep 0.2
done
grep -q "Ctrl-C stops" "$CLUSTER_DATA/cluster.out" || { cat "$CLUSTER_DATA/cluster.out"; exit 1; }
# Formed: every broker lists all three (kcat, which scripts/setup.sh installs).
for _ in $(seq 1 150); do
  n=$(kcat -L -b 127.0.0.1:9092 -m 2 2>/dev/null | grep -c "broker [0-9]* at" || true)
  [[ $n -ge 3 ]] && break
  sleep 0.2
done

cc=$(sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo unknown)
qdisc=$(tc qdisc show dev lo 2>/dev/null | head -1 || echo unknown)
runs=()
for round in $(seq 1 "$ROUNDS"); do
  for rf in 1 3; do
    for acks in 1 all; do
      json="$CLUSTER_DATA/rf$rf-acks$acks-$round.json"
      "$BENCH" --bootstrap 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094 \
        --topic "repl-rf$rf" --partitions 3 --replication-factor "$rf" \
        --acks "$acks" --record-size "$RECORD" --rate 0 \
        --warmup "$WARMUP" --duration "$DURATION" --quiet \
        --broker-config "replication.factor=$rf" --broker-config "cluster=3 brokers, 1 shard each" \
        --json "$json" >&2
      runs+=("$json")
    done
  done
done

python3 - "$OUT" "$cc" "$qdisc" "${runs[@]}" <<'PY'
import json, statistics, sys
out, cc, qdisc, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
by = {}
for p in paths:
    r = json.load(open(p))
    key = (r["params"]["replication_factor"], r["params"]["acks"])
    res = r["results"]
    by.setdefault(key, []).append({
        "produce_mb_s": res["produce"]["mb_per_s"],
        "ack_p50_ms": res["ack_latency_ms"]["p50"],
        "ack_p99_ms": res["ack_latency_ms"]["p99"],
        "consume_mb_s": res["consume"]["mb_per_s"],
    })
med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in by.items()}
base = med[(1, "1")] if (1, "1") in med else next(iter(med.values()))
rows = []
for (rf, acks), m in sorted(med.items()):
    rows.append({"replication_factor": rf, "acks": acks, "runs": len(by[(rf, acks)]), **m,
                 "produce_vs_rf1_acks1": m["produce_mb_s"] / base["produce_mb_s"],
                 "ack_p50_vs_rf1_acks1": m["ack_p50_ms"] / base["ack_p50_ms"] if base["ack_p50_ms"] else None})
doc = {"benchmark": "replication", "tcp_congestion_control": cc, "lo_qdisc": qdisc,
       "medians": rows, "runs": {f"rf{k[0]}-acks{k[1]}": v for k, v in by.items()}}
json.dump(doc, open(out + ".json", "w"), indent=2)
lines = [f"# Replication cost: three brokers on 127.0.0.1 (TCP congestion control: {cc})", "",
         "Closed-loop produce, 1 KiB records, 3 partitions, one producer and one consumer; medians of "
         f"{len(next(iter(by.values())))} alternating rounds; ratios against RF=1 acks=1 of the same run.", "",
         "| RF | acks | produce MB/s | vs RF1 acks=1 | ack p50 ms | ack p99 ms | consume MB/s |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
for r in rows:
    lines.append(f"| {r['replication_factor']} | {r['acks']} | {r['produce_mb_s']:.1f} | "
                 f"{r['produce_vs_rf1_acks1']:.2f} | {r['ack_p50_ms']:.2f} | {r['ack_p99_ms']:.2f} | "
                 f"{r['consume_mb_s']:.1f} |")
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
