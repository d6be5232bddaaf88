"""Which heads and channels to keep: unit orders other than LoNAS's prefix.

- ``prefix``: the first units (LoNAS as released).
- ``energy`` (weights only): units by their output-path energy (rankers/weights.py). Kept for
  comparison: plain norm orders are known to do worse than prefix on SmolLM2 (issue #9).
- ``selfgen`` (new here): units by what they actually write on text the model generated itself:
  FFN channel j -> sum over tokens of (act_j * ||down[:, j]||)^2, KV group g -> sum over tokens of
  ||O_g z_g||^2 over its query heads. Like Wanda/activation-aware pruning, but the "calibration
  data" is the model's own samples, so no external dataset is involved.

An order maps layer index -> {"heads": KV groups most important first, "ffn": channels most
important first}; ``apply.sliced(..., orders=...)`` and the masks of the harness consume it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ORDER_NAMES = ("prefix", "energy", "selfgen")


def compute_orders(model: Any, name: str, *, adapter: Any = None, text: Any = None, seqs: int = 2,
                   length: int = 128, seed: int = 0) -> dict[int, dict[str, list[int]]] | None:
    """Per-layer unit orders of ``model`` by policy ``name`` (``None`` for prefix)."""
    from ..errors import UserError
    from ..models import get_adapter

    adapter = adapter or get_adapter(model)
    if name == "prefix":
        return None
    out: dict[int, dict[str, list[int]]] = {}
    if name == "energy":
        from .weights import unit_energies

        for l in range(adapter.num_layers):
            groups, ffn = unit_energies(adapter, model, l)
            out[l] = {"heads": _desc(groups), "ffn": _desc(ffn)}
        return out
    if name == "selfgen":
        import torch

        from .selfgen import SelfText

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
    raise UserError(f"unknown unit order {name!r}; choose one of: {', '.join(ORDER_NAMES)}")


def _desc(values: np.ndarray) -> list[int]:
    """Indices by decreasing value; ties keep the original (prefix) order."""
    return [int(i) for i in np.argsort(-np.asarray(values), kind="stable")]
