"""The Pareto-front picture of ``zerolm-prune rank``: budget vs best score, chosen subnets marked.

Why a picture: the front shows how much score each extra parameter buys near the budget, which a
table of ten subnets cannot. Matplotlib runs headless (Agg) and the PNG is written atomically.
"""

from __future__ import annotations

import math
from typing import Sequence

from .atomic import save_figure


def _human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def _fine_formatter(lo: float, hi: float):
    """Tick labels with enough decimals to tell ticks of a narrow range apart (107.41M, 107.42M)."""
    big = max(abs(lo), abs(hi))
    scale, suffix = next(((s, u) for s, u in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")) if big >= s), (1.0, ""))
    span = max(hi - lo, 1e-12) / scale
    decimals = max(0, math.ceil(-math.log10(span)) + 1)
    return lambda v, _: f"{v / scale:.{decimals}f}{suffix}"


def _zoom(ax, front, chosen, budget) -> None:
    """An inset around the chosen subnets: on the full front they sit on one pixel."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator  # lazy: matplotlib only when a figure is drawn

    cx = [c for c, _ in chosen]
    cy = [s for _, s in chosen]
    y_all = [s for _, s in front]
    span_y = max(y_all) - min(y_all) or 1.0
    if max(cy) - min(cy) > 0.05 * span_y:
        return  # already distinguishable
    x_lo, x_hi = min(cx), max(cx + ([budget] if budget is not None else []))
    pad_x = max(x_hi - x_lo, 1e-6 * max(abs(x_hi), 1.0)) * 0.5
    near = [(c, s) for c, s in front if x_lo - pad_x <= c <= x_hi + pad_x]
    ys = cy  # the chosen scores set the scale; the front is drawn where it passes through
    pad_y = max(max(ys) - min(ys), 1e-9 * max(abs(max(ys)), 1.0)) * 0.3
    inset = ax.inset_axes([0.16, 0.52, 0.34, 0.4])
    if near:
        nx, ny = zip(*near)
        inset.step(nx, ny, where="post", color="0.35", lw=1)
    inset.scatter(cx[1:], cy[1:], s=24, color="tab:orange", edgecolor="k", lw=0.5, zorder=3)
    inset.scatter(cx[:1], cy[:1], s=60, marker="*", color="tab:red", edgecolor="k", lw=0.5, zorder=4)
    if budget is not None:
        inset.axvline(budget, color="tab:red", ls="--", lw=1)
    inset.set_xlim(x_lo - pad_x, x_hi + pad_x)
    inset.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    inset.tick_params(labelsize=6)
    inset.xaxis.set_major_formatter(FuncFormatter(_fine_formatter(x_lo - pad_x, x_hi + pad_x)))
    inset.xaxis.set_major_locator(MaxNLocator(4))
    inset.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.8g}"))
    inset.yaxis.set_major_locator(MaxNLocator(5))
    inset.set_title("zoom: chosen subnets", fontsize=7)
    inset.grid(alpha=0.3)


def plot_front(out: str, front: Sequence[tuple[float, float]], chosen: Sequence[tuple[float, float]], *,
               budget: float | None = None, by: str = "params", references: dict[str, tuple[float, float]] | None = None,
               title: str | None = None, exact: bool = True,
               ylabel: str = "ZeroLM score  S = S_FFN + alpha * S_Attn") -> str:
    """Draw the front (``(cost, score)`` pairs, cost ascending) and mark ``chosen`` subnets.

    ``budget`` draws a vertical line; ``references`` marks named subnets (e.g. the full model or
    the LoNAS heuristic subnet). ``exact=False`` labels a merged front (``search.front_for_plot``).
    Returns ``out``. The file appears only once complete.
    """
    import matplotlib  # lazy: matplotlib only when a figure is drawn

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    if front:
        xs, ys = zip(*front)
        label = f"{'exact' if exact else 'approximate'} Pareto front ({len(front):,} points)"
        ax.step(xs, ys, where="post", color="0.35", lw=1.2, label=label)
        if len(front) <= 400:
            ax.plot(xs, ys, ".", color="0.35", ms=3)
    if chosen:
        cx, cy = zip(*chosen)
        ax.scatter(cx[1:], cy[1:], s=36, color="tab:orange", edgecolor="k", lw=0.5, zorder=3,
                   label=f"top {len(chosen)} under the budget")
        ax.scatter(cx[:1], cy[:1], s=90, marker="*", color="tab:red", edgecolor="k", lw=0.5, zorder=4, label="best")
    ref_colors = ["tab:green", "tab:purple", "tab:blue", "tab:brown"]
    for i, (name, (x, y)) in enumerate((references or {}).items()):
        ax.scatter([x], [y], s=50, marker="D", color=ref_colors[i % len(ref_colors)], edgecolor="k", lw=0.5,
                   zorder=3, label=name)
    if budget is not None:
        ax.axvline(budget, color="tab:red", ls="--", lw=1, label=f"budget {_human(budget)}")
    if chosen and front and len(chosen) > 1:
        _zoom(ax, front, chosen, budget)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _human(v)))
    ax.set_xlabel("parameters (whole model)" if by == "params" else "MACs per token")
    ax.set_ylabel(ylabel)
    ax.set_title(title or "best score per budget", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()

    save_figure(fig, out)
    return out
