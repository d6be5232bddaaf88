"""95% intervals for accuracies measured on few documents, so a report shows its own noise.

Why: at ``--limit 10`` one document moves an accuracy by 0.1, and the dense model can "lose" to its
pruned subnets by chance. Each task's accuracy gets a Wilson score interval (sound near 0 and 1,
unlike the normal one); the mean over tasks gets the normal interval of a mean of independent
binomials, sqrt(sum p_i (1 - p_i) / n_i) / tasks. Perplexity gets a bootstrap over passages, and
two models measured on the same passages a paired bootstrap of the ratio of their perplexities, so
the report claims a difference only where its interval excludes it (``verdict.py``).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

Z95 = 1.959964
#: bootstrap resamples over passages: the 2.5% / 97.5% quantiles of 2000 are stable to about 1%
RESAMPLES = 2000


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


# ------------------------------------------------------------------------------------------------
# perplexity: bootstraps over passages


class Estimate(NamedTuple):
    """A value, its 95% interval, and how many passages (or documents) it rests on."""
    value: float
    lo: float
    hi: float
    n: int


def passages(ppl: Any) -> tuple[list, np.ndarray, np.ndarray] | None:
    """(ids, log-likelihoods, token counts) of a perplexity result; None for results written
    before ``evaluate.perplexity`` kept them (old runs resume and render without an interval)."""
    if not isinstance(ppl, Mapping):
        return None
    loglik, tokens = ppl.get("passage_loglik"), ppl.get("passage_tokens")
    if not loglik or not tokens or len(loglik) != len(tokens):
        return None
    ids = ppl.get("passage_ids")
    ids = list(ids) if ids and len(ids) == len(loglik) else list(range(len(loglik)))
    return ids, np.asarray(loglik, dtype=np.float64), np.asarray(tokens, dtype=np.float64)


def _resampled_sums(columns: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Sums of each row of ``columns`` (k x n) over ``resamples`` bootstrap draws of its n columns:
    (resamples x k). All rows share the draws, which is what makes a comparison paired."""
    rng = np.random.default_rng(seed)
    n = columns.shape[1]
    chunk = max(1, 1_000_000 // n)  # bounded memory for the full 3k-passage set
    out = []
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        out.append(columns[:, idx].sum(axis=2).T)
    return np.concatenate(out)


def _quantiles(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def ppl_interval(ppl: Any, *, resamples: int = RESAMPLES, seed: int = 0) -> Estimate | None:
    """Token perplexity exp(-sum loglik / sum tokens) with a 95% percentile bootstrap interval
    over passages (passages, not tokens, are the independent draws); None without passage lists."""
    got = passages(ppl)
    if got is None:
        return None
    _, loglik, tokens = got
    sums = _resampled_sums(np.stack([loglik, tokens]), resamples, seed)
    lo, hi = _quantiles(np.exp(-sums[:, 0] / sums[:, 1]))
    return Estimate(math.exp(-loglik.sum() / tokens.sum()), lo, hi, len(loglik))


def ppl_ratio(ppl: Any, reference: Any, *, resamples: int = RESAMPLES, seed: int = 0) -> Estimate | None:
    """Ratio of a model's token perplexity to a reference's on the passages both scored (paired by
    doc id), with a 95% paired bootstrap interval: each draw resamples passages once for both
    models, so the passage-to-passage spread (the bulk of the noise) cancels. A model against
    itself gives exactly 1 [1, 1]. None without passage lists or on different passage sets/tasks."""
    a, b = passages(ppl), passages(reference)
    if a is None or b is None or ppl.get("task") != reference.get("task"):
        return None
    where = {doc: i for i, doc in enumerate(b[0])}
    common = [(i, where[doc]) for i, doc in enumerate(a[0]) if doc in where]
    if not common:
        return None
    ia, ib = (np.asarray(x) for x in zip(*common))
    columns = np.stack([a[1][ia], a[2][ia], b[1][ib], b[2][ib]])
    sums = _resampled_sums(columns, resamples, seed)
    log_ratio = -sums[:, 0] / sums[:, 1] + sums[:, 2] / sums[:, 3]
    lo, hi = _quantiles(np.exp(log_ratio))
    value = math.exp(-columns[0].sum() / columns[1].sum() + columns[2].sum() / columns[3].sum())
    return Estimate(value, lo, hi, len(common))


# ------------------------------------------------------------------------------------------------
# mean accuracy: two models without per-document correctness


def _adjusted(m: Mapping[str, Any]) -> tuple[float, int] | None:
    """(Agresti-Caffo variance term, n) of one task's score, None if the score or n is unknown."""
    p, n = m.get("score"), m.get("n")
    if p is None or not n:
        return None
    q = (p * n + 1) / (n + 2)  # one success and one failure added: sound at 0 and 1 too
    return q * (1 - q), int(n)


def _common_terms(tasks: Mapping[str, Mapping[str, Any]], reference: Mapping[str, Mapping[str, Any]]
                  ) -> list[tuple[float, float, float, int, float, int]] | None:
    """Per common task: (score, ref score, var term, n, ref var term, ref n); None if any is unknown."""
    names = [t for t in tasks if t in reference]
    terms = []
    for t in names:
        a, b = _adjusted(tasks[t]), _adjusted(reference[t])
        if a is None or b is None:
            return None
        terms.append((tasks[t]["score"], reference[t]["score"], a[0], a[1], b[0], b[1]))
    return terms or None


def mean_difference(tasks: Mapping[str, Mapping[str, Any]], reference: Mapping[str, Mapping[str, Any]],
                    z: float = Z95) -> Estimate | None:
    """Difference of mean accuracy over the common tasks (model minus reference) and its 95%
    half-width, as ``Estimate(diff, diff - half, diff + half, documents per task)``.

    Approximation: each task's difference of two proportions gets the Agresti-Caffo normal
    interval (one success and one failure added to each side, so scores of 0 or 1 keep a
    variance), and the tasks are independent, so Var(mean diff) = sum_t (v_t/(n_t+2) +
    v'_t/(n'_t+2)) / tasks^2. This is UNPAIRED: both models answered the same documents, and their
    per-document correctness is positively correlated, which would shrink the variance; results
    do not keep per-document correctness, so the interval is conservative (wider than a paired
    one). A difference it calls resolved is resolved; one it leaves open may be real.
    """
    terms = _common_terms(tasks, reference)
    if terms is None:
        return None
    k = len(terms)
    diff = sum(p - q for p, q, *_ in terms) / k
    half = z * math.sqrt(sum(va / (na + 2) + vb / (nb + 2) for _, _, va, na, vb, nb in terms)) / k
    return Estimate(diff, diff - half, diff + half, min(min(na, nb) for _, _, _, na, _, nb in terms))


def documents_to_resolve(tasks: Mapping[str, Mapping[str, Any]], reference: Mapping[str, Mapping[str, Any]],
                         delta: float = 0.05, z: float = Z95) -> int | None:
    """Documents per task at which ``mean_difference``'s half-width falls to ``delta``, from the
    observed per-task variances (the same unpaired approximation: an upper estimate)."""
    terms = _common_terms(tasks, reference)
    if terms is None:
        return None
    k = len(terms)
    return math.ceil((z / (k * delta)) ** 2 * sum(va + vb for _, _, va, _, vb, _ in terms))


def excludes(estimate: Estimate | None, value: float) -> bool:
    """Whether a 95% interval leaves ``value`` out (0 for a difference, 1 for a ratio)."""
    return estimate is not None and (estimate.lo > value or estimate.hi < value)
