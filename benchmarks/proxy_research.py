"""The variant search behind benchmarks/PROXY.md, on the FIT rows only.

    python benchmarks/proxy_research.py --data DIR [--rows fit|report]
    python benchmarks/proxy_research.py --data DIR --gamma   # zerolm-gamma vs its nearest baselines, paired

DIR holds ``nasbench-bert-flexibert/BERT_benchmark.json`` and ``lts-gpt2-archai/random_*_lm1b.json``
(default: ``$ZEROLM_PRUNE_DATA``, else ``data/`` at the top of the repository).

Every candidate is a data-free function of the random-init block matrices (no labels, no fitted
constant). Candidates are compared on the same 30% fit split that ``bench`` uses for alpha
(seed 0); the selection rule, fixed before looking at report rows, is: maximise the worst
margin over the best baseline across NAS-Bench-BERT (trained-as reading, the labels' most likely
models) and LTS GPT-2. ``--rows report`` prints the held-out rows for the write-up only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zerolm_prune.bench import lts, nasbench_bert  # noqa: E402
from zerolm_prune.bench.arch import Arch, circuit_capacity, draw_sq_mass  # noqa: E402
from zerolm_prune.bench.run import features, proxy_scores  # noqa: E402
from zerolm_prune.bench.spectral import mp_expectations  # noqa: E402
from zerolm_prune.proxy.alpha import exponent_by_sampling  # noqa: E402

#: where the labelled benchmark files live (``--data`` overrides)
DATA = Path(os.environ.get("ZEROLM_PRUNE_DATA") or ROOT / "data")


def candidates(arch: Arch, index: int, seed: int = 0) -> dict[str, float]:
    """Every variant tried, successes and failures, for one architecture."""
    rng = np.random.default_rng([seed, index])
    pairs = list(arch.matrices())
    mats = [m for _, m in pairs]
    layer = np.array([l for l, _ in pairs])
    sq = draw_sq_mass(mats, rng)
    cap = sq / np.array([min(m.rows, m.cols) for m in mats], dtype=np.float64)
    spec = [mp_expectations(m.rows, m.cols, m.std) for m in mats]
    nuc = np.array([s["nuclear"] for s in spec])
    erank = np.array([s["effective_rank"] for s in spec])
    attn = np.array([m.module == "attn" for m in mats])
    hidden = np.array([arch.blocks[l].hidden for l in layer], dtype=np.float64)
    heads = np.array([arch.blocks[l].heads for l in layer], dtype=np.float64)
    touch = np.array([m.rows == arch.blocks[l].hidden or m.cols == arch.blocks[l].hidden for l, m in pairs])
    per_block = lambda w: np.bincount(layer, weights=w, minlength=arch.num_layers)  # noqa: E731
    headwise = np.where(attn, sq / (hidden / heads), cap)
    circuits = [circuit_capacity(b) for b in arch.blocks]
    return {
        "circuit-capacity": sum(c["qk"] + c["ov"] + c["ffn"] for c in circuits),
        "circuit-capacity-log": float(sum(np.log(c["qk"] + c["ov"] + c["ffn"]) for c in circuits)),
        "zerolm-a1": cap.sum(),
        "zerolm-headwise": headwise.sum(),
        "capacity-energy": sq.sum(),
        "capacity-logsum": float(np.log(per_block(cap)).sum()),
        "log-block-energy": float(np.log(per_block(sq)).sum()),
        "sqrt-block-energy": float(np.sqrt(per_block(sq)).sum()),
        "sqrt-block-capacity": float(np.sqrt(per_block(cap)).sum()),
        "sqrt-matrix-energy": float(np.sqrt(sq).sum()),
        "spectral-nuclear": nuc.sum(),
        "spectral-erank": erank.sum(),
        "erank-capped-by-hidden": float(np.minimum(per_block(erank), [b.hidden for b in arch.blocks]).sum()),
        "interface-energy": sq[touch].sum(),
        "interface-nuclear": nuc[touch].sum(),
        "interface-erank": erank[touch].sum(),
        "interface-sqrt-block-nuclear": float(np.sqrt(per_block(nuc * touch)).sum()),
        "log-headwise-block": float(np.log(per_block(headwise)).sum()),
    }


def baselines(arch: Arch) -> dict[str, float]:
    return {"hidden-x-layers": arch.hidden * arch.num_layers, "nonemb-params": arch.nonembedding_params,
            "params": arch.params, "layers": arch.num_layers}


def split(n: int, seed: int = 0, fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """The same split as ``bench.run.evaluate`` (same seed, same permutation)."""
    perm = np.random.default_rng(seed).permutation(n)
    k = max(3, int(round(fraction * n)))
    return np.sort(perm[:k]), np.sort(perm[k:])


def paired_difference(a: np.ndarray, b: np.ndarray, y: np.ndarray, *, resamples: int = 1000,
                      seed: int = 0) -> tuple[float, float, float]:
    """tau(a) - tau(b) on the same rows, with a paired percentile bootstrap 95% interval.

    Why paired: two proxies scored on the same rows share the rows' noise, so the interval of the
    difference is much narrower than the overlap of two separate intervals suggests.
    """
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        i = rng.integers(len(y), size=len(y))
        diffs.append(kendalltau(a[i], y[i]).statistic - kendalltau(b[i], y[i]).statistic)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(kendalltau(a, y).statistic - kendalltau(b, y).statistic), float(lo), float(hi)


def gamma_report(data: Path = DATA) -> None:
    """zerolm-gamma (fitted on the fit rows, as ``bench`` fits it) minus the baselines nearest to it,
    on the report rows."""
    cases = [("nasbench-bert/trained-as", nasbench_bert.load(data / "nasbench-bert-flexibert" / "BERT_benchmark.json",
                                                             "trained-as"), ("hidden-x-layers", "depth-then-width")),
             ("lts/gpt2", lts.load(data / "lts-gpt2-archai" / "random_GPT2_lm1b.json"), ("nonemb-params", "magnitude")),
             ("lts/transxl", lts.load(data / "lts-gpt2-archai" / "random_TransXL_lm1b.json"), ("nonemb-params", "macs"))]
    print("zerolm-gamma minus baseline, Kendall tau on the report rows (paired bootstrap 95%)")
    for name, archs, others in cases:
        feat = features(archs, grad=False)
        y = np.array([a.label for a in archs])
        fit, rep = split(len(archs))
        choice = exponent_by_sampling(feat["attn_gamma"][fit], feat["ffn_gamma"][fit], y[fit])
        scores = proxy_scores(feat, 1.0, 1.0, grad=False, exponents={"zerolm-gamma": choice})
        for other in others:
            d, lo, hi = paired_difference(scores["zerolm-gamma"][rep], scores[other][rep], y[rep])
            print(f"{name:<26} gamma={choice.gamma:<4} - {other:<17} {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", choices=("fit", "report"), default="fit")
    parser.add_argument("--gamma", action="store_true", help="paired comparison of zerolm-gamma with its baselines")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the benchmark files (default: %(default)s)")
    args = parser.parse_args()
    data = args.data
    if args.gamma:
        gamma_report(data)
        return
    bert = data / "nasbench-bert-flexibert" / "BERT_benchmark.json"
    sets = {f"nasbench-bert/{r}": nasbench_bert.load(bert, r) for r in nasbench_bert.READINGS}
    sets["lts/gpt2"] = lts.load(data / "lts-gpt2-archai" / "random_GPT2_lm1b.json")
    sets["lts/transxl"] = lts.load(data / "lts-gpt2-archai" / "random_TransXL_lm1b.json")
    taus: dict[str, dict[str, float]] = {}
    for name, archs in sets.items():
        rows = split(len(archs))[0 if args.rows == "fit" else 1]
        y = np.array([a.label for a in archs])[rows]
        feats = [{**candidates(a, i), **baselines(a)} for i, a in enumerate(archs)]
        taus[name] = {k: float(kendalltau(np.array([f[k] for f in feats])[rows], y).statistic) for k in feats[0]}
    names = list(taus)
    base = set(baselines(sets[names[0]][0]))
    print(f"Kendall tau on the {args.rows} rows (seed 0, 30% fit split)")
    print(f"{'candidate':<30}" + "".join(f"{n.split('/')[-1]:>12}" for n in names) + f"{'worst margin':>14}")
    keys = list(taus[names[0]])
    rule = ("nasbench-bert/trained-as", "lts/gpt2")
    margin = {k: min(taus[s][k] - max(taus[s][b] for b in base) for s in rule) for k in keys}
    for k in sorted(keys, key=lambda k: -margin[k]):
        mark = "  (baseline)" if k in base else ""
        print(f"{k:<30}" + "".join(f"{taus[n][k]:>12.3f}" for n in names) + f"{margin[k]:>14.3f}{mark}")


if __name__ == "__main__":
    main()
