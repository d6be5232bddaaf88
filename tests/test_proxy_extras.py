"""alpha strategies, spectral variants and the gradient baselines, on real or exactly known inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from zerolm_prune.bench.baselines import snip, synflow, weight_magnitude
from zerolm_prune.bench.spectral import matrix_stats, mp_expectations
from zerolm_prune.proxy import CapacityTable
from zerolm_prune.proxy.alpha import (ALPHA_GRID, alpha_by_param_correlation, alpha_by_sampling,
                                      param_correlation_alpha_for_table)
from zerolm_prune.space import LayerSpace, SearchSpace, Subnet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # research code lives in benchmarks/
from benchmarks.spectral_subnet import subnet_spectral  # noqa: E402


def test_alpha_grid_is_the_published_sweep():
    assert len(ALPHA_GRID) == 31 and ALPHA_GRID[0] == -1.5 and ALPHA_GRID[-1] == 1.5
    assert 0.1 in ALPHA_GRID and 0.0 in ALPHA_GRID


def test_alpha_by_sampling_recovers_the_mixing_weight():
    rng = np.random.default_rng(0)
    attn, ffn = rng.normal(size=400), rng.normal(size=400)
    labels = ffn + 0.5 * attn + 0.05 * rng.normal(size=400)
    choice = alpha_by_sampling(attn, ffn, labels)
    assert choice.alpha == pytest.approx(0.5, abs=0.11)
    assert choice.method == "sampling" and len(choice.taus) == 31
    # the two best grid points are averaged: the result may sit between grid points
    best_two = sorted(choice.taus, key=lambda a: -abs(choice.taus[a]))[:2]
    assert choice.alpha == pytest.approx(np.mean(best_two))


def test_alpha_by_sampling_abs_vs_signed():
    rng = np.random.default_rng(1)
    attn, ffn = rng.normal(size=300), 0.01 * rng.normal(size=300)
    labels = -attn  # only a negative alpha ranks correctly; |tau| is symmetric in sign here
    assert alpha_by_sampling(attn, ffn, labels, signed=True).alpha < 0


def test_param_correlation_alpha_needs_no_labels():
    rng = np.random.default_rng(2)
    attn, ffn = rng.normal(size=300), rng.normal(size=300)
    params = ffn - 1.0 * attn
    assert alpha_by_param_correlation(attn, ffn, params).alpha == pytest.approx(-1.0)


def test_param_correlation_alpha_for_a_real_table(smollm2):
    model, _ = smollm2
    space = SearchSpace([LayerSpace([9, 6, 3], [1536, 1024, 512]) for _ in range(30)])
    table = CapacityTable.from_model(model, space)
    choice = param_correlation_alpha_for_table(table, samples=500)
    assert choice.alpha in set(float(a) for a in ALPHA_GRID)
    assert choice.taus[choice.alpha] == max(choice.taus.values())


@pytest.mark.parametrize("shape", [(256, 256), (512, 128), (96, 300)])
def test_marchenko_pastur_expectations_match_svd(shape):
    torch.manual_seed(0)
    w = torch.randn(*shape) * 0.02
    exact, law = matrix_stats(w), mp_expectations(*shape, 0.02)
    for key in ("capacity", "mean_sigma", "nuclear", "energy", "effective_rank"):
        assert exact[key] == pytest.approx(law[key], rel=0.02), key


def test_spectral_capacity_variant_equals_the_table(tiny_llama):
    space = SearchSpace([LayerSpace([8, 4], [96, 40]) for _ in range(3)])
    subnet = Subnet([space.options(0)[1], space.options(1)[2], space.options(2)[3]])
    for order in ("prefix", "capacity"):
        table = CapacityTable.from_model(tiny_llama, space, order=order)
        spec = subnet_spectral(tiny_llama, subnet, kind="capacity", order=order)
        parts = table.components(subnet)
        assert spec["attn"] == pytest.approx(parts["attn"], rel=1e-6)
        assert spec["ffn"] == pytest.approx(parts["ffn"], rel=1e-6)
    erank = subnet_spectral(tiny_llama, subnet, kind="effective_rank")
    assert 0 < erank["attn"] < 4 * 64 * 3 and 0 < erank["ffn"]


def test_synflow_of_a_linear_chain_is_depth_times_flow():
    """Conservation: in a bias-free linear chain every layer carries the whole flow R."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7, bias=False), torch.nn.Linear(7, 3, bias=False),
                              torch.nn.Linear(3, 4, bias=False))
    before = [p.detach().clone() for p in net.parameters()]
    w = [m.weight.detach().double().abs() for m in net]
    r = float((w[2] @ w[1] @ w[0] @ torch.ones(5, dtype=torch.float64)).sum())
    assert synflow(net, (1, 5)) == pytest.approx(3 * r, rel=1e-9)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # weights restored (signs too)
    assert next(net.parameters()).dtype == torch.float32


def test_snip_and_magnitude_on_a_real_encoder(tiny_bert):
    x = torch.randn(4, 48)
    layer = tiny_bert.encoder.layer[0].intermediate.dense
    assert snip(torch.nn.Sequential(layer), x, torch.randn(4, 80)) > 0
    mag = weight_magnitude(tiny_bert)
    manual = sum(float(m.weight.detach().abs().sum()) for name, m in tiny_bert.encoder.named_modules()
                 if isinstance(m, torch.nn.Linear))
    assert mag == pytest.approx(manual, rel=1e-6)
