"""zerolm_prune: data-free structured pruning of Hugging Face language models.

The flow is checkpoint -> ArchAdapter -> SearchSpace -> CapacityTable -> search -> materialize ->
save / evaluate. Heavy modules are imported lazily so that ``zerolm-prune --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first access
_LAZY = {
    "UserError": "zerolm_prune.errors",
    "get_adapter": "zerolm_prune.models",
    "ArchAdapter": "zerolm_prune.models",
    "load_model": "zerolm_prune.loading",
    "load_config": "zerolm_prune.loading",
    "SearchSpace": "zerolm_prune.space",
    "Subnet": "zerolm_prune.space",
    "LayerChoice": "zerolm_prune.space",
    "load_space": "zerolm_prune.space",
    "CapacityTable": "zerolm_prune.proxy",
    "rank_subnets": "zerolm_prune.search",
    "materialize": "zerolm_prune.materialize",
    "save_pretrained": "zerolm_prune.checkpoint",
    "load_pruned": "zerolm_prune.checkpoint",
    "evaluate_model": "zerolm_prune.evaluate",
    "prune_to_budget": "zerolm_prune.driver",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zerolm_prune' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_LAZY) + ["__version__"]
