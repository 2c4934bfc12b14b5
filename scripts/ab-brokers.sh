#!/usr/bin/env bash
# Compares two ringbroker binaries on this machine in one run, rounds alternating A, B, A,
# B... so drift between runs hits both alike. Each round starts the broker on a fresh data
# dir and runs ringbroker-bench against it:
#   - closed loop (as fast as one producer goes), 1 KiB records, acks=1, no consumer: MB/s
#     produced, and the broker's CPU seconds per GB produced (utime+stime from /proc);
#   - 20,000 records/s open loop with a consumer: end-to-end latency p50 / p99 (ms).
# Prints one line per round and the medians per binary.
#
# Usage: scripts/ab-brokers.sh A_BIN B_BIN [ROUNDS] [extra --set KEY=VALUE for the brokers...]
# The TCP congestion control in use is printed with the results (it matters on VMs).
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2 ROUNDS=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
SETS=("$@")
BENCH=target/release/ringbroker-bench
[ -x "$BENCH" ] || cargo build --release -q -p ringbroker-bench
echo "congestion control: $(cat /proc/sys/net/ipv4/tcp_congestion_control)"

cpu_seconds() { # utime + stime of a pid, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

one() { # BIN LABEL MODE -> prints "label mode value..."
  local bin=$1 label=$2 mode=$3 port dir pid
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  dir=$(mktemp -d -p target ab.XXXXXX)
  local args=(serve --listen "127.0.0.1:$port" --data-dir "$dir/data" --shards 2)
  for kv in "${SETS[@]}"; do args+=(--set "$kv"); done
  "$bin" "${args[@]}" 2>"$dir/broker.log" &
  pid=$!
  for _ in $(seq 100); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  local before json="$dir/report.json"
  before=$(cpu_seconds "$pid")
  if [ "$mode" = throughput ]; then
    "$BENCH" --bootstrap "127.0.0.1:$port" --rate 0 --acks 1 --consumers 0 --duration 10 \
      --warmup 2 --quiet --json "$json" >/dev/null
  else
    "$BENCH" --bootstrap "127.0.0.1:$port" --rate 20000 --duration 10 --warmup 2 \
      --quiet --json "$json" >/dev/null
  fi
  local after
  after=$(cpu_seconds "$pid")
  kill -TERM "$pid"; wait "$pid" || true
  python3 - "$json" "$label" "$mode" "$before" "$after" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
label, mode, before, after = sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
res, size = r["results"], r["params"]["record_size"]
if mode == "throughput":
    gb = res["produce"]["records_total"] * size / 1e9
    print(f"{label} throughput MB/s={res['produce']['mb_per_s']:.1f} "
          f"cpu_s_per_GB={(after - before) / gb:.3f}")
else:
    e2e = res["e2e_latency_ms"]
    print(f"{label} latency e2e_p50_ms={e2e['p50']:.2f} e2e_p99_ms={e2e['p99']:.2f}")
EOF
  rm -rf "$dir"
}

results=$(mktemp)
for r in $(seq "$ROUNDS"); do
  for pair in "A $A" "B $B"; do
    set -- $pair
    for mode in throughput latency; do
      line=$(one "$2" "$1" "$mode")
      echo "round $r: $line"
      echo "$line" >> "$results"
    done
  done
done
python3 - "$results" <<'EOF'
import sys, statistics, re
rows = [l.split() for l in open(sys.argv[1])]
for label in ("A", "B"):
    out = []
    for mode in ("throughput", "latency"):
        vals = {}
        for r in rows:
            if r[0] == label and r[1] == mode:
                for kv in r[2:]:
                    k, v = kv.split("=")
                    try:
                        vals.setdefault(k, []).append(float(v))
                    except ValueError:
                        pass
        out += [f"{k}={statistics.median(v):.3f}" for k, v in vals.items() if v]
    print(f"median {label}: " + " ".join(out))
EOF
rm -f "$results"
