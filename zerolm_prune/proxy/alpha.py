"""Choosing alpha in ``S = S_FFN + alpha * S_Attn``.

Two strategies, named after what ZeroLM (arXiv 2503.18646) describes:

* ``alpha_by_sampling`` -- "benchmark sampling", as the paper describes it: on a small
  *labelled* sample of architectures, sweep alpha over [-1.5, 1.5] in steps of 0.1, take the two
  alphas with the largest |Kendall tau| against the labels and average them. Needs labels;
  fit it on rows you do not report on.
* ``alpha_by_param_correlation`` -- the paper's second, label-free strategy is called a
  "self-parameter correlation heuristic"; its exact form is NOT public. Our reading: choose the
  alpha whose S correlates best (Kendall tau) with the architectures' own parameter counts, on
  the same grid. This is our interpretation, not the authors' code.

Both take per-architecture ``S_Attn`` and ``S_FFN`` arrays, so they work for benchmark rows and
for subnets drawn from a ``CapacityTable`` (``param_correlation_alpha_for_table``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from .capacity import CapacityTable

ALPHA_GRID = np.round(np.arange(-15, 16) / 10.0, 1)


@dataclass
class AlphaChoice:
    """The chosen alpha and the tau of every grid point (for plots and reports)."""

    alpha: float
    method: str
    taus: dict[float, float] = field(default_factory=dict)
    n: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "method": self.method, "n": self.n,
                "taus": {f"{k:.1f}": v for k, v in self.taus.items()}}


def _taus(attn: np.ndarray, ffn: np.ndarray, target: np.ndarray, grid: np.ndarray) -> dict[float, float]:
    from scipy.stats import kendalltau  # lazy: scipy is slow to import and only these statistics need it

    attn, ffn, target = (np.asarray(v, dtype=np.float64) for v in (attn, ffn, target))
    out = {}
    for a in grid:
        tau = kendalltau(ffn + a * attn, target).statistic
        out[float(a)] = 0.0 if np.isnan(tau) else float(tau)
    return out


def alpha_by_sampling(attn: Any, ffn: Any, labels: Any, *, grid: Any = ALPHA_GRID, signed: bool = False) -> AlphaChoice:
    """ZeroLM's benchmark sampling: mean of the two grid alphas with the largest |tau|.

    ``labels`` are higher-is-better (pass -perplexity). ``signed=True`` ranks by tau instead of
    |tau| (the paper says |tau|; a strongly *negative* tau would rank architectures backwards, so
    the signed reading is offered for comparison).
    """
    labels = np.asarray(labels, dtype=np.float64)
    if labels.size < 3:
        raise UserError(f"alpha by sampling needs at least 3 labelled architectures, got {labels.size}")
    taus = _taus(attn, ffn, labels, np.asarray(grid))
    key = (lambda a: taus[a]) if signed else (lambda a: abs(taus[a]))
    best = sorted(taus, key=lambda a: (-key(a), abs(a), a))[:2]
    return AlphaChoice(round(float(np.mean(best)), 4), "sampling" + ("-signed" if signed else ""), taus, int(labels.size))


def alpha_by_param_correlation(attn: Any, ffn: Any, params: Any, *, grid: Any = ALPHA_GRID) -> AlphaChoice:
    """Label-free: the grid alpha whose S has the largest Kendall tau with the parameter counts."""
    params = np.asarray(params, dtype=np.float64)
    taus = _taus(attn, ffn, params, np.asarray(grid))
    best = sorted(taus, key=lambda a: (-taus[a], abs(a), a))[0]
    return AlphaChoice(float(best), "param-correlation", taus, int(params.size))


def param_correlation_alpha_for_table(table: "CapacityTable", *, samples: int = 2000, seed: int = 0,
                                      grid: Any = ALPHA_GRID) -> AlphaChoice:
    """The label-free alpha for a pruning space: uniform random subnets of the table, S vs params."""
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(len(opts), size=samples) for opts in table.options], axis=1)
    attn = sum(table.attn[i][idx[:, i]] for i in range(table.num_layers))
    ffn = sum(table.ffn[i][idx[:, i]] for i in range(table.num_layers))
    return alpha_by_param_correlation(attn, ffn, table.total_params(idx), grid=grid)


# ---- generalized capacity: the exponent of min(m, n) fitted together with the mix ------------------
#: exponents of min(m, n) tried: 0 is total energy ||W||_F^2, 1 is ZeroLM's mean squared sigma
GAMMA_GRID = np.round(np.arange(0, 21) / 10.0, 1)
#: mixing angles: S = cos(t) S_FFN + sin(t) S_Attn covers every ratio alpha = tan(t), attention-only included
ANGLE_GRID = np.round(np.linspace(-np.pi / 2, np.pi / 2, 37), 6)


@dataclass
class ExponentChoice:
    """The fitted (gamma, mixing angle) of the generalized capacity, with its fit-row tau."""

    gamma: float
    angle: float
    tau: float
    n: int
    method: str = "sampling"

    @property
    def alpha(self) -> float:
        """The equivalent ZeroLM alpha (S_FFN + alpha S_Attn up to scale); inf when attention-only."""
        c = float(np.cos(self.angle))
        return float("inf") if abs(c) < 1e-6 else round(float(np.sin(self.angle)) / c, 4)  # grid rounds pi/2

    def to_dict(self) -> dict[str, Any]:
        alpha = self.alpha
        return {"gamma": self.gamma, "angle": self.angle, "alpha": alpha if np.isfinite(alpha) else "inf",
                "tau_fit": self.tau, "n": self.n, "method": self.method}


def gamma_mix(attn: np.ndarray, ffn: np.ndarray, angle: float) -> np.ndarray:
    """``cos(t) S_FFN + sin(t) S_Attn``; at t = pi/2 exactly attention-only (no float residue of cos)."""
    c = 0.0 if abs(abs(angle) - np.pi / 2) < 1e-6 else float(np.cos(angle))  # the grid rounds pi/2
    mix = c * np.asarray(ffn, dtype=np.float64) + float(np.sin(angle)) * np.asarray(attn, dtype=np.float64)
    # 10 significant digits: equal shape formulas summed in a different order must tie, not be
    # ranked by the last bit of a float sum (a one-init draw differs far above this precision)
    return np.array([float(f"{v:.10g}") for v in mix.ravel()]).reshape(mix.shape)


def exponent_by_sampling(attn: Any, ffn: Any, labels: Any, *, gammas: Any = GAMMA_GRID,
                         angles: Any = ANGLE_GRID) -> ExponentChoice:
    """Fit gamma and the attention/FFN mix on a labelled sample, as ZeroLM fits alpha.

    ``attn`` and ``ffn`` are ``(rows, len(gammas))``: each row's summed ``||W||_F^2 / min(m, n)^gamma``
    per module. Why an exponent: ZeroLM's 1/min(m, n) fixes how capacity grows with a matrix's
    rank; gamma = 0 makes it grow like parameters (width^2), gamma > 1 makes width pay less than
    depth. Which one ranks trained models best depends on the benchmark, so it is fitted on a sample,
    never on the rows it is reported on. The grid point with the largest (signed) Kendall tau wins;
    ties go to the point nearest ZeroLM as published (gamma 1, alpha 1), the least departure.
    """
    from scipy.stats import kendalltau  # lazy: scipy is slow to import and only these statistics need it

    attn, ffn = np.asarray(attn, dtype=np.float64), np.asarray(ffn, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if labels.size < 3:
        raise UserError(f"gamma by sampling needs at least 3 labelled architectures, got {labels.size}")
    best: tuple[float, float, float, float] | None = None  # (-tau, departure, gamma, angle)
    for j, gamma in enumerate(np.asarray(gammas, dtype=np.float64)):
        for angle in np.asarray(angles, dtype=np.float64):
            tau = kendalltau(gamma_mix(attn[:, j], ffn[:, j], angle), labels).statistic
            tau = -1.0 if np.isnan(tau) else float(tau)
            key = (-round(tau, 12), abs(gamma - 1.0) + abs(angle - np.pi / 4), float(gamma), float(angle))
            if best is None or key < best:
                best = key
    assert best is not None
    return ExponentChoice(best[2], best[3], -best[0], int(labels.size))
