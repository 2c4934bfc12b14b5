#!/usr/bin/env bash
# What TLS costs a fetch: one release broker (one shard) with a PLAINTEXT and an SSL
# listener; a topic is filled once, then read whole by `ringbroker-bench drain` over
# PLAINTEXT and over SSL in alternating rounds (ROUNDS, default 3). Reported per listener:
# the median consume MB/s and the broker's CPU seconds per GB read (utime + stime of the
# broker process from /proc/PID/stat around each read), and TLS/plaintext ratios. Absolute
# numbers on a shared 2-core machine drift from run to run; ratios taken in one run much
# less.
#
#   scripts/bench-tls.sh                 # writes perf/results/tls-fetch-DATE.{json,md}
#   ROUNDS=5 FILL_SECONDS=10 scripts/bench-tls.sh
#
# Plaintext fetches go from the page cache to the socket with sendfile; TLS fetches are
# read with pread in 256 KiB pieces and encrypted by rustls in user space (no kTLS: see
# perf/README.md). The consumer shares the machine's cores with the broker.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
FILL_SECONDS=${FILL_SECONDS:-6}
RECORD=${RECORD:-4096}
PARTITIONS=${PARTITIONS:-4}
DATE=$(date -u +%Y-%m-%d)
OUT=${OUT:-perf/results/tls-fetch-$DATE}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
WORK=$(mktemp -d /tmp/ringbroker-bench-tls.XXXXXX)

cargo build --release -p ringbroker --bin ringbroker >&2
cargo build --release -p ringbroker-bench >&2
BENCH=$TARGET/release/ringbroker-bench
PLAIN=${PORT:-19492}
SSL=$((PLAIN + 1))

# A throwaway CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$WORK/san.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 2 -extfile "$WORK/san.ext" -out "$WORK/server.crt" 2>/dev/null
cat "$WORK/server.key" "$WORK/server.crt" >"$WORK/server.pem"

# Retention keeps the disk bounded whatever the fill rate: at most 1 GiB per partition.
"$TARGET/release/ringbroker" serve --data-dir "$WORK/data" --shards 1 \
  --set "listeners=PLAINTEXT://127.0.0.1:$PLAIN,SSL://127.0.0.1:$SSL" \
  --set "ssl.keystore.location=$WORK/server.pem" \
  --set log.retention.bytes=1073741824 --set log.segment.bytes=268435456 \
  >"$WORK/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true; wait $broker 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
  kcat -L -b "127.0.0.1:$PLAIN" -m 2 >/dev/null 2>&1 && break
  sleep 0.1
done

# Fill once: closed-loop producer, no consumer.
"$BENCH" --bootstrap "127.0.0.1:$PLAIN" --topic tls-bench --partitions "$PARTITIONS" \
  --consumers 0 --acks 1 --record-size "$RECORD" --batch-size 1048576 --linger-ms 5 \
  --rate 0 --warmup 0.5 --duration "$FILL_SECONDS" --quiet --broker-config shards=1 >&2

cc=$(sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo unknown)
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$broker/stat"; }

# Untimed warm-up read of each: page cache, connections, TLS session code paths.
"$BENCH" drain --bootstrap "127.0.0.1:$PLAIN" --topic tls-bench >/dev/null
"$BENCH" drain --bootstrap "127.0.0.1:$SSL" --topic tls-bench \
  --set security.protocol=SSL --set "ssl.ca.location=$WORK/ca.pem" >/dev/null

rows="$WORK/rows.jsonl"
: >"$rows"
for round in $(seq 1 "$ROUNDS"); do
  for mode in plaintext ssl; do
    if [[ $mode == plaintext ]]; then
      args=(--bootstrap "127.0.0.1:$PLAIN")
    else
      args=(--bootstrap "127.0.0.1:$SSL" --set security.protocol=SSL --set "ssl.ca.location=$WORK/ca.pem")
    fi
    before=$(cpu_ticks)
    line=$("$BENCH" drain --topic tls-bench "${args[@]}")
    after=$(cpu_ticks)
    echo "{\"round\": $round, \"mode\": \"$mode\", \"cpu_ticks\": $((after - before)), \"ticks_per_s\": $ticks, \"drain\": $line}" >>"$rows"
    echo "round $round $mode: $line" >&2
  done
done

python3 - "$OUT" "$cc" "$rows" "$ROUNDS" "$RECORD" "$PARTITIONS" <<'PY'
import json, os, platform, statistics, sys
out, cc, rows_path, rounds, record, partitions = sys.argv[1:7]
rows = [json.loads(l) for l in open(rows_path)]
for r in rows:
    d = r["drain"]
    r["cpu_s"] = r["cpu_ticks"] / r["ticks_per_s"]
    r["cpu_s_per_gb"] = r["cpu_s"] / (d["bytes"] / 1e9)
    r["mb_per_s"] = d["mb_per_s"]
med = {}
for mode in ("plaintext", "ssl"):
    rs = [r for r in rows if r["mode"] == mode]
    med[mode] = {
        "mb_per_s": statistics.median(r["mb_per_s"] for r in rs),
        "cpu_s_per_gb": statistics.median(r["cpu_s_per_gb"] for r in rs),
        "bytes": rs[0]["drain"]["bytes"],
        "runs": len(rs),
    }
ratios = {
    "ssl_vs_plaintext_mb_per_s": med["ssl"]["mb_per_s"] / med["plaintext"]["mb_per_s"],
    "ssl_vs_plaintext_cpu_per_gb": med["ssl"]["cpu_s_per_gb"] / med["plaintext"]["cpu_s_per_gb"],
}
cpu = "unknown"
try:
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
except OSError:
    pass
doc = {
    "benchmark": "tls-fetch",
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()},
    "tcp_congestion_control": cc,
    "params": {"rounds": int(rounds), "record_bytes": int(record), "partitions": int(partitions),
               "broker_shards": 1, "ktls": False},
    "medians": med,
    "ratios": ratios,
    "runs": rows,
}
json.dump(doc, open(out + ".json", "w"), indent=2)
with open(out + ".md", "w") as f:
    f.write("# Fetch over PLAINTEXT vs SSL (user-space TLS, no kTLS)\n\n")
    f.write(f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, TCP congestion control {cc}; "
            f"one broker shard, {partitions} partitions of {record}-byte records, "
            f"{med['plaintext']['bytes'] / 1e9:.2f} GB read per run, median of {rounds} alternating rounds.\n\n")
    f.write("| listener | consume MB/s | broker CPU s per GB |\n| --- | --- | --- |\n")
    for mode in ("plaintext", "ssl"):
        m = med[mode]
        f.write(f"| {mode.upper()} | {m['mb_per_s']:.0f} | {m['cpu_s_per_gb']:.2f} |\n")
    f.write(f"| SSL / PLAINTEXT | {ratios['ssl_vs_plaintext_mb_per_s']:.2f} | {ratios['ssl_vs_plaintext_cpu_per_gb']:.2f} |\n")
print(open(out + ".md").read())
PY
