"""Modelling code for pruned checkpoints with per-layer shapes (shipped inside saved folders).

Why this file exists: stock transformers builds every block from one config, so a checkpoint whose
layers keep different numbers of heads or FFN channels cannot load with a stock class (it errors,
or with ``ignore_mismatched_sizes`` silently re-initialises). ``zerolm_prune.checkpoint`` copies
this file into every non-uniform folder and points ``auto_map`` at it, so
``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`` works where zerolm_prune
is not installed. It must therefore import nothing but torch and transformers.

How: each class subclasses the stock model, lets it build full-size blocks (on the meta device
under ``from_pretrained``, so nothing is allocated), then swaps each block's projections for
modules of the recorded sizes and fixes the per-module head counts the forward pass reads.
Per-layer shapes come from ``config.layer_shapes``:
``[{"num_attention_heads", "num_key_value_heads", "intermediate_size"}, ...]``. The head size
never changes (pruning drops whole heads), so it is taken from the unpruned config.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers import (
    BertModel,
    GPT2LMHeadModel,
    GPT2Model,
    LlamaForCausalLM,
    LlamaModel,
    MistralForCausalLM,
    Qwen2ForCausalLM,
)
from transformers.pytorch_utils import Conv1D

LLAMA_TYPES = ("llama", "mistral", "qwen2", "qwen3", "smollm3")
BERT_TYPES = ("bert", "roberta")
GPT2_TYPES = ("gpt2",)


def family_of(config: Any) -> str:
    model_type = getattr(config, "model_type", "")
    if model_type in LLAMA_TYPES:
        return "llama"
    if model_type in BERT_TYPES:
        return "bert"
    if model_type in GPT2_TYPES:
        return "gpt2"
    raise ValueError(f"no per-layer modelling code for model_type {model_type!r}")


def head_dim_of(config: Any) -> int:
    """Head size of the unpruned model: pruning drops whole heads, never shrinks one."""
    family = family_of(config)
    if family == "llama":
        return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
    if family == "bert":
        return int(config.hidden_size // config.num_attention_heads)
    return int(config.n_embd // config.n_head)


def blocks_of(model: nn.Module, family: str) -> nn.ModuleList:
    if family == "llama":
        base = getattr(model, "model", model)
        return base.layers
    if family == "bert":
        base = getattr(model, "bert", None) or getattr(model, "roberta", None) or model
        return base.encoder.layer
    base = getattr(model, "transformer", model)
    return base.h


def set_block_sizes(block: nn.Module, family: str, heads: int, kv_heads: int, ffn: int, head_dim: int) -> None:
    """Fix the head counts and widths that a block's modules keep as plain attributes.

    transformers' attention modules read these in ``forward`` (BERT ``all_head_size``, GPT-2
    ``split_size``, LLaMA ``num_key_value_groups``); a shape mismatch there is silent garbage.
    """
    if family == "llama":
        attn = block.self_attn
        attn.head_dim = head_dim
        attn.num_key_value_groups = heads // kv_heads
        for name, value in (("num_heads", heads), ("num_key_value_heads", kv_heads)):
            if hasattr(attn, name):
                setattr(attn, name, value)
        if hasattr(block.mlp, "intermediate_size"):
            block.mlp.intermediate_size = ffn
    elif family == "bert":
        attn = block.attention.self
        attn.num_attention_heads = heads
        attn.attention_head_size = head_dim
        attn.all_head_size = heads * head_dim
    else:
        attn = block.attn
        attn.num_heads = heads
        attn.head_dim = head_dim
        attn.split_size = heads * head_dim


def _linear(old: nn.Module, out_features: int, in_features: int) -> nn.Linear:
    weight = old.weight
    return nn.Linear(in_features, out_features, bias=old.bias is not None, device=weight.device, dtype=weight.dtype)


def _conv1d(old: nn.Module, out_features: int, in_features: int) -> Conv1D:
    new = Conv1D(out_features, in_features)
    return new.to(device=old.weight.device, dtype=old.weight.dtype)


def resize_block(block: nn.Module, family: str, shape: dict, hidden: int, head_dim: int) -> None:
    """Replace a full-size block's projections with empty modules of the recorded shape."""
    heads = int(shape["num_attention_heads"])
    kv = int(shape.get("num_key_value_heads", heads))
    ffn = int(shape["intermediate_size"])
    qw, kvw = heads * head_dim, kv * head_dim
    if family == "llama":
        attn, mlp = block.self_attn, block.mlp
        attn.q_proj = _linear(attn.q_proj, qw, hidden)
        attn.k_proj = _linear(attn.k_proj, kvw, hidden)
        attn.v_proj = _linear(attn.v_proj, kvw, hidden)
        attn.o_proj = _linear(attn.o_proj, hidden, qw)
        mlp.gate_proj = _linear(mlp.gate_proj, ffn, hidden)
        mlp.up_proj = _linear(mlp.up_proj, ffn, hidden)
        mlp.down_proj = _linear(mlp.down_proj, hidden, ffn)
    elif family == "bert":
        sa = block.attention.self
        sa.query = _linear(sa.query, qw, hidden)
        sa.key = _linear(sa.key, qw, hidden)
        sa.value = _linear(sa.value, qw, hidden)
        block.attention.output.dense = _linear(block.attention.output.dense, hidden, qw)
        block.intermediate.dense = _linear(block.intermediate.dense, ffn, hidden)
        block.output.dense = _linear(block.output.dense, hidden, ffn)
    else:
        attn, mlp = block.attn, block.mlp
        attn.c_attn = _conv1d(attn.c_attn, 3 * qw, hidden)
        attn.c_proj = _conv1d(attn.c_proj, hidden, qw)
        mlp.c_fc = _conv1d(mlp.c_fc, ffn, hidden)
        mlp.c_proj = _conv1d(mlp.c_proj, hidden, ffn)
    set_block_sizes(block, family, heads, kv, ffn, head_dim)


def apply_layer_shapes(model: nn.Module, config: Any) -> None:
    """Give every block the shape recorded in ``config.layer_shapes`` (no-op without it)."""
    shapes = getattr(config, "layer_shapes", None)
    if not shapes:
        return
    family = family_of(config)
    blocks = blocks_of(model, family)
    if len(shapes) != len(blocks):
        raise ValueError(f"config.layer_shapes has {len(shapes)} entries for {len(blocks)} layers")
    hidden = int(config.n_embd if family == "gpt2" else config.hidden_size)
    head_dim = head_dim_of(config)
    for block, shape in zip(blocks, shapes):
        resize_block(block, family, shape, hidden, head_dim)


class ZeroLMLlamaModel(LlamaModel):
    def __init__(self, config):
        super().__init__(config)
        apply_layer_shapes(self, config)


class ZeroLMLlamaForCausalLM(LlamaForCausalLM):
    def __init__(self, config):
        super().__init__(config)
        apply_layer_shapes(self, config)


class ZeroLMMistralForCausalLM(MistralForCausalLM):
    def __init__(self, config):
        super().__init__(config)
        apply_layer_shapes(self, config)


class ZeroLMQwen2ForCausalLM(Qwen2ForCausalLM):
    def __init__(self, config):
        super().__init__(config)
        apply_layer_shapes(self, config)


class ZeroLMBertModel(BertModel):
    def __init__(self, config, add_pooling_layer: bool = True):
        super().__init__(config, add_pooling_layer=add_pooling_layer)
        apply_layer_shapes(self, config)


class ZeroLMGPT2Model(GPT2Model):
    def __init__(self, config):
        super().__init__(config)
        apply_layer_shapes(self, config)


class ZeroLMGPT2LMHeadModel(GPT2LMHeadModel):
    def __init__(self, config):
        super().__init__(config)
        apply_layer_shapes(self, config)


#: model_type -> {auto class name: class name in this file}
AUTO_MAP = {
    "llama": {"AutoModel": "ZeroLMLlamaModel", "AutoModelForCausalLM": "ZeroLMLlamaForCausalLM"},
    "mistral": {"AutoModelForCausalLM": "ZeroLMMistralForCausalLM"},
    "qwen2": {"AutoModelForCausalLM": "ZeroLMQwen2ForCausalLM"},
    "bert": {"AutoModel": "ZeroLMBertModel"},
    "gpt2": {"AutoModel": "ZeroLMGPT2Model", "AutoModelForCausalLM": "ZeroLMGPT2LMHeadModel"},
}

#: stock architecture name -> our class name (what config.architectures lists)
ARCHITECTURES = {
    "LlamaModel": "ZeroLMLlamaModel",
    "LlamaForCausalLM": "ZeroLMLlamaForCausalLM",
    "MistralForCausalLM": "ZeroLMMistralForCausalLM",
    "Qwen2ForCausalLM": "ZeroLMQwen2ForCausalLM",
    "BertModel": "ZeroLMBertModel",
    "GPT2Model": "ZeroLMGPT2Model",
    "GPT2LMHeadModel": "ZeroLMGPT2LMHeadModel",
}

__all__ = [
    "AUTO_MAP", "ARCHITECTURES", "apply_layer_shapes", "resize_block", "set_block_sizes", "family_of", "head_dim_of",
    "ZeroLMLlamaModel", "ZeroLMLlamaForCausalLM", "ZeroLMMistralForCausalLM", "ZeroLMQwen2ForCausalLM",
    "ZeroLMBertModel", "ZeroLMGPT2Model", "ZeroLMGPT2LMHeadModel",
]
