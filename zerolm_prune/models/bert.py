"""BERT family (BERT, MiniLM, RoBERTa): post-LN encoder, separate Q/K/V, ungated FFN."""

from __future__ import annotations

from .base import ArchAdapter, LayerGeometry, Projection


class BertAdapter(ArchAdapter):
    family = "bert"
    model_types = ("bert", "roberta")
    base_model_prefix = "bert"
    layers_path = "encoder.layer"
    projections = (
        Projection("q", "attention.self.query", "attn"),
        Projection("k", "attention.self.key", "attn"),
        Projection("v", "attention.self.value", "attn"),
        Projection("o", "attention.output.dense", "attn"),
        Projection("up", "intermediate.dense", "ffn"),
        Projection("down", "output.dense", "ffn"),
    )
    # LoNAS BERT-base GLUE: elastic rank on query and value
    lora_groups = {"qv": ("query", "value")}

    def __init__(self, config):
        super().__init__(config)
        if getattr(config, "model_type", "") == "roberta":
            self.base_model_prefix = "roberta"

    def _base_geometry(self, index: int) -> LayerGeometry:
        c = self.config
        heads = int(c.num_attention_heads)
        head_dim = int(getattr(c, "head_dim", None) or c.hidden_size // heads)
        return LayerGeometry(index, int(c.hidden_size), heads, heads, head_dim, int(c.intermediate_size), False)
