"""The Pareto-front picture of ``zerolm-prune rank``: budget vs best score, chosen subnets marked.

Why a picture: the front shows how much score each extra parameter buys near the budget, which a
table of ten subnets cannot. Matplotlib runs headless (Agg) and the PNG is written atomically.
"""

from __future__ import annotations

import os
import tempfile
from typing import Sequence


def _human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def plot_front(out: str, front: Sequence[tuple[float, float]], chosen: Sequence[tuple[float, float]], *,
               budget: float | None = None, by: str = "params", references: dict[str, tuple[float, float]] | None = None,
               title: str | None = None) -> str:
    """Draw the front (``(cost, score)`` pairs, cost ascending) and mark ``chosen`` subnets.

    ``budget`` draws a vertical line; ``references`` marks named subnets (e.g. the full model or
    the LoNAS heuristic subnet). Returns ``out``. The file appears only once complete.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    if front:
        xs, ys = zip(*front)
        ax.step(xs, ys, where="post", color="0.35", lw=1.2, label=f"Pareto front ({len(front):,} points)")
        if len(front) <= 400:
            ax.plot(xs, ys, ".", color="0.35", ms=3)
    if chosen:
        cx, cy = zip(*chosen)
        ax.scatter(cx[1:], cy[1:], s=36, color="tab:orange", edgecolor="k", lw=0.5, zorder=3,
                   label=f"top {len(chosen)} under the budget")
        ax.scatter(cx[:1], cy[:1], s=90, marker="*", color="tab:red", edgecolor="k", lw=0.5, zorder=4, label="best")
    for i, (name, (x, y)) in enumerate((references or {}).items()):
        ax.scatter([x], [y], s=50, marker="D", color=f"C{(i + 2) % 10}", edgecolor="k", lw=0.5, zorder=3, label=name)
    if budget is not None:
        ax.axvline(budget, color="tab:red", ls="--", lw=1, label=f"budget {_human(budget)}")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _human(v)))
    ax.set_xlabel("parameters (whole model)" if by == "params" else "MACs per token")
    ax.set_ylabel("ZeroLM score  S = S_FFN + alpha * S_Attn")
    ax.set_title(title or "best score per budget", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".front-", suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
