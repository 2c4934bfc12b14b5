#!/usr/bin/env bash
# Restart time against log size (issue 17): how long a broker takes from process start to
# answering Metadata, and to serving the partition (its last record fetched), for one
# partition of SIZES MiB, with and without producer state snapshots.
#
# For each size: one release broker (this tree's) fills topic `restart` (1 partition) with
# 16 KiB records from an idempotent producer, in 128 MiB segments (so the log rolls, and
# this build writes a snapshot at each roll), and stops cleanly. Then each build in turn is
# started on that data directory ROUNDS times, after `sync; echo 3 > drop_caches` (cold:
# the open reads from the disk) and once more without (warm), and stopped with SIGTERM.
# The data directory is removed after each size.
#
#   scripts/bench-restart.sh                # writes perf/results/restart-DATE.{json,md}
#   SIZES="256 1024" ROUNDS=5 scripts/bench-restart.sh
#   OLD_BIN=/path/to/ringbroker-before scripts/bench-restart.sh
#
# Needs root for drop_caches (without it the cold rounds are warm, and the report says so),
# kcat, and python3 with confluent-kafka (the fill).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"256 1024 4096"}
ROUNDS=${ROUNDS:-3}
DATE=$(date -u +%Y-%m-%d)
OUT=${OUT:-perf/results/restart-$DATE}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
PORT=${PORT:-19592}
SEGMENT_BYTES=${SEGMENT_BYTES:-134217728}

cargo build --release -p ringbroker --bin ringbroker >&2
NEW_BIN=${NEW_BIN:-$TARGET/release/ringbroker}
# The build before snapshots: main's commit 127efc9, built from an export of it:
#   mkdir -p $TARGET/main-src && git archive 127efc9 | tar -x -C $TARGET/main-src &&
#   (cd $TARGET/main-src && CARGO_TARGET_DIR=$TARGET/main-build \
#    cargo build --release -p ringbroker --bin ringbroker) &&
#   cp $TARGET/main-build/release/ringbroker $TARGET/ringbroker-main-127efc9
# Not into this target directory: cargo keys a workspace package's artifacts by its name,
# not its path, so the two checkouts would overwrite each other's `release/ringbroker` and
# each would take the other's for up to date.
OLD_BIN=${OLD_BIN:-$TARGET/ringbroker-main-127efc9}
[ -x "$OLD_BIN" ] || { echo "no old build at $OLD_BIN (set OLD_BIN)" >&2; exit 1; }
if cmp -s "$NEW_BIN" "$OLD_BIN"; then
  echo "$NEW_BIN is the same file as $OLD_BIN: rebuild this tree (cargo clean -p ringbroker --release)" >&2
  exit 1
fi
mkdir -p "$TARGET"
WORK=$(mktemp -d "$TARGET/ringbroker-bench-restart.XXXXXX")
broker=
cleanup() {
  if [ -n "$broker" ]; then kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

can_drop=0
if [ -w /proc/sys/vm/drop_caches ]; then can_drop=1; fi

now_ns() { date +%s%N; }

start_broker() { # bin data log
  "$1" serve --listen "127.0.0.1:$PORT" --data-dir "$2" --shards 1 \
    --set log.segment.bytes=$SEGMENT_BYTES >"$3" 2>&1 &
  broker=$!
}

port_accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

stop_broker() {
  kill -TERM "$broker"
  wait "$broker" 2>/dev/null || true
  broker=
  # io_uring may keep the listening socket a moment after the process is gone: the next
  # start (and its clock) begins once nothing accepts on the port.
  for _ in $(seq 1 500); do port_accepts || break; sleep 0.01; done
}

# One timed start: sets MS_META (ms to Metadata) and MS_SERVE (ms to the last record
# fetched); the broker keeps running.
timed_start() { # bin data log expected_end
  local t0 t_meta= t_serve= deadline
  t0=$(now_ns)
  start_broker "$1" "$2" "$3"
  deadline=$((t0 + 600 * 1000000000))
  # The shards listen once every log is open: poll the port cheaply, then ask.
  until port_accepts; do
    [ "$(now_ns)" -lt "$deadline" ] || { echo "no listener after 600 s" >&2; exit 1; }
    sleep 0.005
  done
  while [ -z "$t_meta" ]; do
    if kcat -L -b "127.0.0.1:$PORT" -t restart -m 5 2>/dev/null | grep -q "partition 0, leader"; then
      t_meta=$(now_ns)
    fi
    [ "$(now_ns)" -lt "$deadline" ] || { echo "no Metadata after 600 s" >&2; exit 1; }
    [ -n "$t_meta" ] || sleep 0.01
  done
  while [ -z "$t_serve" ]; do
    # The last record, by ListOffsets and Fetch: the partition serves.
    got=$(kcat -C -b "127.0.0.1:$PORT" -t restart -p 0 -o -1 -c 1 -e -f '%o\n' -m 5 -X fetch.wait.max.ms=5 2>/dev/null || true)
    if [ "$got" = "$(($4 - 1))" ]; then t_serve=$(now_ns); fi
    [ "$(now_ns)" -lt "$deadline" ] || { echo "partition not serving after 600 s" >&2; exit 1; }
    [ -n "$t_serve" ] || sleep 0.01
  done
  MS_META=$(((t_meta - t0) / 1000000))
  MS_SERVE=$(((t_serve - t0) / 1000000))
}

fill() { # data mib -> prints the end offset
  local log="$WORK/fill.log"
  start_broker "$NEW_BIN" "$1" "$log"
  for _ in $(seq 1 200); do
    kcat -L -b "127.0.0.1:$PORT" -m 2 >/dev/null 2>&1 && break
    sleep 0.05
  done
  python3 - "$PORT" "$2" <<'PY'
import sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
port, mb = sys.argv[1], int(sys.argv[2])
boot = f"127.0.0.1:{port}"
admin = AdminClient({"bootstrap.servers": boot})
for f in admin.create_topics([NewTopic("restart", 1, 1)]).values():
    f.result()
p = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "linger.ms": 20,
              "batch.size": 1 << 20, "queue.buffering.max.kbytes": 1 << 20})
value = b"r" * 16384
n = mb * 64
for i in range(n):
    while True:
        try:
            p.produce("restart", value, partition=0)
            break
        except BufferError:
            p.poll(0.1)
left = p.flush(300)
assert left == 0, f"{left} records not delivered"
print(n)
PY
  stop_broker
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rows=()
for mib in $SIZES; do
  data="$WORK/data-$mib"
  end=$(fill "$data" "$mib")
  bytes=$(du -sb "$data/restart-0" | cut -f1)
  segs=$(ls "$data/restart-0" | grep -c '\.log$' || true)
  snaps=$(ls "$data/restart-0" | grep -c '\.snapshot$' || true)
  echo "size $mib MiB: $bytes bytes in restart-0, $segs segments, $snaps snapshots, end $end" >&2
  for build in old new; do
    bin=$OLD_BIN
    [ "$build" = new ] && bin=$NEW_BIN
    metas=(); serves=()
    for r in $(seq 1 "$ROUNDS"); do
      sync
      [ "$can_drop" = 1 ] && echo 3 >/proc/sys/vm/drop_caches
      timed_start "$bin" "$data" "$WORK/$build-$mib-$r.log" "$end"
      stop_broker
      m=$MS_META; s=$MS_SERVE
      metas+=("$m"); serves+=("$s")
      echo "  $build cold round $r: Metadata after $m ms, serving after $s ms" >&2
    done
    timed_start "$bin" "$data" "$WORK/$build-$mib-warm.log" "$end"
    stop_broker
    wm=$MS_META; ws=$MS_SERVE
    echo "  $build warm: Metadata after $wm ms, serving after $ws ms" >&2
    cm=$(printf '%s\n' "${metas[@]}" | median)
    cs=$(printf '%s\n' "${serves[@]}" | median)
    rows+=("$mib $bytes $segs $snaps $build $cm $cs $wm $ws $(IFS=,; echo "${serves[*]}")")
  done
  rm -rf "$data"
done

mkdir -p "$(dirname "$OUT")"
python3 - "$OUT" "$ROUNDS" "$can_drop" "$OLD_BIN" "$NEW_BIN" "$SEGMENT_BYTES" "${rows[@]}" <<'PY'
import hashlib, json, os, platform, subprocess, sys, datetime
out, rounds, dropped, old_bin, new_bin, seg = sys.argv[1:7]
rows = [r.split() for r in sys.argv[7:]]
def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()[:16]
def commit():
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:
        return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
res = {
    "benchmark": "restart time against log size",
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "host": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()},
    "parameters": {"rounds": int(rounds), "page_cache_dropped": dropped == "1",
                   "segment_bytes": int(seg), "shards": 1, "record_bytes": 16384,
                   "producer": "confluent-kafka, enable.idempotence, batch.size 1 MiB"},
    "builds": {"old": {"path": old_bin, "sha256_16": sha(old_bin),
                       "mtime": datetime.datetime.fromtimestamp(os.path.getmtime(old_bin), datetime.timezone.utc).isoformat(timespec="seconds")},
               "new": {"path": new_bin, "sha256_16": sha(new_bin), "commit": commit()}},
    "results": [],
}
for mib, size, segs, snaps, build, cm, cs, wm, ws, all_s in rows:
    res["results"].append({"log_mib": int(mib), "log_bytes": int(size), "segments": int(segs),
        "snapshots": int(snaps), "build": build, "cold_metadata_ms_median": int(cm),
        "cold_serving_ms_median": int(cs), "cold_serving_ms_rounds": [int(x) for x in all_s.split(",")],
        "warm_metadata_ms": int(wm), "warm_serving_ms": int(ws)})
json.dump(res, open(out + ".json", "w"), indent=2)
lines = [f"# Restart time against log size ({res['date'][:10]})", "",
         f"`scripts/bench-restart.sh` (ROUNDS={rounds}). One partition of 16 KiB records from an idempotent producer, "
         f"{int(seg) >> 20} MiB segments, one shard, release builds; started on the same data directory, "
         + ("page cache dropped before each cold start" if dropped == "1" else "page cache NOT dropped (not root): cold = warm")
         + f". Host: {cpu}, {os.cpu_count()} cores, kernel {platform.release()} (a VM shared with other work).", "",
         f"- old: `{old_bin}` (sha256 {res['builds']['old']['sha256_16']}…, built {res['builds']['old']['mtime']}): every batch of every segment walked and CRC-checked at open",
         f"- new: `{new_bin}` (commit {res['builds']['new']['commit']}): newest producer snapshot, then the batches after it", "",
         "| log | segments | build | cold: Metadata (ms, median) | cold: serving (ms, median) | cold serving, each round (ms) | warm: serving (ms) |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
for r in res["results"]:
    lines.append(f"| {r['log_mib']} MiB | {r['segments']} | {r['build']} | {r['cold_metadata_ms_median']} | "
                 f"{r['cold_serving_ms_median']} | {', '.join(map(str, r['cold_serving_ms_rounds']))} | {r['warm_serving_ms']} |")
lines += ["", "Serving: the partition's last record fetched (ListOffsets + Fetch through kcat); the times "
          "include starting the process and each kcat probe (polled every ~10 ms).", ""]
open(out + ".md", "w").write("\n".join(lines))
print("\n".join(lines))
PY
