#!/usr/bin/env python3
"""cmp-summary.py OUTDIR: medians over rounds of the sweeps bench-compare.sh
wrote: QPS, pages, latency and CPU interpolated at recall@10 0.90 and 0.95
(linear in recall between the two settings around it), per system and
thread count. Standard library only."""
import csv, glob, os, statistics, sys
from collections import defaultdict

def rows(path):
    with open(path) as f:
        return [{k: float(v) if k != "backend" else v for k, v in r.items()} for r in csv.DictReader(f)]

def at(rs, target, key):
    rs = sorted(rs, key=lambda r: r["recall"])
    for a, b in zip(rs, rs[1:]):
        if a["recall"] <= target <= b["recall"]:
            t = (target - a["recall"]) / (b["recall"] - a["recall"]) if b["recall"] > a["recall"] else 0
            return a[key] + t * (b[key] - a[key])
    return float("nan")

out = sys.argv[1] if len(sys.argv) > 1 else "out/cmp"
groups = defaultdict(list)
for p in glob.glob(os.path.join(out, "*-t*-r*.csv")):
    name, t, _ = os.path.basename(p)[:-4].rsplit("-", 2)
    groups[(name, t)].append(rows(p))
print("| system | threads | QPS @0.90 | QPS @0.95 | pages @0.90 | pages @0.95 | KiB @0.95 | CPU µs/query @0.95 | mean µs @0.95 | p99 µs @0.95 | peak RSS MiB | runs |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (name, t), runs in sorted(groups.items(), key=lambda x: (x[0][1], x[0][0])):
    if len(runs[0]) < 2:
        continue  # a single setting, not a curve (see the single-* files)
    med = lambda tgt, key: statistics.median(at(r, tgt, key) if key in r[0] else float("nan") for r in runs)
    rss = statistics.median(max(x["peak_rss_mib"] for x in r) for r in runs)
    print(f"| {name} | {t[1:]} | {med(0.90,'qps'):,.0f} | {med(0.95,'qps'):,.0f} | {med(0.90,'pages'):.1f} | "
          f"{med(0.95,'pages'):.1f} | {med(0.95,'kib'):.0f} | {med(0.95,'cpu_us'):.0f} | {med(0.95,'mean_us'):,.0f} | "
          f"{med(0.95,'p99_us'):,.0f} | {rss:.1f} | {len(runs)} |")
