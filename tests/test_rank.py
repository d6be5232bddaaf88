"""rank_subnets on real capacity tables: brute force over every subnet, budgets, errors, ranked.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zerolm_prune import cost
from zerolm_prune.errors import UserError
from zerolm_prune.models import get_adapter
from zerolm_prune.proxy import CapacityTable
from zerolm_prune.search import rank_subnets, read_ranked, resolve_budget, write_ranked
from zerolm_prune.space import LayerSpace, SearchSpace, Subnet

from conftest import tiny_llama_config

LORA = {"groups": {"qkv": ["q_proj", "k_proj", "v_proj"]}, "alpha": 16.0, "r_max": 8}


def tiny_space(config) -> SearchSpace:
    """3 layers x (2 heads x 3 FFN x 2 ranks): 1728 subnets, many of them tied in score."""
    layers = [LayerSpace([8, 4], [96, 64, 32], {"qkv": [8, 4]}) for _ in range(config.num_hidden_layers)]
    return SearchSpace(layers, model="tiny", config=config.to_dict(), lora=LORA, name="tiny")


def option_costs(table, by, include_lora):
    """Per layer, per option: params or MACs from cost.py's block formulas (not the table's columns)."""
    adapter, lora = table.adapter, table.space.lora
    fn = cost.block_params if by == "params" else cost.block_macs
    fixed = cost.fixed_params(adapter) if by == "params" else cost.fixed_macs(adapter)
    per_layer = [np.array([fn(adapter.geometry(i), c, config=adapter.config, lora=lora, include_lora=include_lora)
                           for c in table.space.options(i)], dtype=np.int64) for i in range(table.num_layers)]
    # spot-check against the whole-subnet formulas
    whole = cost.subnet_params if by == "params" else cost.subnet_macs
    for subnet in (table.space.maximal(), table.space.minimal()):
        idx = table.indices_of(subnet)
        assert fixed + sum(int(per_layer[i][j]) for i, j in enumerate(idx)) == whole(
            adapter, subnet, lora=lora, include_lora=include_lora)
    return fixed, per_layer


def brute_rank(table, *, budget_abs, by, alpha, include_lora, k):
    """Every subnet enumerated, scored left to right, counted with cost.py, sorted by the tie rule."""
    fixed, per_layer = option_costs(table, by, include_lora)
    sizes = [len(c) for c in per_layer]
    idx = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
    score = np.zeros(len(idx))
    total = np.full(len(idx), fixed, dtype=np.int64)
    for i in range(table.num_layers):
        score = score + (table.ffn[i] + alpha * table.attn[i])[idx[:, i]]
        total += per_layer[i][idx[:, i]]
    ok = np.flatnonzero(total <= budget_abs)
    keys = tuple(idx[ok, j] for j in range(idx.shape[1] - 1, -1, -1))
    order = ok[np.lexsort(keys + (total[ok], -score[ok]))[:k]]
    return [(float(score[o]), int(total[o]), tuple(int(x) for x in idx[o])) for o in order]


@pytest.mark.parametrize("by", ["params", "macs"])
@pytest.mark.parametrize("include_lora", [False, True])
def test_rank_subnets_equals_brute_force_on_a_random_init_table(by, include_lora):
    config = tiny_llama_config()
    table = CapacityTable.random_init(config, tiny_space(config), seed=3)
    for alpha in (-0.5, 1.0, 2.0):
        for fraction in (0.55, 0.7, 0.85, 1.0):
            info = resolve_budget(table, fraction, by=by, include_lora=include_lora)
            if info.absolute < info.minimal:
                continue
            entries = rank_subnets(table, budget=fraction, by=by, top_k=12, alpha=alpha, include_lora=include_lora,
                                   distinct=False)
            expected = brute_rank(table, budget_abs=info.absolute, by=by, alpha=alpha, include_lora=include_lora, k=12)
            assert [tuple(e["indices"]) for e in entries] == [r[2] for r in expected]
            assert [e[by] for e in entries] == [r[1] for r in expected]
            for e, r in zip(entries, expected):
                assert e["score"] == pytest.approx(r[0], rel=1e-12)
            assert [e["rank"] for e in entries] == list(range(len(entries)))


@pytest.mark.parametrize("include_lora", [False, True])
def test_distinct_ranking_collapses_invisible_rank_choices(include_lora):
    """Without LoRA counted or attached, ranks change nothing: the first listed rank stands for them."""
    config = tiny_llama_config()
    table = CapacityTable.random_init(config, tiny_space(config), seed=5)
    info = resolve_budget(table, 0.8, include_lora=include_lora)
    entries = rank_subnets(table, budget=0.8, top_k=15, include_lora=include_lora)
    rows = brute_rank(table, budget_abs=info.absolute, by="params", alpha=1.0, include_lora=include_lora,
                      k=table.space.size)
    # random init: the score depends on (heads, ffn) only, so each (heads, ffn) keeps its cheapest
    # option (the first listed when ranks are not counted, the smallest rank when they are)
    _, per_layer = option_costs(table, "params", include_lora)
    reps = set()
    for heads_ffn in {(c.heads, c.ffn) for c in table.space.options(0)}:
        group = [j for j, c in enumerate(table.space.options(0)) if (c.heads, c.ffn) == heads_ffn]
        reps.add(min(group, key=lambda j: (per_layer[0][j], j)))
    rows = [r for r in rows if all(i in reps for i in r[2])]
    assert [tuple(e["indices"]) for e in entries] == [r[2] for r in rows[:15]]
    seen = {(e["score"], e["params"], e["macs"], str(e["subnet"])) for e in entries}
    assert len(seen) == len(entries)
    assert all(set(e["subnet"]["ranks"]["qkv"]) == ({4} if include_lora else {8}) for e in entries)


def test_rank_subnets_real_smollm2_weights_brute_force(smollm2):
    """Real weights: three elastic layers (0, 11, 29; 4 x 5 options each), the rest fixed."""
    model, _ = smollm2
    adapter = get_adapter(model)
    layers = []
    for i in range(adapter.num_layers):
        if i in (0, 11, 29):
            layers.append(LayerSpace([9, 6, 3], [1536, 1344, 1152, 960, 768]))
        else:
            layers.append(LayerSpace([9], [1536]))
    space = SearchSpace(layers, model="smollm2-135m", name="three elastic layers")
    table = CapacityTable.from_model(model, space, adapter=adapter)
    full = sum(p.numel() for p in model.parameters())  # tied embeddings counted once
    info = resolve_budget(table, 1.0, by="params")
    assert info.full == full  # a fraction is of the whole checkpoint, embeddings included
    for alpha in (0.0, 1.0, 3.0):
        for fraction in (0.96, 0.975, 0.99):
            entries = rank_subnets(table, budget=fraction, top_k=5, alpha=alpha, distinct=False)
            expected = brute_rank(table, budget_abs=int(fraction * full), by="params", alpha=alpha,
                                  include_lora=False, k=5)
            assert [tuple(e["indices"]) for e in entries] == [r[2] for r in expected]
            for e in entries:
                assert e["params"] <= fraction * full
                assert Subnet.from_dict(e["subnet"]).layers == table.subnet_at(e["indices"]).layers


def test_budget_absolute_and_fraction_agree():
    config = tiny_llama_config()
    table = CapacityTable.random_init(config, tiny_space(config))
    info = resolve_budget(table, 0.8)
    a = rank_subnets(table, budget=0.8, top_k=5)
    b = rank_subnets(table, budget=float(info.absolute), top_k=5)
    assert a == b
    # the full model's count equals a built model's parameter count
    from transformers import LlamaForCausalLM

    assert info.full == sum(p.numel() for p in LlamaForCausalLM(config).parameters())


def test_infeasible_budget_names_the_smallest_feasible_one():
    config = tiny_llama_config()
    table = CapacityTable.random_init(config, tiny_space(config))
    info = resolve_budget(table, 0.1)
    with pytest.raises(UserError) as err:
        rank_subnets(table, budget=0.1, top_k=3)
    assert f"{info.minimal}" in str(err.value) and "\n" not in str(err.value)
    entries = rank_subnets(table, budget=float(info.minimal), top_k=3)
    assert entries and all(e["params"] == info.minimal for e in entries)  # exactly the minimal ones fit
    with pytest.raises(UserError, match="larger than the search space"):
        rank_subnets(table, budget=1.0, top_k=table.space.size + 1)
    with pytest.raises(UserError, match="unknown budget unit"):
        rank_subnets(table, budget=0.8, by="flops")


def test_ranked_json_round_trip(tmp_path):
    config = tiny_llama_config()
    table = CapacityTable.random_init(config, tiny_space(config))
    entries = rank_subnets(table, budget=0.8, top_k=4)
    path = tmp_path / "ranked.json"
    write_ranked(str(path), {"model": "tiny", "space": "tiny", "budget": 0.8, "alpha": 1.0, "order": "prefix",
                             "subnets": entries})
    assert [p.name for p in tmp_path.iterdir()] == ["ranked.json"]  # no temp file left behind
    back = read_ranked(str(path))
    assert [e["subnet"] for e in back] == [e["subnet"] for e in entries]
    assert back[0]["source"]["model"] == "tiny"
    second = read_ranked(f"{path}#2")
    assert len(second) == 1 and second[0]["rank"] == 2 and second[0]["subnet"] == entries[2]["subnet"]
    with pytest.raises(UserError, match="has no entry 9"):
        read_ranked(f"{path}#9")
    with pytest.raises(UserError, match="not found"):
        read_ranked(str(tmp_path / "missing.json"))
    # the run driver appends baselines with rank null: positions still select
    doc = json.loads(path.read_text())
    doc["subnets"].append({**entries[0], "rank": None, "name": "baseline"})
    path.write_text(json.dumps(doc))
    assert read_ranked(f"{path}#4")[0]["name"] == "baseline"
    (tmp_path / "bad.json").write_text(json.dumps({"heads": [1]}))
    with pytest.raises(UserError, match="no 'subnets'"):
        read_ranked(str(tmp_path / "bad.json"))


def test_suggested_fraction_is_feasible():
    config = tiny_llama_config()
    table = CapacityTable.random_init(config, tiny_space(config))
    with pytest.raises(UserError) as err:
        rank_subnets(table, budget=0.2, top_k=1)
    suggested = float(str(err.value).split("--budget ")[1].split()[0])
    assert rank_subnets(table, budget=suggested, top_k=1)
