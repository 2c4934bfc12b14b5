#!/usr/bin/env python3
"""What a produced and a consumed GB cost the broker in CPU, robust to this machine's drift.

Run through scripts/bench-cost.sh. On these shared VMs one run of a setting could differ
from the next by 1.5x or more (and the kernel's own cost of writing into the page cache by
10x), so single runs could not tell a 10 % change, nor whether a target is met. Most of it
was memory the host had taken back (`bench_peak.settle_memory`); with memory settled before
each cell, the rounds of a fresh broker's cell agree within a few per cent (steady-state
cells, whose memory is a mix, within ~15 %), and they are still repeated. Here
every cell is measured ROUNDS times, the cells of a round one after another (builds
alternating, the page-cache floor measured before every cell), and the report gives medians:

- produce CPU s/GB and consume CPU s/GB per build, io/flush pair and shard count (closed
  loop, 1 KiB records, 4 producers, acks=1, 4 partitions, then the topic read back once);
- the gap to the floor: per cell, produce CPU s/GB minus the kernel's CPU for writing the
  same bytes into the page cache (pwrite of 256 KiB buffers), for buffered pairs. The floor
  is measured right before each cell, into memory in the state the cell's broker then gets:
  this VM's host takes back memory that stays free (free page reporting), and the first
  touch of such a page costs the toucher several times the copy (see
  `bench_peak.settle_memory`). So before each cell: wait until reporting is idle, write the
  floor ("cold", what a fresh broker's page cache is), write it again at once into the pages
  the first write just freed ("reused"), wait again, then start the broker. The cold floor is
  the one a cell is compared with; cold minus reused is the host's share of it;
- the gap to the paced floor, for buffered pairs: after each cell, memory settled again, the
  same writes without the broker (its MB/s, 256 KiB at a time into 128 MiB segments of 4
  logs with its retention, for as long as the broker's load ran: the preload's warm-up and
  run, then the measured run's), CPU over the last WARMUP + DURATION seconds: the floor of
  a broker whose deleted segments' pages are reused, as in steady state
  (`bench_peak.paced_page_cache_floor_cpu_s_per_gb`);
- the consume gap to the send floor: per round, consume CPU s/GB minus the CPU of sending
  the same bytes from the page cache over loopback TCP with sendfile (1 MiB a call, to a
  process that discards them; `bench_peak.loopback_send_floor_cpu_s_per_gb`), measured in
  that round;
- the ratio of each build to the first build (BINS), per round, then its median;
- Tansu (in-memory engine) in each round when its binary is found, produce only.

Environment: BINS (comma-separated ringbroker binaries, first is the reference; default the
release build), PAIRS (buffered:none,direct:none,direct:fsync), SHARDS (1,2), ROUNDS (3),
DURATION (6), WARMUP (2), PRELOAD (0: seconds of unmeasured closed-loop load on each fresh
broker before its measured run, for steady-state figures), OUT (perf/results/cost-DATE).
"""

import datetime
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_peak as bp  # noqa: E402

BINS = bp.env_list("BINS", bp.BROKER)
PAIRS = bp.env_list("PAIRS", "buffered:none,direct:none,direct:fsync")
SHARDS = [int(x) for x in bp.env_list("SHARDS", "1,2")]
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SIZE, PRODUCERS, ACKS = 1024, 4, "1"
PRELOAD = int(os.environ.get("PRELOAD", "0"))
OUT = os.environ.get("OUT", os.path.join(bp.ROOT, f"perf/results/cost-{bp.DATE}"))


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def floors(scratch):
    """The page-cache floor into memory the host took back (cold) and into pages freed a
    moment ago (reused), then memory settled again for the cell that follows."""
    cold, reused = bp.page_cache_floors(scratch)
    settled = bp.settle_memory()
    return {"floor_cold_cpu_s_per_gb": cold, "floor_reused_cpu_s_per_gb": reused,
            "settled_mib": settled}


def one(binary, pair, shards, scratch):
    io, flush = pair.split(":")
    row = floors(scratch)
    reported = bp.reported_kib()
    b = bp.ringbroker(io, flush, shards, binary=binary)
    try:
        if PRELOAD:
            # Unmeasured load first: the measured run then sees a broker in steady state
            # (a direct log's batch cache, 1/32 of RAM by default, is faulted in while it
            # first fills; retention already deleting).
            bp.bench(b.port, "cost", SIZE, PRODUCERS, ACKS, duration=PRELOAD)
        row.update(bp.peak_run(b, "cost", SIZE, PRODUCERS, ACKS, consume=True))
        after = bp.reported_kib()
        # Memory the host took back while the cell ran (freed by the broker, or left over).
        row["reported_during_mib"] = (after - reported) / 1024 if after is not None else None
    finally:
        b.stop()
        shutil.rmtree(b.data, ignore_errors=True)
    if io == "buffered" and row.get("mb_per_s"):
        # The same writes without the broker: its rate, its segments and retention, as long
        # as its load ran (the preload has a warm-up of its own), from memory settled as
        # the broker's was.
        bp.settle_memory()
        loaded = (PRELOAD + bp.WARMUP if PRELOAD else 0) + bp.WARMUP + bp.DURATION
        row["paced_floor_cpu_s_per_gb"] = bp.paced_page_cache_floor_cpu_s_per_gb(
            os.path.join(bp.DATA, "paced-floor"), row["mb_per_s"], loaded,
            bp.WARMUP + bp.DURATION)
    return row


def main():
    os.makedirs(bp.DATA, exist_ok=True)
    os.makedirs(OUT, exist_ok=True)
    scratch = os.path.join(bp.DATA, "floor.tmp")
    tansu = bp.tansu_binary()
    rounds = []
    for r in range(ROUNDS):
        cells = {"send_floor_cpu_s_per_gb": bp.loopback_send_floor_cpu_s_per_gb(scratch), "runs": []}
        bp.log(f"round {r + 1}/{ROUNDS}: send floor {cells['send_floor_cpu_s_per_gb']:.3f} CPU s/GB")
        for pair in PAIRS:
            for shards in SHARDS:
                for binary in BINS:
                    row = one(binary, pair, shards, scratch)
                    row.update({"binary": binary, "pair": pair, "shards": shards})
                    bp.log(f"  {row}")
                    cells["runs"].append(row)
        if tansu:
            bp.settle_memory()
            b = bp.tansu(tansu)
            try:
                row = bp.peak_run(b, "cost", SIZE, PRODUCERS, ACKS, consume=False)
            except subprocess.CalledProcessError as e:
                row = {"failed": str(e)}
            finally:
                b.stop()
                shutil.rmtree(b.data, ignore_errors=True)
            row.update({"binary": "tansu (memory)"})
            bp.log(f"  {row}")
            cells["runs"].append(row)
        rounds.append(cells)

    summary = []
    ref = BINS[0]
    for pair in PAIRS:
        for shards in SHARDS:
            for binary in BINS:
                def per_round(f):
                    out = []
                    for c in rounds:
                        mine = next(x for x in c["runs"] if x.get("binary") == binary
                                    and x.get("pair") == pair and x.get("shards") == shards)
                        base = next(x for x in c["runs"] if x.get("binary") == ref
                                    and x.get("pair") == pair and x.get("shards") == shards)
                        out.append(f(mine, base, c))
                    return out

                def ratio(key):
                    return lambda m, b, c: (m[key] / b[key]) if m.get(key) and b.get(key) else None

                def tansu_ratio(m, b, c):
                    t = next((x for x in c["runs"] if x.get("binary") == "tansu (memory)"), None)
                    v = t and t.get("produce_cpu_s_per_gb")
                    return v / m["produce_cpu_s_per_gb"] if v and m.get("produce_cpu_s_per_gb") else None

                summary.append({
                    "binary": binary, "pair": pair, "shards": shards,
                    "mb_per_s": median(per_round(lambda m, b, c: m["mb_per_s"])),
                    "produce_cpu_s_per_gb": median(per_round(lambda m, b, c: m["produce_cpu_s_per_gb"])),
                    "produce_all": per_round(lambda m, b, c: m["produce_cpu_s_per_gb"]),
                    "consume_cpu_s_per_gb": median(per_round(lambda m, b, c: m.get("consume_cpu_s_per_gb"))),
                    "consume_all": per_round(lambda m, b, c: m.get("consume_cpu_s_per_gb")),
                    "floor_cold": median(per_round(lambda m, b, c: m["floor_cold_cpu_s_per_gb"])),
                    "floor_reused": median(per_round(lambda m, b, c: m["floor_reused_cpu_s_per_gb"])),
                    "gap_to_floor": median(per_round(
                        lambda m, b, c: m["produce_cpu_s_per_gb"] - m["floor_cold_cpu_s_per_gb"]))
                    if pair.startswith("buffered") else None,
                    "paced_floor": median(per_round(lambda m, b, c: m.get("paced_floor_cpu_s_per_gb"))),
                    "gap_to_paced_floor": median(per_round(
                        lambda m, b, c: m["produce_cpu_s_per_gb"] - m["paced_floor_cpu_s_per_gb"]
                        if m.get("paced_floor_cpu_s_per_gb") else None)),
                    "gap_to_reused_floor": median(per_round(
                        lambda m, b, c: m["produce_cpu_s_per_gb"] - m["floor_reused_cpu_s_per_gb"]))
                    if pair.startswith("buffered") else None,
                    "consume_gap_to_send_floor": median(per_round(
                        lambda m, b, c: m["consume_cpu_s_per_gb"] - c["send_floor_cpu_s_per_gb"]
                        if m.get("consume_cpu_s_per_gb") else None)),
                    "produce_vs_ref": median(per_round(ratio("produce_cpu_s_per_gb"))),
                    "consume_vs_ref": median(per_round(ratio("consume_cpu_s_per_gb"))),
                    "tansu_over_this": median(per_round(tansu_ratio)) if tansu else None,
                })
    report = {"date": bp.DATE, "machine": {"cores": os.cpu_count(), "kernel": os.uname().release},
              "congestion_control": open("/proc/sys/net/ipv4/tcp_congestion_control").read().strip(),
              "params": {"bins": BINS, "pairs": PAIRS, "shards": SHARDS, "rounds": ROUNDS,
                         "record_size": SIZE, "producers": PRODUCERS, "acks": ACKS,
                         "partitions": bp.PARTITIONS, "batch_size": bp.BATCH,
                         "duration": bp.DURATION, "warmup": bp.WARMUP,
                         "preload": PRELOAD},
              "send_floor_cpu_s_per_gb": [c["send_floor_cpu_s_per_gb"] for c in rounds],
              "summary": summary, "rounds": rounds}
    bp.write_report(OUT, "cost", report, render(report))


def render(r):
    f = bp.fmt
    sends = ", ".join(f"{x:.2f}" for x in r.get("send_floor_cpu_s_per_gb", []))
    lines = [f"# CPU per GB, {r['params']['rounds']} alternating rounds, medians ({r['date']})", "",
             f"{r['machine']['cores']} cores, kernel {r['machine']['kernel']}, congestion control "
             f"{r['congestion_control']}; 1 KiB records, 4 producers, acks=1, 4 partitions, "
             f"256 KiB batches, measured after {r['params'].get('preload', 0)} s of unmeasured "
             f"load, each cell on memory settled first (free page reporting idle). Loopback send floor "
             f"per round: {sends} CPU s/GB. Page-cache floor: measured before each cell, cold (into "
             "memory the host took back, as a fresh broker's page cache) / reused (into pages freed "
             "a moment before); the gaps are the cell's produce CPU s/GB minus them. Paced floor (buffered "
             "pairs): the same writes without the broker, at its MB/s, into segments of its size with "
             "its retention, as long as its load ran, from settled memory (bench_peak."
             "paced_page_cache_floor_cpu_s_per_gb).", "",
             "| build | io/flush | shards | MB/s | produce CPU s/GB (rounds) | consume CPU s/GB (rounds) "
             "| page-cache floor, cold / reused | gap to cold floor | gap to reused floor | paced floor | gap to paced floor | consume gap to send floor | produce vs first build | consume vs first build "
             "| Tansu / this |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in r["summary"]:
        rounds_p = " ".join(f(x) for x in s["produce_all"])
        rounds_c = " ".join(f(x) for x in s["consume_all"])
        lines.append(
            f"| {os.path.basename(s['binary'])} | {s['pair']} | {s['shards']} | {f(s['mb_per_s'], '.0f')} "
            f"| **{f(s['produce_cpu_s_per_gb'])}** ({rounds_p}) | **{f(s['consume_cpu_s_per_gb'])}** ({rounds_c}) "
            f"| {f(s.get('floor_cold'))} / {f(s.get('floor_reused'))} | {f(s['gap_to_floor'])} "
            f"| {f(s.get('gap_to_reused_floor'))} | {f(s.get('paced_floor'))} | {f(s.get('gap_to_paced_floor'))} "
            f"| {f(s.get('consume_gap_to_send_floor'))} | x{f(s['produce_vs_ref'])} | x{f(s['consume_vs_ref'])} "
            f"| {f(s['tansu_over_this'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
