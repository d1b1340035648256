#!/usr/bin/env python3
"""Scale sweep report: reads the SWEEP_* results of xgrad_bench and torch_bench (Google Benchmark
JSON in a folder), prints markdown tables (W1 at several batch sizes and hidden widths with the
achieved GEMM GFLOPS, W3 at 10^3..10^6 nodes with the cost per node), writes an SVG chart and puts
both into bench/README.md between the sweep markers.

Usage: bench/sweep.py RESULTS_DIR [--readme bench/README.md] [--svg bench/sweep.svg] [--trial]
"""
import argparse
import glob
import json
import math
import os
import re

BEGIN, END = "<!-- sweep:begin -->", "<!-- sweep:end -->"


def load(pattern):
    """name -> (args tuple, row) for the SWEEP_* benchmarks of the files matching pattern."""
    rows, ctx = {}, {}
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            data = json.load(f)
        ctx = data.get("context", ctx)
        for b in data["benchmarks"]:
            if b.get("run_type") == "aggregate" or not b["name"].startswith("SWEEP_"):
                continue
            parts = b["name"].split("/")
            args = tuple(int(p) for p in parts[1:] if re.fullmatch(r"\d+", p))
            scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
            rows[(parts[0], args)] = {
                "ms": b["real_time"] * scale,
                "gflops": b["GFLOPS"] / 1e9 if "GFLOPS" in b else None,
                "ns_node": b["ns_per_node"] * 1e9 if "ns_per_node" in b else None,
                "rss": b.get("peak_rss_MB"),
            }
    return rows, ctx


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def tables(ours, theirs):
    out = []
    out.append("W1 training step (784-h-h-10, ReLU, SGD momentum), GFLOPS = GEMM work of forward + backward / time")
    out.append("")
    out.append("| batch | width h | threads | xgrad ms | LibTorch ms | ratio | xgrad GFLOPS | LibTorch GFLOPS | xgrad peak MB | LibTorch peak MB |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    w1 = sorted(k for k in ours if k[0] == "SWEEP_W1")
    for key in sorted(w1, key=lambda k: (k[1][1] != 512, k[1][1], k[1][0], k[1][2])):
        b, h, t = key[1]
        o, l = ours[key], theirs.get(key)
        ratio = f"{o['ms'] / l['ms']:.2f}x" if l else "-"
        out.append(f"| {b} | {h} | {t} | {o['ms']:.3f} | {fmt(l and l['ms'], '.3f')} | {ratio} | "
                   f"{fmt(o['gflops'], '.1f')} | {fmt(l and l['gflops'], '.1f')} | {fmt(o['rss'], '.0f')} | "
                   f"{fmt(l and l['rss'], '.0f')} |")
    out.append("")
    out.append("W3 chain of tiny ops (x = tanh(x * w + b), scalars), forward + backward, 1 thread")
    out.append("")
    out.append("| nodes | xgrad ms | LibTorch ms | ratio | xgrad ns/node | LibTorch ns/node | xgrad peak MB | LibTorch peak MB |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in sorted(k for k in ours if k[0] == "SWEEP_W3"):
        o, l = ours[key], theirs.get(key)
        ratio = f"{o['ms'] / l['ms']:.2f}x" if l else "-"
        out.append(f"| {key[1][0]} | {o['ms']:.3f} | {fmt(l and l['ms'], '.3f')} | {ratio} | {fmt(o['ns_node'], '.0f')} | "
                   f"{fmt(l and l['ns_node'], '.0f')} | {fmt(o['rss'], '.0f')} | {fmt(l and l['rss'], '.0f')} |")
    return "\n".join(out)


# --- SVG ------------------------------------------------------------------------------------------
COLORS = {("xgrad", 1): "#1f77b4", ("xgrad", 2): "#17becf", ("LibTorch", 1): "#d62728", ("LibTorch", 2): "#ff9896"}


def panel(x0, y0, w, h, title, xlabel, ylabel, series, log_y=False):
    """One chart: series = [(label, color, [(x, y), ...])], log2-spaced x."""
    pts = [p for _, _, s in series for p in s if p[1] is not None and p[1] > 0]
    if not pts:
        return ""
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    lx0, lx1 = math.log10(min(xs)), math.log10(max(xs))
    lx1 = lx1 if lx1 > lx0 else lx0 + 1
    if log_y:
        ly0, ly1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
        ly1 = ly1 if ly1 > ly0 else ly0 + 1
    else:
        ly0, ly1 = 0.0, max(ys) * 1.1
    left, right, top, bottom = x0 + 60, x0 + w - 25, y0 + 30, y0 + h - 45

    def px(x):
        return left + (math.log10(x) - lx0) / (lx1 - lx0) * (right - left)

    def py(y):
        v = math.log10(y) if log_y else y
        return bottom - (v - ly0) / (ly1 - ly0) * (bottom - top)

    s = [f'<text x="{(left + right) / 2}" y="{y0 + 18}" text-anchor="middle" font-weight="bold">{title}</text>',
         f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#888"/>']
    for x in sorted(set(xs)):
        s.append(f'<line x1="{px(x):.1f}" y1="{bottom}" x2="{px(x):.1f}" y2="{bottom + 4}" stroke="#888"/>')
        label = f"1e{round(math.log10(x))}" if x >= 1e4 and math.log10(x).is_integer() else f"{x:g}"
        s.append(f'<text x="{px(x):.1f}" y="{bottom + 16}" text-anchor="middle" font-size="10">{label}</text>')
    ticks = [10 ** e for e in range(int(ly0), int(ly1) + 1)] if log_y else [ly1 * k / 5 for k in range(6)]
    for t in ticks:
        s.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{right}" y2="{py(t):.1f}" stroke="#eee"/>')
        s.append(f'<text x="{left - 4}" y="{py(t) + 3:.1f}" text-anchor="end" font-size="10">{t:.3g}</text>')
    s.append(f'<text x="{(left + right) / 2}" y="{y0 + h - 12}" text-anchor="middle" font-size="11">{xlabel}</text>')
    s.append(f'<text x="{x0 + 14}" y="{(top + bottom) / 2}" text-anchor="middle" font-size="11" '
             f'transform="rotate(-90 {x0 + 14} {(top + bottom) / 2})">{ylabel}</text>')
    ly = top + 12
    for label, color, data in series:
        data = [p for p in data if p[1] is not None and p[1] > 0]
        if not data:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(data))
        s.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in data:
            s.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        s.append(f'<line x1="{left + 8}" y1="{ly - 4}" x2="{left + 24}" y2="{ly - 4}" stroke="{color}" stroke-width="2"/>')
        s.append(f'<text x="{left + 28}" y="{ly}" font-size="10">{label}</text>')
        ly += 13
    return "\n".join(s)


def svg(ours, theirs, note):
    sides = [("xgrad", ours), ("LibTorch", theirs)]

    def w1(axis, fixed):
        series = []
        for name, rows in sides:
            for t in (1, 2):
                data = []
                for (bench, args), r in rows.items():
                    if bench == "SWEEP_W1" and args[2] == t and args[1 - axis] == fixed:
                        data.append((args[axis], r["gflops"]))
                series.append((f"{name}, {t} thread{'s' if t > 1 else ''}", COLORS[(name, t)], data))
        return series

    w3 = [(name, COLORS[(name, 1)], [(a[0], r["ns_node"]) for (b, a), r in rows.items() if b == "SWEEP_W3"])
          for name, rows in sides]
    width, height = 1080, 360
    body = [
        panel(0, 0, 360, 330, "W1 vs batch (h = 512)", "batch", "GFLOPS", w1(0, 512)),
        panel(360, 0, 360, 330, "W1 vs width (batch 128)", "hidden width h", "GFLOPS", w1(1, 128)),
        panel(720, 0, 360, 330, "W3 cost per node", "recorded nodes", "ns per node (log)", w3, log_y=True),
    ]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(body)
            + f'\n<text x="{width / 2}" y="{height - 8}" text-anchor="middle" font-size="10" fill="#555">{note}</text>\n</svg>\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--readme", default=os.path.join(here, "README.md"))
    ap.add_argument("--svg", default=os.path.join(here, "sweep.svg"))
    ap.add_argument("--trial", action="store_true", help="mark the figures as a trial run (not the quiet measurement)")
    args = ap.parse_args()
    ours, ctx = load(os.path.join(args.results, "xgrad_*.json"))
    theirs, _ = load(os.path.join(args.results, "torch_*.json"))
    if not ours:
        raise SystemExit(f"sweep.py: no SWEEP_* results in {args.results}")
    env = (f"{ctx.get('num_cpus', '?')} cpus at {ctx.get('mhz_per_cpu', '?')} MHz, {ctx.get('date', '')}, "
           f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}, "
           f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', 'auto')}")
    note = ("TRIAL RUN (machine shared, not the final measurement): " if args.trial else "") + env
    md = tables(ours, theirs)
    print(md)
    with open(args.svg, "w") as f:
        f.write(svg(ours, theirs, note))
    block = f"{BEGIN}\n_{note}_\n\n{md}\n\n![scale sweep]({os.path.basename(args.svg)})\n{END}"
    text = open(args.readme).read() if os.path.exists(args.readme) else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text += ("\n" if text else "") + "## Scale sweep\n\n" + block + "\n"
    with open(args.readme, "w") as f:
        f.write(text)
    print(f"\nwrote {args.svg} and the sweep section of {args.readme}")


if __name__ == "__main__":
    main()
