"""Apply a Subnet to a model: physically smaller projections, not masks (see ``in_memory``)."""

from __future__ import annotations

from .in_memory import (  # noqa: F401  (the package's public names)
    COPIED_FILES, ORDERS, Order, _weight_files, can_stream, check_subnet, materialize, materialize_folder,
    plan_layer, resolve_order, slice_projection, stock_expressible, truncate_lora_ranks, update_config)
