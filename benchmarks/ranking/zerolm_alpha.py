"""ZeroLM with alpha chosen as the paper does ("benchmark sampling"), on the FIT split only.

    python benchmarks/ranking/zerolm_alpha.py

Sweeps alpha in [-1.5, 1.5] step 0.1, takes the two alphas with the largest |Kendall tau| against
-perplexity on the fit split's subnets, averages them, and writes scores/zerolm-tuned.json (plus
the S_Attn-only and S_FFN-only scores, for the table).
"""

from __future__ import annotations

import json

import numpy as np
import torch
from scipy.stats import kendalltau

from common import HERE, space, write_json


def main() -> None:
    torch.set_num_threads(1)
    from zerolm_prune.assets import smollm2_135m
    from zerolm_prune.proxy.capacity import CapacityTable
    from zerolm_prune.space import Subnet

    rows = json.loads((HERE / "subnets.json").read_text())["subnets"]
    truth = json.loads((HERE / "ground_truth.json").read_text())["results"]
    model, _ = smollm2_135m()
    table = CapacityTable.from_model(model, space())
    comps = {str(r["id"]): table.components(Subnet.from_dict(r["subnet"])) for r in rows}
    fit = [r for r in rows if r["split"] == "fit" and str(r["id"]) in truth]
    y = np.array([-truth[str(r["id"])]["nll"] for r in fit])
    sweep = []
    for alpha in np.round(np.arange(-1.5, 1.51, 0.1), 2):
        x = np.array([comps[str(r["id"])]["ffn"] + alpha * comps[str(r["id"])]["attn"] for r in fit])
        sweep.append((float(alpha), float(kendalltau(x, y)[0])))
    best = sorted(sweep, key=lambda t: -abs(t[1]))[:2]
    alpha = float(np.mean([a for a, _ in best]))
    print("sweep (alpha, tau on fit):", sweep)
    print("chosen alpha", alpha, "from", best)
    (HERE / "scores").mkdir(exist_ok=True)
    for name, fn in (("zerolm-tuned", lambda c: c["ffn"] + alpha * c["attn"]), ("zerolm-attn", lambda c: c["attn"]),
                     ("zerolm-ffn", lambda c: c["ffn"])):
        write_json(HERE / "scores" / f"{name}.json", {"ranker": "zerolm", "params": {"alpha": alpha} if name == "zerolm-tuned" else {},
                                                     "sweep_on_fit": sweep if name == "zerolm-tuned" else None,
                                                     "scores": {k: float(fn(c)) for k, c in comps.items()}})


if __name__ == "__main__":
    main()
