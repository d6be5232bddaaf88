"""The pruned model's config: stock fields where the family's config can say it, else ``layer_shapes``.

Why both: a uniform cut that a stock config can describe loads in plain transformers (no
``trust_remote_code``); a non-uniform one needs per-layer shapes, which the shipped modeling code
(``zerolm_prune.modeling``) reads. The in-memory and the streamed materializer record it the same way.
"""

from __future__ import annotations

from typing import Any

from ..models.base import ArchAdapter
from ..units import LayerPlan


def layer_shape(plan: LayerPlan) -> dict[str, int]:
    """The config fields of one cut block."""
    return {"num_attention_heads": len(plan.heads), "num_key_value_heads": plan.num_kv_heads,
            "intermediate_size": plan.choice.ffn}


def stock_expressible(adapter: ArchAdapter, shapes: list[dict[str, int]]) -> bool:
    """Can a stock config of this family describe these (uniform) shapes?

    BERT and GPT-2 derive the head size from hidden/heads, so fewer heads need our code; LLaMA
    configs carry ``head_dim`` but transformers 5 still demands hidden % heads == 0.
    """
    if len({tuple(sorted(s.items())) for s in shapes}) != 1:
        return False
    geo0 = adapter._base_geometry(0)
    heads = shapes[0]["num_attention_heads"]
    if adapter.family == "llama":
        return adapter.hidden_size % heads == 0
    return heads == geo0.num_heads


def update_config(config: Any, adapter: ArchAdapter, shapes: list[dict[str, int]]) -> None:
    """Record the new shapes: plain fields when stock can express them, else ``layer_shapes``."""
    head_dim = adapter.geometry(0).head_dim
    if stock_expressible(adapter, shapes):
        s = shapes[0]
        if adapter.family == "llama":
            config.head_dim = head_dim  # Qwen2-style configs derive it from hidden/heads otherwise
            config.num_attention_heads = s["num_attention_heads"]
            config.num_key_value_heads = s["num_key_value_heads"]
            config.intermediate_size = s["intermediate_size"]
        elif adapter.family == "bert":
            config.intermediate_size = s["intermediate_size"]
        else:
            config.n_inner = s["intermediate_size"]
        if getattr(config, "layer_shapes", None) is not None:
            config.layer_shapes = None
            try:
                delattr(config, "layer_shapes")
            except AttributeError:
                pass
    else:
        config.layer_shapes = [dict(s) for s in shapes]
