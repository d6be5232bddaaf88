"""Rank correlations with bootstrap intervals (percentile, resampling rows with replacement)."""

from __future__ import annotations

from typing import Any

import numpy as np


def correlations(scores: Any, labels: Any, *, bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Kendall tau-b and Spearman rho of ``scores`` vs ``labels`` (both higher-is-better).

    ``ci95`` is the 95% percentile interval of Kendall tau over ``bootstrap`` resamples,
    ``spearman_ci95`` the same for rho. Constant scores give 0 (no ranking information).
    """
    from scipy.stats import kendalltau, spearmanr  # lazy: scipy is slow to import and only these statistics need it

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)

    def both(a, b):
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            return 0.0, 0.0
        return float(kendalltau(a, b).statistic), float(spearmanr(a, b).statistic)

    tau, rho = both(s, y)
    rng = np.random.default_rng(seed)
    taus, rhos = [], []
    for _ in range(int(bootstrap)):
        idx = rng.integers(len(s), size=len(s))
        t, r = both(s[idx], y[idx])
        taus.append(t)
        rhos.append(r)
    ci = [float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5))] if bootstrap else [tau, tau]
    rci = [float(np.percentile(rhos, 2.5)), float(np.percentile(rhos, 97.5))] if bootstrap else [rho, rho]
    return {"kendall": tau, "spearman": rho, "ci95": ci, "spearman_ci95": rci}
