"""95% intervals for accuracies measured on few documents, so a report shows its own noise.

Why: at ``--limit 10`` one document moves an accuracy by 0.1, and the dense model can "lose" to its
pruned subnets by chance. Each task's accuracy gets a Wilson score interval (sound near 0 and 1,
unlike the normal one); the mean over tasks gets the normal interval of a mean of independent
binomials, sqrt(sum p_i (1 - p_i) / n_i) / tasks.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

Z95 = 1.959964


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed on ``n`` trials."""
    if n <= 0:
        return (0.0, 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_half_width(tasks: Mapping[str, Mapping[str, Any]], z: float = Z95) -> float | None:
    """Half-width of the 95% interval of the mean of the tasks' scores (None if any n is unknown)."""
    terms = []
    for m in tasks.values():
        p, n = m.get("score"), m.get("n")
        if p is None or not n:
            return None
        terms.append(p * (1 - p) / n)
    return z * math.sqrt(sum(terms)) / len(terms) if terms else None


def fmt_score(p: float | None, n: int | None) -> str:
    """``0.800 [0.49, 0.94]``; the bare score when n is unknown."""
    if p is None:
        return "–"
    if not n:
        return f"{p:.3f}"
    lo, hi = wilson(p, int(n))
    return f"{p:.3f} [{lo:.2f}, {hi:.2f}]"


def fmt_mean(mean: float | None, tasks: Mapping[str, Mapping[str, Any]]) -> str:
    if mean is None:
        return "–"
    half = mean_half_width(tasks)
    return f"{mean:.3f}" if half is None else f"{mean:.3f} ±{half:.3f}"
