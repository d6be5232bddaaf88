"""MiniLM-L6 (all-MiniLM-L6-v2): rankers vs the encoder metric, fidelity on real sentences.

    python benchmarks/ranking/minilm.py          # writes minilm.json and prints the table

Space per layer: heads {12, 8, 6} (head_dim 32), FFN {1536, 1152, 768}, prefix slicing.
Ground truth: mean cosine between the subnet's and the full model's sentence embeddings (mean
pooling, as sentence-transformers does for this model) on 128 real GLUE SST-2 validation
sentences. Subnets: fit / report splits (seeds 11 / 22) of equal-budget (0.75 and 0.9 of block
params, +-1%) and uniformly random subnets. Rankers: params, zerolm (alpha 1), energy, and the
data-free fidelity on random tokens (no sentences), and selfgen-table: the additive per-layer
table that the default ``selfgen`` ranker searches with on encoders (stage 1; fidelity re-ranks).

The random-token batch shape (sequences x length) is chosen here on the fit rows only: the shape
with the best mean Kendall tau over the three fit subsets, averaged over two token seeds. The
report rows then score the package default (``ENCODER_SEQS`` x ``ENCODER_LENGTH``, which must be
that choice) and, for comparison, the shape used before (16 x 64).
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import torch
from common import HERE, write_json
from correlate import boot
from scipy.stats import kendalltau, spearmanr
from tqdm import tqdm

HEADS, FFN = [12, 8, 6], [1536, 1152, 768]
LENGTHS, SEQS, SEEDS = (4, 6, 8, 12, 16, 24, 32, 48, 64), (16, 64, 128), (0, 1)
KINDS = ("eq0.75", "eq0.9", "random")


def main() -> None:
    torch.set_num_threads(1)
    import datasets

    from zerolm_prune.assets import commonsense_data_dir, minilm_l6
    from zerolm_prune.cost import block_params
    from zerolm_prune.models import get_adapter
    from zerolm_prune.rankers import get_ranker
    from zerolm_prune.rankers.apply import sliced
    from zerolm_prune.rankers.selfgen import (
        ENCODER_LENGTH,
        ENCODER_SEQS,
        encoder_fidelity,
        random_tokens,
    )
    from zerolm_prune.space import LayerSpace, SearchSpace, Subnet

    model, tok = minilm_l6()
    adapter = get_adapter(model)
    sp = SearchSpace([LayerSpace(list(HEADS), list(FFN)) for _ in range(6)])
    opts = sp.options(0)
    cost = np.array([block_params(adapter.geometry(0), c, config=adapter.config) for c in opts], dtype=float)
    full_cost = cost[0] * 6

    def sample(kind: str, rng: random.Random) -> list[int]:
        while True:
            pick = [rng.randrange(len(opts)) for _ in range(6)]
            frac = cost[pick].sum() / full_cost
            if kind == "random" or abs(frac / float(kind[2:]) - 1) <= 0.01:
                return pick

    rows, seen = [], set()
    for split, seed in (("fit", 11), ("report", 22)):
        rng = random.Random(seed)
        for kind, n in (("eq0.75", 15), ("eq0.9", 15), ("random", 15)):
            k = 0
            for _ in range(20000):
                if k == n:
                    break
                pick = tuple(sample(kind, rng))
                if pick in seen:
                    continue
                seen.add(pick)
                rows.append({"split": split, "kind": kind, "pick": list(pick), "params_frac": float(cost[list(pick)].sum() / full_cost)})
                k += 1
    subnets = [Subnet([opts[i] for i in r["pick"]]) for r in rows]

    ds = datasets.load_from_disk(str(commonsense_data_dir() / "glue" / "sst2" / "validation"))
    sents = list(dict.fromkeys(ds["sentence"]))[:128]
    enc = tok(sents, padding=True, truncation=True, max_length=48, return_tensors="pt")

    def embed() -> torch.Tensor:
        out = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        return (out * m).sum(1) / m.sum(1)

    with torch.no_grad():
        ref = embed()
        for r, s in tqdm(list(zip(rows, subnets)), desc="minilm truth"):
            with sliced(model, s):
                r["truth_cosine"] = float(torch.nn.functional.cosine_similarity(embed(), ref, dim=-1).mean())
    fit = [i for i, r in enumerate(rows) if r["split"] == "fit"]
    y_fit = np.array([rows[i]["truth_cosine"] for i in fit])
    grid = []
    for length, seqs in tqdm(list(itertools.product(LENGTHS, SEQS)), desc="fidelity shape (fit rows)"):
        taus = []
        for seed in SEEDS:
            v = encoder_fidelity(model, [subnets[i] for i in fit], adapter=adapter,
                                 ids=random_tokens(model.config, seqs=seqs, length=length, seed=seed))
            taus.append([kendalltau(v[m], y_fit[m])[0] for m in
                         (np.array([rows[i]["kind"] == k for i in fit]) for k in KINDS)])
        grid.append({"length": length, "seqs": seqs, "fit_tau": np.mean(taus, axis=0).tolist(),
                     "fit_mean": float(np.mean(taus))})
    best = max(grid, key=lambda g: g["fit_mean"])
    print(f"fit-split choice: {best['seqs']} sequences x {best['length']} tokens (mean fit tau {best['fit_mean']:.3f})")
    if (best["seqs"], best["length"]) != (ENCODER_SEQS, ENCODER_LENGTH):
        print(f"WARNING: the package default is {ENCODER_SEQS} x {ENCODER_LENGTH}; update rankers/selfgen.py")
    scores = {name: get_ranker(name, **({"progress": False} if name == "fidelity" else {})).score(model, subnets, space=sp)
              for name in ("params", "zerolm", "energy", "fidelity")}
    table = get_ranker("selfgen", progress=False).layer_values(model, sp)  # its first stage on encoders
    scores["selfgen-table"] = np.array([sum(table[l][i] for l, i in enumerate(r["pick"])) for r in rows])
    scores["fidelity-16x64"] = encoder_fidelity(model, subnets, adapter=adapter,
                                                ids=random_tokens(model.config, seqs=16, length=64))
    for name, vals in scores.items():
        for r, v in zip(rows, vals):
            r[name] = float(v)
    table = []
    for split in ("fit", "report"):
        for subset in (*KINDS, "overall"):
            sel = [r for r in rows if r["split"] == split and (subset == "overall" or r["kind"] == subset)]
            y = np.array([r["truth_cosine"] for r in sel])
            for name in scores:
                x = np.array([r[name] for r in sel])
                table.append({"split": split, "subset": subset, "ranker": name, "n": len(sel),
                              "tau": boot(x, y, kendalltau), "rho": boot(x, y, spearmanr)})
    write_json(HERE / "minilm.json", {"space": "heads {12,8,6} x ffn {1536,1152,768}, prefix", "truth": "cosine to full model, 128 SST-2 sentences",
                                      "fidelity_shape": {"seqs": ENCODER_SEQS, "length": ENCODER_LENGTH, "grid": grid},
                                      "rows": rows, "table": table})
    print("| split | subset | ranker | n | Kendall tau [95% CI] | Spearman rho [95% CI] |\n|---|---|---|---|---|---|")
    for t in table:
        a, b = t["tau"], t["rho"]
        print(f"| {t['split']} | {t['subset']} | {t['ranker']} | {t['n']} | {a[0]:.2f} [{a[1]:.2f}, {a[2]:.2f}] | {b[0]:.2f} [{b[1]:.2f}, {b[2]:.2f}] |")


if __name__ == "__main__":
    main()
