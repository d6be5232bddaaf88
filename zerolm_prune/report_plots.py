"""Proxy-vs-accuracy picture of an evaluation run: does the data-free score rank subnets right?

The question a pruning user asks of a proxy is rank agreement, so the plot states Kendall tau
and Spearman rho in its title; the full model is drawn as a reference line, not a point (it
has no proxy score under the budget).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import save_figure


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> dict[str, float | int | None]:
    """Kendall tau and Spearman rho (None when undefined: fewer than 2 points or no spread)."""
    from scipy.stats import kendalltau, spearmanr  # lazy: scipy is slow to import and only these statistics need it

    n = len(x)
    if n < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"kendall_tau": None, "spearman_rho": None, "n": n}
    tau = kendalltau(x, y).statistic
    rho = spearmanr(x, y).statistic
    clean = lambda v: None if v is None or not np.isfinite(v) else float(v)  # noqa: E731
    return {"kendall_tau": clean(tau), "spearman_rho": clean(rho), "n": n}


def proxy_scatter(candidates: list[dict[str, Any]], path: str | Path, *, title: str = "") -> dict[str, Any] | None:
    """Write the scatter PNG atomically; returns the correlation, None with fewer than 2 subnets."""
    import matplotlib  # lazy: matplotlib only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [c for c in candidates if c.get("score") is not None and c.get("mean") is not None]
    if len(points) < 2:
        return None
    x = [float(c["score"]) for c in points]
    y = [float(c["mean"]) for c in points]
    corr = rank_correlation(x, y)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    ax.scatter(x, y, s=36, color="tab:blue", zorder=3)
    for c, xi, yi in zip(points, x, y):
        ax.annotate(str(c["name"]), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    full = next((c for c in candidates if c.get("name") == "full" and c.get("mean") is not None), None)
    if full is not None:
        ax.axhline(float(full["mean"]), color="gray", ls="--", lw=1, label=f"full model ({full['mean']:.3f})")
        ax.legend(loc="lower right", fontsize=8)
    fmt = lambda v: "n/a" if v is None else f"{v:+.3f}"  # noqa: E731
    ax.set_title((title + "\n" if title else "")
                 + f"Kendall tau {fmt(corr['kendall_tau'])}, Spearman rho {fmt(corr['spearman_rho'])} (n={corr['n']})",
                 fontsize=9)
    ax.set_xlabel("proxy score (data-free)")
    ax.set_ylabel("mean accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()

    save_figure(fig, path)
    return corr
