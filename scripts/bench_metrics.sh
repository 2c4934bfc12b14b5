#!/usr/bin/env bash
# Scrape overhead: one broker with metrics.listen on, closed-loop produce+consume runs of
# ringbroker-bench alternating without and with a scraper that GETs /metrics every 100 ms
# (off, on, 404, off, on, 404, ...), in one session. Prints each run and the mean ratio on/off.
# Usage: scripts/bench_metrics.sh [ROUNDS] [SECONDS]   (release binaries in $TARGET)
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-10}
TARGET=${TARGET:-target/release}
KPORT=${KPORT:-19092}
MPORT=${MPORT:-19100}
DATA=$(mktemp -d "${TMPDIR:-/var/tmp}/rb-bench-metrics.XXXXXX")
OUT=$(mktemp -d)
"$TARGET/ringbroker" serve --listen "127.0.0.1:$KPORT" --data-dir "$DATA" \
  --set "metrics.listen=127.0.0.1:$MPORT" 2>"$OUT/broker.log" &
BROKER=$!
SCRAPER=
cleanup() {
  [ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null || true
  kill "$BROKER" 2>/dev/null || true
  wait "$BROKER" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$MPORT/metrics" >/dev/null && break; sleep 0.2; done
echo "tcp congestion control: $(sysctl -n net.ipv4.tcp_congestion_control)"
run() { # $1 = label
  "$TARGET/ringbroker-bench" --bootstrap "127.0.0.1:$KPORT" --topic bench-metrics \
    --partitions 4 --producers 2 --consumers 1 --rate 0 --warmup 2 --duration "$SECS" \
    --quiet --json "$OUT/$1.json" >/dev/null
  python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(sys.argv[2], round(r['produce']['records_per_s']), round(r['produce']['mb_per_s'],1), round(r['consume']['records_per_s']))" "$OUT/$1.json" "$1"
}
echo "run produced_rec/s produced_MB/s consumed_rec/s"
# `404`: the same scraper on a path that gathers nothing, so the cost of the scraper
# process itself (curl every 100 ms on the same cores) shows apart from the scrape's.
for i in $(seq "$ROUNDS"); do
  run "off$i"
  for mode in on 404; do
    path=/metrics; [ "$mode" = 404 ] && path=/nothing
    ( while :; do curl -s "http://127.0.0.1:$MPORT$path" >/dev/null || true; sleep 0.1; done ) &
    SCRAPER=$!
    run "$mode$i"
    kill "$SCRAPER"; wait "$SCRAPER" 2>/dev/null || true; SCRAPER=
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
get = lambda k: json.load(open(f"{out}/{k}.json"))["results"]["produce"]["records_per_s"]
mean = lambda m: sum(get(f"{m}{i}") for i in range(1, n + 1)) / n
off, on, nf = mean("off"), mean("on"), mean("404")
print(f"mean produced rec/s: no scraper {off:.0f}, scraping /metrics {on:.0f} (ratio {on/off:.3f}), "
      f"same scraper on a 404 path {nf:.0f} (ratio {nf/off:.3f}); /metrics vs 404 {on/nf:.3f}")
PY
