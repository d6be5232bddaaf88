"""Sample the SmolLM2-135M subnets whose perplexity is the ranking ground truth.

Two disjoint splits drawn with different seeds: ``fit`` (rankers may be tuned on it) and ``report``
(numbers in RANKING.md). Kinds: ``eq0.75`` / ``eq0.9`` (block params within +-1% of 0.75 / 0.9 of
the full model's block params: the hard, equal-budget case), ``random`` (uniform per-layer choice),
plus ``uniform`` (the ten same-shape-everywhere subnets), the LoNAS ``heuristic`` and ``full``.

Equal-budget sampling: per-layer choices drawn with probability proportional to exp(lam * params)
(lam solved so the expected total hits the target), rejected outside the +-1% band. Exponential
tilting leaves the distribution conditional on the total unchanged, so accepted subnets are close
to uniform among all subnets inside the band.

    python benchmarks/ranking/make_set.py            # writes benchmarks/ranking/subnets.json
"""

from __future__ import annotations

import itertools
import random

import numpy as np

from common import FFN, FULL_BLOCKS, HEADS, HERE, block_params, space, subnet_params, write_json

OPTIONS = [(h, f) for h in HEADS for f in FFN]
P = np.array([block_params(h, f) for h, f in OPTIONS], dtype=float)


def _probs(lam: float) -> np.ndarray:
    z = lam * (P - P.max()) / P.max()
    w = np.exp(z - z.max())
    return w / w.sum()


def _solve_lambda(target_per_layer: float) -> float:
    lo, hi = -200.0, 200.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if (_probs(mid) * P).sum() < target_per_layer:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def equal_budget(frac: float, n: int, rng: random.Random, seen: set) -> list[list[tuple[int, int]]]:
    lam = _solve_lambda(frac * FULL_BLOCKS / 30)
    probs = _probs(lam)
    out = []
    while len(out) < n:
        pick = rng.choices(range(len(OPTIONS)), weights=probs, k=30)
        total = P[pick].sum()
        if abs(total / (frac * FULL_BLOCKS) - 1) <= 0.01 and tuple(pick) not in seen:
            seen.add(tuple(pick))
            out.append([OPTIONS[i] for i in pick])
    return out


def uniform_random(n: int, rng: random.Random, seen: set) -> list[list[tuple[int, int]]]:
    out = []
    while len(out) < n:
        pick = tuple(rng.randrange(len(OPTIONS)) for _ in range(30))
        if pick not in seen:
            seen.add(pick)
            out.append([OPTIONS[i] for i in pick])
    return out


def entry(kind: str, split: str, layers: list[tuple[int, int]]) -> dict:
    from zerolm_prune.space import LayerChoice, Subnet

    sub = Subnet([LayerChoice(h, f) for h, f in layers])
    return {"kind": kind, "split": split, "params_frac": subnet_params(sub) / FULL_BLOCKS, "subnet": sub.to_dict()}


def main() -> None:
    seen: set = set()
    rows = [entry("full", "common", [(9, 1536)] * 30)]
    counts = {"fit": (20, 20, 15), "report": (30, 30, 15)}
    for split, seed in (("fit", 1001), ("report", 2002)):
        rng = random.Random(seed)
        n75, n90, nrand = counts[split]
        rows += [entry("eq0.75", split, s) for s in equal_budget(0.75, n75, rng, seen)]
        rows += [entry("eq0.9", split, s) for s in equal_budget(0.9, n90, rng, seen)]
        rows += [entry("random", split, s) for s in uniform_random(nrand, rng, seen)]
        if split == "fit":  # measured right after the fit split, so tuning can start early
            heur = space().heuristic()
            rows.append(entry("heuristic", "common", [(c.heads, c.ffn) for c in heur.layers]))
            rows += [entry("uniform", "common", [(h, f)] * 30) for h, f in itertools.product(HEADS, FFN) if (h, f) != (9, 1536)]
    for i, r in enumerate(rows):
        r["id"] = i
    write_json(HERE / "subnets.json", {"model": "smollm2-135m", "space": "heads {9,6} x ffn {1536,1344,1152,960,768}, prefix",
                                       "full_block_params": FULL_BLOCKS, "subnets": rows})
    print(f"{len(rows)} subnets -> {HERE / 'subnets.json'}")


if __name__ == "__main__":
    main()
