"""Which units of each block survive, and the one slicing rule both materializers share.

Why one module for both: the in-memory cut (``in_memory``) and the streamed one (``streaming``)
must write the same tensors to the bit, so they plan layers with the same ``plan_layer`` and slice
weights with the same ``slice_weight``; only where the weights come from differs.

Channel order: ``prefix`` keeps the first heads/channels (LoNAS's elastic training trained
exactly those prefixes); ``capacity`` keeps the ones with the highest data-free capacity
(``zerolm_prune.proxy.importance``), computed here layer by layer from the weights. Orders that
need the whole model (``selfgen``: units by what they write on text the model generated itself,
~40x lower SmolLM2 subnet perplexity than prefix, benchmarks/RANKING.md; ``energy``) come in
resolved, as an orders dict from ``zerolm_prune.rankers.orders.resolve_orders``. Kept indices are
applied in ascending order, so the result is a plain sub-network and a prefix stays a prefix.

Every layer keeps at least one KV group and one FFN channel: LoNAS never drops a whole block,
and a zero-width Linear breaks several attention kernels, so heads=0 / ffn=0 is a UserError.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ..errors import UserError
from ..models.base import ArchAdapter
from ..proxy.importance import ffn_channel_order, head_group_order
from ..space import LayerChoice, Subnet
from ..units import LayerPlan, num_groups, plan_from_orders, resolved_order, validate_orders

#: what ``order=`` accepts: a weight-only name (``units.WEIGHT_ONLY_ORDERS``), ``None`` (prefix) or a
#: resolved ``{layer: {"heads": [KV groups best first], "ffn": [channels best first]}}``
#: (``rankers.orders.resolve_orders``; layer keys int or str)
Order = Any


def check_subnet(subnet: Subnet, adapter: ArchAdapter) -> None:
    """One-line UserErrors for subnets that do not fit the model."""
    if subnet.num_layers != adapter.num_layers:
        raise UserError(
            f"subnet has {subnet.num_layers} layers but the model has {adapter.num_layers}; "
            "rank subnets for this model (zerolm-prune rank) or pick the matching ranked.json"
        )
    for i, choice in enumerate(subnet.layers):
        geo = adapter.geometry(i)
        per = geo.heads_per_kv_group
        if not 1 <= choice.heads <= geo.num_heads:
            raise UserError(f"layer {i}: {choice.heads} heads kept but the layer has {geo.num_heads}; "
                            f"keep between {per} and {geo.num_heads} (whole layers cannot be dropped)")
        if choice.heads % per:
            raise UserError(f"layer {i}: {choice.heads} heads would split a KV group of {per} query heads; "
                            f"use a multiple of {per}")
        if not 1 <= choice.ffn <= geo.ffn_dim:
            raise UserError(f"layer {i}: FFN width {choice.ffn} is outside 1..{geo.ffn_dim} (the original width)")


def plan_layer(adapter: ArchAdapter, model: nn.Module | None, index: int, choice: LayerChoice,
               order: Order) -> LayerPlan:
    """Decide which KV groups and channels of block ``index`` survive.

    ``order``: a weight-only name (``capacity`` reads this layer's weights from ``model``;
    ``prefix`` needs no model) or a resolved orders dict, of which only this layer's entry is
    checked, so planning every layer stays linear. A name that needs the whole model is a
    UserError (``units.resolved_order``): resolve it once with ``rankers.orders.resolve_orders``.
    """
    geo = adapter.geometry(index)
    n_groups = num_groups(geo)
    keep_groups = choice.heads // geo.heads_per_kv_group
    if not isinstance(order, Mapping):
        order = resolved_order(order, adapter)
    if isinstance(order, Mapping):  # only this layer's entry is checked here
        entry = order.get(index, order.get(str(index)))
        if entry is None:
            raise UserError(f"orders: layer {index} is missing; give an entry for every layer")
        entry = validate_orders({index: entry}, adapter, partial=True)[index]
        group_order, channel_order = entry.get("heads"), entry.get("ffn")
    elif order == "prefix":
        group_order = channel_order = None
    else:
        group_order = head_group_order(adapter, model, index, "capacity") if keep_groups < n_groups else None
        channel_order = ffn_channel_order(adapter, model, index, "capacity") if choice.ffn < geo.ffn_dim else None
    return plan_from_orders(geo, choice, group_order, channel_order,
                            label=order if isinstance(order, str) else "given")


def slice_weight(weight: torch.Tensor, rows: list[int] | None, cols: list[int] | None,
                 transposed: bool) -> torch.Tensor:
    """Copy of ``weight`` restricted to (out rows, in cols); Conv1D stores (in, out)."""
    w = weight.detach()
    out_dim, in_dim = (1, 0) if transposed else (0, 1)
    if rows is not None:
        w = w.index_select(out_dim, torch.tensor(rows, device=w.device))
    if cols is not None:
        w = w.index_select(in_dim, torch.tensor(cols, device=w.device))
    return w.clone() if w.data_ptr() == weight.data_ptr() else w.contiguous()
