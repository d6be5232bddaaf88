"""The search space and subnet types: ``LayerChoice``, ``LayerSpace``, ``Subnet``, ``SearchSpace``.

A ``SearchSpace`` lists, per layer, the allowed choices for each elastic dimension: kept query
heads (GQA-aware: whole KV groups with their query heads), FFN width, and the LoRA rank of each
LoRA group. A ``Subnet`` picks one choice per layer per dimension. Both round-trip to JSON; the
subnet format is what ``rank`` writes and ``prune``/``eval`` read.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterator

from .. import loading
from ..errors import UserError
from ..loading import config_from_dict
from ..models import get_adapter


@dataclass(frozen=True)
class LayerChoice:
    """One layer's pick: kept query heads, FFN width and the LoRA rank of each group."""

    heads: int
    ffn: int
    ranks: tuple[tuple[str, int], ...] = ()

    def rank(self, group: str) -> int | None:
        return dict(self.ranks).get(group)


@dataclass
class LayerSpace:
    """The choices of one layer. Lists are kept in the order given (LoNAS: largest first)."""

    heads: list[int]
    ffn: list[int]
    ranks: dict[str, list[int]] = field(default_factory=dict)

    def options(self) -> list[LayerChoice]:
        """Every joint choice of this layer (heads x ffn x rank groups), in list order."""
        groups = sorted(self.ranks)
        rank_lists = [self.ranks[g] for g in groups]
        out = []
        for heads, ffn in itertools.product(self.heads, self.ffn):
            for combo in itertools.product(*rank_lists) if groups else [()]:
                out.append(LayerChoice(heads, ffn, tuple(zip(groups, combo))))
        return out

    @property
    def size(self) -> int:
        return len(self.heads) * len(self.ffn) * math.prod(len(v) for v in self.ranks.values())

    def pick(self, position: str) -> LayerChoice:
        """``first``, ``middle`` (the LoNAS heuristic) or ``last`` entry of every list.

        ``middle`` is exactly LoNAS's rule (``run_commonsense.py``: ``v[(len(v) - 1) // 2]`` over
        NNCF's width lists, largest first): lists are read largest first, and for an even length
        the upper middle is taken, so ``[32, 28]`` gives 32 and ``[11008, ..., 5504]`` gives 8256.
        """
        def choose(values: list[int]) -> int:
            if position == "first":
                return values[0]
            if position == "last":
                return values[-1]
            ordered = sorted(values, reverse=True)
            return ordered[(len(ordered) - 1) // 2]

        ranks = tuple((g, choose(self.ranks[g])) for g in sorted(self.ranks))
        return LayerChoice(choose(self.heads), choose(self.ffn), ranks)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"heads": list(self.heads), "ffn": list(self.ffn)}
        if self.ranks:
            out["ranks"] = {g: list(v) for g, v in self.ranks.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LayerSpace":
        return cls(list(data["heads"]), list(data["ffn"]), {g: list(v) for g, v in (data.get("ranks") or {}).items()})


@dataclass
class Subnet:
    """One choice per layer. JSON: ``{"heads": [...], "ffn": [...], "ranks": {group: [...]}}``."""

    layers: list[LayerChoice]

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def rank_groups(self) -> list[str]:
        return sorted({g for layer in self.layers for g, _ in layer.ranks})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"heads": [c.heads for c in self.layers], "ffn": [c.ffn for c in self.layers]}
        groups = self.rank_groups()
        if groups:
            out["ranks"] = {g: [c.rank(g) for c in self.layers] for g in groups}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Subnet":
        heads, ffn = list(data["heads"]), list(data["ffn"])
        if len(heads) != len(ffn):
            raise ValueError(f"subnet has {len(heads)} head entries but {len(ffn)} ffn entries")
        ranks = data.get("ranks") or {}
        for group, values in ranks.items():
            if len(values) != len(heads):
                raise ValueError(f"subnet rank group {group!r} has {len(values)} entries for {len(heads)} layers")
        layers = [
            LayerChoice(int(h), int(f), tuple((g, int(ranks[g][i])) for g in sorted(ranks)))
            for i, (h, f) in enumerate(zip(heads, ffn))
        ]
        return cls(layers)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Subnet":
        return cls.from_dict(json.loads(text))

    def is_uniform(self) -> bool:
        """Same shape in every layer: then a stock config can describe it."""
        return len({(c.heads, c.ffn) for c in self.layers}) <= 1


@dataclass
class SearchSpace:
    """Per-layer choices plus what is needed to interpret them without weights.

    ``model`` names the checkpoint (hub id or built-in asset); ``config`` is its architecture
    config as a dict, so shapes-only work (sizes, random-init tables) needs no download.
    ``lora`` describes the LoRA adapter the rank choices refer to:
    ``{"groups": {group: [module names]}, "alpha": float, "r_max": int}``.
    """

    layers: list[LayerSpace]
    model: str | None = None
    config: dict[str, Any] | None = None
    lora: dict[str, Any] | None = None
    name: str | None = None
    #: file the space was read from (error messages name it); not serialized
    source: str | None = field(default=None, compare=False, repr=False)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def config_object(self) -> Any:
        """The transformers config of the embedded ``config`` dict (shapes without a download)."""
        if not self.config:
            if self.model:  # an older or hand-written space: read the model's config.json (no weights)
                return loading.load_config(self.model)
            raise UserError(f"{self.source or self.name or 'search space'}: config: missing; add the model's "
                            "architecture config (config.json) under config: or name a model")
        return config_from_dict(self.config)

    def adapter(self) -> Any:
        """The ``ArchAdapter`` of the embedded config."""
        return get_adapter(self.config_object())

    @property
    def size(self) -> int:
        """Number of distinct subnets (an exact integer; may be ~1e41)."""
        return math.prod(layer.size for layer in self.layers)

    def options(self, layer: int) -> list[LayerChoice]:
        return self.layers[layer].options()

    def iter_subnets(self) -> Iterator[Subnet]:
        """Every subnet; only sensible for tiny spaces (tests, brute force)."""
        for combo in itertools.product(*(layer.options() for layer in self.layers)):
            yield Subnet(list(combo))

    def maximal(self) -> Subnet:
        return Subnet([_extreme(layer, max) for layer in self.layers])

    def minimal(self) -> Subnet:
        return Subnet([_extreme(layer, min) for layer in self.layers])

    def heuristic(self) -> Subnet:
        """LoNAS's heuristic subnet: the middle entry of every list."""
        return Subnet([layer.pick("middle") for layer in self.layers])

    def contains(self, subnet: Subnet) -> bool:
        if subnet.num_layers != self.num_layers:
            return False
        for choice, layer in zip(subnet.layers, self.layers):
            if choice.heads not in layer.heads or choice.ffn not in layer.ffn:
                return False
            for g, r in choice.ranks:
                if r not in layer.ranks.get(g, []):
                    return False
            if set(dict(choice.ranks)) != set(layer.ranks):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.model:
            out["model"] = self.model
        if self.config:
            out["config"] = self.config
        if self.lora:
            out["lora"] = self.lora
        out["layers"] = [layer.to_dict() for layer in self.layers]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchSpace":
        return cls(
            layers=[LayerSpace.from_dict(d) for d in data["layers"]],
            model=data.get("model"),
            config=data.get("config"),
            lora=data.get("lora"),
            name=data.get("name"),
        )

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "SearchSpace":
        return cls.from_dict(json.loads(text))


def _extreme(layer: LayerSpace, pick) -> LayerChoice:
    ranks = tuple((g, pick(layer.ranks[g])) for g in sorted(layer.ranks))
    return LayerChoice(pick(layer.heads), pick(layer.ffn), ranks)
