"""MiniLM-L6: what the search actually picks under a budget, old encoder pipeline vs new.

    python benchmarks/ranking/minilm_search.py     # writes minilm_search.json, prints the table

Space as minilm.py (per layer heads {12, 8, 6} x FFN {1536, 1152, 768}, prefix slicing; 9^6
subnets, so the search here is brute force and exact). Budgets: 0.75 and 0.9 of the block params.
Pipelines, each the exact top 10 of a stage-1 table under the budget re-ranked by the data-free
fidelity on random tokens (what `rank`/`run` do with the default `selfgen` ranker):
  energy-table  -> fidelity   the encoder pipeline before (weight-only stage 1)
  selfgen-table -> fidelity   the encoder pipeline now (per-layer fidelity stage 1)
and zerolm (ZeroLM's capacity, alpha 1, no re-rank) as published. Baselines at the same budget:
the largest uniform subnet, the LoNAS heuristic (middle entry of every list, whatever its size)
and 20 uniformly drawn subnets within 5% under the budget. Ground truth for every pick: cosine of
mean-pooled sentence embeddings to the full model's on 128 real SST-2 sentences (as minilm.py).
No number here was used to choose anything in the package.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import torch
from common import HERE, write_json

HEADS, FFN, LAYERS, SHORTLIST = [12, 8, 6], [1536, 1152, 768], 6, 10


def main() -> None:
    torch.set_num_threads(1)
    import datasets

    from zerolm_prune.assets import commonsense_data_dir, minilm_l6
    from zerolm_prune.cost import block_params
    from zerolm_prune.models import get_adapter
    from zerolm_prune.rankers import get_ranker
    from zerolm_prune.rankers.apply import sliced
    from zerolm_prune.rankers.selfgen import encoder_fidelity
    from zerolm_prune.space import LayerSpace, SearchSpace, Subnet

    model, tok = minilm_l6()
    adapter = get_adapter(model)
    sp = SearchSpace([LayerSpace(list(HEADS), list(FFN)) for _ in range(LAYERS)])
    opts = sp.options(0)
    cost = np.array([block_params(adapter.geometry(0), c, config=adapter.config) for c in opts], dtype=float)
    picks = np.array(list(itertools.product(range(len(opts)), repeat=LAYERS)))
    frac = cost[picks].sum(1) / (cost[0] * LAYERS)

    sentences = list(dict.fromkeys(datasets.load_from_disk(
        str(commonsense_data_dir() / "glue" / "sst2" / "validation"))["sentence"]))[:128]
    enc = tok(sentences, padding=True, truncation=True, max_length=48, return_tensors="pt")
    mask = enc["attention_mask"].unsqueeze(-1).float()

    def embed() -> torch.Tensor:
        return (model(**enc).last_hidden_state * mask).sum(1) / mask.sum(1)

    with torch.no_grad():
        ref = embed()

    def truth(pick) -> float:
        with torch.no_grad(), sliced(model, Subnet([opts[i] for i in pick])):
            return float(torch.nn.functional.cosine_similarity(embed(), ref, dim=-1).mean())

    tables = {"energy-table": get_ranker("energy").layer_values(model, sp),
              "selfgen-table": get_ranker("selfgen", progress=False).layer_values(model, sp),
              "zerolm": get_ranker("zerolm").layer_values(model, sp)}
    totals = {name: np.array(t)[np.arange(LAYERS), picks].sum(1) for name, t in tables.items()}
    heuristic = tuple((len(opts) - 1) // 2 for _ in range(LAYERS))  # LoNAS: v[(len-1)//2] of each list
    rows = []
    for budget in (0.75, 0.9):
        within = frac <= budget + 1e-12
        row = {"budget": budget}
        for name, total in totals.items():
            order = np.argsort(-np.where(within, total, -np.inf), kind="stable")[:SHORTLIST]
            if name == "zerolm":
                best = picks[order[0]]
            else:
                fid = encoder_fidelity(model, [Subnet([opts[i] for i in picks[j]]) for j in order], adapter=adapter)
                best = picks[order[int(np.argmax(fid))]]
            row[name] = {"pick": best.tolist(), "frac": float(frac[order[0]] if name == "zerolm" else
                                                              cost[best].sum() / (cost[0] * LAYERS)),
                         "truth": truth(best)}
        uniform = max((i for i in range(len(opts)) if cost[i] <= budget * cost[0] + 1e-9), key=lambda i: cost[i])
        row["uniform"] = {"pick": [uniform] * LAYERS, "frac": float(cost[uniform] / cost[0]), "truth": truth([uniform] * LAYERS)}
        row["lonas-heuristic"] = {"pick": list(heuristic), "frac": float(cost[list(heuristic)].sum() / (cost[0] * LAYERS)),
                                  "truth": truth(heuristic)}
        near = np.flatnonzero(within & (frac >= budget * 0.95))
        drawn = random.Random(5).sample(list(near), 20)
        values = sorted(truth(picks[j]) for j in drawn)
        row["random-20"] = {"median": float(np.median(values)), "best": values[-1], "worst": values[0]}
        rows.append(row)
    write_json(HERE / "minilm_search.json", {"space": "heads {12,8,6} x ffn {1536,1152,768}, prefix",
                                             "truth": "cosine to full model, 128 SST-2 sentences", "rows": rows})
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    print("| budget | energy-table -> fidelity | selfgen-table -> fidelity | zerolm | uniform | LoNAS heuristic | "
          "20 random: median [worst, best] |\n|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k]['truth']:.3f} ({100 * r[k]['frac']:.0f}%)" for k in
                 ("energy-table", "selfgen-table", "zerolm", "uniform", "lonas-heuristic")]
        rnd = r["random-20"]
        print(f"| {r['budget']} | " + " | ".join(cells) + f" | {rnd['median']:.3f} [{rnd['worst']:.3f}, {rnd['best']:.3f}] |")


if __name__ == "__main__":
    main()
