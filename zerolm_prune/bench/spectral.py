"""Exact-SVD spectral variants of ZeroLM capacity, for the proxy benchmarks (``zerolm-prune bench``).

ZeroLM's C(W) is the mean *squared* singular value, which needs no SVD. Other summaries of the
spectrum are plausible capacity measures too, and cost an SVD each:

* ``capacity``       mean sigma^2 (= ZeroLM, for cross-checks)
* ``mean_sigma``     mean sigma
* ``nuclear``        sum sigma (nuclear norm: rank times mean sigma)
* ``energy``         sum sigma^2 (= ||W||_F^2, capacity without the 1/min(m,n))
* ``effective_rank`` exp(entropy of sigma / sum sigma) (Roy & Vetterli, 2007)
* ``stable_rank``    ||W||_F^2 / sigma_max^2

``mp_expectations`` gives the same
quantities for an i.i.d. Gaussian matrix at init from the Marchenko-Pastur law, so random-init
benchmarks can use them without building or decomposing thousands of matrices.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch

VARIANTS = ("capacity", "mean_sigma", "nuclear", "energy", "effective_rank", "stable_rank")


def spectrum_stats(sigma: Any) -> dict[str, float]:
    """Every variant from a vector of singular values (of an m x n matrix, len = min(m, n))."""
    s = np.asarray(sigma, dtype=np.float64)
    if s.size == 0 or not np.any(s > 0):
        return {k: 0.0 for k in VARIANTS}
    sq = s * s
    p = s / s.sum()
    nz = p[p > 0]
    return {
        "capacity": float(sq.mean()),
        "mean_sigma": float(s.mean()),
        "nuclear": float(s.sum()),
        "energy": float(sq.sum()),
        "effective_rank": float(math.exp(-(nz * np.log(nz)).sum())),
        "stable_rank": float(sq.sum() / sq.max()),
    }


def matrix_stats(weight: Any) -> dict[str, float]:
    """``spectrum_stats`` of one matrix via ``torch.linalg.svdvals`` in float64."""
    w = torch.as_tensor(weight).detach().double()
    if min(w.shape) == 0:
        return spectrum_stats([])
    return spectrum_stats(torch.linalg.svdvals(w).numpy())


# ---- Marchenko-Pastur expectations at init --------------------------------------------------------
@lru_cache(maxsize=4096)
def _mp_moments(ratio: float) -> tuple[float, float, float]:
    """E[s], E[s log s], s_max for s = sqrt(x), x ~ MP(ratio) with unit variance, ratio <= 1."""
    lam = float(ratio)
    a, b = (1 - math.sqrt(lam)) ** 2, (1 + math.sqrt(lam)) ** 2
    # substitute x = a + (b - a) * (1 - cos t) / 2 to remove the sqrt edge singularities
    t = (np.arange(4000) + 0.5) * (math.pi / 4000)
    x = a + (b - a) * (1 - np.cos(t)) / 2
    dx = (b - a) * np.sin(t) / 2 * (math.pi / 4000)
    dens = np.sqrt(np.maximum((b - x) * (x - a), 0.0)) / (2 * math.pi * lam * x)
    w = dens * dx
    w = w / w.sum()
    s = np.sqrt(x)
    return float((w * s).sum()), float((w * s * np.log(s)).sum()), float(math.sqrt(b))


def mp_expectations(rows: int, cols: int, std: float) -> dict[str, float]:
    """Large-matrix expectations of every variant for an i.i.d. N(0, std^2) ``rows x cols`` matrix.

    With m >= n, sigma_i^2 / (m std^2) follows MP(n/m); sums become n times expectations, and the
    effective-rank entropy is ``log n + log E[s] - E[s log s] / E[s]``. Accurate to a few parts in
    a thousand for matrices of a few hundred rows (the test checks against svdvals).
    """
    m, n = max(rows, cols), min(rows, cols)
    if n == 0:
        return {k: 0.0 for k in VARIANTS}
    es, eslogs, smax = _mp_moments(round(n / m, 4))
    scale = std * math.sqrt(m)
    mean_sigma = scale * es
    return {
        "capacity": std * std * m,
        "mean_sigma": mean_sigma,
        "nuclear": n * mean_sigma,
        "energy": std * std * m * n,
        "effective_rank": n * es * math.exp(-eslogs / es),
        "stable_rank": n / (smax * smax),
    }
