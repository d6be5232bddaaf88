"""Exactness of the budgeted top-k search against brute-force enumeration (ties included)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from zerolm_prune.search import pareto_front, top_k

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the sampling baselines are benchmark code
from benchmarks.search_baselines import nsga2_search, random_search  # noqa: E402


def enumerate_all(values, costs):
    """Every subnet's score (added left to right, as the search defines it), cost and indices."""
    score = np.asarray(values[0], dtype=np.float64)
    cost = np.asarray(costs[0], dtype=np.int64)
    for v, c in zip(values[1:], costs[1:]):
        score = score[..., None] + v
        cost = cost[..., None] + np.asarray(c, dtype=np.int64)
    shape = score.shape
    idx = np.stack(np.unravel_index(np.arange(score.size), shape), axis=1)
    return score.reshape(-1), cost.reshape(-1), idx


def brute_top_k(score, cost, idx, budget, k):
    ok = np.flatnonzero(cost <= budget)
    if ok.size > k:  # only subnets scoring at least the k-th best can be in the top k (ties kept)
        kth = np.partition(score[ok], ok.size - k)[ok.size - k]
        ok = ok[score[ok] >= kth]
    keys = tuple(idx[ok, j] for j in range(idx.shape[1] - 1, -1, -1))
    order = np.lexsort(keys + (cost[ok], -score[ok]))[:k]
    return [(float(score[ok][o]), idx[ok][o]) for o in order]


def brute_front(score, cost):
    order = np.lexsort((-score, cost))
    best, out = -np.inf, []
    for o in order:
        if score[o] > best:
            out.append((int(cost[o]), float(score[o])))
            best = score[o]
    return out


def assert_same(got, expected):
    assert len(got) == len(expected)
    for (s1, i1), (s2, i2) in zip(got, expected):
        assert s1 == s2
        assert np.array_equal(i1, i2), (i1, i2)


def test_top_k_equals_brute_force_4_layers_30_choices():
    """810k subnets, values = ffn + alpha * attn from random arrays, parameter-like integer costs."""
    rng = np.random.default_rng(0)
    attn = [rng.uniform(0, 2, 30) for _ in range(4)]
    ffn = [rng.uniform(0, 3, 30) for _ in range(4)]
    costs = [rng.integers(10**8, 2 * 10**8, 30) * 7 for _ in range(4)]  # ~1e9 per layer: no cost grid
    for alpha in (-1.0, 0.0, 0.5, 1.5):
        values = [f + alpha * a for f, a in zip(ffn, attn)]
        score, cost, idx = enumerate_all(values, costs)
        for q in (0.001, 0.3, 0.8, 1.0):
            budget = float(np.quantile(cost, q))
            assert_same(top_k(values, costs, budget, 10), brute_top_k(score, cost, idx, budget, 10))


def test_top_k_exact_ties_3_layers_10_choices():
    """Few distinct values and costs: most subnets tie, the order must still match exactly."""
    rng = np.random.default_rng(1)
    values = [rng.integers(0, 3, 10) * 0.25 for _ in range(3)]  # exactly representable, sums exact
    costs = [rng.integers(1, 4, 10) * 1_000_000_007 for _ in range(3)]
    score, cost, idx = enumerate_all(values, costs)
    assert len(np.unique(score)) < 20  # the test is about ties
    for budget in np.unique(cost):
        for k in (1, 7, 50, 1000):
            assert_same(top_k(values, costs, float(budget), k), brute_top_k(score, cost, idx, budget, k))


@pytest.mark.parametrize("seed", range(12))
def test_top_k_random_small_spaces(seed):
    rng = np.random.default_rng(100 + seed)
    layers, n = int(rng.integers(1, 6)), int(rng.integers(1, 9))
    if seed % 3 == 0:  # duplicated options (LoRA ranks that change neither score nor cost)
        base_v, base_c = rng.normal(size=n), rng.integers(1, 50, n)
        values = [np.tile(base_v * rng.uniform(0.5, 2), 2) for _ in range(layers)]
        costs = [np.tile(base_c, 2) for _ in range(layers)]
    else:
        values = [rng.normal(size=n) for _ in range(layers)]
        costs = [rng.integers(0, 50, n) for _ in range(layers)]
    score, cost, idx = enumerate_all(values, costs)
    for q in (0.0, 0.1, 0.5, 0.9, 1.0):
        budget = float(np.quantile(cost, q))
        for k in (1, 3, 20):
            assert_same(top_k(values, costs, budget, k), brute_top_k(score, cost, idx, budget, k))


def test_top_k_results_within_budget_and_sorted():
    rng = np.random.default_rng(2)
    values = [rng.normal(size=20) for _ in range(32)]
    costs = [rng.integers(10**8, 3 * 10**8, 20) for _ in range(32)]
    budget = 0.8 * sum(int(c.max()) for c in costs)
    found = top_k(values, costs, budget, 10)
    assert len(found) == 10
    scores = [s for s, _ in found]
    assert scores == sorted(scores, reverse=True)
    for s, idx in found:
        assert sum(int(costs[l][i]) for l, i in enumerate(idx)) <= budget
        assert s == pytest.approx(sum(values[l][i] for l, i in enumerate(idx)))
    assert len({tuple(i) for _, i in found}) == 10


def test_top_k_infeasible_and_small_spaces():
    values = [np.array([1.0, 2.0]), np.array([0.5, 3.0])]
    costs = [np.array([5, 10]), np.array([5, 10])]
    assert top_k(values, costs, 9, 3) == []
    found = top_k(values, costs, 15, 10)  # only 3 of the 4 subnets fit
    assert [list(i) for _, i in found] == [[0, 1], [1, 0], [0, 0]]


def test_pareto_front_equals_brute_force():
    rng = np.random.default_rng(3)
    for trial in range(6):
        values = [rng.integers(0, 5, 8) * 0.5 if trial % 2 else rng.normal(size=8) for _ in range(4)]
        costs = [rng.integers(1, 30, 8) for _ in range(4)]
        score, cost, _ = enumerate_all(values, costs)
        front = pareto_front(values, costs)
        assert [(c, s) for c, s, _ in front] == brute_front(score, cost)
        for c, s, idx in front:
            assert sum(int(costs[l][i]) for l, i in enumerate(idx)) == c
        capped = pareto_front(values, costs, max_cost=float(np.median(cost)))
        assert [(c, s) for c, s, _ in capped] == [p for p in brute_front(score, cost) if p[0] <= np.median(cost)]


def _additive(values, costs):
    def objective(idx):
        return float(sum(values[l][i] for l, i in enumerate(idx)))

    def cost(idx):
        return float(sum(costs[l][i] for l, i in enumerate(idx)))

    return objective, cost


def test_sampling_and_nsga2_stay_within_budget_and_never_beat_exact():
    rng = np.random.default_rng(4)
    values = [rng.normal(size=12) for _ in range(10)]
    costs = [rng.integers(100, 1000, 12) for _ in range(10)]
    budget = 0.6 * sum(int(c.max()) for c in costs)
    objective, cost = _additive(values, costs)
    exact = top_k(values, costs, budget, 5)
    for found in (random_search(objective, [12] * 10, cost=cost, budget=budget, evaluations=100, k=5),
                  nsga2_search(objective, [12] * 10, cost=cost, budget=budget, evaluations=200, k=5)):
        assert 0 < len(found) <= 5
        assert [s for s, _ in found] == sorted((s for s, _ in found), reverse=True)
        for s, idx in found:
            assert cost(idx) <= budget
            assert s == pytest.approx(objective(idx))
        assert found[0][0] <= exact[0][0] + 1e-12


def test_random_search_finds_the_optimum_of_a_tiny_space():
    values = [np.array([0.0, 1.0, 0.5]), np.array([2.0, 0.0])]
    costs = [np.array([1, 3, 2]), np.array([2, 1])]
    objective, cost = _additive(values, costs)
    found = random_search(objective, [3, 2], cost=cost, budget=4, evaluations=6, k=2)
    assert_same(found, top_k(values, costs, 4, 2))


def test_prefilter_blocks_keep_results_exact(monkeypatch):
    """The blockwise pre-pass only runs on large candidate sets; shrink its blocks to exercise it."""
    import zerolm_prune.search as search

    monkeypatch.setattr(search, "_PREFILTER_BLOCK", 3)
    rng = np.random.default_rng(7)
    for trial in range(4):
        values = [rng.integers(0, 4, 9) * 0.5 if trial % 2 else rng.normal(size=9) for _ in range(4)]
        costs = [rng.integers(1, 6, 9) * 10**9 for _ in range(4)]
        score, cost, idx = enumerate_all(values, costs)
        for q in (0.2, 0.6, 1.0):
            budget = float(np.quantile(cost, q))
            for k in (1, 4, 25):
                assert_same(top_k(values, costs, budget, k), brute_top_k(score, cost, idx, budget, k))


@pytest.mark.parametrize("work, limit", [((0,), None), ((2_000, 20_000, 4_000_000), 50), ((3_000,), None)])
def test_grid_bounds_and_retries_keep_results_exact(monkeypatch, work, limit):
    """No grid, coarse grids (rounding errors) with forced retries, and exact gcd grids: same answers."""
    import zerolm_prune.search as search

    monkeypatch.setattr(search, "_GRID_WORK", work)
    if limit is not None:
        monkeypatch.setattr(search, "_CANDIDATE_LIMIT", limit)
    rng = np.random.default_rng(11)
    for trial in range(4):
        values = [rng.normal(size=12) for _ in range(4)]
        if trial % 2:  # a large common factor: the gcd grid is exact
            costs = [rng.integers(1, 40, 12) * 98_304 for _ in range(4)]
        else:
            costs = [rng.integers(10**6, 10**7, 12) for _ in range(4)]
        score, cost, idx = enumerate_all(values, costs)
        for q in (0.05, 0.5, 0.8):
            budget = float(np.quantile(cost, q))
            for k in (1, 10):
                assert_same(top_k(values, costs, budget, k), brute_top_k(score, cost, idx, budget, k))


def test_float_costs():
    rng = np.random.default_rng(12)
    values = [rng.normal(size=7) for _ in range(3)]
    costs = [rng.uniform(0.1, 1.0, 7) for _ in range(3)]
    score, _, idx = enumerate_all(values, [np.zeros(7, dtype=np.int64)] * 3)
    cost = (costs[0][:, None, None] + costs[1][None, :, None] + costs[2][None, None, :]).reshape(-1)
    for budget in (0.5, 1.2, 2.0, 3.0):
        assert_same(top_k(values, costs, budget, 5), brute_top_k(score, cost, idx, budget, 5))


def test_front_for_plot_exact_when_small_and_real_points_when_merged():
    from zerolm_prune.search import front_for_plot

    rng = np.random.default_rng(13)
    values = [rng.normal(size=10) for _ in range(4)]
    costs = [rng.integers(1, 10**6, 10) for _ in range(4)]
    front, exact = front_for_plot(values, costs)
    assert exact and [(c, s) for c, s, _ in front] == [(c, s) for c, s, _ in pareto_front(values, costs)]
    merged, exact = front_for_plot(values, costs, max_states=4)
    assert not exact and 0 < len(merged) <= len(front)
    true_front = dict((c, s) for c, s, _ in front)
    for c, s, idx in merged:  # every point is a real subnet, never above the true front
        assert c == sum(int(costs[l][i]) for l, i in enumerate(idx))
        assert s == pytest.approx(sum(values[l][i] for l, i in enumerate(idx)))
        assert s <= max(v for k, v in true_front.items() if k <= c)
    scores = [s for _, s, _ in merged]
    assert scores == sorted(scores)  # a front: more cost, more score
