"""Best subnets under a budget: the exact search for additive scores, and the budget itself.

ZeroLM's score is a sum over layers (S = sum_l ffn_l + alpha * attn_l), and so are params and
MACs. Picking the best subnets under a budget is therefore a multiple-choice knapsack over layers,
which can be solved exactly; LoNAS's NSGA-II over 200 evaluations only samples the ~1e41 subnets.

``top_k`` walks the layers once, keeping partial solutions (prefixes) and dropping only those that
provably cannot reach the top k:

* feasibility: the prefix plus the cheapest choice of every remaining layer exceeds the budget;
* k-dominance: k other prefixes are at most as costly and score at least as well, so any
  completion of this prefix is beaten by k feasible subnets (done by peeling k Pareto fronts);
* bounds: the prefix's score plus an upper bound for the remaining layers falls below the k-th
  best score known from feasible completions. Two bounds are combined: the LP relaxation (greedy
  over each layer's concave hull) and a DP over a coarse cost grid (costs rounded down for an upper
  bound, up for feasible completions; exact when all costs share a large common factor, as
  parameter counts do). When too many prefixes survive, a finer grid is tried.

Costs are integers (params up to ~1e10, MACs): nothing is rounded onto a grid (float costs work
too, but then ties in cost are only as exact as float64 sums). Ties are broken
deterministically: score descending, then cost ascending, then per-layer option indices
lexicographically ascending. The score of a subnet is the float64 sum of its layer values added
left to right (layer 0 first), which is what ``numpy`` gives for ``v0[i0] + v1[i1] + ...``; near
ties that rounding could flip are never pruned (a tolerance far above float64 rounding error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import cost
from .errors import UserError
from .ranked import read_ranked, write_ranked  # noqa: F401  (re-exported: ranked.json I/O lives in ranked.py)
from .space import LayerChoice

__all__ = [
    "top_k",
    "pareto_front",
    "front_for_plot",
    "rank_subnets",
    "read_ranked",
    "write_ranked",
    "check_search",
    "check_top_k",
    "resolve_budget",
    "layer_costs",
    "BudgetInfo",
    "DEFAULT_ALPHA",
]


# --------------------------------------------------------------------------------------------------
# exact search on plain arrays


def _as_arrays(values: Sequence[np.ndarray], costs: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if len(values) != len(costs):
        raise ValueError(f"{len(values)} value arrays but {len(costs)} cost arrays")
    if not values:
        raise ValueError("need at least one layer")
    vals = [np.asarray(v, dtype=np.float64).reshape(-1) for v in values]
    cs = [np.asarray(c).reshape(-1) for c in costs]
    integral = all(np.issubdtype(c.dtype, np.integer) or bool(np.all(np.isfinite(c)) and np.all(c == np.round(c)))
                   for c in cs)
    total = sum(float(np.max(np.abs(c))) for c in cs if c.size)
    dtype = np.int64 if integral and total < 2.0**62 else np.float64
    cs = [c.astype(dtype) for c in cs]
    for layer, (v, c) in enumerate(zip(vals, cs)):
        if v.shape != c.shape or v.size == 0:
            raise ValueError(f"layer {layer}: {v.size} values and {c.size} costs (need the same, non-zero)")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"layer {layer}: values must be finite")
    return vals, cs


def _tolerance(vals: list[np.ndarray]) -> float:
    """A score gap larger than any float64 rounding error of a left-to-right sum over the layers."""
    magnitude = sum(float(np.max(np.abs(v))) for v in vals)
    return max(1e-9 * magnitude, 8.0 * (len(vals) + 2) * float(np.spacing(magnitude)), 1e-300)


@dataclass
class _Suffix:
    """Bounds for layers l..L-1 as functions of the budget left for them.

    ``upper`` is the LP relaxation (greedy over each layer's upper concave hull, last increment
    taken fractionally); ``lower`` is a feasible integral completion (the greedy's breakpoints).
    """

    min_cost: float
    cost: np.ndarray   # cumulative costs at the greedy's breakpoints, starting at min_cost
    value: np.ndarray  # cumulative values at those breakpoints

    def upper(self, left: np.ndarray) -> np.ndarray:
        if self.cost.size == 1:
            return np.full(left.shape, self.value[0])
        return np.interp(left.astype(np.float64), self.cost.astype(np.float64), self.value)

    def lower(self, left: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.cost, left, side="right") - 1
        out = np.full(left.shape, -np.inf)
        ok = pos >= 0
        out[ok] = self.value[pos[ok]]
        return out


def _hull_steps(v: np.ndarray, c: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Start point and increments (dcost, dvalue) of one layer's non-decreasing upper concave hull."""
    cmin = c.min()
    start_v = float(v[c == cmin].max())
    order = np.lexsort((-v, c))
    pts: list[tuple[float, float]] = [(float(cmin), start_v)]
    best = start_v
    for i in order:
        ci, vi = float(c[i]), float(v[i])
        if ci == pts[0][0] or vi <= best:
            continue  # the same cost as the start or no gain: never on the rising hull
        best = vi
        while len(pts) >= 2:
            (x1, y1), (x2, y2) = pts[-2], pts[-1]
            # drop the middle point when it lies on or below the chord from pts[-2] to (ci, vi)
            if (y2 - y1) * (ci - x1) <= (vi - y1) * (x2 - x1):
                pts.pop()
            else:
                break
        pts.append((ci, vi))
    arr = np.array(pts, dtype=np.float64)
    return float(cmin), start_v, np.diff(arr[:, 0]), np.diff(arr[:, 1])


def _suffix_bounds(vals: list[np.ndarray], cs: list[np.ndarray]) -> list[_Suffix]:
    """``out[l]`` bounds layers l..L-1; ``out[L]`` is the empty suffix."""
    L = len(vals)
    steps = [_hull_steps(v, c) for v, c in zip(vals, cs)]
    out: list[_Suffix] = [None] * (L + 1)  # type: ignore[list-item]
    cost_dtype = cs[0].dtype
    out[L] = _Suffix(0, np.zeros(1, dtype=cost_dtype), np.zeros(1))
    for l in range(L - 1, -1, -1):
        base_c = sum(s[0] for s in steps[l:])
        base_v = sum(s[1] for s in steps[l:])
        dc = np.concatenate([s[2] for s in steps[l:]])
        dv = np.concatenate([s[3] for s in steps[l:]])
        order = np.argsort(-(dv / dc), kind="stable")  # within a layer slopes already decrease
        cum_c = np.concatenate([[base_c], base_c + np.cumsum(dc[order])])
        cum_v = np.concatenate([[base_v], base_v + np.cumsum(dv[order])])
        if cost_dtype == np.int64:
            cum_c = np.round(cum_c).astype(np.int64)
            min_cost = int(sum(int(c.min()) for c in cs[l:]))
        else:
            min_cost = float(sum(float(c.min()) for c in cs[l:]))
        out[l] = _Suffix(min_cost, cum_c, cum_v)
    return out


# cells x options of the coarse suffix DP: start cheap (~0.02 s), refine when states pile up
_GRID_WORK = (4_000_000, 30_000_000, 300_000_000)
_CANDIDATE_LIMIT = 400_000  # candidate prefixes (all layers) before a finer grid is tried


@dataclass
class _Grid:
    """Suffix bounds from a DP over a coarse cost grid, tighter than the LP where it matters.

    Costs above each layer's cheapest option are measured in cells of ``unit``. Rounding them DOWN
    relaxes the problem, so ``upper[l][g]`` bounds the best completion of layers l.. with ``g``
    cells of budget left; rounding UP keeps every solution feasible, so ``lower[l][g]`` is the
    value of a real completion. The error is below one cell per layer, far below one FFN step.
    """

    unit: int | float
    upper: list[np.ndarray]
    lower: list[np.ndarray]

    def cells(self, left_over_min: np.ndarray) -> np.ndarray:
        g = np.floor_divide(left_over_min, self.unit)
        return np.clip(g, 0, self.upper[0].size - 1).astype(np.int64)


def _grid_bounds(vals: list[np.ndarray], cs: list[np.ndarray], window: float, work: int) -> _Grid | None:
    L = len(vals)
    n_total = sum(v.size for v in vals)
    cells = work // max(n_total, 1)
    if cells < 64 or window <= 0:
        return None
    integral = cs[0].dtype == np.int64
    unit: int | float = max(1, -(-int(window) // cells)) if integral else float(window) / cells
    if integral:  # costs that share a large common factor: one cell per factor makes the DP exact
        common = 0
        for c in cs:
            common = math.gcd(common, *(int(x) for x in np.unique(c - c.min())))
        if common > 0 and window // common < cells:
            unit = common
    n_cells = int(window // unit) + 1
    upper = [np.empty(0)] * (L + 1)
    lower = [np.empty(0)] * (L + 1)
    upper[L] = np.zeros(n_cells)
    lower[L] = np.zeros(n_cells)
    for l in range(L - 1, -1, -1):
        d = cs[l] - cs[l].min()
        down = (d // unit).astype(np.int64)
        up = (-(-d // unit)).astype(np.int64)
        for rounded, table, nxt in ((down, upper, upper[l + 1]), (up, lower, lower[l + 1])):
            best: dict[int, float] = {}
            for cell, v in zip(rounded.tolist(), vals[l].tolist()):
                if cell < n_cells and v > best.get(cell, -np.inf):
                    best[cell] = v
            f = np.full(n_cells, -np.inf)
            for cell, v in best.items():
                np.maximum(f[cell:], v + nxt[:n_cells - cell], out=f[cell:])
            table[l] = f
    return _Grid(unit, upper, lower)


def _front_ids(cost: np.ndarray, value: np.ndarray, lexkey: np.ndarray, k: int, tol: float) -> np.ndarray:
    """Which of the first k Pareto fronts each item is on (k where it is on none).

    Item i dominates j when every completion of i beats the same completion of j in the final order:
    cost_i < cost_j and value_i >= value_j; or equal cost and value_i > value_j + tol; or equal cost,
    equal value and i lexicographically first. This relation is transitive, so an item on front
    number f has f dominators (one per earlier front): items on no front among the first k have at
    least k dominators and can go.
    """
    n = cost.size
    order = np.lexsort((lexkey, -value, cost))
    c, v = cost[order], value[order]
    front = np.full(n, k, dtype=np.int64)
    alive = ~_cheaper_k_dominated(c, v, k)
    for f in range(k):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        ca, va = c[idx], v[idx]
        new_group = np.ones(idx.size, dtype=bool)
        new_group[1:] = ca[1:] != ca[:-1]
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(idx.size), 0))
        cummax = np.maximum.accumulate(va)
        prev_max = np.where(group_start > 0, cummax[np.maximum(group_start - 1, 0)], -np.inf)
        dominated = prev_max >= va
        dominated |= va[group_start] > va + tol
        same = np.zeros(idx.size, dtype=bool)
        same[1:] = (~new_group[1:]) & (va[1:] == va[:-1])
        dominated |= same
        on_front = idx[~dominated]
        front[on_front] = f
        alive[on_front] = False
    out = np.empty(n, dtype=np.int64)
    out[order] = front
    return out


_PREFILTER_BLOCK = 512  # tests shrink it so that small spaces exercise the pre-pass


def _cheaper_k_dominated(c: np.ndarray, v: np.ndarray, k: int, block: int | None = None) -> np.ndarray:
    """Items (sorted by cost) that k strictly cheaper items match or beat in value: a fast pre-pass.

    Blocks of about ``block`` items start at cost-group boundaries; an item is dropped when its
    value is at most the k-th largest value of all earlier blocks (all strictly cheaper). What it
    misses (dominators in its own block) the exact front peeling catches; this only saves passes.
    """
    n = c.size
    block = block or _PREFILTER_BLOCK
    out = np.zeros(n, dtype=bool)
    if n <= 2 * block:
        return out
    group_start = np.flatnonzero(np.concatenate([[True], c[1:] != c[:-1]]))
    wanted = np.arange(block, n, block)
    starts = np.unique(group_start[np.minimum(np.searchsorted(group_start, wanted), group_start.size - 1)])
    starts = starts[starts > 0]
    bounds = np.concatenate([[0], starts, [n]])
    best = np.empty(0)
    for b in range(bounds.size - 1):
        lo, hi = bounds[b], bounds[b + 1]
        if best.size >= k:
            out[lo:hi] = v[lo:hi] <= best[-k]
        seg = v[lo:hi]
        top = seg if seg.size <= k else np.partition(seg, seg.size - k)[seg.size - k:]
        best = np.sort(np.concatenate([best, top]))[-k:]
    return out


def _kth_largest(x: np.ndarray, k: int) -> float:
    if x.size < k:
        return -np.inf
    return float(np.partition(x, x.size - k)[x.size - k])


def _backtrack(parents: list, choices: list, node: int) -> np.ndarray:
    """Per-layer option indices of the prefix state ``node`` of the last layer, read back through
    the per-layer parent pointers that the forward pass over layers recorded."""
    idx = np.empty(len(choices), dtype=np.int64)
    for l in range(len(choices) - 1, -1, -1):
        idx[l] = choices[l][node]
        node = parents[l][node]
    return idx


def top_k(values: Sequence[np.ndarray], costs: Sequence[np.ndarray], budget: float, k: int = 10
          ) -> list[tuple[float, np.ndarray]]:
    """Exact k best ``sum_l values[l][i_l]`` subject to ``sum_l costs[l][i_l] <= budget``.

    Returns ``[(score, indices), ...]`` best first (fewer than k when fewer subnets fit), ordered by
    score descending, then total cost ascending, then ``indices`` lexicographically ascending.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    vals, cs = _as_arrays(values, costs)
    return _search(vals, cs, budget, k, use_bounds=np.isfinite(budget))


_exact_top_k = top_k  # ``rank_subnets`` has a parameter named top_k


class _TooManyStates(Exception):
    """The bounds are too loose for this grid: retry with a finer one."""


def _search(vals: list[np.ndarray], cs: list[np.ndarray], budget: float, k: int, *, use_bounds: bool
            ) -> list[tuple[float, np.ndarray]]:
    works = _GRID_WORK if use_bounds else (0,)
    for attempt, work in enumerate(works):
        last = attempt == len(works) - 1
        try:
            return _search_once(vals, cs, budget, k, use_bounds=use_bounds, grid_work=work,
                                candidate_limit=None if last else _CANDIDATE_LIMIT)
        except _TooManyStates:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


def _search_once(vals: list[np.ndarray], cs: list[np.ndarray], budget: float, k: int, *, use_bounds: bool,
                 grid_work: int, candidate_limit: int | None) -> list[tuple[float, np.ndarray]]:
    L = len(vals)
    tol = _tolerance(vals)
    suffix = _suffix_bounds(vals, cs)
    if suffix[0].min_cost > budget:
        return []
    if cs[0].dtype == np.int64 and np.isfinite(budget):
        budget = int(np.floor(budget))
    # the empty prefix
    value = np.zeros(1)
    cost = np.zeros(1, dtype=cs[0].dtype)
    lexrank = np.zeros(1, dtype=np.int64)
    parents: list[np.ndarray] = []
    choices: list[np.ndarray] = []
    lower_bound = -np.inf
    grid = _grid_bounds(vals, cs, budget - suffix[0].min_cost, grid_work) if use_bounds and grid_work else None
    seen = 0
    # float costs: prune on feasibility only beyond rounding error (integers are exact: 0)
    cost_tol = 0 if cs[0].dtype == np.int64 else 1e-9 * (abs(float(budget)) + sum(float(np.abs(c).max()) for c in cs))
    for l in range(L):
        n_opt = vals[l].size
        seen += value.size * n_opt
        if candidate_limit is not None and seen > candidate_limit:
            raise _TooManyStates
        cand_v = (value[:, None] + vals[l][None, :]).reshape(-1)
        cand_c = (cost[:, None] + cs[l][None, :]).reshape(-1)
        parent = np.repeat(np.arange(value.size), n_opt)
        option = np.tile(np.arange(n_opt), value.size)
        keep = cand_c + suffix[l + 1].min_cost <= budget + cost_tol
        if use_bounds and keep.any():
            left = budget - cand_c[keep]
            sure = left - 2 * cost_tol  # float costs: completions counted as feasible only with margin
            completion_lo = suffix[l + 1].lower(sure)
            completion_up = suffix[l + 1].upper(left)
            if grid is not None:
                completion_up = np.minimum(completion_up, grid.upper[l + 1][grid.cells(left - suffix[l + 1].min_cost)])
                over = sure - suffix[l + 1].min_cost
                grid_lo = np.where(over >= 0, grid.lower[l + 1][grid.cells(over)], -np.inf)
                completion_lo = np.maximum(completion_lo, grid_lo)
            lower_bound = max(lower_bound, _kth_largest(cand_v[keep] + completion_lo, k) - tol)
            hopeful = cand_v[keep] + completion_up >= lower_bound - tol
            keep[np.flatnonzero(keep)[~hopeful]] = False
        cand_v, cand_c, parent, option = cand_v[keep], cand_c[keep], parent[keep], option[keep]
        lexkey = lexrank[parent] * n_opt + option
        fronts = _front_ids(cand_c, cand_v, lexkey, k, tol)
        keep = fronts < k
        value, cost, parent, option, lexkey = cand_v[keep], cand_c[keep], parent[keep], option[keep], lexkey[keep]
        lexrank = np.empty(lexkey.size, dtype=np.int64)
        lexrank[np.argsort(lexkey, kind="stable")] = np.arange(lexkey.size)
        parents.append(parent)
        choices.append(option)
    fits = np.flatnonzero(cost <= budget)  # float costs: the pruning above allowed for rounding
    order = fits[np.lexsort((lexrank[fits], cost[fits], -value[fits]))[:k]]
    return [(float(value[s]), _backtrack(parents, choices, s)) for s in order]


def pareto_front(values: Sequence[np.ndarray], costs: Sequence[np.ndarray], *, max_cost: float = np.inf
                 ) -> list[tuple[float, float, np.ndarray]]:
    """Every subnet on the cost-vs-score front: ``[(cost, score, indices), ...]`` by cost ascending.

    A point is on the front when no other subnet is at most as costly and scores at least as well
    (exact ties: the lexicographically first indices stand for the group). ``max_cost`` cuts the
    front off above a cost (useful for plotting around a budget). Real spaces have small fronts
    (LLaMA-7B LoNAS: 129 points); unstructured random costs can have 1e5+ points and take minutes:
    use ``front_for_plot`` there.
    """
    return _front(values, costs, max_cost=max_cost, max_states=None)[0]


def front_for_plot(values: Sequence[np.ndarray], costs: Sequence[np.ndarray], *, max_states: int | None = None
                   ) -> tuple[list[tuple[float, float, np.ndarray]], bool]:
    """``(front, exact)``: the exact front while at most ``max_states`` prefixes survive a layer
    (default: enough for ~200k candidates per layer, at least 2000); beyond that, prefixes are
    merged per cost bucket (``max_states`` buckets, best score kept), so every point is still a
    real subnet but the curve may sit slightly below the true front."""
    if max_states is None:
        max_states = max(2000, 200_000 // max(len(v) for v in values))
    return _front(values, costs, max_cost=np.inf, max_states=max_states)


def _front(values, costs, *, max_cost: float, max_states: int | None):
    vals, cs = _as_arrays(values, costs)
    exact = True
    L = len(vals)
    tol = _tolerance(vals)  # near ties on prefixes survive; the final pass below is strict
    value = np.zeros(1)
    cost = np.zeros(1, dtype=cs[0].dtype)
    lexrank = np.zeros(1, dtype=np.int64)
    suffix_min = np.concatenate([np.cumsum([c.min() for c in cs][::-1])[::-1], [0]])
    parents: list[np.ndarray] = []
    choices: list[np.ndarray] = []
    for l in range(L):
        n_opt = vals[l].size
        cand_v = (value[:, None] + vals[l][None, :]).reshape(-1)
        cand_c = (cost[:, None] + cs[l][None, :]).reshape(-1)
        parent = np.repeat(np.arange(value.size), n_opt)
        option = np.tile(np.arange(n_opt), value.size)
        keep = cand_c + suffix_min[l + 1] <= max_cost
        cand_v, cand_c, parent, option = cand_v[keep], cand_c[keep], parent[keep], option[keep]
        lexkey = lexrank[parent] * n_opt + option
        # k = 1 with the strict front rule: equal-cost states are compared by value only
        keep = _front_ids(cand_c, cand_v, lexkey, 1, tol) < 1
        if max_states is not None and keep.sum() > max_states:
            exact = False
            kept = np.flatnonzero(keep)
            c_k = cand_c[kept].astype(np.float64)
            bucket = np.floor((c_k - c_k.min()) / max((c_k.max() - c_k.min()) / max_states, 1e-300)).astype(np.int64)
            order = np.lexsort((lexkey[kept], cand_c[kept], -cand_v[kept], bucket))
            first = np.ones(order.size, dtype=bool)
            first[1:] = bucket[order][1:] != bucket[order][:-1]
            keep = np.zeros_like(keep)
            keep[kept[order[first]]] = True
        value, cost, parent, option, lexkey = cand_v[keep], cand_c[keep], parent[keep], option[keep], lexkey[keep]
        lexrank = np.empty(lexkey.size, dtype=np.int64)
        lexrank[np.argsort(lexkey, kind="stable")] = np.arange(lexkey.size)
        parents.append(parent)
        choices.append(option)
    strict = np.flatnonzero(_front_ids(cost, value, lexrank, 1, 0.0) < 1)
    order = strict[np.lexsort((lexrank[strict], -value[strict], cost[strict]))]
    return [(cost[s].item(), float(value[s]), _backtrack(parents, choices, s)) for s in order], exact


# --------------------------------------------------------------------------------------------------
# ranking a CapacityTable's subnets under a budget; ranked.json

BY = ("params", "macs")
DEFAULT_ALPHA = 1.0  # S_FFN and S_Attn weighted equally until a calibrated alpha says otherwise


@dataclass
class BudgetInfo:
    """A budget resolved against a table, counted the way the ranking counts it.

    ``params`` are whole-model parameters: embeddings, final norm and an untied LM head
    (``table.fixed_params``) plus the blocks, so 0.8 means 80% of the checkpoint. ``macs`` are
    per-token multiply-accumulates including the LM head (``table.fixed_macs``). LoRA A/B
    parameters (and their MACs) count only with ``include_lora``.
    """

    by: str
    include_lora: bool
    absolute: int      # the budget in params or MACs
    full: int          # the unpruned model (all heads, full FFN; LoRA at each group's largest rank)
    minimal: int       # the smallest subnet of the space
    maximal: int       # the largest subnet of the space
    fixed: int         # the part outside the blocks that every subnet pays

    @property
    def fraction(self) -> float:
        return self.absolute / self.full


def _layer_costs(table, by: str, include_lora: bool) -> tuple[list[np.ndarray], int]:
    if by not in BY:
        raise UserError(f"unknown budget unit {by!r}; choose one of: {', '.join(BY)}")
    column = table.params if by == "params" else table.macs
    fixed = table.fixed_params if by == "params" else table.fixed_macs
    if include_lora:
        column = [c + lp for c, lp in zip(column, table.lora_params)]
    return [np.asarray(c, dtype=np.int64) for c in column], int(fixed)


def layer_costs(table, by: str = "params", include_lora: bool = False) -> tuple[list[np.ndarray], int]:
    """Per-layer option costs as the budget counts them, and the fixed part outside the blocks."""
    return _layer_costs(table, by, include_lora)


def _full_model_cost(table, by: str, include_lora: bool) -> int:
    """Params or MACs of the unpruned model, from its geometry (the space may not contain it)."""
    adapter = table.adapter
    space = table.space
    total = table.fixed_params if by == "params" else table.fixed_macs
    for i in range(table.num_layers):
        geo = adapter.geometry(i)
        ranks = tuple((g, max(r)) for g, r in sorted(space.layers[i].ranks.items()))
        choice = LayerChoice(geo.num_heads, geo.ffn_dim, ranks)
        if by == "params":
            total += cost.block_params(geo, choice, config=adapter.config, lora=space.lora, include_lora=include_lora)
        else:
            total += cost.block_macs(geo, choice, config=adapter.config, seq_len=getattr(table, "seq_len", 1),
                                     lora=space.lora, include_lora=include_lora)
    return int(total)


#: the most subnets one exact search lists (its beams hold k partial subnets per layer)
MAX_TOP_K = 100_000


def check_top_k(table, top_k: int) -> None:
    """``top_k`` as one-line UserErrors: at least 1, within the space, within what the search lists."""
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")
    space_size = table.space.size
    if top_k > space_size:
        raise UserError(f"--top-k {top_k} is larger than the search space ({space_size} subnets); "
                        f"use --top-k {space_size} or less")
    if top_k > MAX_TOP_K:  # the exact search keeps k partial subnets per layer in memory
        raise UserError(f"--top-k {top_k} is more than the search lists (at most {MAX_TOP_K:,}); "
                        "use a smaller --top-k, or sample the space instead")


def check_search(table, budget: float, *, by: str = "params", top_k: int = 1,
                 include_lora: bool = False) -> BudgetInfo:
    """The cheap checks of a search request (top-k, and a budget no subnet fits), as one-line
    UserErrors. Why separate: callers run it before building a ranker that runs the model (the
    selfgen scoring takes most of a rank), so a wrong --budget fails in seconds, not minutes."""
    check_top_k(table, top_k)
    info = resolve_budget(table, budget, by=by, include_lora=include_lora)
    if info.absolute < info.minimal:
        smallest = math.ceil(info.minimal / info.full * 1e4) / 1e4  # rounded up so that it still fits
        raise UserError(
            f"budget {info.absolute:,} {by} ({info.fraction:.3f} of the full model's {info.full:,}) is below the "
            f"smallest subnet of the space ({info.minimal:,} {by}); use --budget {smallest:.4f} "
            f"or --budget {info.minimal} or more"
        )
    return info


def resolve_budget(table, budget: float, *, by: str = "params", include_lora: bool = False) -> BudgetInfo:
    """Turn ``budget`` (absolute if > 1, else a fraction of the full model) into a count."""
    costs, fixed = _layer_costs(table, by, include_lora)
    if not np.isfinite(budget) or budget <= 0:
        raise UserError(f"--budget must be a positive number (a fraction <= 1 of the full model or an absolute "
                        f"{by} count), got {budget}")
    full = _full_model_cost(table, by, include_lora)
    absolute = int(np.floor(budget * full)) if budget <= 1 else int(np.floor(budget))
    minimal = fixed + int(sum(int(c.min()) for c in costs))
    maximal = fixed + int(sum(int(c.max()) for c in costs))
    return BudgetInfo(by, include_lora, absolute, full, minimal, maximal, fixed)


def _useful_options(values: np.ndarray, params: np.ndarray, macs: np.ndarray) -> np.ndarray:
    """Indices of a layer's options, less those another option matches in score at no more params
    and MACs (the first listed of exact duplicates stays). Such options only make costlier copies
    of subnets that score the same, e.g. LoRA ranks that the score cannot see."""
    n = values.size
    keep = []
    for j in range(n):
        same = (values == values[j]) & (params <= params[j]) & (macs <= macs[j])
        cheaper = same & ((params < params[j]) | (macs < macs[j]))
        duplicate_before = same & (params == params[j]) & (macs == macs[j]) & (np.arange(n) < j)
        if not (cheaper.any() or duplicate_before.any()):
            keep.append(j)
    return np.array(keep, dtype=np.int64)


def rank_subnets(table, *, budget: float, by: str = "params", top_k: int = 10, alpha: float = DEFAULT_ALPHA,
                 include_lora: bool = False, distinct: bool = True,
                 values: Sequence[np.ndarray] | None = None, info: BudgetInfo | None = None) -> list[dict]:
    """The exact ``top_k`` subnets of ``table.space`` by ZeroLM score within ``budget``.

    ``budget`` > 1 is an absolute count of ``by`` (``params``: whole model including embeddings
    and an untied LM head; ``macs``: per token including the LM head); ``budget`` <= 1 is a
    fraction of the full unpruned model counted the same way. Entries are ranked.json's:
    ``{"rank" (0-based), "score", "params", "macs", "subnet", "indices"}`` where ``params``/``macs``
    count LoRA exactly when the budget does. An infeasible budget or a ``top_k`` larger than the
    space raises ``UserError`` naming the smallest feasible budget. Fewer than ``top_k`` entries
    come back only when fewer subnets fit the budget.

    ``distinct``: a layer option that another option of the same layer matches in score at no more
    params and MACs (as counted here) is left out; of exact duplicates the first listed stays.
    Typical case: LoRA ranks on a table without an attached adapter, which the score cannot see;
    otherwise the top k would be k copies of one architecture differing only in such ranks (or,
    with ``include_lora``, costlier copies with larger ranks). ``distinct=False`` ranks every option.

    ``values``: per-layer option values of another additive ranker (``zerolm_prune.rankers``),
    aligned with ``table.options``; the table then only supplies the costs and ``alpha`` is unused.

    ``info``: the budget as ``check_search`` already resolved it for this table, ``by`` and
    ``include_lora`` (a run resolves its budget once and passes it down); None resolves it here.
    """
    if info is None:
        info = check_search(table, budget, by=by, top_k=top_k, include_lora=include_lora)
    else:
        if (info.by, info.include_lora) != (by, include_lora):
            raise ValueError(f"budget resolved for by={info.by!r}, include_lora={info.include_lora}, "
                             f"not by={by!r}, include_lora={include_lora}")
        check_top_k(table, top_k)
    costs, fixed = _layer_costs(table, by, include_lora)
    if values is None:
        values = table.layer_values(float(alpha))
    else:
        values = [np.asarray(v, dtype=float) for v in values]
        if [len(v) for v in values] != [len(o) for o in table.options]:
            raise ValueError("values need one entry per option of every layer of the table")
    keep = [np.arange(len(v)) for v in values]
    if distinct:
        params, _ = _layer_costs(table, "params", include_lora)
        macs, _ = _layer_costs(table, "macs", include_lora)
        keep = [_useful_options(v, p, m) for v, p, m in zip(values, params, macs)]
    found = _exact_top_k([v[k] for v, k in zip(values, keep)], [c[k] for c, k in zip(costs, keep)],
                         info.absolute - fixed, top_k)
    entries = []
    for rank, (score, sub) in enumerate(found):
        idx = np.array([k[i] for k, i in zip(keep, sub)], dtype=np.int64)
        entries.append({
            "rank": rank,
            "score": score,
            "params": int(table.total_params(idx, include_lora=include_lora)),
            "macs": int(table.total_macs(idx, include_lora=include_lora)),
            "subnet": table.subnet_at(idx).to_dict(),
            "indices": [int(i) for i in idx],
        })
    return entries
