"""Materialized subnets compute exactly what the full model computes with the pruned parts zeroed."""

from __future__ import annotations

import copy

import pytest
import torch

from zerolm_prune.errors import UserError
from zerolm_prune.materialize import materialize, plan_layer
from zerolm_prune.models import get_adapter
from zerolm_prune.space import LayerChoice, Subnet


def subnet_of(heads, ffn) -> Subnet:
    return Subnet([LayerChoice(h, f) for h, f in zip(heads, ffn)])


def masked_reference(model, subnet, order="prefix"):
    """Deep copy of ``model`` with pruned heads' output columns and pruned channels' down columns zeroed.

    Zeroing only the consumer side (o_proj / down_proj inputs) is enough: a head or channel whose
    output is multiplied by zero contributes nothing, whatever its q/k/v or gate/up rows hold.
    """
    ref = copy.deepcopy(model)
    adapter = get_adapter(ref)
    layers = adapter.layers(ref)
    with torch.no_grad():
        for i, choice in enumerate(subnet.layers):
            plan = plan_layer(adapter, model, i, choice, order)
            geo = plan.geometry
            kept_heads = set(plan.heads)
            cols = [h * geo.head_dim + d for h in range(geo.num_heads) if h not in kept_heads for d in range(geo.head_dim)]
            kept = set(plan.channels)
            ffn_cols = [c for c in range(geo.ffn_dim) if c not in kept]
            for proj in adapter.projections:
                if proj.role == "o" and cols:
                    adapter.projection_weight(layers[i], proj)[:, cols] = 0
                if proj.role == "down" and ffn_cols:
                    adapter.projection_weight(layers[i], proj)[:, ffn_cols] = 0
    return ref


def outputs(model, ids):
    with torch.no_grad():
        out = model(input_ids=ids)
    return out.logits if hasattr(out, "logits") and out.logits is not None else out.last_hidden_state


def assert_faithful(model, subnet, ids, order="prefix"):
    ref = outputs(masked_reference(model, subnet, order), ids)
    pruned = materialize(model, subnet, order=order)
    got = outputs(pruned, ids)
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() < 1e-5
    return pruned


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_tiny_llama_gqa_nonuniform(tiny_llama):
    subnet = subnet_of([4, 8, 4], [50, 96, 1])
    ids = torch.randint(0, 128, (2, 11))
    pruned = assert_faithful(tiny_llama, subnet, ids)
    layers = pruned.model.layers
    assert layers[0].self_attn.q_proj.weight.shape == (4 * 8, 64)
    assert layers[0].self_attn.k_proj.weight.shape == (1 * 8, 64)  # one KV group of four query heads
    assert layers[0].self_attn.o_proj.weight.shape == (64, 32)
    assert layers[2].mlp.down_proj.weight.shape == (64, 1)
    assert pruned.config.layer_shapes[0] == {"num_attention_heads": 4, "num_key_value_heads": 1, "intermediate_size": 50}
    assert n_params(pruned) < n_params(tiny_llama)
    # the source model is untouched
    assert tiny_llama.model.layers[0].self_attn.q_proj.weight.shape == (64, 64)
    assert get_adapter(pruned).geometry(1).num_heads == 8


def test_tiny_qwen2_biases_are_sliced():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1)
    config = Qwen2Config(vocab_size=96, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=3, max_position_embeddings=64)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # random biases: zero-initialised ones would hide a mis-sliced bias
        for layer in model.model.layers:
            for name in ("q_proj", "k_proj", "v_proj"):
                getattr(layer.self_attn, name).bias.normal_()
    subnet = subnet_of([2, 4], [17, 64])
    pruned = assert_faithful(model, subnet, torch.randint(0, 96, (1, 9)))
    assert pruned.model.layers[0].self_attn.k_proj.bias.shape == (8,)


def test_tiny_bert_heads_and_ffn(tiny_bert):
    subnet = subnet_of([3, 6], [40, 7])
    ids = torch.randint(0, 128, (2, 10))
    pruned = assert_faithful(tiny_bert, subnet, ids)
    sa = pruned.encoder.layer[0].attention.self
    assert sa.query.weight.shape == (24, 48) and sa.all_head_size == 24
    assert pruned.encoder.layer[0].attention.output.dense.weight.shape == (48, 24)


def test_tiny_gpt2_fused_qkv(tiny_gpt2):
    subnet = subnet_of([2, 3], [10, 80])
    ids = torch.randint(0, 128, (2, 10))
    pruned = assert_faithful(tiny_gpt2, subnet, ids)
    attn = pruned.transformer.h[0].attn
    assert attn.c_attn.weight.shape == (48, 3 * 24)  # Conv1D stores (in, out)
    assert attn.c_proj.weight.shape == (24, 48)


def test_uniform_subnet_gives_stock_config(tiny_llama):
    from transformers import LlamaForCausalLM

    pruned = materialize(tiny_llama, subnet_of([4, 4, 4], [48, 48, 48]))
    assert getattr(pruned.config, "layer_shapes", None) is None
    assert (pruned.config.num_attention_heads, pruned.config.num_key_value_heads, pruned.config.intermediate_size) == (4, 1, 48)
    stock = LlamaForCausalLM(pruned.config).eval()
    stock.load_state_dict(pruned.state_dict())  # strict: every shape is what a stock class builds
    ids = torch.randint(0, 128, (1, 7))
    assert torch.equal(outputs(stock, ids), outputs(pruned, ids))


def test_bert_fewer_heads_is_not_stock(tiny_bert):
    pruned = materialize(tiny_bert, subnet_of([3, 3], [80, 80]))
    # BERT derives head size from hidden/heads: fewer heads need per-layer shapes
    assert pruned.config.layer_shapes[1]["num_attention_heads"] == 3
    ffn_only = materialize(tiny_bert, subnet_of([6, 6], [40, 40]))
    assert getattr(ffn_only.config, "layer_shapes", None) is None and ffn_only.config.intermediate_size == 40


@pytest.mark.parametrize("heads, ffn, message", [
    ([4, 8], [96, 96], "subnet has 2 layers but the model has 3"),
    ([4, 8, 12], [96, 96, 96], "12 heads kept but the layer has 8"),
    ([4, 8, 8], [96, 97, 96], "FFN width 97 is outside 1..96"),
    ([6, 8, 8], [96, 96, 96], "would split a KV group of 4"),
    ([0, 8, 8], [96, 96, 96], "0 heads kept"),
])
def test_invalid_subnets_are_user_errors(tiny_llama, heads, ffn, message):
    with pytest.raises(UserError) as err:
        materialize(tiny_llama, subnet_of(heads, ffn))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_order(tiny_llama):
    with pytest.raises(UserError, match="unknown unit order"):
        materialize(tiny_llama, subnet_of([8] * 3, [96] * 3), order="random")


def test_inplace_frees_the_full_tensors(tiny_llama):
    before = tiny_llama.model.layers[0].mlp.up_proj.weight
    out = materialize(tiny_llama, subnet_of([8, 8, 8], [32, 32, 32]), inplace=True)
    assert out is tiny_llama and out.model.layers[0].mlp.up_proj.weight.shape == (32, 64)
    assert before.shape == (96, 64)


def test_capacity_order_is_faithful(tiny_llama):
    pytest.importorskip("zerolm_prune.proxy.importance")
    subnet = subnet_of([4, 4, 8], [30, 60, 96])
    adapter = get_adapter(tiny_llama)
    plans = [plan_layer(adapter, tiny_llama, i, c, "capacity") for i, c in enumerate(subnet.layers)]
    assert any(p.channels != tuple(range(len(p.channels))) for p in plans)  # not just the prefix again
    assert_faithful(tiny_llama, subnet, torch.randint(0, 128, (1, 9)), order="capacity")


@pytest.mark.slow
def test_smollm2_real_weights(smollm2):
    model, tokenizer = smollm2
    heads = [9, 6, 3] * 10
    ffn = [1536, 1024, 512, 768, 1200] * 6
    subnet = subnet_of(heads, ffn)
    ids = tokenizer("The capital of France is Paris, and the", return_tensors="pt").input_ids
    ref_model = masked_reference(model, subnet)
    pruned = materialize(model, subnet)
    ref, got = outputs(ref_model, ids), outputs(pruned, ids)
    # fp32 over 30 layers: a matmul over fewer columns sums in another order, so logits of size ~30
    # differ by ~3e-5 (relative 1e-6); in float64 the two networks agree to the last bit.
    assert (got - ref).abs().max().item() < 1e-5 * ref.abs().max().item()
    ref_model.double()
    pruned.double()
    assert (outputs(pruned, ids) - outputs(ref_model, ids)).abs().max().item() < 1e-9
    pruned.float()
    assert n_params(pruned) < 0.85 * n_params(model)
    assert pruned.model.layers[2].self_attn.k_proj.weight.shape == (64, 576)


@pytest.mark.slow
def test_minilm_real_weights(minilm):
    model, tokenizer = minilm
    subnet = subnet_of([12, 6, 3, 9, 1, 12], [1536, 700, 1536, 384, 1000, 64])
    ids = tokenizer(["pruning keeps what matters", "a second sentence"], return_tensors="pt", padding=True)
    ref_model = masked_reference(model, subnet)
    with torch.no_grad():
        ref = ref_model(**ids).last_hidden_state
        got = materialize(model, subnet)(**ids).last_hidden_state
    assert (got - ref).abs().max().item() < 1e-5


def test_pruning_a_pruned_model_again(tiny_llama):
    """Per-layer shapes are honoured as the new 'original': pruning twice equals pruning once."""
    first = materialize(tiny_llama, subnet_of([8, 4, 8], [80, 96, 50]))
    twice = materialize(first, subnet_of([4, 4, 8], [40, 96, 20]))
    once = materialize(tiny_llama, subnet_of([4, 4, 8], [40, 96, 20]))
    ids = torch.randint(0, 128, (1, 6))
    assert torch.equal(outputs(twice, ids), outputs(once, ids))
    with pytest.raises(UserError, match="layer 1: 8 heads kept but the layer has 4"):
        materialize(first, subnet_of([8, 8, 8], [40, 96, 20]))
