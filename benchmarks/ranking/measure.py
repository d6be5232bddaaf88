"""Measure the perplexity of every subnet in subnets.json; resumable (results appended as they come).

    python benchmarks/ranking/measure.py [--seqs 8 --seq-len 256] [--order prefix|NAME] [--only-split fit]

Writes ground_truth.json (``--order prefix``) or ground_truth_<order>.json: per subnet id the mean
NLL and perplexity on ``seqs`` x ``seq-len`` tokens of deduplicated BoolQ passages, plus seconds.
Subnets run by in-place slicing (zerolm_prune.rankers.apply.sliced), which computes exactly what
the materialized subnet computes at the subnet's own cost.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from common import HERE, load_text_ids, mean_nll, write_json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqs", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--order", default="prefix", help="prefix, or a channel-order name known to zerolm_prune.rankers.orders")
    ap.add_argument("--only-split", default=None)
    ap.add_argument("--only-kind", default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--ids", type=int, nargs="*", default=None, help="only these subnet ids")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from tqdm import tqdm

    from zerolm_prune.assets import smollm2_135m
    from zerolm_prune.rankers.apply import sliced
    from zerolm_prune.space import Subnet

    rows = json.loads((HERE / "subnets.json").read_text())["subnets"]
    out_path = HERE / ("ground_truth.json" if args.order == "prefix" else f"ground_truth_{args.order}.json")
    done = json.loads(out_path.read_text()) if out_path.exists() else {
        "text": f"boolq validation passages (dedup), {args.seqs} x {args.seq_len} tokens", "order": args.order, "results": {}}
    model, tok = smollm2_135m()
    ids = load_text_ids(tok, seqs=args.seqs, seq_len=args.seq_len)
    orders = None
    if args.order != "prefix":
        from zerolm_prune.rankers.orders import compute_orders

        orders = compute_orders(model, args.order)
    todo = [r for r in rows if str(r["id"]) not in done["results"]
            and (args.only_split is None or r["split"] in (args.only_split, "common"))
            and (args.only_kind is None or r["kind"] == args.only_kind)
            and (args.ids is None or r["id"] in args.ids)]
    if args.limit:
        todo = todo[: args.limit]
    for r in tqdm(todo, desc=f"ppl ({args.order})"):
        t = time.time()
        with sliced(model, Subnet.from_dict(r["subnet"]), orders=orders):
            nll = mean_nll(model, ids)
        done["results"][str(r["id"])] = {"nll": nll, "ppl": math.exp(nll), "seconds": round(time.time() - t, 2)}
        write_json(out_path, done)


if __name__ == "__main__":
    main()
