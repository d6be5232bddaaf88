"""Analytic params/MACs must equal what transformers and peft actually build, exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import tiny_bert_config, tiny_gpt2_config, tiny_llama_config
from zerolm_prune import cost
from zerolm_prune.models import get_adapter
from zerolm_prune.space import LayerChoice, Subnet


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def choice(heads, ffn, **ranks):
    return LayerChoice(heads, ffn, tuple(sorted(ranks.items())))


# ---- building physically pruned tiny models, independently of cost.py ----------------------
def llama_pruned(config, subnet: Subnet):
    """Each block rebuilt by transformers from a per-layer config with the subnet's shapes."""
    from transformers import LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    group = config.num_attention_heads // config.num_key_value_heads
    for i, c in enumerate(subnet.layers):
        layer_config = type(config)(**{**config.to_dict(), "num_attention_heads": c.heads,
                                       "num_key_value_heads": c.heads // group, "intermediate_size": c.ffn})
        model.model.layers[i] = LlamaDecoderLayer(layer_config, i)
    return model


def bert_pruned(config, subnet: Subnet):
    """BERT's head size is hidden/heads in its config, so attention Linears are replaced by hand."""
    from transformers import BertModel

    torch.manual_seed(0)
    model = BertModel(config)
    d = config.hidden_size
    hd = d // config.num_attention_heads
    for layer, c in zip(model.encoder.layer, subnet.layers):
        w = c.heads * hd
        att = layer.attention
        att.self.query, att.self.key, att.self.value = nn.Linear(d, w), nn.Linear(d, w), nn.Linear(d, w)
        att.output.dense = nn.Linear(w, d)
        layer.intermediate.dense = nn.Linear(d, c.ffn)
        layer.output.dense = nn.Linear(c.ffn, d)
    return model


def gpt2_pruned(config, subnet: Subnet):
    from transformers import GPT2LMHeadModel
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    d = config.n_embd
    hd = d // config.n_head
    for block, c in zip(model.transformer.h, subnet.layers):
        w = c.heads * hd
        block.attn.c_attn = Conv1D(3 * w, d)
        block.attn.c_proj = Conv1D(d, w)
        block.attn.split_size, block.attn.num_heads = w, c.heads  # so that forward runs (MACs test)
        block.mlp.c_fc = Conv1D(c.ffn, d)
        block.mlp.c_proj = Conv1D(d, c.ffn)
    return model


# ---- params -----------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [False, True])
def test_llama_gqa_uniform_equals_stock_model(bias):
    from transformers import LlamaForCausalLM

    base = tiny_llama_config(attention_bias=bias, mlp_bias=bias)
    adapter = get_adapter(base)
    # the subnet's uniform shape built as a stock model: 4 query heads = 1 KV group of 4
    small = tiny_llama_config(attention_bias=bias, mlp_bias=bias, num_attention_heads=4, num_key_value_heads=1,
                              intermediate_size=40)
    subnet = Subnet([choice(4, 40)] * base.num_hidden_layers)
    assert cost.subnet_params(adapter, subnet) == numel(LlamaForCausalLM(small))


def test_llama_nonuniform_and_tied():
    config = tiny_llama_config(tie_word_embeddings=True)
    adapter = get_adapter(config)
    subnet = Subnet([choice(8, 96), choice(4, 24), choice(4, 8)])
    model = llama_pruned(config, subnet)
    assert cost.subnet_params(adapter, subnet) == numel(model)
    assert cost.fixed_params(adapter) == cost.fixed_params(adapter, model=model)
    blocks = sum(numel(layer) for layer in model.model.layers)
    assert cost.subnet_params(adapter, subnet, include_embeddings=False) == blocks


def test_qwen2_biases_on_qkv_only():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False)
    adapter = get_adapter(config)
    assert cost.subnet_params(adapter, Subnet([choice(8, 96)] * 2)) == numel(Qwen2ForCausalLM(config))


def test_bert_nonuniform_with_pooler():
    config = tiny_bert_config()
    adapter = get_adapter(config)
    subnet = Subnet([choice(6, 80), choice(2, 17)])
    model = bert_pruned(config, subnet)
    assert cost.subnet_params(adapter, subnet) == numel(model)
    assert cost.fixed_params(adapter, with_pooler=False) == cost.fixed_params(adapter) - 48 * 48 - 48


def test_gpt2_nonuniform_tied_head():
    config = tiny_gpt2_config()
    adapter = get_adapter(config)
    subnet = Subnet([choice(3, 80), choice(1, 8)])
    model = gpt2_pruned(config, subnet)
    assert cost.subnet_params(adapter, subnet) == numel(model)


def test_real_geometries_on_meta_device():
    """SmolLM2-135M's own config, and the LLaMA-7B count everyone quotes (6,738,415,616)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from zerolm_prune.assets import smollm2_135m_dir
    from zerolm_prune.loading import load_config

    try:
        smol = load_config(str(smollm2_135m_dir()))
    except Exception as err:  # pragma: no cover - asset missing on this machine
        pytest.skip(f"smollm2 asset unavailable: {err}")
    llama7b = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                          num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False)
    for config in (smol, llama7b):
        adapter = get_adapter(config)
        full = Subnet([choice(g.num_heads, g.ffn_dim) for g in adapter.geometries()])
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
        assert cost.subnet_params(adapter, full) == numel(model)
    assert cost.subnet_params(get_adapter(llama7b), full) == 6_738_415_616


# ---- LoRA -------------------------------------------------------------------------------------
def lora_count(model, adapter, subnet: Subnet, lora: dict) -> int:
    """Trainable LoRA parameters of a peft model with per-module ranks via rank_pattern."""
    from peft import LoraConfig, get_peft_model

    targets, pattern = [], {}
    names = dict(model.named_modules())
    for i, c in enumerate(subnet.layers):
        ranks = {m: c.rank(g) or 0 for g, mods in lora["groups"].items() for m in mods}
        for m in lora.get("targets", []):
            ranks.setdefault(m, lora["r_max"])
        for m, r in ranks.items():
            if r <= 0:
                continue
            full = [n for n in names if n.endswith(f".{m}") and f"{adapter.layers_path}.{i}." in n]
            assert full, (i, m)
            for n in full:
                targets.append(n)
                pattern[n] = r
    config = LoraConfig(r=lora["r_max"], lora_alpha=lora["alpha"], target_modules=targets, rank_pattern=pattern,
                        lora_dropout=0.0)
    peft_model = get_peft_model(model, config)
    return sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)


def test_lora_llama_groups_and_fixed_target():
    config = tiny_llama_config()
    adapter = get_adapter(config)
    lora = {"groups": {"qkv": ["q_proj", "k_proj", "v_proj"], "gateup": ["gate_proj", "up_proj"]},
            "targets": ["down_proj"], "r_max": 6, "alpha": 12.0}
    subnet = Subnet([choice(8, 96, qkv=6, gateup=4), choice(4, 24, qkv=0, gateup=6), choice(4, 8, qkv=2, gateup=0)])
    model = llama_pruned(config, subnet)
    expected = lora_count(model, adapter, subnet, lora)
    with_lora = cost.subnet_params(adapter, subnet, lora=lora, include_lora=True)
    assert with_lora - cost.subnet_params(adapter, subnet) == expected
    # without a lora description nothing is added
    assert cost.subnet_params(adapter, subnet, include_lora=True) == cost.subnet_params(adapter, subnet)


def test_lora_bert_query_value():
    config = tiny_bert_config()
    adapter = get_adapter(config)
    lora = {"groups": {"qv": ["query", "value"]}, "r_max": 8, "alpha": 16.0}
    subnet = Subnet([choice(6, 80, qv=8), choice(3, 20, qv=2)])
    model = bert_pruned(config, subnet)
    assert cost.subnet_params(adapter, subnet, lora=lora, include_lora=True) - cost.subnet_params(adapter, subnet) \
        == lora_count(model, adapter, subnet, lora)


def test_lora_gpt2_fused_qkv():
    config = tiny_gpt2_config()
    adapter = get_adapter(config)
    lora = {"groups": {"qkv": ["c_attn"]}, "targets": ["c_fc"], "r_max": 4, "alpha": 8.0}
    subnet = Subnet([choice(4, 80, qkv=4), choice(2, 16, qkv=2)])
    model = gpt2_pruned(config, subnet)
    assert cost.subnet_params(adapter, subnet, lora=lora, include_lora=True) - cost.subnet_params(adapter, subnet) \
        == lora_count(model, adapter, subnet, lora)


def test_unknown_lora_module_is_refused():
    adapter = get_adapter(tiny_llama_config())
    with pytest.raises(ValueError, match="not a projection"):
        cost.block_lora_params(adapter.geometry(0), choice(8, 96, g=2), config=adapter.config,
                               lora={"groups": {"g": ["qproj"]}, "r_max": 2})


# ---- MACs -------------------------------------------------------------------------------------
def hooked_linear_macs(model, run, tokens: int, once: int = 0) -> int:
    """Sum of weight sizes of every Linear/Conv1D call, per token, measured by forward hooks.
    ``once``: MACs of modules that run once per sequence (BERT pooler), taken out first."""
    from transformers.pytorch_utils import Conv1D

    total = [0]

    def hook(module, inputs, output):
        n = inputs[0].numel() // inputs[0].shape[-1]
        total[0] += module.weight.numel() * n

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, Conv1D))]
    with torch.no_grad():
        run()
    for h in handles:
        h.remove()
    total[0] -= once
    assert total[0] % tokens == 0
    return total[0] // tokens


def test_macs_llama_match_forward_hooks_with_lora():
    config = tiny_llama_config()
    adapter = get_adapter(config)
    lora = {"groups": {"qkv": ["q_proj", "k_proj", "v_proj"]}, "targets": ["down_proj"], "r_max": 4, "alpha": 8.0}
    subnet = Subnet([choice(8, 96, qkv=4), choice(4, 24, qkv=2), choice(4, 8, qkv=0)])
    model = llama_pruned(config, subnet).eval()
    ids = torch.randint(0, 128, (2, 5))
    measured = hooked_linear_macs(model, lambda: model(ids), tokens=10)
    assert cost.subnet_macs(adapter, subnet, seq_len=0) == measured  # seq_len 0: Linear MACs only
    lora_model_params = lora_count(model, adapter, subnet, lora)  # wraps model in place
    measured_lora = hooked_linear_macs(model, lambda: model(ids), tokens=10)
    assert cost.subnet_macs(adapter, subnet, seq_len=0, lora=lora, include_lora=True) == measured_lora
    assert measured_lora - measured == lora_model_params
    # attention: 2 * heads * head_dim MACs per key
    assert cost.subnet_macs(adapter, subnet, seq_len=7) - cost.subnet_macs(adapter, subnet, seq_len=0) \
        == 7 * 2 * 8 * (8 + 4 + 4)


def test_macs_bert_and_gpt2_match_forward_hooks():
    for config, build in ((tiny_bert_config(), bert_pruned), (tiny_gpt2_config(), gpt2_pruned)):
        adapter = get_adapter(config)
        heads = adapter.geometry(0).num_heads
        subnet = Subnet([choice(heads, 80), choice(1, 12)])
        model = build(config, subnet).eval()
        ids = torch.randint(0, 128, (1, 6))
        pooler = 48 * 48 if adapter.family == "bert" else 0  # once per sequence: not a per-token cost
        measured = hooked_linear_macs(model, lambda: model(ids), tokens=6, once=pooler)
        assert cost.subnet_macs(adapter, subnet, seq_len=0) == measured  # GPT-2: LM head included
