#!/usr/bin/env python3
"""Pairs xgrad and LibTorch Google Benchmark results by name: workload, times, ratio, memory."""
import glob
import json
import os
import sys


def load(pattern):
    rows, ctx, runs = {}, {}, {}
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            text = f.read()
        if not text.strip():
            continue  # a workload prefix that matched nothing on this side leaves an empty file
        data = json.loads(text)
        ctx = data.get("context", ctx)
        for b in data["benchmarks"]:
            if b.get("run_type") == "aggregate":
                continue
            scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
            name = b["name"]
            runs[name] = runs.get(name, 0) + 1
            # Several rounds (tools/bench.sh --rounds): the best time of each row, with its counters.
            if name in rows and rows[name]["ms"] <= b["real_time"] * scale:
                continue
            rows[name] = {"ms": b["real_time"] * scale, "node": b.get("ns_per_node"),
                          "gflops": b.get("GFLOPS"), "flops": b.get("flops"), "rss": b.get("peak_rss_MB"), "trip": b.get("round_trip_ns"),
                          "rss10": b.get("rss_10_MB"), "rss1000": b.get("rss_1000_MB"),
                          "peak10": b.get("peak_10_MB"), "peak1000": b.get("peak_1000_MB")}
    for name, r in rows.items():
        r["runs"] = runs[name]
    return rows, ctx


def main():
    folder = sys.argv[1]
    ours, ctx = load(os.path.join(folder, "xgrad_*.json"))
    theirs, _ = load(os.path.join(folder, "torch_*.json"))
    theirs_blas1, _ = load(os.path.join(folder, "torch1_*.json"))
    rounds = max((r["runs"] for r in ours.values()), default=1)
    print(f"machine: {ctx.get('num_cpus', '?')} cpus; last arg of a name = threads"
          + (f"; best of {rounds} rounds, the two sides in turn" if rounds > 1 else ""))
    print("LibTorch ms: OpenBLAS with its own threads (both cores, also in the 1-thread rows); "
          "BLAS 1 thread: the same run with OPENBLAS_NUM_THREADS=1 (GEMM workloads), and xgrad's ratio to it")
    print(f"| workload | xgrad ms | LibTorch ms | ratio | LibTorch, BLAS 1 thread | xgrad peak MB | LibTorch peak MB | notes |")
    print(f"|---|---:|---:|---:|---:|---:|---:|---|")
    for name, r in ours.items():
        o = theirs.get(name)
        ratio = f"{r['ms'] / o['ms']:.2f}x" if o else "-"
        notes = []
        is_peak = name.startswith("PEAK_fma")
        if r["node"]:
            notes.append(f"{r['node'] * 1e9:.0f} vs {o['node'] * 1e9:.0f} ns/node" if o else f"{r['node'] * 1e9:.0f} ns/node")
        if r["gflops"] and not is_peak:
            notes.append(f"{r['gflops'] / 1e9:.0f} vs {o['gflops'] / 1e9:.0f} GFLOPS" if o else f"{r['gflops'] / 1e9:.0f} GFLOPS")
        if r["flops"]:  # GFLOPS from the real time, so that threads a library starts count too
            rate = lambda x: x["flops"] / (x["ms"] * 1e-3) / 1e9
            notes.append(f"{rate(r):.0f} vs {rate(o):.0f} GFLOPS" if o and o["flops"] else f"{rate(r):.0f} GFLOPS")
        if is_peak and r["gflops"]:
            w4 = next((x for n, x in ours.items() if n.startswith("W4_tanh_gemm") and x["flops"]), None)
            notes.append(f"float32 FMA ceiling {r['gflops'] / 1e9:.0f} GFLOPS at this thread count"
                         + (f": W4's {w4['flops'] / 1e9:.1f} GFLOP take at least {w4['flops'] / r['gflops'] * 1e3:.1f} ms"
                            if w4 else ""))
        if r["trip"]:
            notes.append(f"cross-core round trip {r['trip']:.0f} ns (the machine's state: see Data-parallel steps)")
        if r["rss10"] is not None:
            mem = lambda x: (f"RSS {x['rss10']:.0f} -> {x['rss1000']:.0f} MB, peak {x['peak10']:.0f} -> "
                             f"{x['peak1000']:.0f} MB after 10 -> 1000 steps")
            notes.append("xgrad " + mem(r) + (f"; LibTorch {mem(o)}" if o and o["rss10"] is not None else ""))
        rss = lambda x: f"{x['rss']:.0f}" if x and x.get("rss") else "-"
        o1 = theirs_blas1.get(name)
        blas1 = f"{o1['ms']:.3f} ({r['ms'] / o1['ms']:.2f}x)" if o1 else "-"
        print(f"| {name} | {r['ms']:.3f} | {o['ms'] if o else float('nan'):.3f} | {ratio} | {blas1} | {rss(r)} | {rss(o)} "
              f"| {'; '.join(notes)} |")


if __name__ == "__main__":
    main()
