#!/usr/bin/env python3
"""Producer latency while retention deletes segments, builds alternating in each round.

Run through scripts/bench-retention.sh. One producer offers RATE records/s of 1 KiB (open
loop, acks=1, one partition, so one shard's reactor carries it all) for DURATION seconds to
a fresh broker with the default 1 GiB segments and retention.bytes=RETENTION: from about a
quarter of the run on, every roll is followed by the deletion of the oldest segment. The
report gives the ack latency (p50, p99, p99.9, max) of every cell, the segments deleted in
it, and per round the ratio of each build's p99.9 and max to the first build's; then the
medians of those ratios. Absolute latencies drift on this shared machine; the ratios of
builds measured in the same round are the figure.

Environment: BINS (comma-separated ringbroker binaries; default target/release/ringbroker),
PAIRS (buffered:none,direct:none), RATE (150000), DURATION (40), RETENTION (1073741824),
ROUNDS (2), OUT (perf/results/retention-DATE).
"""

import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_peak as bp  # noqa: E402

BINS = bp.env_list("BINS", os.path.join(bp.ROOT, "target/release/ringbroker"))
PAIRS = bp.env_list("PAIRS", "buffered:none,direct:none")
RATE = int(os.environ.get("RATE", "150000"))
DURATION = int(os.environ.get("DURATION", "40"))
RETENTION = int(os.environ.get("RETENTION", str(1 << 30)))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
OUT = os.environ.get("OUT", os.path.join(
    bp.ROOT, "perf/results", "retention-" + datetime.date.today().isoformat()))


def cell(binary, io, flush):
    port = bp.free_port()
    data = tempfile.mkdtemp(dir=bp.DATA, prefix="retention.")
    argv = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
            "--shards", "1", "--set", f"log.io={io}", "--set", f"log.flush={flush}",
            "--set", f"log.retention.bytes={RETENTION}"]
    b = bp.Broker(argv, port)
    try:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run(
                [bp.BENCH, "--bootstrap", f"127.0.0.1:{port}", "--topic", "r",
                 "--partitions", "1", "--producers", "1", "--consumers", "0",
                 "--record-size", "1024", "--acks", "1", "--rate", str(RATE),
                 "--warmup", "2", "--duration", str(DURATION), "--quiet", "--json", f.name],
                check=True, stdout=subprocess.DEVNULL)
            r = json.load(open(f.name))["results"]
        logs = sorted(n for n in os.listdir(os.path.join(data, "r-0")) if n.endswith(".log"))
        # Segments are named by base offset, and offsets start at 0: the first one left
        # tells how many were deleted (each holds the same number of records here).
        first = int(logs[0].split(".")[0]) if logs else 0
        per_segment = (int(logs[1].split(".")[0]) - first) if len(logs) > 1 else 0
        deleted = first // per_segment if per_segment else 0
    finally:
        b.stop()
        shutil.rmtree(data, ignore_errors=True)
    lat = r["ack_latency_ms"]
    return {"p50": lat["p50"], "p99": lat["p99"], "p999": lat["p999"], "max": lat["max"],
            "mb_per_s": r["produce"]["mb_per_s"], "unacked": r["records_unacked"],
            "deleted_segments": deleted}


def main():
    os.makedirs(bp.DATA, exist_ok=True)
    os.makedirs(OUT, exist_ok=True)
    cc = open("/proc/sys/net/ipv4/tcp_congestion_control").read().strip()
    rounds = []
    for n in range(ROUNDS):
        row = {}
        for pair in PAIRS:
            io, flush = pair.split(":")
            for binary in BINS:
                c = cell(binary, io, flush)
                bp.log(f"round {n + 1} {pair} {binary}: {c}")
                row[f"{pair} {binary}"] = c
        rounds.append(row)
    ratios = {}
    for pair in PAIRS:
        base = BINS[0]
        for binary in BINS[1:]:
            for k in ("p999", "max"):
                vals = [r[f"{pair} {binary}"][k] / r[f"{pair} {base}"][k] for r in rounds]
                ratios[f"{pair} {binary} {k}"] = {"per_round": vals,
                                                  "median": statistics.median(vals)}
    report = {"rate": RATE, "duration_s": DURATION, "retention_bytes": RETENTION,
              "congestion_control": cc, "bins": BINS, "rounds": rounds, "ratios": ratios}
    lines = [f"Ack latency while retention deletes 1 GiB segments: {RATE} records/s of 1 KiB,"
             f" one partition, acks=1, {DURATION} s per cell, {ROUNDS} rounds, TCP {cc}.", "",
             "| round | io/flush | build | p50 ms | p99 ms | p99.9 ms | max ms | MB/s |"
             " segments deleted |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n, r in enumerate(rounds):
        for key, c in r.items():
            pair, binary = key.split(" ", 1)
            lines.append(f"| {n + 1} | {pair} | {os.path.basename(binary)} | {c['p50']:.2f} |"
                         f" {c['p99']:.2f} | {c['p999']:.2f} | {c['max']:.2f} |"
                         f" {c['mb_per_s']:.1f} | {c['deleted_segments']} |")
    if ratios:
        lines += ["", f"Ratios to {os.path.basename(BINS[0])} in the same round:", "",
                  "| io/flush build metric | per round | median |", "| --- | --- | --- |"]
        for k, v in ratios.items():
            pair, rest = k.split(" ", 1)
            binary, metric = rest.rsplit(" ", 1)
            per = ", ".join(f"{x:.2f}" for x in v["per_round"])
            lines.append(f"| {pair} {os.path.basename(binary)} {metric} | {per} |"
                         f" {v['median']:.2f} |")
    bp.write_report(OUT, "retention", report, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
