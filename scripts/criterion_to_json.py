#!/usr/bin/env python3
"""Collects criterion's estimates under target/criterion into one JSON report.

Usage: scripts/criterion_to_json.py GROUP OUT.json
Each benchmark appears with its mean and median time (ns) and, when criterion recorded a
throughput, bytes per second.
"""
import json
import os
import platform
import sys
from pathlib import Path


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()}


def main():
    group, out = sys.argv[1], Path(sys.argv[2])
    root = Path(__file__).resolve().parent.parent / "target" / "criterion" / group
    results = []
    for est in sorted(root.glob("**/new/estimates.json")):
        bench = est.parent.parent.relative_to(root).as_posix()
        data = json.loads(est.read_text())
        bench_json = json.loads((est.parent / "benchmark.json").read_text())
        entry = {
            "benchmark": f"{group}/{bench}",
            "mean_ns": data["mean"]["point_estimate"],
            "median_ns": data["median"]["point_estimate"],
        }
        tp = bench_json.get("throughput") or {}
        if "Bytes" in tp:
            entry["bytes_per_s"] = tp["Bytes"] / (entry["mean_ns"] / 1e9)
        results.append(entry)
    report = {
        "command": f"cargo bench --bench storage -- {group}",
        "machine": machine(),
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for r in results:
        extra = f"  {r['bytes_per_s'] / 1e6:8.1f} MB/s" if "bytes_per_s" in r else ""
        print(f"{r['benchmark']:40s} {r['mean_ns'] / 1000:10.1f} us{extra}")


if __name__ == "__main__":
    main()
