#!/usr/bin/env python3
"""Peak throughput of ringbroker against the machine's limits, measured in one run.

Run through scripts/bench-peak.sh (which builds the release binaries). Every figure that
matters is a ratio to something measured in the same run on the same machine:

- limits: loopback TCP bandwidth (one stream, 1 MiB sends), sequential write bandwidth of
  the data disk (O_DIRECT, 1 MiB writes), and the CPU the kernel spends writing the same
  bytes into the page cache (pwrite of 256 KiB buffers, no fsync, into memory settled
  first: see settle_memory): the floor of a buffered log's cost per GB;
- peak: closed-loop produce (ringbroker-bench --rate 0) for each io/flush pair, record size,
  producer count and acks, on a fresh broker each: MB/s, records/s, broker CPU seconds per
  GB produced (utime + stime of the broker process over the run, per GB of record values
  acknowledged);
- consume: after the acks=1 peak runs, the topic is read back once (ringbroker-bench
  drain) from the page cache: broker CPU seconds per GB consumed;
- latency: open loop at 50, 80 and 95 % of the peak of the base setting of each pair: ack
  p50 / p99 / p99.9;
- shards 1 vs 2 on the base setting;
- Tansu (if its binary is found: $TANSU or target/tansu/bin/tansu), the same closed-loop
  produce and drain with its in-memory storage engine.

Environment: PAIRS (buffered:none,direct:none,direct:fsync), SIZES (1024,16384), PRODUCERS
(1,4), ACKS (1,all), SHARDS (2), DURATION (6), WARMUP (2), FRACTIONS (0.5,0.8,0.95), OUT
(perf/results/peak-DATE), DATA (target/bench-data), OLD_BIN (an older ringbroker binary:
its acks=1 peak per pair, for before/after ratios). The long version:
PRODUCERS=1,2,4,8 DURATION=10 scripts/bench-peak.sh
"""

import datetime
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKER = os.environ.get("BROKER_BIN", os.path.join(ROOT, "target/release/ringbroker"))
BENCH = os.path.join(ROOT, "target/release/ringbroker-bench")
HZ = os.sysconf("SC_CLK_TCK")


def env_list(name, default):
    return [x for x in os.environ.get(name, default).split(",") if x]


PAIRS = env_list("PAIRS", "buffered:none,direct:none,direct:fsync")
SIZES = [int(x) for x in env_list("SIZES", "1024,16384")]
PRODUCERS = [int(x) for x in env_list("PRODUCERS", "1,4")]
ACKS = env_list("ACKS", "1,all")
SHARDS = int(os.environ.get("SHARDS", "2"))
DURATION = int(os.environ.get("DURATION", "6"))
WARMUP = int(os.environ.get("WARMUP", "2"))
FRACTIONS = [float(x) for x in env_list("FRACTIONS", "0.5,0.8,0.95")]
DATE = datetime.date.today().isoformat()
OUT = os.environ.get("OUT", os.path.join(ROOT, f"perf/results/peak-{DATE}"))
DATA = os.environ.get("DATA", os.path.join(ROOT, "target/bench-data"))
PARTITIONS = 4
BATCH = 262144
RETENTION, SEGMENT = 1 << 30, 128 << 20


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    return (int(fields[11]) + int(fields[12])) / HZ


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("broker did not open its port")


# ---- limits ---------------------------------------------------------------------------


def loopback_mb_s(total=2 << 30, chunk=1 << 20):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def sink():
        c, _ = srv.accept()
        buf = bytearray(chunk)
        view = memoryview(buf)
        while c.recv_into(view):
            pass
        c.close()

    t = threading.Thread(target=sink)
    t.start()
    s = socket.create_connection(("127.0.0.1", port))
    data = os.urandom(chunk)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        s.sendall(data)
        sent += chunk
    s.shutdown(socket.SHUT_WR)
    t.join()
    elapsed = time.perf_counter() - start
    s.close()
    srv.close()
    return sent / elapsed / 1e6


def disk_write_mb_s(path, total=1 << 30):
    out = subprocess.run(
        ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={total >> 20}",
         "oflag=direct", "conv=fdatasync"],
        capture_output=True, text=True, check=True).stderr
    os.unlink(path)
    # "... copied, 1.23 s, 873 MB/s"
    secs = float(out.strip().splitlines()[-1].split(",")[-2].split()[0])
    return total / secs / 1e6


def page_cache_floor_cpu_s_per_gb(path, total=2 << 30, chunk=256 << 10):
    data = os.urandom(chunk)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    before = resource.getrusage(resource.RUSAGE_SELF)
    pos = 0
    while pos < total:
        pos += os.pwrite(fd, data, pos)
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.close(fd)
    os.unlink(path)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu / (total / 1e9)


# Guests with virtio-balloon free page reporting hand memory that stays free back to their
# host, which discards it; the next touch of such a page faults in the host, which zeroes it
# again, and that time is charged to whichever guest process touched it. On this VM writing
# 2 GiB into the page cache costs 0.18-0.47 CPU s/GB when the pages were freed a moment ago
# and 2.07-2.42 when they had been reported (2026-12-05), the "10x drift" of earlier runs.
# The kernel reports ~160 MB/s in bursts every ~2 s, so 3.5 GB freed take ~24 s.
_REPORTED_KIB = "/sys/module/page_reporting/parameters/reported_kib"


def reported_kib():
    """KiB of free memory this guest has reported to its host so far, or None where the
    kernel does not say (no free page reporting, or a kernel without that counter)."""
    try:
        with open(_REPORTED_KIB) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def settle_memory(quiet=3.0, limit=60.0):
    """Wait until free page reporting has been idle for `quiet` seconds (at most `limit`),
    so that what a measurement writes next lands in memory in the same state every time:
    reported to the host, as it is for a fresh broker's page cache and batch cache. Returns
    the MiB reported while waiting (None where reporting cannot be seen: nothing to wait
    for)."""
    first = reported_kib()
    if first is None:
        return None
    start = last_change = time.monotonic()
    last = first
    while True:
        if time.monotonic() - start >= limit:
            log(f"  memory not settled after {limit:.0f} s (free page reporting still busy)")
            break
        time.sleep(0.5)
        now = reported_kib()
        if now is None:
            break
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            break
    return (last - first) / 1024


def paced_page_cache_floor_cpu_s_per_gb(directory, mb_per_s, seconds, measured,
                                       chunk=256 << 10):
    """The kernel's cost of writing into the page cache the way a buffered broker's logs
    do it under closed-loop load: at `mb_per_s`, 256 KiB at a time, round robin into
    PARTITIONS logs of SEGMENT-byte files, each deleting its oldest file past RETENTION,
    for `seconds`; CPU s/GB over the last `measured` seconds. Deleted segments free pages
    that later writes reuse, hot or already reported to the host, as the broker's do; no
    fsync, no writeback started (the floor is the write into the page cache only)."""
    data = os.urandom(chunk)
    parts = [{"files": [], "fd": None, "pos": 0} for _ in range(PARTITIONS)]
    os.makedirs(directory, exist_ok=True)
    start = time.monotonic()
    written = counted = 0
    before = None
    seq = 0
    try:
        while True:
            now = time.monotonic() - start
            if now >= seconds:
                break
            if before is None and now >= seconds - measured:
                before, counted = resource.getrusage(resource.RUSAGE_SELF), 0
            ahead = written / (mb_per_s * 1e6) - now
            if ahead > 0:
                time.sleep(ahead)
            index = seq % PARTITIONS
            part = parts[index]
            seq += 1
            if part["fd"] is None or part["pos"] + chunk > SEGMENT:
                if part["fd"] is not None:
                    os.close(part["fd"])
                path = os.path.join(directory, f"p{index}-{seq:012}.log")
                part["fd"], part["pos"] = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), 0
                part["files"].append(path)
                # The broker's rule: the oldest goes while the rest hold RETENTION bytes
                # (with the new segment's first bytes, 8 full segments and the new one stay).
                while len(part["files"]) * SEGMENT > RETENTION + SEGMENT:
                    os.unlink(part["files"].pop(0))
            part["pos"] += os.pwrite(part["fd"], data, part["pos"])
            written += chunk
            counted += chunk
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        for part in parts:
            if part["fd"] is not None:
                os.close(part["fd"])
        shutil.rmtree(directory, ignore_errors=True)
    if before is None or not counted:
        return None
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu / (counted / 1e9)


def page_cache_floors(path):
    """The page-cache floor into memory the host took back (settled first: a fresh broker's
    page cache), then at once into the pages that write freed: the two ends of what a write
    into the page cache costs on a guest with free page reporting (the same twice where
    there is none). Returns (cold, reused) CPU s/GB."""
    settle_memory()
    return page_cache_floor_cpu_s_per_gb(path), page_cache_floor_cpu_s_per_gb(path)


_READER = ("import socket, sys\n"
           "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
           "b = bytearray(1 << 20)\n"
           "while s.recv_into(b):\n"
           "    pass\n")


def loopback_send_floor_cpu_s_per_gb(path, total=2 << 30, size=1 << 30, chunk=1 << 20):
    """The floor of serving a fetch from the page cache: the CPU this process spends sending
    `total` bytes of a cached file over loopback TCP with sendfile, `chunk` bytes a call,
    while another process reads and discards them. On loopback the sender also runs much of
    the receiving side's TCP work (softirq), as the broker does when it serves a consumer."""
    data = os.urandom(chunk)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    srv = socket.socket()
    try:
        for pos in range(0, size, chunk):
            os.pwrite(fd, data, pos)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        reader = subprocess.Popen([sys.executable, "-c", _READER, str(srv.getsockname()[1])])
        conn, _ = srv.accept()
        before = resource.getrusage(resource.RUSAGE_SELF)
        sent = 0
        while sent < total:
            off = sent % size
            sent += os.sendfile(conn.fileno(), fd, off, min(chunk, size - off))
        after = resource.getrusage(resource.RUSAGE_SELF)
        conn.close()
        reader.wait(60)
    finally:
        srv.close()
        os.close(fd)
        os.unlink(path)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu / (total / 1e9)


# ---- brokers ----------------------------------------------------------------------------


class Broker:
    """A process serving Kafka on a port; its CPU read from /proc."""

    def __init__(self, argv, port, cwd=None, env=None):
        self.port = port
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, cwd=cwd, env=env)
        wait_port(port, self.proc)

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ringbroker(io, flush, shards, binary=None):
    port = free_port()
    data = tempfile.mkdtemp(dir=DATA, prefix="peak.")
    argv = [binary or BROKER, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
            "--shards", str(shards), "--set", f"log.io={io}", "--set", f"log.flush={flush}",
            # Retention keeps the disk from filling: 1 GiB per partition, 128 MiB segments.
            "--set", f"log.retention.bytes={RETENTION}", "--set", f"log.segment.bytes={SEGMENT}"]
    b = Broker(argv, port)
    b.data = data
    return b


def tansu_binary():
    t = os.environ.get("TANSU") or shutil.which("tansu") or os.path.join(ROOT, "target/tansu/bin/tansu")
    return t if os.path.exists(t) else None


def tansu(binary):
    port = free_port()
    data = tempfile.mkdtemp(dir=DATA, prefix="tansu.")
    argv = [binary, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
            "--storage-engine", "memory://tansu/"]
    b = Broker(argv, port, cwd=data)
    b.data = data
    return b


def bench(port, topic, size, producers, acks, rate=0, duration=None):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(
            [BENCH, "--bootstrap", f"127.0.0.1:{port}", "--topic", topic,
             "--partitions", str(PARTITIONS), "--producers", str(producers), "--consumers", "0",
             "--record-size", str(size), "--batch-size", str(BATCH), "--linger-ms", "5",
             "--acks", acks, "--rate", str(rate), "--warmup", str(WARMUP),
             "--duration", str(duration or DURATION), "--quiet", "--json", f.name],
            check=True, stdout=subprocess.DEVNULL)
        return json.load(open(f.name))["results"]


def drain(port, topic, timeout):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([BENCH, "drain", "--bootstrap", f"127.0.0.1:{port}", "--topic", topic,
                        "--timeout", str(timeout), "--json", f.name],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return json.load(open(f.name))


def write_report(out, stem, report, md):
    """Writes `report` as OUT/STEM.json and `md` as OUT/STEM.md, and prints `md`."""
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out, f"{stem}.md"), "w") as f:
        f.write(md)
    print(md)


def peak_run(broker, topic, size, producers, acks, consume, drain_timeout=120):
    before = broker.cpu()
    r = bench(broker.port, topic, size, producers, acks)
    cpu = broker.cpu() - before
    produced_gb = r["produce"]["records_total"] * size / 1e9
    row = {
        "mb_per_s": r["produce"]["mb_per_s"],
        "records_per_s": r["produce"]["records_per_s"],
        "errors": r["produce"]["errors"],
        "produce_cpu_s_per_gb": cpu / produced_gb if produced_gb else None,
    }
    if consume:
        before = broker.cpu()
        try:
            d = drain(broker.port, topic, drain_timeout)
        except subprocess.CalledProcessError:
            row["consume_failed"] = f"the topic was not read to its end within {drain_timeout} s"
            return row
        cpu = broker.cpu() - before
        gb = d.get("bytes", 0) / 1e9
        row["consume_mb_per_s"] = d.get("mb_per_s")
        row["consume_cpu_s_per_gb"] = cpu / gb if gb else None
    return row


def main():
    os.makedirs(DATA, exist_ok=True)
    os.makedirs(OUT, exist_ok=True)
    report = {"date": DATE, "machine": {"cores": os.cpu_count(), "kernel": os.uname().release},
              "congestion_control": open("/proc/sys/net/ipv4/tcp_congestion_control").read().strip(),
              "params": {"pairs": PAIRS, "sizes": SIZES, "producers": PRODUCERS, "acks": ACKS,
                         "shards": SHARDS, "duration": DURATION, "warmup": WARMUP,
                         "partitions": PARTITIONS, "batch_size": BATCH, "linger_ms": 5}}
    log("limits: loopback, disk, page-cache floor")
    scratch = os.path.join(DATA, "limits.tmp")
    report["limits"] = {
        "loopback_mb_per_s": loopback_mb_s(),
        "disk_write_mb_per_s": disk_write_mb_s(scratch),
    }
    cold, reused = page_cache_floors(scratch)
    report["limits"]["page_cache_write_cpu_s_per_gb"] = cold
    report["limits"]["page_cache_write_reused_cpu_s_per_gb"] = reused
    log(f"  {report['limits']}")

    peaks = []
    for pair in PAIRS:
        io, flush = pair.split(":")
        for size in SIZES:
            for producers in PRODUCERS:
                for acks in ACKS:
                    b = ringbroker(io, flush, SHARDS)
                    try:
                        row = peak_run(b, "peak", size, producers, acks, consume=acks == "1")
                    finally:
                        b.stop()
                        shutil.rmtree(b.data, ignore_errors=True)
                    row.update({"broker": "ringbroker", "pair": pair, "record_size": size,
                                "producers": producers, "acks": acks, "shards": SHARDS})
                    log(f"  peak {row}")
                    peaks.append(row)

    # Latency under load: the base setting of each pair (first size, most producers,
    # acks=all), open loop at fractions of its closed-loop peak.
    latency = []
    base_size, base_producers = SIZES[0], max(PRODUCERS)
    for pair in PAIRS:
        io, flush = pair.split(":")
        peak = next((p for p in peaks if p["pair"] == pair and p["record_size"] == base_size
                     and p["producers"] == base_producers and p["acks"] == "all"), None)
        if not peak:
            continue
        for frac in FRACTIONS:
            rate = int(peak["records_per_s"] * frac)
            b = ringbroker(io, flush, SHARDS)
            try:
                r = bench(b.port, "lat", base_size, base_producers, "all", rate=rate)
            finally:
                b.stop()
                shutil.rmtree(b.data, ignore_errors=True)
            ack = r["ack_latency_ms"]
            row = {"pair": pair, "fraction": frac, "offered_records_per_s": rate,
                   "acked_records_per_s": r["produce"]["records_per_s"],
                   "p50_ms": ack["p50"], "p99_ms": ack["p99"], "p999_ms": ack["p999"],
                   "errors": r["produce"]["errors"]}
            log(f"  latency {row}")
            latency.append(row)

    shards = []
    for n in (1, 2):
        b = ringbroker("buffered", "none", n)
        try:
            row = peak_run(b, "peak", base_size, base_producers, "1", consume=True)
        finally:
            b.stop()
            shutil.rmtree(b.data, ignore_errors=True)
        row.update({"shards": n, "record_size": base_size, "producers": base_producers})
        log(f"  shards {row}")
        shards.append(row)

    # An older build (OLD_BIN) on the acks=1 setting of each pair, for before/after ratios.
    before = []
    old = os.environ.get("OLD_BIN")
    for pair in PAIRS if old else []:
        io, flush = pair.split(":")
        b = ringbroker(io, flush, SHARDS, binary=old)
        try:
            row = peak_run(b, "peak", base_size, base_producers, "1", consume=True)
        finally:
            b.stop()
            shutil.rmtree(b.data, ignore_errors=True)
        row.update({"binary": old, "pair": pair, "record_size": base_size,
                    "producers": base_producers, "acks": "1"})
        log(f"  before {row}")
        before.append(row)

    others = []
    t = tansu_binary()
    if t:
        for size in SIZES:
            for producers in PRODUCERS:
                b = tansu(t)
                try:
                    row = peak_run(b, "peak", size, producers, "1", consume=True,
                                   drain_timeout=30)
                except subprocess.CalledProcessError as e:
                    row = {"failed": str(e)}
                finally:
                    b.stop()
                    shutil.rmtree(b.data, ignore_errors=True)
                row.update({"broker": "tansu (memory)", "record_size": size,
                            "producers": producers, "acks": "1"})
                log(f"  tansu {row}")
                others.append(row)
    else:
        log("  tansu not found: skipped (scripts/compare-tansu.sh builds it)")

    report.update({"peaks": peaks, "latency": latency, "shards": shards, "before": before,
                   "others": others})
    write_report(OUT, "peak", report, render(report))


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def render(r):
    lim = r["limits"]
    loop, disk, floor = lim["loopback_mb_per_s"], lim["disk_write_mb_per_s"], lim["page_cache_write_cpu_s_per_gb"]
    out = [f"# Peak throughput, {r['date']}", "",
           f"{r['machine']['cores']} cores, Linux {r['machine']['kernel']}, congestion control "
           f"{r['congestion_control']}; {r['params']['shards']} shards, {r['params']['partitions']} "
           f"partitions, batch {r['params']['batch_size']} B, linger 5 ms, closed loop "
           f"{r['params']['duration']} s after {r['params']['warmup']} s warm-up; producers "
           "and broker share the cores.", "",
           f"Limits in the same run: loopback {loop:.0f} MB/s, disk sequential write (O_DIRECT) "
           f"{disk:.0f} MB/s, kernel page-cache write {floor:.3f} CPU s/GB into memory settled first "
           f"(into pages freed a moment before: {fmt(lim.get('page_cache_write_reused_cpu_s_per_gb'), '.3f')}).", "",
           "| io/flush | record | producers | acks | MB/s | records/s | / loopback | / disk "
           "| produce CPU s/GB | minus page-cache floor | consume CPU s/GB |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in r["peaks"]:
        out.append(
            f"| {p['pair']} | {p['record_size']} | {p['producers']} | {p['acks']} | "
            f"{p['mb_per_s']:.0f} | {p['records_per_s']:.0f} | {p['mb_per_s'] / loop:.3f} | "
            f"{p['mb_per_s'] / disk:.3f} | {fmt(p['produce_cpu_s_per_gb'])} | "
            f"{fmt(p['produce_cpu_s_per_gb'] - floor if p['produce_cpu_s_per_gb'] else None)} | "
            f"{fmt(p.get('consume_cpu_s_per_gb'))} |")
    out += ["", "Open loop at fractions of the closed-loop peak (acks=all, ack latency in ms):", "",
            "| io/flush | % of peak | offered rec/s | acked rec/s | p50 | p99 | p99.9 |",
            "|---|---|---|---|---|---|---|"]
    for lrow in r["latency"]:
        out.append(f"| {lrow['pair']} | {lrow['fraction'] * 100:.0f} | {lrow['offered_records_per_s']} | "
                   f"{lrow['acked_records_per_s']:.0f} | {lrow['p50_ms']:.2f} | {lrow['p99_ms']:.2f} | "
                   f"{lrow['p999_ms']:.2f} |")
    out += ["", "Shards (buffered/none, acks=1):", "",
            "| shards | MB/s | produce CPU s/GB | consume CPU s/GB |", "|---|---|---|---|"]
    for s in r["shards"]:
        out.append(f"| {s['shards']} | {s['mb_per_s']:.0f} | {fmt(s['produce_cpu_s_per_gb'])} | "
                   f"{fmt(s.get('consume_cpu_s_per_gb'))} |")
    if r.get("before"):
        out += ["", f"The build before ({r['before'][0]['binary']}), same run, acks=1, and the "
                "ratio of this build's CPU per GB to its:", "",
                "| io/flush | MB/s before | produce CPU s/GB before | now / before | consume CPU s/GB before | now / before |",
                "|---|---|---|---|---|---|"]
        for o in r["before"]:
            ours = next((p for p in r["peaks"] if p["pair"] == o["pair"] and p["acks"] == "1"
                         and p["record_size"] == o["record_size"] and p["producers"] == o["producers"]), None)

            def now_over(k):
                if not ours or not o.get(k) or not ours.get(k):
                    return "-"
                return f"{ours[k] / o[k]:.2f}"
            out.append(f"| {o['pair']} | {o['mb_per_s']:.0f} | {fmt(o['produce_cpu_s_per_gb'])} | "
                       f"{now_over('produce_cpu_s_per_gb')} | {fmt(o.get('consume_cpu_s_per_gb'))} | "
                       f"{now_over('consume_cpu_s_per_gb')} |")
    if r["others"]:
        out += ["", "Tansu (in-memory engine) at the same client settings, acks=1, and the "
                "ratio of its CPU per GB to ringbroker buffered/none's:", "",
                "| record | producers | MB/s | produce CPU s/GB | x ringbroker | consume CPU s/GB | x ringbroker |",
                "|---|---|---|---|---|---|---|"]
        for o in r["others"]:
            if "failed" in o:
                out.append(f"| {o['record_size']} | {o['producers']} | failed: {o['failed']} | | | | |")
                continue
            ours = next((p for p in r["peaks"] if p["pair"] == "buffered:none" and p["acks"] == "1"
                         and p["record_size"] == o["record_size"] and p["producers"] == o["producers"]), None)

            def ratio(k):
                if not ours or not o.get(k) or not ours.get(k):
                    return "-"
                return f"{o[k] / ours[k]:.2f}"
            consume = o.get("consume_failed") or fmt(o.get("consume_cpu_s_per_gb"))
            out.append(f"| {o['record_size']} | {o['producers']} | {o['mb_per_s']:.0f} | "
                       f"{fmt(o['produce_cpu_s_per_gb'])} | {ratio('produce_cpu_s_per_gb')} | "
                       f"{consume} | {ratio('consume_cpu_s_per_gb')} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
