"""Does the search pick better subnets than the baselines at the same budget? (issue #9 target)

    python benchmarks/ranking/pipeline.py --ranker selfgen-kl [--k 50] [--budgets 0.729 0.75 0.9]

Per budget (fraction of the full model's block params): exact top-k of the ranker's additive table
(search.top_k), then the fidelity second stage re-ranks those k on self-generated text. Measures
the perplexity of stage-1 top-1 and stage-2 top-1 on the harness text and compares them with the
LoNAS heuristic, the best uniform subnet and the best of the 50 equal-budget random subnets of
subnets.json (fit + report) within the same budget. Writes pipeline.json (resumable by key).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from common import FULL_BLOCKS, HERE, block_params, load_text_ids, mean_nll, space, write_json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranker", default="selfgen-kl")
    ap.add_argument("--k", type=int, nargs="+", default=[50], help="shortlist size per budget (one value = all budgets)")
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.7293, 0.75, 0.9])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--unit-order", default="prefix", help="prefix or selfgen (rankers/orders.py): which units a width keeps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from zerolm_prune.assets import smollm2_135m
    from zerolm_prune.rankers import get_ranker
    from zerolm_prune.rankers.apply import sliced
    from zerolm_prune.rankers.selfgen import SelfText
    from zerolm_prune.search import top_k
    from zerolm_prune.space import Subnet

    out_path = HERE / "pipeline.json"
    doc = json.loads(out_path.read_text()) if out_path.exists() else {"runs": {}}
    model, tok = smollm2_135m()
    ids = load_text_ids(tok, seqs=8, seq_len=256)
    sp = space()
    costs = [np.array([block_params(c.heads, c.ffn) for c in sp.options(l)], dtype=float) for l in range(30)]
    t0 = time.time()
    fid = get_ranker("fidelity")
    text = SelfText(model, seqs=fid.seqs, length=fid.length, seed=fid.seed)
    from zerolm_prune.rankers.orders import compute_orders

    orders = compute_orders(model, args.unit_order, text=text)
    ranker = get_ranker(args.ranker, **({"unit_order": args.unit_order} if args.unit_order != "prefix" else {}))
    table_s = 0.0
    if args.ranker in ("selfgen-kl",):
        values = ranker.layer_values(model, sp, text=text)
    else:
        values = ranker.layer_values(model, sp)
    table_s = time.time() - t0

    rows = json.loads((HERE / "subnets.json").read_text())["subnets"]
    truth = json.loads((HERE / "ground_truth.json").read_text())["results"]

    def ppl(sub) -> float:
        with sliced(model, sub, orders=orders):
            return math.exp(mean_nll(model, ids))

    ks = args.k * len(args.budgets) if len(args.k) == 1 else args.k
    for b, k in zip(args.budgets, ks):
        key = f"{args.ranker}@{b}" + ("" if args.unit_order == "prefix" else f"/{args.unit_order}")
        if key in doc["runs"]:
            continue
        found = top_k(values, costs, b * FULL_BLOCKS, k)
        cands = [Subnet([sp.options(l)[i] for l, i in enumerate(idx)]) for _, idx in found]
        t = time.time()
        fscores = fid.score(model, cands, text=text, orders=orders)
        stage2_s = time.time() - t
        best2 = int(np.argmax(fscores))
        res = {"ranker": args.ranker, "unit_order": args.unit_order, "budget": b, "k": len(cands), "table_seconds": round(table_s, 1), "stage2_seconds": round(stage2_s, 1),
               "stage1_top1": {"subnet": cands[0].to_dict(), "params_frac": sum(costs[l][i] for l, i in enumerate(found[0][1])) / FULL_BLOCKS,
                               "ppl": ppl(cands[0])},
               "stage2_top1": {"subnet": cands[best2].to_dict(), "stage1_rank": best2,
                               "params_frac": sum(costs[l][i] for l, i in enumerate(found[best2][1])) / FULL_BLOCKS}}
        res["stage2_top1"]["ppl"] = res["stage1_top1"]["ppl"] if best2 == 0 else ppl(cands[best2])
        fits = [r for r in rows if r["params_frac"] <= b and str(r["id"]) in truth]
        heur = [r for r in fits if r["kind"] == "heuristic"]
        uni = [r for r in fits if r["kind"] == "uniform"]
        eq = [r for r in rows if str(r["id"]) in truth and r["kind"] == f"eq{b}"] if b in (0.75, 0.9) else \
            [r for r in fits if r["kind"] == "random" and r["params_frac"] >= b - 0.02]
        res["heuristic_ppl"] = truth[str(heur[0]["id"])]["ppl"] if heur else None
        res["best_uniform_ppl"] = min((truth[str(r["id"])]["ppl"] for r in uni), default=None)
        res["best_random_ppl"] = min((truth[str(r["id"])]["ppl"] for r in eq), default=None)
        res["n_random"] = len(eq)
        doc["runs"][key] = res
        write_json(out_path, doc)
        print(key, json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}),
              "stage1", round(res["stage1_top1"]["ppl"], 1), "stage2", round(res["stage2_top1"]["ppl"], 1))


if __name__ == "__main__":
    main()
