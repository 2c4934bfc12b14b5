#!/usr/bin/env bash
# Measures one clean on a real disk: RECORDS keyed records over KEYS keys (VALUE_BYTES
# each) produced with kcat into a cleanup.policy=compact topic with 8 MiB segments, then
# the broker's own log line for the first clean (time, bytes read and written, records
# removed) and the partition's size on disk before and after.
#   RINGBROKER_BIN=target/release/ringbroker scripts/bench_compaction.sh
set -euo pipefail
BIN=${RINGBROKER_BIN:-target/release/ringbroker}
RECORDS=${RECORDS:-1000000}
KEYS=${KEYS:-10000}
VALUE_BYTES=${VALUE_BYTES:-100}
RATE=${RATE:-}   # log.cleaner.io.max.bytes.per.second, empty = unbounded
PORT=${PORT:-19392}
WORK=$(mktemp -d -p "${WORK_BASE:-$PWD/target}" cbench.XXXX)
trap 'kill "$BROKER" 2>/dev/null || true; rm -rf "$WORK"' EXIT

sets=(--set log.cleaner.backoff.ms=500)
[ -n "$RATE" ] && sets+=(--set "log.cleaner.io.max.bytes.per.second=$RATE")
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --shards 1 "${sets[@]}" \
    2>"$WORK/broker.log" &
BROKER=$!
for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done

python3 - "$PORT" <<'PY'
import sys
from kafka.admin import KafkaAdminClient, NewTopic
admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sys.argv[1]}")
admin.create_topics([NewTopic("cbench", 1, 1, topic_configs={
    "cleanup.policy": "compact", "segment.bytes": str(8 << 20)})])
PY

python3 - "$RECORDS" "$KEYS" "$VALUE_BYTES" >"$WORK/records.txt" <<'PY'
import sys
n, keys, size = map(int, sys.argv[1:])
out = sys.stdout
for i in range(n):
    v = f"{i}-".ljust(size, "x")
    out.write(f"key-{i % keys}:{v}\n")
PY
start=$(date +%s.%N)
kcat -P -b "127.0.0.1:$PORT" -t cbench -p 0 -K: -X linger.ms=20 -X batch.num.messages=2000 \
    -l "$WORK/records.txt"
echo "produced $RECORDS records over $KEYS keys in $(echo "$(date +%s.%N) - $start" | bc) s"
before=$(du -sb "$WORK/data/cbench-0" | cut -f1)
echo "partition before the clean: $before bytes"
# The cleaner runs while records arrive; wait until it has had nothing to do for 3 s.
seen=-1
for _ in $(seq 600); do
    now=$(grep -c "clean up to offset" "$WORK/broker.log" || true)
    [ "$now" -gt 0 ] && [ "$now" = "$seen" ] && break
    seen=$now
    sleep 3
done
grep "clean up to offset" "$WORK/broker.log" | sed 's/^.*cleaner:/cleaner:/' | head -3
grep "clean up to offset" "$WORK/broker.log" | sed 's/^.* in \([0-9.]*\)\(ms\|s\|µs\):.*, \([0-9]*\) bytes read, \([0-9]*\) written, \([0-9]*\) records removed.*$/\1 \2 \3 \4 \5/' |
    awk '{ t = ($2 == "s") ? $1 * 1000 : ($2 == "ms") ? $1 : $1 / 1000; ms += t; r += $3; w += $4; n += $5; c++ }
         END { printf "%d cleans: %.0f ms, %d bytes read, %d written, %d records removed: %.0f MB/s read\n", c, ms, r, w, n, r / ms / 1000 }'
echo "partition after: $(du -sb "$WORK/data/cbench-0" | cut -f1) bytes"
