"""Score every subnet of subnets.json with one ranker; cached per ranker in scores/<name>.json.

    python benchmarks/ranking/score_set.py RANKER [--param key=value ...] [--tag NAME]

Additive rankers compute their per-layer table once (its seconds are stored) and sum it.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from common import HERE, space, write_json


def parse_params(items):
    out = {}
    for item in items or []:
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ranker")
    ap.add_argument("--param", action="append")
    ap.add_argument("--tag", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from zerolm_prune.assets import smollm2_135m
    from zerolm_prune.rankers import get_ranker
    from zerolm_prune.rankers.base import indices_in
    from zerolm_prune.space import Subnet

    rows = json.loads((HERE / "subnets.json").read_text())["subnets"]
    subnets = [Subnet.from_dict(r["subnet"]) for r in rows]
    model, _ = smollm2_135m()
    ranker = get_ranker(args.ranker, **parse_params(args.param))
    sp = space()
    t = time.time()
    if ranker.additive:
        values = ranker.layer_values(model, sp)
        table_s = time.time() - t
        scores = [float(sum(values[l][i] for l, i in enumerate(indices_in(sp, s)))) for s in subnets]
        extra = {"table": [v.tolist() for v in values], "table_seconds": round(table_s, 1)}
    else:
        scores = [float(x) for x in ranker.score(model, subnets, space=sp)]
        extra = {"seconds": round(time.time() - t, 1)}
    (HERE / "scores").mkdir(exist_ok=True)
    name = args.tag or args.ranker
    write_json(HERE / "scores" / f"{name}.json", {"ranker": args.ranker, "params": parse_params(args.param),
                                                  "scores": {str(r["id"]): s for r, s in zip(rows, scores)}, **extra})
    print(f"{name}: {len(scores)} scores in {time.time() - t:.1f}s")


if __name__ == "__main__":
    main()
