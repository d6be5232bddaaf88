"""Sampling searches the exact search is measured against: uniform random and NSGA-II (LoNAS).

Benchmark code, not part of the package: ``zerolm_prune.search`` finds the exact top-k of an
additive score, so these two only serve as baselines (bench_search.py, tests/test_search.py).
NSGA-II needs pymoo, a benchmark-only dependency (``pip install zerolm_prune[bench]``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import ElementwiseProblem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.optimize import minimize


def _ranked_archive(archive: dict[tuple[int, ...], tuple[float, float]], k: int) -> list[tuple[float, np.ndarray]]:
    """Best k of the evaluated feasible subnets, in the same order ``top_k`` uses."""
    items = sorted(archive.items(), key=lambda kv: (-kv[1][0], kv[1][1], kv[0]))[:k]
    return [(score, np.array(key, dtype=np.int64)) for key, (score, _) in items]


def random_search(objective: Callable[[np.ndarray], float], n_options: Sequence[int], *,
                  cost: Callable[[np.ndarray], float] | None = None, budget: float = np.inf,
                  evaluations: int = 200, k: int = 10, seed: int = 0) -> list[tuple[float, np.ndarray]]:
    """Uniform random subnets: the baseline every smarter search must beat.

    Only subnets within ``budget`` (by ``cost``, which should be cheap) are scored; ``evaluations``
    counts calls of ``objective``. Returns the best k distinct subnets found, best first.
    """
    rng = np.random.default_rng(seed)
    sizes = np.asarray(n_options, dtype=np.int64)
    archive: dict[tuple[int, ...], tuple[float, float]] = {}
    draws, max_draws = 0, 1000 * max(evaluations, 1)
    while len(archive) < evaluations and draws < max_draws:
        draws += 1
        idx = (rng.random(sizes.size) * sizes).astype(np.int64)
        key = tuple(int(i) for i in idx)
        if key in archive:
            continue
        c = float(cost(idx)) if cost is not None else 0.0
        if c > budget:
            continue
        archive[key] = (float(objective(idx)), c)
    return _ranked_archive(archive, k)


def nsga2_search(objective: Callable[[np.ndarray], float], n_options: Sequence[int], *,
                 cost: Callable[[np.ndarray], float], budget: float = np.inf, evaluations: int = 200,
                 pop_size: int = 50, k: int = 10, seed: int = 0) -> list[tuple[float, np.ndarray]]:
    """NSGA-II as LoNAS runs it: minimise (-score, cost) subject to cost <= budget.

    Integer variables (one option index per layer), SBX crossover and polynomial mutation with
    rounding, ``evaluations`` objective calls in all. Every feasible subnet evaluated on the way
    is kept, and the best k of them are returned, best first.
    """
    sizes = np.asarray(n_options, dtype=np.int64)
    archive: dict[tuple[int, ...], tuple[float, float]] = {}
    has_budget = bool(np.isfinite(budget))

    class _Problem(ElementwiseProblem):
        def __init__(self):
            super().__init__(n_var=int(sizes.size), n_obj=2, n_ieq_constr=1 if has_budget else 0,
                             xl=np.zeros(sizes.size), xu=(sizes - 1).astype(float), vtype=int)

        def _evaluate(self, x, out, *args, **kwargs):
            idx = np.clip(np.round(x).astype(np.int64), 0, sizes - 1)
            c = float(cost(idx))
            s = float(objective(idx))
            if c <= budget:
                archive[tuple(int(i) for i in idx)] = (s, c)
            out["F"] = [-s, c]
            if has_budget:
                out["G"] = [c - budget]

    algorithm = NSGA2(
        pop_size=min(pop_size, max(evaluations, 2)),
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    minimize(_Problem(), algorithm, ("n_eval", evaluations), seed=seed, verbose=False)
    return _ranked_archive(archive, k)
