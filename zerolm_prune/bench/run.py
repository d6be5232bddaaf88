"""Score benchmark rows with every proxy and report rank correlations side by side.

Protocol (why it is built this way): anything with a free parameter fitted on labels (ZeroLM's
alpha by benchmark sampling) is fitted on a random ``fit_fraction`` of the rows and every proxy,
baselines included, is reported on the remaining rows, so no number is fitted on the rows it
is reported on. With a fixed ``--alpha`` nothing is fitted and all rows are reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..errors import UserError
from ..proxy.alpha import GAMMA_GRID, alpha_by_param_correlation, alpha_by_sampling, exponent_by_sampling, gamma_mix
from . import lts, nasbench_bert
from .arch import Arch, draw_abs_mass, draw_sq_mass
from .spectral import mp_expectations
from .stats import correlations
from .surrogate import expected_synflow, gradient_scores

#: proxies (ours or ZeroLM) vs baselines (what a proxy must beat)
PROXY_KINDS = {
    "zerolm": "proxy", "zerolm-paramcorr": "proxy", "zerolm-a1": "proxy",
    "capacity-energy": "proxy", "capacity-logsum": "proxy", "spectral-nuclear": "proxy",
    "spectral-erank": "proxy", "zerolm-headwise": "proxy", "zerolm-gamma": "proxy", "zerolm-gamma-draw": "proxy",
    "params": "baseline", "nonemb-params": "baseline", "macs": "baseline", "hidden-x-layers": "baseline",
    "depth-then-width": "baseline", "layers": "baseline", "magnitude": "baseline", "random": "baseline", "synflow": "baseline",
    "synflow-sampled": "baseline", "snip": "baseline",
}

#: the fitted-exponent proxies and the feature key each is computed from (``features``: attn_KEY,
#: ffn_KEY): the expectation over inits, and one drawn init per row
GAMMA_PROXIES = {"zerolm-gamma": "gamma", "zerolm-gamma-draw": "gamma_draw"}

#: our recommended data-free variant (see benchmarks/PROXY.md for how it was chosen)
RECOMMENDED = "spectral-erank"


def features(archs: list[Arch], *, seed: int = 0, grad: bool = True, seq_len: int = 128,
             progress: bool = False) -> dict[str, np.ndarray]:
    """Per-row quantities every proxy is computed from (random init drawn per row, seeded)."""
    keys = ("attn", "ffn", "attn_energy", "ffn_energy", "attn_headwise", "logsum", "magnitude", "nuclear", "erank",
            "layers", "hidden", "params", "nonemb", "macs", "synflow", "synflow_sampled", "snip")
    out = {k: np.zeros(len(archs)) for k in keys}
    # generalized capacity ||W||^2 / min(m, n)^gamma per module, for every gamma of the grid: the
    # expectation over inits (std^2 m n / min^gamma, what averaging many inits converges to) and one draw
    gammas = GAMMA_GRID
    for key in GAMMA_PROXIES.values():
        out[f"attn_{key}"] = np.zeros((len(archs), len(gammas)))
        out[f"ffn_{key}"] = np.zeros((len(archs), len(gammas)))
    iterator: Any = enumerate(archs)
    if progress:
        iterator = tqdm(iterator, total=len(archs), desc="scoring", unit="arch")
    for i, arch in iterator:
        rng = np.random.default_rng([seed, i])
        mats = [m for _, m in arch.matrices()]
        layer_of = np.array([l for l, _ in arch.matrices()])
        module = np.array([m.module for m in mats])
        sq = draw_sq_mass(mats, rng)
        short = np.array([min(m.rows, m.cols) for m in mats], dtype=np.float64)
        cap = sq / short
        out["attn"][i] = cap[module == "attn"].sum()
        powers = short[:, None] ** gammas[None, :]
        expected = np.array([m.std * m.std * m.size for m in mats])[:, None] / powers
        drawn = sq[:, None] / powers
        for name, value in (("gamma", expected), ("gamma_draw", drawn)):  # the keys of GAMMA_PROXIES
            out[f"attn_{name}"][i] = value[module == "attn"].sum(axis=0)
            out[f"ffn_{name}"][i] = value[module == "ffn"].sum(axis=0)
        out["ffn"][i] = cap[module == "ffn"].sum()
        out["attn_energy"][i] = sq[module == "attn"].sum()
        out["ffn_energy"][i] = sq[module == "ffn"].sum()
        per_layer = np.bincount(layer_of, weights=cap, minlength=arch.num_layers)
        out["logsum"][i] = float(np.log(per_layer).sum())
        out["magnitude"][i] = draw_abs_mass(mats, rng).sum()
        spec = [mp_expectations(m.rows, m.cols, m.std) for m in mats]
        out["nuclear"][i] = sum(s["nuclear"] for s in spec)
        eranks = np.array([s["effective_rank"] for s in spec])
        out["erank"][i] = eranks.sum()
        # per-head normalisation: each head's slice is a head_dim x hidden map of capacity
        # ||slice||^2 / head_dim, so a layer's attention counts ||W||^2 / head_dim per matrix
        head_dim = np.array([arch.blocks[l].hidden / arch.blocks[l].heads for l in layer_of])
        out["attn_headwise"][i] = (sq / head_dim)[module == "attn"].sum()
        out["synflow"][i] = expected_synflow(arch)
        out["layers"][i] = arch.num_layers
        out["hidden"][i] = arch.hidden
        out["params"][i] = arch.params
        out["nonemb"][i] = arch.nonembedding_params
        out["macs"][i] = sum(m.size for m in mats) + sum(2 * b.hidden * seq_len for b in arch.blocks)
        if grad:
            g = gradient_scores(arch, seed=seed * 100003 + i)
            out["synflow_sampled"][i], out["snip"][i] = g["synflow"], g["snip"]
    return out


def proxy_scores(feat: dict[str, np.ndarray], alpha: float, alpha_paramcorr: float, *, seed: int = 0,
                 grad: bool = True, exponents: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Every proxy's scores; ``exponents`` ({proxy name: ExponentChoice}) adds the fitted-gamma proxies."""
    n = len(feat["attn"])
    scores = {
        "zerolm": feat["ffn"] + alpha * feat["attn"],
        "zerolm-paramcorr": feat["ffn"] + alpha_paramcorr * feat["attn"],
        "zerolm-a1": feat["ffn"] + feat["attn"],
        "capacity-energy": feat["ffn_energy"] + feat["attn_energy"],
        "capacity-logsum": feat["logsum"],
        "spectral-nuclear": feat["nuclear"],
        "spectral-erank": feat["erank"],
        "zerolm-headwise": feat["ffn"] + feat["attn_headwise"],
        "params": feat["params"],
        "nonemb-params": feat["nonemb"],
        "macs": feat["macs"],
        "hidden-x-layers": feat["hidden"] * feat["layers"],
        # lexicographic: more layers first, wider breaks ties (the depth-over-width ordering that a
        # gamma > 1 capacity finds on NAS-Bench-BERT, as a trivial baseline it must also beat)
        "depth-then-width": feat["layers"] + feat["hidden"] / (feat["hidden"].max() + 1.0),
        "layers": feat["layers"],
        "magnitude": feat["magnitude"],
        "random": np.random.default_rng(seed + 7).random(n),
        "synflow": feat["synflow"],
    }
    for name, choice in (exponents or {}).items():
        key = GAMMA_PROXIES[name]
        j = int(np.flatnonzero(np.isclose(GAMMA_GRID, choice.gamma))[0])
        scores[name] = gamma_mix(feat[f"attn_{key}"][:, j], feat[f"ffn_{key}"][:, j], choice.angle)
    if grad:
        scores["synflow-sampled"] = feat["synflow_sampled"]
        scores["snip"] = feat["snip"]
    return scores


def evaluate(archs: list[Arch], *, alpha: str | float = "auto", fit_fraction: float = 0.3, seed: int = 0,
             bootstrap: int = 1000, grad: bool = True, seq_len: int = 128, progress: bool = False) -> dict[str, Any]:
    """Every proxy's Kendall tau / Spearman rho (with bootstrap 95% intervals) on the report rows."""
    labels = np.array([a.label for a in archs], dtype=np.float64)
    n = len(archs)
    feat = features(archs, seed=seed, grad=grad, seq_len=seq_len, progress=progress)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    info: dict[str, Any] = {}
    if alpha == "auto":
        if not 0 < fit_fraction < 1:
            raise UserError(f"--fit-fraction must be between 0 and 1, got {fit_fraction}")
        n_fit = max(3, int(round(fit_fraction * n)))
        fit, report = np.sort(perm[:n_fit]), np.sort(perm[n_fit:])
        choice = alpha_by_sampling(feat["attn"][fit], feat["ffn"][fit], labels[fit])
        alpha_value = choice.alpha
        info["alpha"] = choice.to_dict()
        exponents = {name: exponent_by_sampling(feat[f"attn_{key}"][fit], feat[f"ffn_{key}"][fit], labels[fit])
                     for name, key in GAMMA_PROXIES.items()}
        info["gamma"] = {name: c.to_dict() for name, c in exponents.items()}
    else:
        try:
            alpha_value = float(alpha)
        except ValueError:
            raise UserError(f"--alpha must be 'auto' or a number, got {alpha!r}") from None
        fit, report = np.array([], dtype=int), np.arange(n)
        info["alpha"] = {"alpha": alpha_value, "method": "given"}
        exponents = {}  # gamma is fitted on labels: only with --alpha auto
    # label-free: may look at every row's parameter count, never at a label
    paramcorr = alpha_by_param_correlation(feat["attn"], feat["ffn"], feat["params"])
    info["alpha_paramcorr"] = paramcorr.to_dict()
    scores = proxy_scores(feat, alpha_value, paramcorr.alpha, seed=seed, grad=grad, exponents=exponents)
    proxies = {}
    for name, s in scores.items():
        entry = {"kind": PROXY_KINDS.get(name, "proxy")}
        entry.update(correlations(s[report], labels[report], bootstrap=bootstrap, seed=seed))
        proxies[name] = entry
    return {"n": int(len(report)), "n_total": n, "n_fit": int(len(fit)), "seed": seed,
            "fit_rows": [int(i) for i in fit], **info, "recommended": RECOMMENDED, "proxies": proxies}


def format_table(result: dict[str, Any], title: str = "") -> str:
    lines = []
    if title:
        lines.append(title)
    a = result.get("alpha", {})
    lines.append(f"rows reported: {result['n']} (fit: {result.get('n_fit', 0)})   alpha={a.get('alpha')} "
                 f"({a.get('method')})   label-free alpha={result.get('alpha_paramcorr', {}).get('alpha')}")
    for name, g in result.get("gamma", {}).items():
        lines.append(f"{name}: gamma={g['gamma']} alpha={g['alpha']} (fit-row tau {g['tau_fit']:.3f})")
    lines.append(f"{'proxy':<18} {'kind':<8} {'kendall':>8} {'95% CI':>17} {'spearman':>9}")
    rows = sorted(result["proxies"].items(), key=lambda kv: -kv[1]["kendall"])
    for name, e in rows:
        ci = e["ci95"]
        mark = " *" if name == result.get("recommended") else ""
        lines.append(f"{name:<18} {e['kind']:<8} {e['kendall']:>8.3f} [{ci[0]:>6.3f}, {ci[1]:>6.3f}] "
                     f"{e['spearman']:>9.3f}{mark}")
    return "\n".join(lines)


def run_benchmark(name: str, path: str, *, reading: str = "proxy-code", kind: str | None = None,
                  **kwargs: Any) -> dict[str, Any]:
    """Load ``path`` as benchmark ``name`` (``nasbench-bert`` or ``lts``) and evaluate it."""
    if name == "nasbench-bert":
        archs = nasbench_bert.load(path, reading)
        result = evaluate(archs, seq_len=128, **kwargs)
        result["reading"] = reading
    elif name == "lts":
        archs = lts.load(path, kind)
        result = evaluate(archs, seq_len=192, **kwargs)
        result["kind"] = archs[0].extra.get("kind") if archs else kind
    else:  # pragma: no cover - the CLI restricts the choices
        raise ValueError(name)
    result["benchmark"] = name
    result["data"] = str(path)
    return result
