"""The capacity table against brute force: slice the real weights, take svdvals, compare."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zerolm_prune.models import get_adapter
from zerolm_prune.proxy import CapacityTable, capacity
from zerolm_prune.proxy.importance import ffn_channel_order, head_group_order
from zerolm_prune.space import LayerChoice, LayerSpace, SearchSpace, Subnet

REL = 1e-6


def svd_capacity(w: torch.Tensor) -> float:
    """C(W) the long way: mean squared singular value."""
    w = w.detach().double()
    if min(w.shape) == 0:
        return 0.0
    s = torch.linalg.svdvals(w)
    return float((s ** 2).sum()) / min(w.shape)


def brute_orders(adapter, model, index: int, order: str) -> tuple[list[int], list[int]]:
    """KV-group and channel orders computed here from their definition, independent of the table."""
    geo = adapter.geometry(index)
    layer = adapter.layers(model)[index]
    w = {p.role: adapter.projection_weight(layer, p).detach().double() for p in adapter.projections}
    groups = geo.num_kv_heads
    if order == "prefix":
        return list(range(groups)), list(range(geo.ffn_dim))
    hd, hpg = geo.head_dim, geo.heads_per_kv_group
    head_score = []
    for g in range(groups):
        s = 0.0
        if "q" in w:
            s += float((w["q"][g * hpg * hd:(g + 1) * hpg * hd] ** 2).sum()) / min(hpg * hd, geo.hidden_size)
            s += float((w["k"][g * hd:(g + 1) * hd] ** 2).sum()) / min(hd, geo.hidden_size)
            s += float((w["v"][g * hd:(g + 1) * hd] ** 2).sum()) / min(hd, geo.hidden_size)
        else:  # fused qkv: head g has one block in each of the three sections
            d = geo.hidden_size
            for part in range(3):
                s += float((w["qkv"][part * d + g * hd:part * d + (g + 1) * hd] ** 2).sum()) / min(3 * hd, d)
        s += float((w["o"][:, g * hpg * hd:(g + 1) * hpg * hd] ** 2).sum()) / min(hpg * hd, geo.hidden_size)
        head_score.append(s)
    chan = sum((w[r] ** 2).sum(dim=1) for r in ("gate", "up") if r in w) + (w["down"] ** 2).sum(dim=0)
    head_order = sorted(range(groups), key=lambda g: (-head_score[g], g))
    chan_order = sorted(range(geo.ffn_dim), key=lambda c: (-float(chan[c]), c))
    return head_order, chan_order


def sliced(adapter, model, index: int, choice: LayerChoice, order: str, merged=None) -> dict[str, torch.Tensor]:
    """Every projection of block ``index`` cut to ``choice`` by direct indexing."""
    geo = adapter.geometry(index)
    layer = adapter.layers(model)[index]
    hd, hpg, d = geo.head_dim, geo.heads_per_kv_group, geo.hidden_size
    head_order, chan_order = brute_orders(adapter, model, index, order)
    groups = head_order[: choice.heads // hpg]
    q_rows = [g * hpg * hd + j for g in groups for j in range(hpg * hd)]
    kv_rows = [g * hd + j for g in groups for j in range(hd)]
    chans = chan_order[: choice.ffn]
    out = {}
    for p in adapter.projections:
        w = merged(p) if merged else adapter.projection_weight(layer, p).detach()
        if p.role == "q":
            out[p.role] = w[q_rows]
        elif p.role in ("k", "v"):
            out[p.role] = w[kv_rows]
        elif p.role == "qkv":
            out[p.role] = w[[part * d + r for part in range(3) for r in q_rows]]
        elif p.role == "o":
            out[p.role] = w[:, q_rows]
        elif p.role in ("gate", "up"):
            out[p.role] = w[chans]
        else:
            out[p.role] = w[:, chans]
    return out


def brute_layer(adapter, model, index, choice, order, merged=None) -> tuple[float, float]:
    mats = sliced(adapter, model, index, choice, order, merged)
    attn = sum(svd_capacity(mats[p.role]) for p in adapter.projections if p.module == "attn")
    ffn = sum(svd_capacity(mats[p.role]) for p in adapter.projections if p.module == "ffn")
    return attn, ffn


def random_subnets(space: SearchSpace, n: int, seed: int) -> list[Subnet]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(Subnet([opts[rng.integers(len(opts))] for opts in (space.options(i) for i in range(space.num_layers))]))
    return out


def check_table(model, space, order, layers, n_subnets=3, seed=0):
    adapter = get_adapter(model)
    table = CapacityTable.from_model(model, space, order=order)
    for subnet in random_subnets(space, n_subnets, seed):
        idx = table.indices_of(subnet)
        for i in layers:
            attn, ffn = brute_layer(adapter, model, i, subnet.layers[i], order)
            assert table.attn[i][idx[i]] == pytest.approx(attn, rel=REL)
            assert table.ffn[i][idx[i]] == pytest.approx(ffn, rel=REL)
    return table


@pytest.mark.parametrize("order", ["prefix", "capacity"])
def test_smollm2_table_matches_svd_of_sliced_weights(smollm2, order):
    model, _ = smollm2
    # GQA: 9 query heads in 3 KV groups; uneven FFN widths exercise min(m, n) switching sides
    space = SearchSpace([LayerSpace([9, 6, 3], [1536, 700, 257]) for _ in range(30)])
    check_table(model, space, order, layers=[0, 11, 29], seed=1)


@pytest.mark.parametrize("order", ["prefix", "capacity"])
def test_minilm_table_matches_svd_of_sliced_weights(minilm, order):
    model, _ = minilm
    space = SearchSpace([LayerSpace([12, 7, 2], [1536, 900, 100]) for _ in range(6)])
    check_table(model, space, order, layers=[0, 5], seed=2)


@pytest.mark.parametrize("order", ["prefix", "capacity"])
def test_gpt2_fused_qkv_matches_svd(tiny_gpt2, order):
    space = SearchSpace([LayerSpace([4, 3, 1], [80, 50, 7]) for _ in range(2)])
    check_table(tiny_gpt2, space, order, layers=[0, 1], n_subnets=4, seed=3)


def test_capacity_orders_are_the_shared_importance_orders(smollm2):
    """The materializer slices with importance.py; the table must keep the same units."""
    model, _ = smollm2
    adapter = get_adapter(model)
    for i in (0, 29):
        heads, chans = brute_orders(adapter, model, i, "capacity")
        assert head_group_order(adapter, model, i, "capacity") == heads
        assert ffn_channel_order(adapter, model, i, "capacity") == chans
        assert head_group_order(adapter, model, i, "prefix") == [0, 1, 2]
    assert heads != [0, 1, 2] or chans[:5] != [0, 1, 2, 3, 4]  # the real weights are not already sorted


def test_lora_rank_choices_score_the_merged_slices(tiny_llama):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    r_max, alpha = 8, 16.0
    peft_model = get_peft_model(tiny_llama, LoraConfig(
        r=r_max, lora_alpha=alpha,
        target_modules=["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]))
    for name, module in peft_model.named_modules():
        if name.endswith("lora_B.default"):
            torch.nn.init.normal_(module.weight, std=0.3)  # B = 0 would hide the rank
    lora = {"groups": {"qkv": ["q_proj", "k_proj", "v_proj"], "gateup": ["gate_proj", "up_proj"]},
            "alpha": alpha, "r_max": r_max, "targets": ["down_proj"]}
    space = SearchSpace([LayerSpace([8, 4], [96, 40], {"qkv": [8, 3], "gateup": [8, 5, 0]}) for _ in range(3)], lora=lora)
    adapter = get_adapter(peft_model)
    scale = alpha / r_max
    for order in ("prefix", "capacity"):
        table = CapacityTable.from_model(peft_model, space, order=order)
        seen_ranks = set()
        for subnet in random_subnets(space, 6, seed=4):
            idx = table.indices_of(subnet)
            for i, choice in enumerate(subnet.layers):
                layer = adapter.layers(peft_model)[i]

                def merged(p, layer=layer, choice=choice):
                    module = adapter.projection_module(layer, p)
                    w = adapter.projection_weight(layer, p).detach().double()
                    if not hasattr(module, "lora_A"):
                        return w
                    group = {"q": "qkv", "k": "qkv", "v": "qkv", "gate": "gateup", "up": "gateup"}.get(p.role)
                    r = choice.rank(group) if group else r_max
                    a = module.lora_A["default"].weight.detach().double()
                    b = module.lora_B["default"].weight.detach().double()
                    return w + scale * b[:, :r] @ a[:r, :]

                attn, ffn = brute_layer(adapter, peft_model, i, choice, order, merged)
                assert table.attn[i][idx[i]] == pytest.approx(attn, rel=REL)
                assert table.ffn[i][idx[i]] == pytest.approx(ffn, rel=REL)
                seen_ranks.add(choice.ranks)
        assert len(seen_ranks) > 2
        # rank matters: same widths, different ranks, different capacity
        opts = table.options[0]
        a = opts.index(LayerChoice(8, 96, (("gateup", 8), ("qkv", 8))))
        b = opts.index(LayerChoice(8, 96, (("gateup", 0), ("qkv", 3))))
        assert table.attn[0][a] != pytest.approx(table.attn[0][b], rel=1e-3)
        assert table.ffn[0][a] != pytest.approx(table.ffn[0][b], rel=1e-3)


def test_queries_agree_with_cost_and_score(smollm2):
    from zerolm_prune import cost

    model, _ = smollm2
    adapter = get_adapter(model)
    space = SearchSpace([LayerSpace([9, 3], [1536, 512]) for _ in range(30)])
    table = CapacityTable.from_model(model, space)
    subnets = random_subnets(space, 5, seed=5)
    idx = np.stack([table.indices_of(s) for s in subnets])
    for s, row, vec in zip(subnets, idx, table.score_indices(idx, alpha=0.7)):
        assert table.subnet_at(row).layers == s.layers
        assert table.total_params(row) == cost.subnet_params(adapter, s)
        assert table.total_macs(row) == cost.subnet_macs(adapter, s)
        assert vec == pytest.approx(table.score(s, 0.7))
    assert list(table.total_params(idx)) == [cost.subnet_params(adapter, s) for s in subnets]
    # the maximal subnet's FFN capacity is the plain per-matrix capacity of the model
    full = table.indices_of(space.maximal())
    layer0 = adapter.layers(model)[0]
    ffn0 = sum(capacity(adapter.projection_weight(layer0, p)) for p in adapter.ffn_projections)
    assert table.ffn[0][full[0]] == pytest.approx(ffn0, rel=REL)


def test_random_init_follows_the_init_distribution():
    """Shapes only: E[C] = std^2 * max(m, n); LLaMA-7B shapes in well under a second."""
    from transformers import LlamaConfig

    config = LlamaConfig()  # LLaMA-7B geometry: 32 layers, 4096 hidden, 11008 FFN
    space = SearchSpace([LayerSpace([32, 16], [11008, 5504]) for _ in range(32)])
    table = CapacityTable.random_init(config, space, seed=0)
    std2 = config.initializer_range ** 2
    j = table.options[3].index(LayerChoice(16, 5504))
    # q, k, v: (2048 x 4096) -> max 4096; o: (4096 x 2048) -> 4096
    assert table.attn[3][j] == pytest.approx(4 * std2 * 4096, rel=1e-3)
    # gate, up: (5504 x 4096), down: (4096 x 5504) -> 5504 each
    assert table.ffn[3][j] == pytest.approx(3 * std2 * 5504, rel=1e-3)
    again = CapacityTable.random_init(config, space, seed=0)
    other = CapacityTable.random_init(config, space, seed=1)
    assert np.array_equal(again.ffn[3], table.ffn[3])
    assert not np.array_equal(other.ffn[3], table.ffn[3])


def test_random_init_matches_a_built_random_model(tiny_gpt2):
    """The chi-square shortcut has the law of a real init (GPT-2 c_proj scaling included)."""
    space = SearchSpace([LayerSpace([4, 2], [80, 40]) for _ in range(2)])
    built = CapacityTable.from_model(tiny_gpt2, space)
    drawn = np.mean([CapacityTable.random_init(tiny_gpt2.config, space, seed=s).ffn[1] for s in range(20)], axis=0)
    assert np.allclose(drawn, built.ffn[1], rtol=0.1)


def test_lora_on_gpt2_conv1d_scores_the_merged_fused_qkv(tiny_gpt2):
    """Conv1D stores (in, out); peft's B @ A is (out, in): the merge must line up with the slices."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    peft_model = get_peft_model(tiny_gpt2, LoraConfig(r=6, lora_alpha=12, target_modules=["c_attn"],
                                                      fan_in_fan_out=True))
    for name, module in peft_model.named_modules():
        if name.endswith("lora_B.default"):
            torch.nn.init.normal_(module.weight, std=0.3)
    lora = {"groups": {"qkv": ["c_attn"]}, "alpha": 12.0, "r_max": 6}
    space = SearchSpace([LayerSpace([4, 2], [80, 30], {"qkv": [6, 2]}) for _ in range(2)], lora=lora)
    adapter = get_adapter(peft_model)
    c_attn = adapter.projection_module(adapter.layers(peft_model)[0], adapter.projections[0])
    ours = 2.0 * c_attn.lora_B["default"].weight @ c_attn.lora_A["default"].weight
    assert torch.allclose(c_attn.get_delta_weight("default").t(), ours)  # peft's own merge, (out, in)
    table = CapacityTable.from_model(peft_model, space, order="capacity")
    for subnet in random_subnets(space, 4, seed=6):
        idx = table.indices_of(subnet)
        for i, choice in enumerate(subnet.layers):
            layer = adapter.layers(peft_model)[i]

            def merged(p, layer=layer, choice=choice):
                module = adapter.projection_module(layer, p)
                w = adapter.projection_weight(layer, p).detach().double()
                if p.role != "qkv":
                    return w
                r = choice.rank("qkv")
                a = module.lora_A["default"].weight.detach().double()
                b = module.lora_B["default"].weight.detach().double()
                return w + 2.0 * b[:, :r] @ a[:r, :]

            attn, ffn = brute_layer(adapter, peft_model, i, choice, "capacity", merged)
            assert table.attn[i][idx[i]] == pytest.approx(attn, rel=REL)
            assert table.ffn[i][idx[i]] == pytest.approx(ffn, rel=REL)


@pytest.mark.parametrize("order", ["prefix", "capacity"])
def test_table_scores_what_materialize_cuts(smollm2, order):
    """The materialized (physically smaller) model has exactly the table's capacity per layer."""
    materialize = pytest.importorskip("zerolm_prune.materialize").materialize
    model, _ = smollm2
    space = SearchSpace([LayerSpace([9, 6, 3], [1536, 700, 257]) for _ in range(30)])
    table = CapacityTable.from_model(model, space, order=order)
    subnet = random_subnets(space, 1, seed=7)[0]
    small = materialize(model, subnet, order=order)
    adapter = get_adapter(small)
    idx = table.indices_of(subnet)
    for i in (0, 11, 29):
        layer = adapter.layers(small)[i]
        attn = sum(capacity(adapter.projection_weight(layer, p)) for p in adapter.attn_projections)
        ffn = sum(capacity(adapter.projection_weight(layer, p)) for p in adapter.ffn_projections)
        assert table.attn[i][idx[i]] == pytest.approx(attn, rel=REL)
        assert table.ffn[i][idx[i]] == pytest.approx(ffn, rel=REL)
