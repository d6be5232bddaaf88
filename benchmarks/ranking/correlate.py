"""Rank correlation of every scored ranker with -log perplexity, with bootstrap 95% intervals.

    python benchmarks/ranking/correlate.py [--split report] [--truth ground_truth.json] [--md]

Subsets: eq0.75 and eq0.9 (equal budget, the hard case), random, and overall (the split's eq0.75 +
eq0.9 + random). Intervals: 2000 bootstrap resamples of the subnets (percentile).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.stats import kendalltau, spearmanr

from common import HERE

SUBSETS = ("eq0.75", "eq0.9", "random", "overall")


def boot(x: np.ndarray, y: np.ndarray, fn, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    point = fn(x, y)[0]
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(x), len(x))
        if len(set(y[i])) > 1 and len(set(x[i])) > 1:
            vals.append(fn(x[i], y[i])[0])
    lo, hi = np.percentile(vals, [2.5, 97.5]) if vals else (np.nan, np.nan)
    return float(point), float(lo), float(hi)


def table(split: str, truth_file: str, rankers: list[str] | None = None) -> list[dict]:
    rows = json.loads((HERE / "subnets.json").read_text())["subnets"]
    truth = json.loads((HERE / truth_file).read_text())["results"]
    out = []
    files = sorted((HERE / "scores").glob("*.json"))
    for f in files:
        name = f.stem
        if rankers and name not in rankers:
            continue
        scores = json.loads(f.read_text())["scores"]
        for subset in SUBSETS:
            sel = [r for r in rows if (r["split"] == split or (split == "all" and r["split"] in ("fit", "report"))) and (r["kind"] == subset or (subset == "overall" and r["kind"] in ("eq0.75", "eq0.9", "random")))
                   and str(r["id"]) in truth and str(r["id"]) in scores]
            if len(sel) < 4:
                continue
            x = np.array([scores[str(r["id"])] for r in sel])
            y = np.array([-truth[str(r["id"])]["nll"] for r in sel])
            tau = boot(x, y, kendalltau)
            rho = boot(x, y, spearmanr)
            out.append({"ranker": name, "subset": subset, "n": len(sel), "tau": tau, "rho": rho})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="report")
    ap.add_argument("--truth", default="ground_truth.json")
    ap.add_argument("--md", action="store_true")
    ap.add_argument("rankers", nargs="*")
    args = ap.parse_args()
    res = table(args.split, args.truth, args.rankers or None)
    if args.md:
        print("| ranker | subset | n | Kendall tau [95% CI] | Spearman rho [95% CI] |")
        print("|---|---|---|---|---|")
    for r in res:
        t, s = r["tau"], r["rho"]
        if args.md:
            print(f"| {r['ranker']} | {r['subset']} | {r['n']} | {t[0]:.2f} [{t[1]:.2f}, {t[2]:.2f}] | {s[0]:.2f} [{s[1]:.2f}, {s[2]:.2f}] |")
        else:
            print(f"{r['ranker']:<22} {r['subset']:<8} n={r['n']:<3} tau {t[0]:+.2f} [{t[1]:+.2f},{t[2]:+.2f}]  rho {s[0]:+.2f} [{s[1]:+.2f},{s[2]:+.2f}]")


if __name__ == "__main__":
    main()
