"""Model families: one ``ArchAdapter`` per family, found by ``config.model_type``."""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .base import ArchAdapter, LayerGeometry, Projection
from .bert import BertAdapter
from .gpt2 import GPT2Adapter
from .llama import LlamaAdapter

ADAPTERS: tuple[type[ArchAdapter], ...] = (LlamaAdapter, BertAdapter, GPT2Adapter)


def supported_model_types() -> list[str]:
    return [t for cls in ADAPTERS for t in cls.model_types]


def adapter_class(model_type: str) -> type[ArchAdapter]:
    for cls in ADAPTERS:
        if model_type in cls.model_types:
            return cls
    raise UserError(
        f"unsupported architecture {model_type!r}; supported model types: {', '.join(supported_model_types())}"
    )


def get_adapter(config_or_model: Any) -> ArchAdapter:
    """Adapter for a transformers config or model (a peft-wrapped model works too)."""
    config = getattr(config_or_model, "config", config_or_model)
    model_type = getattr(config, "model_type", None)
    if model_type is None and isinstance(config, dict):
        raise UserError("a config dict was given; build a transformers config first (loading.config_from_dict)")
    return adapter_class(str(model_type))(config)


__all__ = [
    "ADAPTERS", "ArchAdapter", "BertAdapter", "GPT2Adapter", "LayerGeometry", "LlamaAdapter",
    "Projection", "adapter_class", "get_adapter", "supported_model_types",
]
