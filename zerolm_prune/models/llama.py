"""LLaMA family: LLaMA, Llama-3, Mistral, Qwen2 and SmolLM share one block layout.

Grouped-query attention: ``num_key_value_heads`` KV heads each serve
``num_attention_heads / num_key_value_heads`` query heads, so head pruning keeps whole groups.
"""

from __future__ import annotations

from .base import ArchAdapter, LayerGeometry, Projection


class LlamaAdapter(ArchAdapter):
    family = "llama"
    model_types = ("llama", "mistral", "qwen2", "qwen3", "smollm3")
    base_model_prefix = "model"
    layers_path = "layers"
    projections = (
        Projection("q", "self_attn.q_proj", "attn"),
        Projection("k", "self_attn.k_proj", "attn"),
        Projection("v", "self_attn.v_proj", "attn"),
        Projection("o", "self_attn.o_proj", "attn"),
        Projection("gate", "mlp.gate_proj", "ffn"),
        Projection("up", "mlp.up_proj", "ffn"),
        Projection("down", "mlp.down_proj", "ffn"),
    )
    # LoNAS LLaMA: one elastic rank for q/k/v, one for gate/up, down fixed
    lora_groups = {
        "qkv": ("q_proj", "k_proj", "v_proj"),
        "gateup": ("gate_proj", "up_proj"),
        "down": ("down_proj",),
    }

    def _base_geometry(self, index: int) -> LayerGeometry:
        c = self.config
        heads = int(c.num_attention_heads)
        kv = int(getattr(c, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(c, "head_dim", None) or c.hidden_size // heads)
        return LayerGeometry(index, int(c.hidden_size), heads, kv, head_dim, int(c.intermediate_size), True)
