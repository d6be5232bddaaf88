"""Apply a Subnet to a model: physically smaller projections, not masks.

Two ways in, one plan: ``materialize`` cuts a loaded model in memory (``in_memory``; peft LoRA
adapters shrink with it) and ``materialize_folder`` streams a safetensors folder into a pruned
folder one tensor at a time (``streaming``). Both plan each block with ``plan.plan_layer`` and
record the shapes with ``config.update_config``, so they write the same tensors and config.

Both take a resolved unit order only: a weight-only name (prefix, capacity) or an orders dict.
Orders that need the whole model (energy, selfgen) are computed once by the caller, at its top,
with ``zerolm_prune.rankers.orders.resolve_orders``, and passed down as the dict.
"""

from __future__ import annotations

from ..units import ORDER_NAMES as ORDERS  # noqa: F401  (old name, re-exported)
from ..units import LayerPlan  # noqa: F401  (re-exported: the plan of kept rows lives in units)
from .config import layer_shape, stock_expressible, update_config  # noqa: F401
from .in_memory import materialize, slice_projection, truncate_lora_ranks  # noqa: F401
from .plan import Order, check_subnet, plan_layer, slice_weight  # noqa: F401
from .streaming import COPIED_FILES, _weight_files, can_stream, materialize_folder  # noqa: F401

__all__ = ["COPIED_FILES", "LayerPlan", "ORDERS", "Order", "can_stream", "check_subnet", "layer_shape",
           "materialize", "materialize_folder", "plan_layer", "slice_projection", "slice_weight",
           "stock_expressible", "truncate_lora_ranks", "update_config"]
