"""Spectral variants of a pretrained subnet: the exact-SVD counterpart of the capacity table.

Research code for studying a few subnets (one SVD per matrix per layer), not for searching a
space: ``subnet_spectral`` slices a model's matrices as a subnet says (same unit orders as the
capacity table and the materializer) and sums a variant of ``zerolm_prune.bench.spectral`` per
module. tests/test_proxy_extras.py checks its ``capacity`` variant against the table.
"""

from __future__ import annotations

from typing import Any

import torch

from zerolm_prune.bench.spectral import VARIANTS, matrix_stats
from zerolm_prune.errors import UserError
from zerolm_prune.models import get_adapter
from zerolm_prune.proxy.importance import ffn_channel_order, head_group_order, unit_layout


def subnet_spectral(model: Any, subnet: Any, *, kind: str = "effective_rank", order: str = "prefix",
                    adapter: Any = None) -> dict[str, float]:
    """``{"attn": .., "ffn": ..}``: variant ``kind`` summed over the subnet's sliced matrices.

    One SVD per matrix per layer: use it to study a few subnets, not to search a space.
    """
    if kind not in VARIANTS:
        raise UserError(f"unknown spectral variant {kind!r}; choose one of: {', '.join(VARIANTS)}")
    adapter = adapter or get_adapter(model)
    out = {"attn": 0.0, "ffn": 0.0}
    for i, choice in enumerate(subnet.layers):
        geo = adapter.geometry(i)
        layer = adapter.layers(model)[i]
        groups = head_group_order(adapter, model, i, order)[: choice.heads // geo.heads_per_kv_group]
        chans = ffn_channel_order(adapter, model, i, order)[: choice.ffn]
        for proj in adapter.projections:
            layout = unit_layout(geo, proj.role)
            w = adapter.projection_weight(layer, proj).detach()
            units = groups if layout.kind == "heads" else chans
            if proj.role == "qkv":
                d, hd = geo.hidden_size, geo.head_dim
                idx = [part * d + u * hd + j for part in range(3) for u in units for j in range(hd)]
            else:
                idx = [u * layout.unit_size + j for u in units for j in range(layout.unit_size)]
            index = torch.as_tensor(idx, dtype=torch.long)
            w = w.index_select(layout.axis, index)
            out[proj.module] += matrix_stats(w)[kind]
    return out
