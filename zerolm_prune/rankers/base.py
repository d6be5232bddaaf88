"""What a ranker is: something that scores subnets of one model without external data.

Two kinds. An *additive* ranker gives every (layer, option) a value and scores a subnet by the
sum, so the exact search (``search.top_k``) can maximise it under a budget: it exposes
``layer_values(model, space)`` aligned with ``space.options(l)``. A *subnet* ranker (the fidelity
second stage) has to run each subnet, so it only re-ranks a short list of candidates.
Higher scores are better for every ranker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..models import get_adapter
from ..space import LayerSpace, SearchSpace


@dataclass
class Ranker:
    """Base: ``name`` is the registry key, ``provenance`` says where the idea comes from."""

    name: str = ""
    provenance: str = ""
    additive: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def layer_values(self, model: Any, space: Any, *, adapter: Any = None) -> list[np.ndarray]:
        raise NotImplementedError(f"ranker {self.name!r} is not additive; use score()")

    def score(self, model: Any, subnets: Sequence[Any], *, space: Any = None, adapter: Any = None) -> np.ndarray:
        """Scores of ``subnets`` (higher is better). Additive rankers sum their table."""
        space = space if space is not None else space_of(subnets, model)
        values = self.layer_values(model, space, adapter=adapter)
        return np.array([sum(values[l][i] for l, i in enumerate(indices_in(space, s))) for s in subnets], dtype=float)


def indices_in(space: Any, subnet: Any) -> list[int]:
    """Per-layer option index of ``subnet`` in ``space`` (choices compared by heads, ffn, ranks)."""
    out = []
    for l, choice in enumerate(subnet.layers):
        opts = space.options(l)
        try:
            out.append(opts.index(choice))
        except ValueError:
            raise ValueError(f"layer {l}: choice {choice} is not in the space") from None
    return out


def space_of(subnets: Sequence[Any], model: Any = None) -> Any:
    """The smallest space holding ``subnets``: per layer, the choices they use (plus the full shape).

    Lets ``score`` work on any list of subnets (e.g. a ranked.json) without the recipe that made it.
    """
    n = subnets[0].num_layers
    adapter = get_adapter(model) if model is not None else None
    layers = []
    for l in range(n):
        heads = {c.heads for c in (s.layers[l] for s in subnets)}
        ffn = {c.ffn for c in (s.layers[l] for s in subnets)}
        if adapter is not None:
            geo = adapter.geometry(l)
            heads.add(geo.num_heads)
            ffn.add(geo.ffn_dim)
        groups: dict[str, set] = {}
        for s in subnets:
            for g, r in s.layers[l].ranks:
                groups.setdefault(g, set()).add(r)
        layers.append(LayerSpace(sorted(heads, reverse=True), sorted(ffn, reverse=True),
                                 {g: sorted(v, reverse=True) for g, v in groups.items()}))
    return SearchSpace(layers)
