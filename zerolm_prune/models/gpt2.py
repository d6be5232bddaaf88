"""GPT-2: fused QKV ``c_attn`` and Conv1D weights stored (in, out)."""

from __future__ import annotations

from .base import ArchAdapter, LayerGeometry, Projection


class GPT2Adapter(ArchAdapter):
    family = "gpt2"
    model_types = ("gpt2",)
    base_model_prefix = "transformer"
    layers_path = "h"
    projections = (
        Projection("qkv", "attn.c_attn", "attn", transposed=True),
        Projection("o", "attn.c_proj", "attn", transposed=True),
        Projection("up", "mlp.c_fc", "ffn", transposed=True),
        Projection("down", "mlp.c_proj", "ffn", transposed=True),
    )
    lora_groups = {"qkv": ("c_attn",)}

    @property
    def num_layers(self) -> int:
        return int(self.config.n_layer)

    @property
    def hidden_size(self) -> int:
        return int(self.config.n_embd)

    def _base_geometry(self, index: int) -> LayerGeometry:
        c = self.config
        heads = int(c.n_head)
        inner = int(c.n_inner or 4 * c.n_embd)
        return LayerGeometry(index, int(c.n_embd), heads, heads, int(c.n_embd) // heads, inner, False)
