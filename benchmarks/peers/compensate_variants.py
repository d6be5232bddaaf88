"""Research variants of the data-free compensation, measured in PEERS.md and kept out of the wheel.

Why here: none of them is a default (the fluctuation order on self-generated text lost to the
selfgen order on held-out text; see PEERS.md), and ``subnet_biases`` needs ``materialize``'s
planner, which the package's ``compensate`` module must not import (materialize imports it).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from zerolm_prune.compensate import SKIP_FIRST, layer_biases
from zerolm_prune.materialize import plan_layer
from zerolm_prune.models import get_adapter
from zerolm_prune.rankers.apply import sliced as _plain_sliced  # kept even if a caller patches apply.sliced
from zerolm_prune.rankers.selfgen import SelfText


def fluctuation_orders(model: Any, *, adapter: Any = None, text: Any = None, skip_first: int = SKIP_FIRST
                       ) -> dict[int, dict[str, list[int]]]:
    """Unit orders for a compensated cut: what a unit leaves behind once its mean is added back is
    its fluctuation, ``Var(x_j) * ||W[:, j]||^2`` summed over its features (FLAP's metric, Eq. 5,
    on self-generated text instead of calibration data). A KV group sums its query heads'
    features. Same format as ``rankers.orders.compute_orders``."""


    adapter = adapter or get_adapter(model)
    text = text or SelfText(model, seqs=2, length=128, seed=0, adapter=adapter)
    n_seq, n_len = text.ids.shape
    layers = adapter.layers(model)
    out = {}
    for l in range(adapter.num_layers):
        geo = adapter.geometry(l)
        scores = {}
        for role in ("o", "down"):
            x = text.map_inputs[(l, role)].reshape(n_seq, n_len, -1)[:, skip_first:]
            var = x.reshape(-1, x.shape[-1]).double().var(0)
            proj = next(p for p in adapter.projections if p.role == role)
            w = adapter.projection_weight(layers[l], proj).detach().double()
            scores[role] = (var * w.square().sum(0)).numpy()
        per = geo.heads_per_kv_group if geo.num_kv_heads != geo.num_heads else 1
        groups = scores["o"].reshape(-1, per * geo.head_dim).sum(1)
        out[l] = {"heads": [int(i) for i in np.argsort(-groups, kind="stable")],
                  "ffn": [int(i) for i in np.argsort(-scores["down"], kind="stable")]}
    return out


def subnet_biases(model: Any, subnet: Any, means: dict[tuple[int, str], torch.Tensor], *, adapter: Any = None,
                  orders: dict | None = None) -> dict[int, dict[str, torch.Tensor]]:
    """Compensation biases ``{layer: {projection path: bias}}`` of ``subnet`` cut with ``orders``
    (the same units ``materialize`` keeps), from the model's unsliced weights."""

    adapter = adapter or get_adapter(model)
    order = orders if orders is not None else "prefix"
    layers = adapter.layers(model)
    out = {}
    for index, choice in enumerate(subnet.layers):
        plan = plan_layer(adapter, model, index, choice, order)
        biases = layer_biases(adapter, layers[index], plan, index, means)
        if biases:
            out[index] = biases
    return out


@contextlib.contextmanager
def sliced_compensated(model: Any, subnet: Any, *, adapter: Any = None, orders: dict | None = None,
                       means: dict[tuple[int, str], torch.Tensor] | None = None) -> Iterator[Any]:
    """``rankers.apply.sliced`` plus the compensation biases, so a ranker measures the model that a
    compensated ``materialize`` writes; biases are removed again on exit."""
    biases = subnet_biases(model, subnet, means or {}, adapter=adapter, orders=orders)

    adapter = adapter or get_adapter(model)
    layers = adapter.layers(model)
    with _plain_sliced(model, subnet, adapter=adapter, orders=orders) as m:
        saved = []
        try:
            for index, paths in biases.items():
                for path, bias in paths.items():
                    module = layers[index].get_submodule(path)
                    module = getattr(module, "base_layer", module)
                    saved.append((module, module.bias))
                    base = module.bias.detach() if module.bias is not None else 0
                    module.bias = nn.Parameter(base + bias, requires_grad=False)
            yield m
        finally:
            for module, old in reversed(saved):
                module.bias = old

