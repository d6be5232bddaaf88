"""Data-free unit orders: which KV groups and FFN channels a pruned layer keeps.

Slicing keeps whole *units*: a KV group (its K/V head plus the query heads that share it, and the
matching columns of O) or an FFN channel (a row of gate/up, a column of down). Under the
``prefix`` policy the first units are kept (LoNAS). Under the ``capacity`` policy units are sorted
by their own capacity contribution, most first: the capacity the unit's own slices would have on
their own, ``sum_p ||W_p[unit]||_F^2 / min(unit rows, unit cols)`` over the projections it spans.

Why one module for this: the capacity table (which *scores* a choice) and the materializer (which
*cuts* it) must agree on the kept channels to the index. Both call the functions here, so a
change of policy changes both at once. DESIGN.md warns that keeping high-norm units made
SmolLM2 perplexity worse in 8 of 10 subnets; the policy is therefore a choice, not a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..units import WEIGHT_ONLY_ORDERS, check_order_name

if TYPE_CHECKING:  # pragma: no cover
    from ..models.base import ArchAdapter, LayerGeometry

#: the weight-only unit orders (``units.WEIGHT_ONLY_ORDERS``; old name kept for imports)
POLICIES = WEIGHT_ONLY_ORDERS


@dataclass(frozen=True)
class UnitLayout:
    """How a projection splits into prunable units along one axis.

    ``axis`` is 0 when units are rows of the (out, in) weight, 1 when columns; each unit spans
    ``unit_size`` rows/columns; ``other`` is the untouched dimension. ``kind`` says which choice
    drives it: ``"heads"`` (units are KV groups) or ``"ffn"`` (units are channels).
    """

    kind: str
    axis: int
    n_units: int
    unit_size: int
    other: int

    def kept_shape(self, kept_units: int) -> tuple[int, int]:
        """(rows, cols) of the sliced matrix when ``kept_units`` units remain."""
        cut = kept_units * self.unit_size
        return (cut, self.other) if self.axis == 0 else (self.other, cut)


def unit_layout(geo: "LayerGeometry", role: str) -> UnitLayout:
    """Unit layout of projection ``role`` in a block of geometry ``geo``.

    GQA: query head ``i`` reads KV head ``i // heads_per_kv_group`` (transformers' ``repeat_kv``),
    so KV group ``g`` owns query rows ``[g*hpg*hd, (g+1)*hpg*hd)``; fused QKV (GPT-2, MHA) has a
    unit of ``3*hd`` rows per head (one block in each of the q, k and v sections).
    """
    d, hd = geo.hidden_size, geo.head_dim
    groups = geo.num_kv_heads if geo.num_kv_heads else geo.num_heads
    hpg = geo.heads_per_kv_group
    if role == "q":
        return UnitLayout("heads", 0, groups, hpg * hd, d)
    if role in ("k", "v"):
        return UnitLayout("heads", 0, groups, hd, d)
    if role == "o":
        return UnitLayout("heads", 1, groups, hpg * hd, d)
    if role == "qkv":
        return UnitLayout("heads", 0, geo.num_heads, 3 * hd, d)
    if role in ("gate", "up"):
        return UnitLayout("ffn", 0, geo.ffn_dim, 1, d)
    if role == "down":
        return UnitLayout("ffn", 1, geo.ffn_dim, 1, d)
    raise ValueError(f"unknown projection role {role!r}")


def unit_sq_sums(weight: "torch.Tensor", layout: UnitLayout, role: str) -> np.ndarray:
    """Sum of squared entries of each unit of an (out, in) weight (float64 result).

    One reduction over the weight along the untouched axis; the result has ``n_units`` entries.
    """
    w = weight.detach()
    if w.dtype not in (torch.float32, torch.float64):
        w = w.float()
    with torch.no_grad():
        # float32 accumulation is pairwise (relative error ~1e-7) and 3-10x faster than float64;
        # rows reduce fastest through vector_norm, columns through a fused square-and-sum
        if layout.axis == 0:
            lines = torch.linalg.vector_norm(w, dim=1).cpu().numpy().astype(np.float64)
            lines *= lines
        else:
            lines = (w * w).sum(dim=0).cpu().numpy().astype(np.float64)
    if role == "qkv":  # rows [q | k | v], head h owns one hd block in each section
        hd = layout.unit_size // 3
        return lines.reshape(3, layout.n_units, hd).sum(axis=(0, 2))
    return lines.reshape(layout.n_units, layout.unit_size).sum(axis=1)


def argsort_desc(contrib: np.ndarray) -> np.ndarray:
    """Unit indices by contribution, largest first; ties keep the lower index first."""
    return np.argsort(-np.asarray(contrib, dtype=np.float64), kind="stable")


def order_from_contributions(contrib: np.ndarray) -> list[int]:
    """``argsort_desc`` as a list of Python ints (what slicing code indexes with)."""
    return argsort_desc(contrib).tolist()


def unit_contribution(sums: np.ndarray, layout: UnitLayout) -> np.ndarray:
    """Each unit's own capacity: its squared mass over min(unit rows, unit cols)."""
    return np.asarray(sums, dtype=np.float64) / float(min(layout.unit_size, layout.other))


def _layer_orders(adapter: "ArchAdapter", model: Any, layer_index: int, kind: str, policy: str) -> list[int]:
    check_order_name(policy, names=WEIGHT_ONLY_ORDERS)
    geo = adapter.geometry(layer_index)
    projs = [p for p in adapter.projections if unit_layout(geo, p.role).kind == kind]
    n = unit_layout(geo, projs[0].role).n_units
    if policy == "prefix":
        return list(range(n))
    layer = adapter.layers(model)[layer_index]
    total = np.zeros(n)
    for proj in projs:
        layout = unit_layout(geo, proj.role)
        total += unit_contribution(unit_sq_sums(adapter.projection_weight(layer, proj), layout, proj.role), layout)
    return order_from_contributions(total)


def head_group_order(adapter: "ArchAdapter", model: Any, layer_index: int, policy: str) -> list[int]:
    """KV-group indices of layer ``layer_index``, most important first (MHA: one head per group).

    Keeping ``heads`` query heads keeps the first ``heads // heads_per_kv_group`` groups of this
    order, each with all of its query heads.
    """
    return _layer_orders(adapter, model, layer_index, "heads", policy)


def ffn_channel_order(adapter: "ArchAdapter", model: Any, layer_index: int, policy: str) -> list[int]:
    """FFN channel indices of layer ``layer_index``, most important first."""
    return _layer_orders(adapter, model, layer_index, "ffn", policy)


def unit_energies(adapter: Any, model: Any, layer_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(per-KV-group energy, per-FFN-channel energy) of one block, from its weights.

    Energy = squared norm of what the unit writes through its output map (see module docstring).
    """
    layer = adapter.layers(model)[layer_index]
    geo = adapter.geometry(layer_index)
    w = {p.role: adapter.projection_weight(layer, p).detach().double() for p in adapter.projections}
    with torch.no_grad():
        if "down" in w:
            ch = w["down"].norm(dim=0) * w["up"].norm(dim=1)
            if "gate" in w:
                ch = ch * w["gate"].norm(dim=1)
            ffn = (ch ** 2).numpy()
        else:
            ffn = np.zeros(geo.ffn_dim)
        groups = np.zeros(geo.num_kv_heads)
        if "o" in w and "v" in w:
            d, per = geo.head_dim, geo.heads_per_kv_group
            for h in range(geo.num_heads):
                g = h // per if geo.num_kv_heads != geo.num_heads else h
                ov = w["o"][:, h * d:(h + 1) * d] @ w["v"][g * d:(g + 1) * d]
                groups[g] += float(ov.square().sum())
    return groups, ffn
