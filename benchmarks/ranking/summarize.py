"""Markdown tables for benchmarks/RANKING.md from the stored results (no model runs).

    python benchmarks/ranking/summarize.py > benchmarks/ranking/tables.md
"""

from __future__ import annotations

import json
import math

import numpy as np

from common import HERE
from correlate import table

ORDER = ["zerolm", "zerolm-tuned", "zerolm-attn", "params", "energy", "selfgen-kl", "fidelity"]


def corr_tables() -> None:
    titles = {"report": " (held out: nothing was tuned on it)", "fit": " (ZeroLM alpha and energy's edge weight chosen here)",
              "all": " (fit + report pooled; only rankers with no knob tuned on fit)"}
    for split in ("report", "fit", "all"):
        res = table(split, "ground_truth.json")
        print(f"\n### {split} split" + titles[split])
        print("\n| ranker | subset | n | Kendall tau [95% CI] | Spearman rho [95% CI] |\n|---|---|---|---|---|")
        for name in ORDER:
            if split == "all" and name in ("zerolm-tuned", "energy"):
                continue
            for r in res:
                if r["ranker"] == name:
                    t, s = r["tau"], r["rho"]
                    print(f"| {name} | {r['subset']} | {r['n']} | {t[0]:.2f} [{t[1]:.2f}, {t[2]:.2f}] | {s[0]:.2f} [{s[1]:.2f}, {s[2]:.2f}] |")


def truth_stats() -> None:
    rows = json.loads((HERE / "subnets.json").read_text())["subnets"]
    truth = json.loads((HERE / "ground_truth.json").read_text())["results"]
    print("\n| kind | split | n measured | params (fraction of block params) | perplexity min / median / max |\n|---|---|---|---|---|")
    keys = sorted({(r["kind"], r["split"]) for r in rows})
    for kind, split in keys:
        sel = [r for r in rows if r["kind"] == kind and r["split"] == split and str(r["id"]) in truth]
        if not sel:
            continue
        p = [truth[str(r["id"])]["ppl"] for r in sel]
        f = [r["params_frac"] for r in sel]
        print(f"| {kind} | {split} | {len(sel)} | {min(f):.3f}-{max(f):.3f} | {min(p):,.1f} / {np.median(p):,.1f} / {max(p):,.1f} |")
    secs = [v["seconds"] for v in truth.values()]
    print(f"\nMeasuring one subnet took {np.median(secs):.0f} s median ({min(secs):.0f}-{max(secs):.0f} s; 1 thread on a shared 2-core machine).")


def pipeline() -> None:
    path = HERE / "pipeline.json"
    if not path.exists():
        print("\n(pipeline not run)")
        return
    rows = json.loads((HERE / "subnets.json").read_text())["subnets"]
    truth = json.loads((HERE / "ground_truth.json").read_text())["results"]
    runs = json.loads(path.read_text())["runs"]
    print("\n| ranker (unit order) | budget | k | stage-1 top-1 ppl | stage-2 top-1 ppl (its stage-1 rank) | LoNAS heuristic | best uniform within budget | best of N random at budget (N) | stage-2 seconds |\n|---|---|---|---|---|---|---|---|---|")
    for key, r in runs.items():
        b = r["budget"]
        fits = [x for x in rows if x["params_frac"] <= b * 1.0000001 and str(x["id"]) in truth]
        heur = [truth[str(x["id"])]["ppl"] for x in rows if x["kind"] == "heuristic" and str(x["id"]) in truth]
        heur_s = f"{heur[0]:,.0f}" + ("" if rows and [x for x in fits if x["kind"] == "heuristic"] else " (over budget)") if heur else "-"
        uni = min((truth[str(x["id"])]["ppl"] for x in fits if x["kind"] == "uniform"), default=math.nan)
        eq = [truth[str(x["id"])]["ppl"] for x in rows if x["kind"] == f"eq{b}" and str(x["id"]) in truth]
        if not eq:  # no equal-budget sample at this budget: random subnets within 2% below it
            eq = [truth[str(x["id"])]["ppl"] for x in fits if x["kind"] in ("random", "eq0.75") and x["params_frac"] >= b - 0.02]
        print(f"| {key.split('@')[0]} ({r.get('unit_order', 'prefix')}) | {b} | {r['k']} | {r['stage1_top1']['ppl']:,.0f} | {r['stage2_top1']['ppl']:,.0f} ({r['stage2_top1']['stage1_rank']}) | {heur_s} | "
              f"{uni:,.0f} | {min(eq) if eq else math.nan:,.0f} ({len(eq)}) | {r['stage2_seconds']:.0f} |")


def orders() -> None:
    path = HERE / "ground_truth_selfgen.json"
    if not path.exists():
        print("\n(order experiment not run)")
        return
    rows = {str(r["id"]): r for r in json.loads((HERE / "subnets.json").read_text())["subnets"]}
    truth = json.loads((HERE / "ground_truth.json").read_text())["results"]
    other = json.loads(path.read_text())["results"]
    print("\n| subnet | kind | params | ppl prefix | ppl selfgen order | ratio |\n|---|---|---|---|---|---|")
    ratios = []
    for k, v in other.items():
        if k in truth:
            r = rows[k]
            ratio = v["ppl"] / truth[k]["ppl"]
            ratios.append(ratio)
            print(f"| {k} | {r['kind']} | {r['params_frac']:.3f} | {truth[k]['ppl']:,.1f} | {v['ppl']:,.1f} | {ratio:.3f} |")
    if ratios:
        print(f"\nselfgen order better in {sum(x < 1 for x in ratios)} of {len(ratios)}; geometric-mean ratio {math.exp(np.mean(np.log(ratios))):.3f}.")


def commonsense() -> None:
    path = HERE / "commonsense.json"
    if not path.exists():
        print("\n(commonsense not run)")
        return
    doc = json.loads(path.read_text())
    res = doc["results"]
    tasks = sorted({t for r in res.values() for t in r["tasks"]})
    print(f"\n`limit` {doc['limit']} docs per task (per-task stderr about +-9 points); score = acc (BoolQ, PIQA, "
          "WinoGrande, ARC-e) or acc_norm (HellaSwag, ARC-c).\n")
    print("| subnet | mean | mean without BoolQ | " + " | ".join(tasks) + " |\n|---|---|---|" + "---|" * len(tasks))
    for name, r in res.items():
        nb = [r["tasks"][t]["score"] for t in tasks if t != "boolq"]
        print(f"| {name} | {r['mean']:.3f} | {np.mean(nb):.3f} | " + " | ".join(f"{r['tasks'][t]['score']:.2f}" for t in tasks) + " |")


def minilm() -> None:
    path = HERE / "minilm.json"
    if not path.exists():
        print("\n(MiniLM not run)")
        return
    doc = json.loads(path.read_text())
    print(f"\nGround truth: {doc['truth']}; space {doc['space']}.\n")
    print("| split | subset | ranker | n | Kendall tau [95% CI] | Spearman rho [95% CI] |\n|---|---|---|---|---|---|")
    for t in doc["table"]:
        a, b = t["tau"], t["rho"]
        print(f"| {t['split']} | {t['subset']} | {t['ranker']} | {t['n']} | {a[0]:.2f} [{a[1]:.2f}, {a[2]:.2f}] | {b[0]:.2f} [{b[1]:.2f}, {b[2]:.2f}] |")


def minilm_search() -> None:
    path = HERE / "minilm_search.json"
    if not path.exists():
        print("\n(MiniLM search not run)")
        return
    from minilm_search import print_table

    doc = json.loads(path.read_text())
    print(f"\nTruth of each pipeline's top-1 pick (% of block params in brackets): {doc['truth']}; space {doc['space']}.\n")
    print_table(doc["rows"])


if __name__ == "__main__":
    print("## Ground truth (SmolLM2-135M)")
    truth_stats()
    print("\n## Rank correlation with -perplexity")
    corr_tables()
    print("\n## Search + second stage vs baselines at the same budget")
    pipeline()
    print("\n## Unit order: self-generated activations vs prefix (same subnets)")
    orders()
    print("\n## Commonsense accuracy of a few subnets (cross-check)")
    commonsense()
    print("\n## MiniLM-L6 (encoder metric)")
    minilm()
    print("\n## MiniLM-L6: what the search picks under a budget")
    minilm_search()
