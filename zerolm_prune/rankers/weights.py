"""Rankers read from the weights alone (no text of any kind).

- ``zerolm``: ZeroLM as published (arXiv 2503.18646): S = S_FFN + alpha * S_Attn with the capacity
  ``||W||_F^2 / min(m, n)`` of each sliced block matrix (proxy/capacity.py's CapacityTable).
- ``params``: block parameter count (the obvious baseline; cost.block_params).
- ``energy`` (new here): how much of each block's *function* a choice removes, read from the
  weights. A unit (FFN channel, KV group) writes into the residual stream through its output map;
  its energy is the product of the norms along its path: FFN channel j ->
  ||gate_j|| * ||up_j|| * ||down[:, j]|| (SwiGLU is bilinear in gate and up), head h of KV group g
  -> ||W_O[:, h] @ W_V[g]||_F (the OV circuit). A choice's damage is the removed share of the
  layer's energy (squared), so a prefix cut that drops a massive outlier channel (SmolLM2 layers
  11 and 27) counts as the large loss it is, while cutting many small channels counts little.
  Layers are weighted equally except an ``edge`` factor (8, grid-searched on the fit split) for the first and last block, whose
  damage is not repaired by later layers (first/last-layer effect; default measured on the fit
  split only, see benchmarks/RANKING.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cost import block_params
from ..models import get_adapter
from ..proxy.capacity import CapacityTable
from ..proxy.importance import unit_energies  # noqa: F401  (re-exported; moved to the proxy)
from ..units import WEIGHT_ONLY_ORDERS
from .base import Ranker
from .orders import resolve_orders


@dataclass
class ParamsRanker(Ranker):
    name: str = "params"
    provenance: str = "baseline: block parameter count (more is better)"

    def layer_values(self, model: Any, space: Any, *, adapter: Any = None) -> list[np.ndarray]:
        adapter = adapter or get_adapter(model)
        return [np.array([block_params(adapter.geometry(l), c, config=adapter.config) for c in space.options(l)], dtype=float)
                for l in range(space.num_layers)]


@dataclass
class ZeroLMRanker(Ranker):
    name: str = "zerolm"
    provenance: str = "ZeroLM (arXiv 2503.18646): S_FFN + alpha*S_Attn, capacity ||W||_F^2/min(m,n) of sliced matrices"
    alpha: float = 1.0
    order: str = "prefix"

    def layer_values(self, model: Any, space: Any, *, adapter: Any = None) -> list[np.ndarray]:
        order = self.order
        if isinstance(order, str) and order not in WEIGHT_ONLY_ORDERS:  # the table takes a resolved order
            order = resolve_orders(model, order, adapter=adapter) or "prefix"
        table = CapacityTable.from_model(model, space, order=order, label=self.order if isinstance(self.order, str) else None,
                                         adapter=adapter)
        return [np.asarray(v, dtype=float) for v in table.layer_values(float(self.alpha))]


def removed_share(energy: np.ndarray, kept: int, order: list[int] | None = None) -> float:
    """Share of ``energy`` lost when only the first ``kept`` units (in ``order``) stay."""
    total = float(energy.sum())
    if total <= 0:
        return 0.0
    idx = np.asarray(order if order is not None else range(len(energy)))
    return float(energy[idx[kept:]].sum()) / total


@dataclass
class EnergyRanker(Ranker):
    name: str = "energy"
    provenance: str = ("new (this project): removed share of each block's output-path energy "
                       "(||gate_j||*||up_j||*||down_j||, OV circuits), squared, first/last blocks weighted")
    attn_weight: float = 1.0
    edge: float = 8.0
    power: float = 2.0

    def layer_values(self, model: Any, space: Any, *, adapter: Any = None, orders: Any = None) -> list[np.ndarray]:
        """``orders``: unit order the widths keep (a name or dict, ``rankers.orders``; prefix by default)."""
        adapter = adapter or get_adapter(model)
        orders = resolve_orders(model, orders, adapter=adapter) or {}
        n = space.num_layers
        out = []
        for l in range(n):
            geo = adapter.geometry(l)
            groups, ffn = unit_energies(adapter, model, l)
            weight = self.edge if l in (0, n - 1) else 1.0
            vals = []
            for c in space.options(l):
                kept_groups = c.heads // geo.heads_per_kv_group
                o = orders.get(l, {})
                dmg = (self.attn_weight * removed_share(groups, kept_groups, o.get("heads")) ** self.power
                       + removed_share(ffn, c.ffn, o.get("ffn")) ** self.power)
                vals.append(-weight * dmg)
            out.append(np.array(vals, dtype=float))
        return out
