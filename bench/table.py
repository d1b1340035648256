#!/usr/bin/env python3
"""Pairs xgrad and LibTorch Google Benchmark results by name: workload, xgrad, LibTorch, ratio."""
import json
import os
import sys


def load(path):
    if not os.path.exists(path):
        return {}, {}
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        unit = b.get("time_unit", "ns")
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
        rows[b["name"]] = (b["real_time"] * scale, b.get("ns_per_node"), b.get("GFLOPS"))
    return rows, data.get("context", {})


def main():
    ours, ctx = load(sys.argv[1])
    theirs, _ = load(sys.argv[2]) if len(sys.argv) > 2 else ({}, {})
    print(f"machine: {ctx.get('num_cpus', '?')} cpus, {ctx.get('mhz_per_cpu', '?')} MHz")
    print(f"{'workload (args: size/threads)':38} {'xgrad ms':>10} {'LibTorch ms':>12} {'ratio':>7}  extra")
    for name, (t, per_node, gflops) in ours.items():
        other = theirs.get(name)
        ratio = f"{t / other[0]:.2f}x" if other else "-"
        extra = ""
        if per_node:
            extra = f"xgrad {per_node * 1e9:.0f} ns/node" + (f", LibTorch {other[1] * 1e9:.0f} ns/node" if other else "")
        if gflops:
            extra = f"xgrad {gflops / 1e9:.0f} GFLOPS" + (f", LibTorch {other[2] / 1e9:.0f} GFLOPS" if other else "")
        print(f"{name:38} {t:10.3f} {other[0] if other else float('nan'):12.3f} {ratio:>7}  {extra}")


if __name__ == "__main__":
    main()
