#!/usr/bin/env bash
# Smoke test, as a user would do it: a release build of ringbroker and kcat.
# Starts the broker on a free port with a fresh data dir, lists metadata, produces keyed
# lines, consumes them back and compares, looks up offsets by timestamp (kcat -Q), restarts
# the broker, does it all again, stops it.
# Exits non-zero on any mismatch. Set RINGBROKER_BIN to test an existing binary.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v kcat >/dev/null 2>&1 || scripts/setup.sh
command -v kcat >/dev/null 2>&1 || { echo "smoke: kcat is not installed" >&2; exit 1; }

BIN=${RINGBROKER_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin ringbroker
  BIN=target/release/ringbroker
fi

# Data on a real disk (the target dir), not a tmpfs /tmp.
mkdir -p target
WORK=$(mktemp -d "$PWD/target/smoke.XXXXXX")
DATA="$WORK/data"
LOG="$WORK/broker.log"
PID=""
OK=0

cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  if [ "$OK" = 1 ]; then
    rm -rf "$WORK"
  else
    echo "smoke: FAILED; broker log ($LOG):" >&2
    tail -n 60 "$LOG" >&2 2>/dev/null || true
    echo "smoke: work dir kept: $WORK" >&2
  fi
}
trap cleanup EXIT

fail() {
  echo "smoke: $*" >&2
  exit 1
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

PORT=""
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 30000))
  if ! port_in_use "$p"; then PORT=$p; break; fi
done
[ -n "$PORT" ] || fail "no free port found"
BROKER="127.0.0.1:$PORT"

KCAT=(timeout 60 kcat -b "$BROKER" -X broker.address.family=v4)

start_broker() {
  echo "smoke: starting $BIN on $BROKER (data $DATA)"
  "$BIN" serve --listen "$BROKER" --data-dir "$DATA" --shards 2 \
    --set num.partitions=3 >>"$LOG" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    kill -0 "$PID" 2>/dev/null || fail "broker exited during start-up"
    if port_in_use "$PORT"; then return 0; fi
    sleep 0.2
  done
  fail "broker did not listen on $BROKER within 60 s"
}

stop_broker() {
  kill -TERM "$PID"
  local rc=0
  for _ in $(seq 1 300); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.2
  done
  kill -0 "$PID" 2>/dev/null && fail "broker still running 60 s after SIGTERM"
  wait "$PID" || rc=$?
  PID=""
  [ "$rc" = 0 ] || fail "broker exited with status $rc after SIGTERM"
}

# Input: keyed lines, with spaces, colons in values, UTF-8 and an empty value.
IN="$WORK/input.txt"
{
  for i in $(seq 1 2000); do echo "key-$i:value $i: the quick brown fox"; done
  echo "utf8:héllo wörld ✓"
  echo "empty:"
} >"$IN"
N=$(wc -l <"$IN")

consume_check() {
  local label=$1
  # All partitions of "smoke" (num.partitions=3), compared as sets.
  "${KCAT[@]}" -C -t smoke -o beginning -e -q -f '%k:%s\n' >"$WORK/out-$label.txt" \
    || fail "$label: kcat -C smoke failed"
  sort "$IN" >"$WORK/in.sorted"
  sort "$WORK/out-$label.txt" >"$WORK/out-$label.sorted"
  diff -u "$WORK/in.sorted" "$WORK/out-$label.sorted" >"$WORK/diff-$label.txt" \
    || fail "$label: consumed lines of 'smoke' differ from the input: $(head -20 "$WORK/diff-$label.txt")"
  # Partition 0 of "ordered" (one partition written with -p 0) comes back in order, with
  # offsets 0..N-1.
  "${KCAT[@]}" -C -t ordered -p 0 -o beginning -e -q -f '%o %k:%s\n' >"$WORK/ordered-$label.txt" \
    || fail "$label: kcat -C ordered failed"
  awk '{ print NR-1 " " $0 }' "$IN" >"$WORK/ordered-expected.txt"
  diff -u "$WORK/ordered-expected.txt" "$WORK/ordered-$label.txt" >"$WORK/diff-ordered-$label.txt" \
    || fail "$label: partition 0 of 'ordered' differs: $(head -20 "$WORK/diff-ordered-$label.txt")"
  # Offsets by timestamp (ListOffsets) with kcat -Q: the first offset whose timestamp is at
  # least that of offset 1000, and nothing after the last timestamp.
  "${KCAT[@]}" -C -t ordered -p 0 -o beginning -e -q -f '%o %T\n' >"$WORK/times-$label.txt" \
    || fail "$label: kcat -C timestamps failed"
  local t1000 first last_ts got
  t1000=$(awk '$1 == 1000 { print $2 }' "$WORK/times-$label.txt")
  first=$(awk -v t="$t1000" '$2 >= t { print $1; exit }' "$WORK/times-$label.txt")
  last_ts=$(tail -n 1 "$WORK/times-$label.txt" | awk '{ print $2 }')
  got=$("${KCAT[@]}" -Q -t "ordered:0:$t1000") || fail "$label: kcat -Q failed"
  [ "$got" = "ordered [0] offset $first" ] \
    || fail "$label: kcat -Q ordered:0:$t1000 said '$got', expected offset $first"
  got=$("${KCAT[@]}" -Q -t "ordered:0:$((last_ts + 1))") || fail "$label: kcat -Q failed"
  [ "$got" = "ordered [0] offset -1" ] \
    || fail "$label: kcat -Q after the last timestamp said '$got', expected offset -1"
  echo "smoke: $label: $N messages read back from both topics; kcat -Q finds offset $first"
}

start_broker

"${KCAT[@]}" -L >"$WORK/metadata.txt" || fail "kcat -L failed"
grep -q "at $BROKER" "$WORK/metadata.txt" || fail "kcat -L does not list the broker at $BROKER: $(cat "$WORK/metadata.txt")"
echo "smoke: kcat -L lists the broker"

"${KCAT[@]}" -P -t smoke -K: -l "$IN" || fail "kcat -P smoke failed"
# Two producer runs, so that offset 1000 starts a later timestamp than offset 999.
head -n 1000 "$IN" >"$WORK/first-half.txt"
tail -n +1001 "$IN" >"$WORK/second-half.txt"
"${KCAT[@]}" -P -t ordered -p 0 -K: -l "$WORK/first-half.txt" || fail "kcat -P ordered failed"
sleep 0.01
"${KCAT[@]}" -P -t ordered -p 0 -K: -l "$WORK/second-half.txt" || fail "kcat -P ordered failed"

"${KCAT[@]}" -L -t smoke >"$WORK/metadata-smoke.txt" || fail "kcat -L -t smoke failed"
grep -q 'topic "smoke" with 3 partitions' "$WORK/metadata-smoke.txt" \
  || fail "auto-created topic should have num.partitions=3: $(cat "$WORK/metadata-smoke.txt")"

consume_check first-run

stop_broker
start_broker
consume_check after-restart

stop_broker
OK=1
echo "smoke: PASS"
