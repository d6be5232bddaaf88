"""Commonsense accuracy (the eval helper's evaluate_model, lm-eval, local data) of a few subnets.

    python benchmarks/ranking/commonsense.py [--limit 30]

A rough cross-check that perplexity (the harness's ground truth) and accuracy agree on which
subnets are better: full model, LoNAS heuristic, and per budget the selfgen search top-1, the
ZeroLM search top-1 (pipeline.json) and the best-perplexity random equal-budget subnet.
``limit`` docs per task: small, so per-task stderr is large (reported). Resumable: commonsense.json.
"""

from __future__ import annotations

import argparse
import json

import torch

from common import HERE, write_json


def candidates() -> list[tuple[str, dict]]:
    rows = json.loads((HERE / "subnets.json").read_text())["subnets"]
    truth = json.loads((HERE / "ground_truth.json").read_text())["results"]
    runs = json.loads((HERE / "pipeline.json").read_text())["runs"]
    out = [("full", next(r["subnet"] for r in rows if r["kind"] == "full")),
           ("lonas-heuristic", next(r["subnet"] for r in rows if r["kind"] == "heuristic"))]
    for b in (0.75, 0.9):
        for ranker in ("selfgen-kl", "zerolm"):
            run = runs.get(f"{ranker}@{b}")
            if run:
                name = "selfgen" if ranker == "selfgen-kl" else ranker
                out.append((f"{name}-search-top1@{b}", run["stage2_top1" if ranker == "selfgen-kl" else "stage1_top1"]["subnet"]))
        eq = [r for r in rows if r["kind"] == f"eq{b}" and str(r["id"]) in truth]
        best = min(eq, key=lambda r: truth[str(r["id"])]["nll"])
        out.append((f"best-random@{b} (id {best['id']})", best["subnet"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from zerolm_prune.assets import smollm2_135m
    from zerolm_prune.evaluate import evaluate_model
    from zerolm_prune.rankers.apply import sliced
    from zerolm_prune.space import Subnet

    path = HERE / "commonsense.json"
    doc = json.loads(path.read_text()) if path.exists() else {"limit": args.limit, "results": {}}
    model, tok = smollm2_135m()
    for name, sub in candidates():
        if name in doc["results"]:
            continue
        with sliced(model, Subnet.from_dict(sub)):
            res = evaluate_model(model, tok, suite="commonsense", limit=args.limit, progress=False)
        doc["results"][name] = {"subnet": sub, "mean": res["mean"],
                                "tasks": {t: {"score": m["score"], "metric": m["metric"], "n": m["n"]} for t, m in res["tasks"].items()}}
        write_json(path, doc)
        print(name, round(res["mean"], 4), flush=True)


if __name__ == "__main__":
    main()
