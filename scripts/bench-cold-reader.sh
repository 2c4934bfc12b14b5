#!/usr/bin/env bash
# Cold-reader isolation (issue 17): does a consumer reading a large backlog that is not in
# the page cache slow down a producer on the same shard? One release broker, one shard
# (so the reader and the producer share a reactor), log.io=buffered, log.flush=none.
#
# A backlog topic is filled once (BACKLOG_MB, default 2048) and its segments' pages are
# dropped from the page cache (fdatasync + POSIX_FADV_DONTNEED) before every round. Each
# round runs `ringbroker-bench` producing to another topic at a fixed rate (RATE records/s
# of 1 KiB, acks=1) twice: alone, and while a confluent-kafka consumer reads the cold
# backlog from its start as fast as it can. The producer's ack latency percentiles are
# reported for both, with their ratios (median of ROUNDS rounds, default 3), and how many
# bytes the broker read into the page cache off the reactor (ringbroker_cold_read_bytes).
#
#   scripts/bench-cold-reader.sh        # writes perf/results/cold-reader-DATE.{json,md}
#   ROUNDS=5 RATE=20000 scripts/bench-cold-reader.sh
#   BROKER_BIN=/path/to/old/ringbroker OUT=perf/results/cold-reader-old scripts/bench-cold-reader.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
RATE=${RATE:-20000}
BACKLOG_MB=${BACKLOG_MB:-2048}
DATE=$(date -u +%Y-%m-%d)
OUT=${OUT:-perf/results/cold-reader-$DATE}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
WORK=$(mktemp -d "$PWD/target/ringbroker-bench-cold.XXXXXX")
PORT=${PORT:-19492}
MPORT=${MPORT:-19493}

cargo build --release -p ringbroker --bin ringbroker >&2
cargo build --release -p ringbroker-bench >&2
BENCH=$TARGET/release/ringbroker-bench
BROKER=${BROKER_BIN:-$TARGET/release/ringbroker}

# Retention bounds the live topic; the backlog is written once and only read.
"$BROKER" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
  --shards 1 --set log.io=buffered --set log.flush=none \
  --set log.retention.bytes=$((BACKLOG_MB * 1024 * 1024 + (1 << 30))) \
  --set log.segment.bytes=134217728 --set metrics.listen=127.0.0.1:$MPORT \
  >"$WORK/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true; wait $broker 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
  kcat -L -b "127.0.0.1:$PORT" -m 2 >/dev/null 2>&1 && break
  sleep 0.1
done

python3 - "$PORT" "$BACKLOG_MB" <<'PY' >&2
import sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
port, mb = sys.argv[1], int(sys.argv[2])
boot = f"127.0.0.1:{port}"
admin = AdminClient({"bootstrap.servers": boot})
for f in admin.create_topics([NewTopic("backlog", 1, 1)]).values():
    f.result()
p = Producer({"bootstrap.servers": boot, "linger.ms": 20, "batch.size": 1 << 20,
              "queue.buffering.max.kbytes": 1 << 20})
value = b"b" * 16384
for i in range(mb * 64):
    while True:
        try:
            p.produce("backlog", value, partition=0)
            break
        except BufferError:
            p.poll(0.1)
p.flush(120)
print(f"backlog of {mb} MB written")
PY

drop_cache() {
  python3 - "$WORK/data/backlog-0" <<'PY'
import os, sys
d = sys.argv[1]
for name in os.listdir(d):
    if name.endswith(".log"):
        fd = os.open(os.path.join(d, name), os.O_RDWR)
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
PY
}

cold_bytes() {
  curl -s "http://127.0.0.1:$MPORT/metrics" |
    awk '/^ringbroker_cold_read_bytes_total/ {s += $2} END {printf "%d\n", s}'
}

cc=$(sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo unknown)
runs=()
for round in $(seq 1 "$ROUNDS"); do
  for reader in 0 1; do
    drop_cache
    json="$WORK/r$round-$reader.json"
    before=$(cold_bytes)
    if [[ $reader == 1 ]]; then
      python3 - "$PORT" <<'PY' >"$WORK/reader-$round.log" 2>&1 &
import sys, time
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}", "group.id": "cold",
              "enable.auto.commit": False, "fetch.max.bytes": 52428800,
              "max.partition.fetch.bytes": 52428800})
c.assign([TopicPartition("backlog", 0, 0)])
n, t0 = 0, time.time()
while True:
    for m in c.consume(1000, 1.0):
        n += len(m.value() or b"")
    print(f"{n} bytes in {time.time() - t0:.1f} s", flush=True)
PY
      reader_pid=$!
      sleep 1
    fi
    "$BENCH" --bootstrap "127.0.0.1:$PORT" --topic live --partitions 1 --consumers 0 \
      --acks 1 --record-size 1024 --rate "$RATE" --warmup 2 --duration "$DURATION" \
      --quiet --broker-config "shards=1" --json "$json" >&2
    if [[ $reader == 1 ]]; then
      kill "$reader_pid" 2>/dev/null || true
      wait "$reader_pid" 2>/dev/null || true
    fi
    after=$(cold_bytes)
    read_by_consumer=$( (tail -n 1 "$WORK/reader-$round.log" 2>/dev/null || true) | awk '{print $1}')
    echo "{\"json\": \"$json\", \"reader\": $reader, \"cold_fill_bytes\": $((after - before)), \"consumer_bytes\": ${read_by_consumer:-0}}" >"$json.meta"
    runs+=("$json")
  done
done

python3 - "$OUT" "$cc" "$RATE" "${runs[@]}" <<'PY'
import json, statistics, sys
out, cc, rate, paths = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
by = {0: [], 1: []}
for p in paths:
    meta = json.load(open(p + ".meta"))
    r = json.load(open(p))["results"]
    by[meta["reader"]].append({
        "ack_p50_ms": r["ack_latency_ms"]["p50"],
        "ack_p99_ms": r["ack_latency_ms"]["p99"],
        "ack_p999_ms": r["ack_latency_ms"]["p999"],
        "produce_mb_s": r["produce"]["mb_per_s"],
        "cold_fill_mb": meta["cold_fill_bytes"] / 1e6,
        "consumer_mb": (meta["consumer_bytes"] or 0) / 1e6,
    })
med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in by.items()}
ratio = {m: (med[1][m] / med[0][m] if med[0][m] else None)
         for m in ("ack_p50_ms", "ack_p99_ms", "ack_p999_ms")}
doc = {"benchmark": "cold-reader", "tcp_congestion_control": cc, "rate": rate,
       "alone": med[0], "with_cold_reader": med[1], "ratio_with_over_alone": ratio,
       "runs": {str(k): v for k, v in by.items()}}
json.dump(doc, open(out + ".json", "w"), indent=2)
lines = [f"# Cold-reader isolation ({rate} records/s of 1 KiB, acks=1, one shard, "
         f"TCP {cc})", "",
         "| producer | ack p50 ms | ack p99 ms | ack p99.9 ms | cold MB read off the reactor | consumer MB |",
         "|---|---|---|---|---|---|"]
for k, name in ((0, "alone"), (1, "with a cold reader")):
    m = med[k]
    lines.append(f"| {name} | {m['ack_p50_ms']:.2f} | {m['ack_p99_ms']:.2f} | "
                 f"{m['ack_p999_ms']:.2f} | {m['cold_fill_mb']:.0f} | {m['consumer_mb']:.0f} |")
lines += ["", "Ratios with / alone: " + ", ".join(
    f"{k} {v:.2f}" for k, v in ratio.items() if v is not None)]
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
