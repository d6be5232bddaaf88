"""Unit orders other than prefix (selfgen, energy, explicit dicts) agree across scoring and cutting.

What must hold: ``materialize``, ``CapacityTable.from_model`` and the selfgen rankers keep exactly
the same heads/channels for the same ``order``, a named order equals its computed dict, the saved
folder records the order, and a malformed dict is a one-line UserError.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from zerolm_prune.errors import UserError
from zerolm_prune.materialize import materialize, materialize_folder, plan_layer
from zerolm_prune.models import get_adapter
from zerolm_prune.proxy import CapacityTable, capacity
from zerolm_prune.rankers import get_ranker
from zerolm_prune.rankers.orders import compute_orders, resolve_orders, validate_orders
from zerolm_prune.space import LayerChoice, LayerSpace, SearchSpace, Subnet

from conftest import tiny_llama_config


def random_orders(adapter, seed: int) -> dict[str, dict[str, list[int]]]:
    """A random permutation per layer, with string keys as after a JSON round trip."""
    rng = np.random.default_rng(seed)
    out = {}
    for l in range(adapter.num_layers):
        geo = adapter.geometry(l)
        out[str(l)] = {"heads": rng.permutation(geo.num_kv_heads).tolist(), "ffn": rng.permutation(geo.ffn_dim).tolist()}
    return json.loads(json.dumps(out))


def masked_by_orders(model, subnet, orders):
    """Full model with the units the orders drop zeroed on the consumer side (o / down columns),
    computed from the dict directly, independent of materialize's planning."""
    ref = copy.deepcopy(model)
    adapter = get_adapter(ref)
    layers = adapter.layers(ref)
    with torch.no_grad():
        for l, choice in enumerate(subnet.layers):
            geo = adapter.geometry(l)
            per, hd = geo.heads_per_kv_group, geo.head_dim
            kept_groups = set(orders[str(l)]["heads"][: choice.heads // per])
            cols = [h * hd + d for h in range(geo.num_heads) if h // per not in kept_groups for d in range(hd)]
            kept_ch = set(orders[str(l)]["ffn"][: choice.ffn])
            ffn_cols = [c for c in range(geo.ffn_dim) if c not in kept_ch]
            for proj in adapter.projections:
                if proj.role == "o" and cols:
                    adapter.projection_weight(layers[l], proj)[:, cols] = 0
                if proj.role == "down" and ffn_cols:
                    adapter.projection_weight(layers[l], proj)[:, ffn_cols] = 0
    return ref


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_smollm2_dict_order_materializes_the_masked_model_and_table_agrees(smollm2):
    """Real SmolLM2: materialize with an explicit (JSON-shaped) orders dict computes what the full
    model computes with exactly those units zeroed, and the capacity table built with the same
    dict scores the materialized slices (brute-force C(W) of the smaller weights)."""
    model, _ = smollm2
    adapter = get_adapter(model)
    orders = random_orders(adapter, seed=3)
    rng = np.random.default_rng(5)
    subnet = Subnet([LayerChoice(int(rng.choice([9, 6, 3])), int(rng.choice([1536, 700, 257]))) for _ in range(30)])
    ids = torch.tensor([[1, 504, 3458, 282, 4127, 30, 378, 1690, 314, 260, 1345, 28, 50, 16]])

    ref_model = masked_by_orders(model, subnet, orders)
    small = materialize(model, subnet, order=orders)
    ref, got = logits(ref_model, ids), logits(small, ids)
    assert got.shape == ref.shape
    # fp32 sums over fewer columns in another order (~1e-5 relative over 30 narrow layers);
    # in float64 the two networks agree to rounding
    assert (got - ref).abs().max().item() < 1e-4 * ref.abs().max().item()
    assert (got - logits(materialize(model, subnet), ids)).abs().max().item() > 1e-2  # not prefix by accident
    ref_model.double()
    small.double()
    assert (logits(small, ids) - logits(ref_model, ids)).abs().max().item() < 1e-9
    del ref_model
    small.float()

    space = SearchSpace([LayerSpace([9, 6, 3], [1536, 700, 257]) for _ in range(30)])
    table = CapacityTable.from_model(model, space, order=orders)
    assert table.order == "custom"
    idx = table.indices_of(subnet)
    small_adapter = get_adapter(small)
    for l in (0, 11, 29):
        layer = small_adapter.layers(small)[l]
        attn = sum(capacity(small_adapter.projection_weight(layer, p)) for p in small_adapter.attn_projections)
        ffn = sum(capacity(small_adapter.projection_weight(layer, p)) for p in small_adapter.ffn_projections)
        assert table.attn[l][idx[l]] == pytest.approx(attn, rel=1e-6)
        assert table.ffn[l][idx[l]] == pytest.approx(ffn, rel=1e-6)


def small_llama():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    # 4 KV groups so that head orders have room to differ from prefix
    return LlamaForCausalLM(tiny_llama_config(num_key_value_heads=4, bos_token_id=1)).eval()


SUBNET = Subnet([LayerChoice(4, 50), LayerChoice(8, 96), LayerChoice(2, 7)])


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_selfgen_resolved_once_equals_its_computed_dict_and_is_recorded(tmp_path):
    from zerolm_prune.checkpoint import save_pretrained

    model = small_llama()
    orders = compute_orders(model, "selfgen")
    assert any(orders[l]["ffn"][:50] != list(range(50)) for l in orders)  # a real reordering
    by_name = materialize(model, SUBNET, order=resolve_orders(model, "selfgen"), label="selfgen")
    by_dict = materialize(model, SUBNET, order=orders)
    a, b = state(by_name), state(by_dict)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert by_name.zerolm_prune_order == "selfgen" and by_dict.zerolm_prune_order == "custom"

    out = save_pretrained(by_name, tmp_path / "pruned", subnet=SUBNET)
    meta = json.loads((out / "config.json").read_text())["zerolm_prune"]
    assert meta["order"] == "selfgen"

    # the table takes the resolved order (it does not run the model): the name alone is refused,
    # its dict recorded under the name's label; ZeroLM under the name scores the table of its dict
    space = SearchSpace([LayerSpace([8, 4, 2], [96, 50, 7]) for _ in range(3)])
    with pytest.raises(UserError, match="resolve it first"):
        CapacityTable.from_model(model, space, order="selfgen")
    t_name = CapacityTable.from_model(model, space, order=orders, label="selfgen")
    t_dict = CapacityTable.from_model(model, space, order=orders)
    assert t_name.order == "selfgen" and t_dict.order == "custom"
    zerolm = get_ranker("zerolm", order="selfgen").layer_values(model, space)
    for l in range(3):
        np.testing.assert_array_equal(t_name.attn[l], t_dict.attn[l])
        np.testing.assert_array_equal(t_name.ffn[l], t_dict.ffn[l])
        np.testing.assert_array_equal(zerolm[l], t_dict.layer_values(1.0)[l])


def test_fidelity_under_an_order_is_the_kl_of_the_materialized_model():
    """The second stage scores exactly the checkpoint ``materialize(order=...)`` produces."""
    from zerolm_prune.rankers import get_ranker
    from zerolm_prune.rankers.selfgen import SelfText, _kl

    model = small_llama()
    ranker = get_ranker("selfgen", order="selfgen", progress=False)
    scores = ranker.score(model, [SUBNET])
    text = SelfText(model, seqs=2, length=128, seed=0)
    orders = resolve_orders(model, "selfgen")
    small = materialize(model, SUBNET, order=orders)
    with torch.no_grad():
        logp = torch.log_softmax(small(input_ids=text.ids).logits.float(), dim=-1)
    assert scores[0] == pytest.approx(-_kl(text.base_logp, logp), rel=1e-4, abs=1e-7)
    prefix = get_ranker("selfgen", progress=False).score(model, [SUBNET])
    assert prefix[0] != pytest.approx(scores[0], rel=1e-3)

    # stage 1 under the same order: a narrowest-choice entry is minus that layer's KL end to end
    space = SearchSpace([LayerSpace([8, 4], [96, 7]) for _ in range(3)])
    values = ranker.layer_values(model, space)
    full = Subnet([LayerChoice(8, 96)] * 3)
    one = Subnet([LayerChoice(8, 96), LayerChoice(8, 7), LayerChoice(8, 96)])
    small = materialize(model, one, order=orders)
    with torch.no_grad():
        logp = torch.log_softmax(small(input_ids=text.ids).logits.float(), dim=-1)
    j = space.options(1).index(LayerChoice(8, 7))
    assert values[1][j] == pytest.approx(-_kl(text.base_logp, logp), rel=1e-4, abs=1e-7)
    assert values[1][space.options(1).index(full.layers[1])] == 0.0


@pytest.mark.parametrize("bad, needle", [
    ({"0": {"heads": [0, 1, 2], "ffn": list(range(96))}}, "permutation"),
    ({"0": {"heads": [0, 0, 1, 2], "ffn": list(range(96))}}, "permutation"),
    ({"0": {"heads": [3, 2, 1, 0], "ffn": list(range(95))}}, "permutation"),
    ({"x": {"heads": [3, 2, 1, 0]}}, "not a layer index"),
    ({"7": {"heads": [3, 2, 1, 0]}}, "out of range"),
    ({"0": {"heads": [3, 2, 1, 0], "ffn": None}}, "missing"),  # alone: layers 1 and 2 absent
    ({"0": [1, 2]}, "must be"),
])
def test_bad_orders_dict_is_one_line_user_error(bad, needle, tmp_path):
    model = small_llama()
    full = {str(l): {"heads": [0, 1, 2, 3]} for l in range(1, 3)}
    orders = bad if needle == "missing" else {**full, **bad}  # a null/absent dimension keeps prefix: fine
    for call in (lambda: materialize(model, SUBNET, order=orders),
                 lambda: CapacityTable.from_model(model, SearchSpace([LayerSpace([8, 4], [96, 50])] * 3), order=orders),
                 lambda: validate_orders(orders, get_adapter(model))):
        with pytest.raises(UserError) as err:
            call()
        assert needle in str(err.value) and "\n" not in str(err.value)


def test_streaming_takes_a_dict_and_refuses_model_orders(tmp_path):
    model = small_llama()
    model.save_pretrained(str(tmp_path / "base"))
    orders = random_orders(get_adapter(model), seed=1)
    out = materialize_folder(tmp_path / "base", SUBNET, tmp_path / "out", order=orders)
    meta = json.loads((out / "config.json").read_text())["zerolm_prune"]
    assert meta["order"] == "custom"
    from safetensors.torch import load_file

    streamed = load_file(str(out / "model.safetensors"))
    expected = materialize(model, SUBNET, order=orders).state_dict()
    for key, value in streamed.items():
        assert torch.equal(value, expected[key]), key
    with pytest.raises(UserError, match="resolve it first"):
        materialize_folder(tmp_path / "base", SUBNET, tmp_path / "out2", order="selfgen")


def test_prune_cli_order_selfgen_saves_the_selfgen_cut(tmp_path, capsys):
    """``prune --order selfgen`` loads the model (no streaming) and writes what materialize cuts."""
    import shutil

    from safetensors.torch import load_file

    from zerolm_prune.assets import smollm2_135m_dir
    from zerolm_prune.cli import main

    model = small_llama()
    base = tmp_path / "base"
    model.save_pretrained(str(base))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (smollm2_135m_dir() / name).is_file():
            shutil.copyfile(smollm2_135m_dir() / name, base / name)
    subnet_file = tmp_path / "subnet.json"
    subnet_file.write_text(json.dumps(SUBNET.to_dict()))
    assert main(["prune", str(base), "--subnet", str(subnet_file), "--out", str(tmp_path / "out"),
                 "--order", "selfgen"]) == 0
    meta = json.loads((tmp_path / "out" / "config.json").read_text())["zerolm_prune"]
    assert meta["order"] == "selfgen"
    saved = load_file(str(tmp_path / "out" / "model.safetensors"))
    expected = materialize(model, SUBNET, order=resolve_orders(model, "selfgen")).state_dict()
    for key, value in saved.items():
        assert torch.equal(value, expected[key]), key


def test_selfgen_order_refuses_models_it_cannot_run(tiny_bert, tiny_gpt2):
    for model, needle in ((tiny_bert, "causal LM"), (tiny_gpt2, "unfused")):
        subnet = Subnet([LayerChoice(get_adapter(model).geometry(0).num_heads // 2, 7)] * get_adapter(model).num_layers)
        with pytest.raises(UserError, match=needle):
            resolve_orders(model, "selfgen")
    # energy works on both (weights only) and matches its dict
    for model in (tiny_bert, tiny_gpt2):
        subnet = Subnet([LayerChoice(get_adapter(model).geometry(0).num_heads // 2, 7)] * get_adapter(model).num_layers)
        a = state(materialize(model, subnet, order=resolve_orders(model, "energy")))
        b = state(materialize(model, subnet, order=compute_orders(model, "energy")))
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["selfgen", "energy"])
def test_cutting_takes_only_resolved_orders(name, tmp_path):
    """A name that needs the whole model is refused by every cutting consumer, with one line that
    says how to resolve it; resolved once at the caller's top, it cuts the units of its dict: the
    weights ``materialize(order=name)`` wrote when it still resolved names itself."""
    model = small_llama()
    model.save_pretrained(str(tmp_path / "base"))
    adapter = get_adapter(model)
    for call in (lambda: materialize(model, SUBNET, order=name),
                 lambda: materialize_folder(tmp_path / "base", SUBNET, tmp_path / "out", order=name),
                 lambda: plan_layer(adapter, model, 0, SUBNET.layers[0], name)):
        with pytest.raises(UserError) as err:
            call()
        message = str(err.value)
        assert "resolve it first" in message and "rankers.orders.resolve_orders" in message and "\n" not in message
    assert not (tmp_path / "out").exists()

    orders = resolve_orders(model, name, adapter=adapter)
    assert orders == compute_orders(model, name, adapter=adapter)  # deterministic: the same dict as before
    assert any(orders[l]["ffn"][:c.ffn] != list(range(c.ffn)) for l, c in enumerate(SUBNET.layers))  # not prefix
    cut = materialize(model, SUBNET, order=orders, label=name)
    assert cut.zerolm_prune_order == name
    # the same tensors as slicing the dict's kept units by hand (an independent reference) ...
    want = state(_sliced_by_hand(model, SUBNET, orders))
    got = state(cut)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    # ... and as the streamed cut of the saved folder with the same dict
    from safetensors.torch import load_file

    out = materialize_folder(tmp_path / "base", SUBNET, tmp_path / "out", order=orders, label=name)
    assert json.loads((out / "config.json").read_text())["zerolm_prune"]["order"] == name
    streamed = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(value, got[key]) for key, value in streamed.items())


def _sliced_by_hand(model, subnet, orders):
    """LLaMA ``model`` with each projection restricted to the units ``orders`` keeps (ascending),
    written out with ``index_select`` and nothing of the package's planning."""
    ref = copy.deepcopy(model)
    adapter = get_adapter(ref)
    with torch.no_grad():
        for l, (layer, choice) in enumerate(zip(adapter.layers(ref), subnet.layers)):
            geo = adapter.geometry(l)
            per, hd = geo.heads_per_kv_group, geo.head_dim
            groups = sorted(orders[l]["heads"][: choice.heads // per])
            q = torch.tensor([(g * per + i) * hd + d for g in groups for i in range(per) for d in range(hd)])
            kv = torch.tensor([g * hd + d for g in groups for d in range(hd)])
            ch = torch.tensor(sorted(orders[l]["ffn"][: choice.ffn]))
            attn, mlp = layer.self_attn, layer.mlp
            for mod, idx, dim in ((attn.q_proj, q, 0), (attn.k_proj, kv, 0), (attn.v_proj, kv, 0), (attn.o_proj, q, 1),
                                  (mlp.gate_proj, ch, 0), (mlp.up_proj, ch, 0), (mlp.down_proj, ch, 1)):
                mod.weight = torch.nn.Parameter(mod.weight.index_select(dim, idx).clone())
    return ref
