"""Which heads and channels to keep: unit orders other than LoNAS's prefix.

- ``prefix``: the first units (LoNAS as released).
- ``capacity`` (weights only): units by their own ZeroLM capacity contribution
  (``proxy.importance``; what ``materialize(order="capacity")`` has always used).
- ``energy`` (weights only): units by their output-path energy (rankers/weights.py). Kept for
  comparison: plain norm orders are known to do worse than prefix on SmolLM2 (issue #9).
- ``selfgen`` (new here): units by what they actually write on text the model generated itself:
  FFN channel j -> sum over tokens of (act_j * ||down[:, j]||)^2, KV group g -> sum over tokens of
  ||O_g z_g||^2 over its query heads. Like Wanda/activation-aware pruning, but the "calibration
  data" is the model's own samples, so no external dataset is involved.

An order maps layer index -> {"heads": KV groups most important first, "ffn": channels most
important first}; ``apply.sliced(..., orders=...)`` and the masks of the harness consume it.

The names, their validation, the saved sidecar and the kept rows live in ``zerolm_prune.units``;
this module computes the orders that need the model (and so imports the proxy and the text).

Why one resolver (``resolve_orders``): the table that scores subnets (``CapacityTable``,
``selfgen-kl``, ``fidelity``) and ``materialize`` that cuts them must keep the same units to the
index, so every consumer accepts the same input (a name or an explicit orders dict, e.g. read back
from JSON with string layer keys) and turns it into one validated ``{int: {"heads", "ffn"}}`` here.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..errors import UserError
from ..models import get_adapter
from ..proxy.importance import ffn_channel_order, head_group_order, unit_energies
from ..units import (  # noqa: F401  (re-exported: the names, validation and sidecar live in units)
    ORDER_NAMES, SAVED_ORDERS_FORMAT, WEIGHT_ONLY_ORDERS, check_order_name, load_orders, order_label,
    orders_fingerprint, ranked_orders_file, save_orders, validate_orders)
from .selftext import SelfText


def compute_orders(model: Any, name: str, *, adapter: Any = None, text: Any = None, seqs: int = 2,
                   length: int = 128, seed: int = 0) -> dict[int, dict[str, list[int]]] | None:
    """Per-layer unit orders of ``model`` by policy ``name`` (``None`` for prefix)."""
    check_order_name(name)
    adapter = adapter or get_adapter(model)
    if name == "prefix":
        return None
    out: dict[int, dict[str, list[int]]] = {}
    if name == "capacity":
        for l in range(adapter.num_layers):
            out[l] = {"heads": [int(g) for g in head_group_order(adapter, model, l, "capacity")],
                      "ffn": [int(c) for c in ffn_channel_order(adapter, model, l, "capacity")]}
        return out
    if name == "energy":
        for l in range(adapter.num_layers):
            groups, ffn = unit_energies(adapter, model, l)
            out[l] = {"heads": _desc(groups), "ffn": _desc(ffn)}
        return out
    if name == "selfgen":
        if getattr(model, "get_output_embeddings", lambda: None)() is None:
            raise UserError("the selfgen unit order samples text from the model, so it needs a causal LM; "
                            "use --order prefix, capacity or energy for encoders")
        if any(p.transposed or p.role == "qkv" for p in adapter.projections):
            raise UserError("the selfgen unit order needs unfused q/k/v/o projections (LLaMA-style models); "
                            "use --order prefix, capacity or energy for this model")
        text = text or SelfText(model, seqs=seqs, length=length, seed=seed, adapter=adapter)
        layers = adapter.layers(model)
        for l in range(adapter.num_layers):
            geo = adapter.geometry(l)
            w = {p.role: adapter.projection_weight(layers[l], p).detach() for p in adapter.projections if p.role in ("o", "down")}
            with torch.no_grad():
                act = text.map_inputs[(l, "down")]
                ffn = (act.double().square().sum(0) * w["down"].double().square().sum(0)).numpy()
                z = text.map_inputs[(l, "o")]
                d, per = geo.head_dim, geo.heads_per_kv_group
                groups = np.zeros(geo.num_kv_heads)
                for h in range(geo.num_heads):
                    g = h // per if geo.num_kv_heads != geo.num_heads else h
                    groups[g] += float((z[:, h * d:(h + 1) * d] @ w["o"][:, h * d:(h + 1) * d].T).double().square().sum())
            out[l] = {"heads": _desc(groups), "ffn": _desc(ffn)}
        return out
    raise AssertionError(name)  # pragma: no cover - check_order_name admits only the names above


def resolve_orders(model: Any, order: Any, *, adapter: Any = None, text: Any = None
                   ) -> dict[int, dict[str, list[int]]] | None:
    """A name (computed once, deterministic: seed 0) or an explicit orders dict (validated) ->
    ``{layer: {"heads": [...], "ffn": [...]}}``, or ``None`` for prefix (keep the first units)."""
    if order is None or (isinstance(order, str) and order == "prefix"):
        return None
    if isinstance(order, str):
        return compute_orders(model, order, adapter=adapter, text=text)
    if isinstance(order, Mapping):
        return validate_orders(order, adapter or get_adapter(model))
    raise UserError(f"unit order must be a name ({', '.join(ORDER_NAMES)}) or an orders dict, got {type(order).__name__}")


def _desc(values: np.ndarray) -> list[int]:
    """Indices by decreasing value; ties keep the original (prefix) order."""
    return [int(i) for i in np.argsort(-np.asarray(values), kind="stable")]
