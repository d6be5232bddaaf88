"""Elastic search spaces (LoNAS style) and the subnets they contain.

A ``SearchSpace`` lists, per layer, the allowed choices for each elastic dimension: kept query
heads (GQA-aware: whole KV groups with their query heads), FFN width, and the LoRA rank of each
LoRA group. A ``Subnet`` picks one choice per layer per dimension. Both round-trip to JSON; the
subnet format is what ``rank`` writes and ``prune``/``eval`` read.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .assets import shipped_dir
from .loading import config_from_dict  # noqa: F401  (re-exported; lives with the other loaders)


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
        from .errors import UserError

        if not self.config:
            if self.model:  # an older or hand-written space: read the model's config.json (no weights)
                from .loading import load_config

                return load_config(self.model)
            raise UserError(f"{self.source or self.name or 'search space'}: config: missing; add the model's "
                            "architecture config (config.json) under config: or name a model")
        return config_from_dict(self.config)

    def adapter(self) -> Any:
        """The ``ArchAdapter`` of the embedded config."""
        from .models import get_adapter

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


# ==== making spaces: recipes, ratios, LoNAS NNCF files ===========================================
#: recipes shipped with the package (``recipes/NAME.yaml``); a bare NAME resolves here. In a checkout
#: ``zerolm_prune/recipes`` is a symlink to the repository's ``recipes/``; a wheel carries the files.
RECIPES_DIR = shipped_dir("recipes")  # the package's copy of the repository's recipes/
#: LoNAS-like defaults for ``zerolm-prune space MODEL`` without ratios or a recipe
DEFAULT_FFN_RATIOS = (1.0, 0.875, 0.75, 0.625, 0.5)
DEFAULT_HEAD_RATIOS = (1.0, 0.67)
#: FFN widths made from ratios are rounded to a multiple of 8 (tensor-core friendly; LoNAS's
#: LLaMA-7B widths 9632/8256/6880/5504 are exactly 11008 x 0.875/0.75/0.625/0.5 and multiples of 8)
FFN_ROUND = 8

RECIPE_KEYS = ("name", "description", "source", "model", "config", "lora", "heads", "kv_groups", "ffn", "ranks", "layers")
LAYER_KEYS = ("heads", "kv_groups", "ffn", "ranks")
LORA_KEYS = ("groups", "targets", "r_max", "alpha")


def _err(where: str, key: str, problem: str, fix: str):
    from .errors import UserError

    return UserError(f"{where}: {key}: {problem}; {fix}")


def recipe_path(name: str) -> Path | None:
    """``recipes/NAME.yaml`` when NAME is a shipped recipe."""
    if "/" in name or name.endswith((".yaml", ".yml", ".json")):
        return None
    path = RECIPES_DIR / f"{name}.yaml"
    return path if path.is_file() else None


def load_space(source: str, *, model: str | None = None, ffn: Any = None, heads: Any = None,
               rank: Any = None) -> SearchSpace:
    """A search space from a recipe YAML, a LoNAS NNCF JSON, a saved space JSON, or a MODEL.

    ``ffn`` and ``heads`` are ratios of the model's geometry (lists or ``"1,0.875"`` strings),
    ``rank`` absolute LoRA ranks. Given with a recipe they replace that dimension's lists; given
    with a MODEL they build the space (a MODEL alone gets ``DEFAULT_*_RATIOS``). A name of a
    shipped recipe (``smollm2-135m``) means the recipe, which carries that model's config. ``model`` names the model of an NNCF file (a MODEL or a recipe
    whose config and LoRA settings are used), or replaces a recipe's ``model``.
    """
    from .errors import UserError

    ffn_r, heads_r, rank_l = _ratios(ffn, "--ffn"), _ratios(heads, "--heads"), _ranks(rank)
    given = any(v is not None for v in (ffn_r, heads_r, rank_l))
    path = Path(source).expanduser()
    if not path.is_file():
        path = recipe_path(source)  # type: ignore[assignment]  # a shipped recipe's name wins over a MODEL
    if path is not None and path.is_file():
        if path.suffix in (".yaml", ".yml"):
            base = load_recipe(path)
            if model:
                base.model = model
        elif path.suffix == ".json":
            base = _load_json_space(path, model=model)
        else:
            raise UserError(f"{path}: unknown file type; pass a recipe (.yaml), a LoNAS NNCF config or a saved space (.json)")
        return apply_ratios(base, ffn=ffn_r, heads=heads_r, rank=rank_l) if given else base
    if source.endswith((".yaml", ".yml", ".json")):
        raise UserError(f"{source}: no such file; pass an existing recipe/JSON path or a recipe name from {RECIPES_DIR}")
    from .loading import load_config

    config = load_config(source)
    base = full_space(config, model=source)
    if not given:
        ffn_r, heads_r = list(DEFAULT_FFN_RATIOS), list(DEFAULT_HEAD_RATIOS)
    space = apply_ratios(base, ffn=ffn_r, heads=heads_r, rank=rank_l)
    space.name = f"{source} ratios"
    return space


def _ratios(value: Any, flag: str) -> list[float] | None:
    from .errors import UserError

    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        out = [float(v) for v in items if str(v).strip() != ""]
    except ValueError:
        raise UserError(f"{flag} {value!r}: not a list of numbers; write ratios like {flag} 1,0.875,0.75") from None
    if not out:
        raise UserError(f"{flag}: empty list; give at least one ratio, e.g. {flag} 1,0.75")
    for r in out:
        if not 0 < r <= 1:
            raise UserError(f"{flag} {r:g}: ratios must be in (0, 1]; e.g. {flag} 1,0.75,0.5")
    return out


def _ranks(value: Any) -> list[int] | None:
    from .errors import UserError

    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        out = [int(str(v).strip()) for v in items if str(v).strip() != ""]
    except ValueError:
        raise UserError(f"--rank {value!r}: not a list of whole numbers; write ranks like --rank 32,28") from None
    if not out or any(r <= 0 for r in out):
        raise UserError(f"--rank {value!r}: give positive LoRA ranks, e.g. --rank 32,28")
    return out


def _unique_desc(values: list[int]) -> list[int]:
    return sorted(set(values), reverse=True)


def full_space(config: Any, *, model: str | None = None, name: str | None = None) -> SearchSpace:
    """The one-subnet space of the unpruned model (every layer keeps everything)."""
    from .models import get_adapter

    adapter = get_adapter(config)
    layers = [LayerSpace([g.num_heads], [g.ffn_dim]) for g in adapter.geometries()]
    data = config.to_diff_dict() if hasattr(config, "to_diff_dict") else dict(config)
    data.pop("transformers_version", None)
    data.setdefault("model_type", getattr(config, "model_type", None))
    return SearchSpace(layers, model=model, config=data, name=name or model)


def default_lora(adapter: Any, r_max: int) -> dict[str, Any]:
    """LoRA groups of the family at ``r_max``; a group named ``down`` stays fixed at ``r_max`` as in
    LoNAS LLaMA (elastic q/k/v and gate/up, down_proj at 32); alpha = 2 * r_max as LoNAS trained."""
    groups = {g: list(m) for g, m in adapter.lora_groups.items() if g != "down"}
    fixed = [m for g, ms in adapter.lora_groups.items() if g == "down" for m in ms]
    lora: dict[str, Any] = {"groups": groups, "r_max": int(r_max), "alpha": float(2 * r_max)}
    if fixed:
        lora["targets"] = fixed
    return lora


def _round_half_up(x: float) -> int:
    """Python's round() is banker's rounding (round(7.5) == 8 but round(6.5) == 6); ratios should
    not depend on the parity of the result."""
    return math.floor(x + 0.5 + 1e-9)


def apply_ratios(base: SearchSpace, *, ffn: list[float] | None = None, heads: list[float] | None = None,
                 rank: list[int] | None = None) -> SearchSpace:
    """Replace the given dimensions of ``base`` by ratio-made lists (other dimensions kept).

    Heads: ``round(ratio * KV groups)`` whole groups (at least one) with their query heads, so
    0.67 of SmolLM2's 3 groups keeps 2 (6 of 9 heads). FFN: ``ratio * width`` rounded to a
    multiple of ``FFN_ROUND`` (ratio 1 keeps the exact width). Ranks apply to every LoRA group.
    """
    adapter = base.adapter()
    lora = dict(base.lora) if base.lora else None
    if rank is not None:
        r_max = max(rank)
        if lora is None or not lora.get("groups"):
            lora = default_lora(adapter, r_max)
        else:
            lora["r_max"] = max(int(lora.get("r_max") or 0), r_max)
    layers = []
    for geo, old in zip(adapter.geometries(), base.layers):
        new = LayerSpace(list(old.heads), list(old.ffn), {g: list(v) for g, v in old.ranks.items()})
        if heads is not None:
            group = geo.heads_per_kv_group
            new.heads = _unique_desc([group * max(1, _round_half_up(r * geo.num_kv_heads)) for r in heads])
        if ffn is not None:
            new.ffn = _unique_desc([
                geo.ffn_dim if r == 1
                else min(geo.ffn_dim, max(FFN_ROUND, _round_half_up(geo.ffn_dim * r / FFN_ROUND) * FFN_ROUND))
                for r in ffn
            ])
        if rank is not None and lora is not None:
            new.ranks = {g: _unique_desc(rank) for g in lora.get("groups", {})}
        layers.append(new)
    return SearchSpace(layers, model=base.model, config=base.config, lora=lora, name=base.name, source=base.source)


# ---- recipes ----------------------------------------------------------------------------------
def load_recipe(path: str | Path) -> SearchSpace:
    """Read a recipe YAML (format documented in ``recipes/smollm2-135m.yaml``) and validate it."""
    import yaml

    from .errors import UserError

    path = Path(path)
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UserError(f"{where}: cannot read ({err.strerror}); check the path") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{where}: malformed YAML{at} ({problem}); fix the syntax there") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: a recipe is a YAML mapping with keys {', '.join(RECIPE_KEYS)}; see recipes/smollm2-135m.yaml")
    for key in data:
        if key not in RECIPE_KEYS:
            raise _err(where, str(key), "unknown key", f"allowed keys are {', '.join(RECIPE_KEYS)}")
    if "heads" in data and "kv_groups" in data:
        raise _err(where, "kv_groups", "given together with heads", "give either heads (query heads) or kv_groups")

    config_dict = data.get("config")
    if config_dict is None:
        if not data.get("model"):
            raise _err(where, "config", "missing (and no model to read it from)", "embed the model's config.json under config:")
        from .loading import load_config

        config = load_config(str(data["model"]))
        config_dict = full_space(config).config
    elif not isinstance(config_dict, dict):
        raise _err(where, "config", "must be a mapping (the model's config.json)", "indent the config keys under config:")
    try:
        config = config_from_dict(config_dict)
    except UserError as err:
        raise UserError(f"{where}: config: {err}") from None
    from .models import get_adapter

    try:
        adapter = get_adapter(config)
    except UserError as err:
        raise UserError(f"{where}: config: {err}") from None
    n = adapter.num_layers

    lora = data.get("lora")
    if lora is not None:
        if not isinstance(lora, dict):
            raise _err(where, "lora", "must be a mapping", f"give {', '.join(LORA_KEYS)}")
        for key in lora:
            if key not in LORA_KEYS:
                raise _err(where, f"lora.{key}", "unknown key", f"allowed keys are {', '.join(LORA_KEYS)}")

    defaults = {key: data[key] for key in LAYER_KEYS if key in data}
    overrides = _layer_overrides(data.get("layers"), n, where)
    layers = []
    for i, geo in enumerate(adapter.geometries()):
        spec = {**defaults, **overrides.get(i, {})}
        if "heads" in overrides.get(i, {}):
            spec.pop("kv_groups", None)
        if "kv_groups" in overrides.get(i, {}):
            spec.pop("heads", None)
        if "kv_groups" in spec:
            groups = _layer_list(spec["kv_groups"], i, n, where, "kv_groups")
            heads = [g * geo.heads_per_kv_group for g in groups]
        else:
            heads = _layer_list(spec["heads"], i, n, where, "heads") if "heads" in spec else [geo.num_heads]
        ffn = _layer_list(spec["ffn"], i, n, where, "ffn") if "ffn" in spec else [geo.ffn_dim]
        ranks_spec = spec.get("ranks") or {}
        if not isinstance(ranks_spec, dict):
            raise _err(where, "ranks", "must map LoRA groups to lists", "write ranks: {qkv: [32, 28]}")
        ranks = {str(g): _layer_list(v, i, n, where, f"ranks.{g}") for g, v in ranks_spec.items()}
        layers.append(LayerSpace(heads, ffn, ranks))
    space = SearchSpace(layers, model=data.get("model"), config=dict(config_dict), lora=lora,
                        name=data.get("name") or path.stem, source=where)
    validate_space(space, adapter)
    return space


def _layer_list(value: Any, index: int, n: int, where: str, key: str) -> list[int]:
    """``value`` is one list for all layers or one list per layer; returns layer ``index``'s."""
    if not isinstance(value, list):
        raise _err(where, key, f"expected a list, got {value!r}", f"write {key}: [a, b, ...] or one list per layer")
    if not value:
        raise _err(where, key, "empty list", "give at least one value (the first is usually the full size)")
    if all(isinstance(v, list) for v in value):
        if len(value) != n:
            raise _err(where, key, f"{len(value)} per-layer lists for a {n}-layer model",
                       f"give exactly {n} lists, or one flat list for all layers")
        value = value[index]
        if not value:
            raise _err(where, f"{key}[{index}]", "empty list", "give at least one value for this layer")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _err(where, key, f"{v!r} is not a whole number", "write integers (widths, head counts, ranks)")
        out.append(int(v))
    return out


def _layer_overrides(value: Any, n: int, where: str) -> dict[int, dict[str, Any]]:
    """``layers: {"0": {...}, "10-11": {...}}``: per-layer replacements of the top-level lists."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _err(where, "layers", "must map layer indices or ranges to overrides", 'write layers: {"0": {ffn: [1536, 768]}}')
    out: dict[int, dict[str, Any]] = {}
    for key, spec in value.items():
        text = str(key)
        try:
            lo, _, hi = text.partition("-")
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise _err(where, f"layers.{text}", "not a layer index or range", 'use keys like "3" or "10-12"') from None
        if not 0 <= first <= last < n:
            raise _err(where, f"layers.{text}", f"outside layers 0..{n - 1}", f"use indices between 0 and {n - 1}")
        if not isinstance(spec, dict):
            raise _err(where, f"layers.{text}", "must be a mapping", f"give some of {', '.join(LAYER_KEYS)}")
        for k in spec:
            if k not in LAYER_KEYS:
                raise _err(where, f"layers.{text}.{k}", "unknown key", f"allowed keys are {', '.join(LAYER_KEYS)}")
        for i in range(first, last + 1):
            out.setdefault(i, {}).update(spec)
    return out


# ---- validation -------------------------------------------------------------------------------
def validate_space(space: SearchSpace, adapter: Any = None) -> None:
    """Raise a one-line ``UserError`` (file, key, fix) when ``space`` does not fit the model."""
    from . import cost

    where = space.source or space.name or "search space"
    adapter = adapter or space.adapter()
    if space.num_layers != adapter.num_layers:
        raise _err(where, "layers", f"{space.num_layers} layers but the model has {adapter.num_layers}",
                   f"give {adapter.num_layers} per-layer lists or one list for all layers")
    lora = space.lora or {}
    groups = lora.get("groups") or {}
    for key in lora:
        if key not in LORA_KEYS:
            raise _err(where, f"lora.{key}", "unknown key", f"allowed keys are {', '.join(LORA_KEYS)}")
    if not isinstance(groups, dict):
        raise _err(where, "lora.groups", "must map group names to module lists", "write groups: {qkv: [q_proj, k_proj, v_proj]}")
    checks = [*(("lora.groups." + g, m) for g, m in groups.items())]
    if "targets" in lora:
        checks.append(("lora.targets", lora["targets"]))
    for label, names in checks:
        if not isinstance(names, list) or not names:
            raise _err(where, label, "must be a non-empty list of module names", f"use names from {', '.join(adapter.lora_targets)}")
        for name in names:
            try:
                cost._resolve_projection(adapter, str(name))
            except ValueError:
                raise _err(where, label, f"{name!r} is not a projection of this {adapter.family} model",
                           f"use names from {', '.join(adapter.lora_targets)}") from None
    r_max = lora.get("r_max")
    if lora and (isinstance(r_max, bool) or not isinstance(r_max, int) or r_max <= 0):
        raise _err(where, "lora.r_max", f"{r_max!r} is not a positive whole number", "set r_max to the adapter's full rank, e.g. 32")
    for i, (layer, geo) in enumerate(zip(space.layers, adapter.geometries())):
        at = f"layer {i}"
        for key, values in (("heads", layer.heads), ("ffn", layer.ffn), *((f"ranks.{g}", v) for g, v in layer.ranks.items())):
            if not values:
                raise _err(where, key, f"empty list at {at}", "give at least one value")
            if len(set(values)) != len(values):
                raise _err(where, key, f"{values} repeats a value at {at}", "list each choice once")
        for h in layer.heads:
            _check_heads(where, "heads", at, h, geo)
        for f in layer.ffn:
            _check_ffn(where, "ffn", at, f, geo, adapter)
        for g, values in layer.ranks.items():
            if g not in groups:
                known = ", ".join(groups) or "none (no lora: section)"
                raise _err(where, f"ranks.{g}", f"unknown LoRA group (groups: {known})",
                           "define it under lora.groups or rename it to a defined group")
            for r in values:
                if not 0 <= r <= r_max:
                    raise _err(where, f"ranks.{g}", f"rank {r} at {at} is outside 0..r_max={r_max}",
                               f"use ranks between 0 and {r_max} or raise lora.r_max")


def _check_heads(where: str, key: str, at: str, h: int, geo: Any) -> None:
    group = geo.heads_per_kv_group
    if not isinstance(h, int) or h < group or h > geo.num_heads:
        raise _err(where, key, f"{h} query heads at {at} is outside {group}..{geo.num_heads}",
                   f"keep between {group} and {geo.num_heads} heads (whole KV groups of {group})")
    if h % group:
        low = h - h % group
        raise _err(where, key, f"{h} query heads at {at} splits a KV group ({group} query heads share one KV head)",
                   f"use a multiple of {group}, e.g. {max(low, group)} or {min(low + group, geo.num_heads)}")


def _check_ffn(where: str, key: str, at: str, f: int, geo: Any, adapter: Any) -> None:
    if not isinstance(f, int) or f < 1 or f > geo.ffn_dim:
        raise _err(where, key, f"width {f} at {at} is outside 1..{geo.ffn_dim} (the model's FFN width)",
                   f"use widths up to {geo.ffn_dim}")
    multiple = int(getattr(adapter, "ffn_multiple", 1) or 1)
    if f % multiple:
        raise _err(where, key, f"width {f} at {at} is not a multiple of {multiple} (required by {adapter.family})",
                   f"round it to a multiple of {multiple}")


def validate_subnet(subnet: Subnet, adapter: Any, space: SearchSpace | None = None, *, where: str = "subnet") -> None:
    """Raise a one-line ``UserError`` when ``subnet`` cannot be cut from the model (or is not in ``space``)."""
    if subnet.num_layers != adapter.num_layers:
        raise _err(where, "heads/ffn", f"{subnet.num_layers} layers but the model has {adapter.num_layers}",
                   f"give one entry per layer ({adapter.num_layers})")
    for i, (choice, geo) in enumerate(zip(subnet.layers, adapter.geometries())):
        _check_heads(where, "heads", f"layer {i}", choice.heads, geo)
        _check_ffn(where, "ffn", f"layer {i}", choice.ffn, geo, adapter)
        if space is not None:
            layer = space.layers[i]
            if choice.heads not in layer.heads:
                raise _err(where, "heads", f"{choice.heads} at layer {i} is not a choice of the space ({layer.heads})",
                           "pick one of the listed values or use the matching --space")
            if choice.ffn not in layer.ffn:
                raise _err(where, "ffn", f"{choice.ffn} at layer {i} is not a choice of the space ({layer.ffn})",
                           "pick one of the listed values or use the matching --space")
            given = dict(choice.ranks)
            for g, values in layer.ranks.items():
                if given.get(g) not in values:
                    raise _err(where, f"ranks.{g}", f"{given.get(g)} at layer {i} is not a choice of the space ({values})",
                               "pick one of the listed ranks")
            extra = set(given) - set(layer.ranks)
            if extra:
                raise _err(where, "ranks", f"group(s) {sorted(extra)} are not in the space", "drop them or use the matching --space")


# ---- LoNAS NNCF import ------------------------------------------------------------------------
_LAYER_RE = re.compile(r"ModuleList\[(?:layers|layer|h)\]/[^/\[]*\[(\d+)\]/(.*)$")
_SEGMENT_RE = re.compile(r"^[^\[]*\[([^\]]+)\]$")
_NNCF_STOP = ("self_linear", "lora_A", "lora_B", "default")


def loads_lenient_json(text: str) -> Any:
    """``json.loads`` that accepts the trailing commas of the released LoNAS files."""
    out, in_string, escape = [], False, False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch == ",":
            j = i + 1
            while j < len(text) and text[j] in " \t\r\n":
                j += 1
            if j >= len(text) or text[j] not in "]}":
                out.append(ch)
        else:
            out.append(ch)
        i += 1
    return json.loads("".join(out))


def _load_json_space(path: Path, *, model: str | None) -> SearchSpace:
    from .errors import UserError

    try:
        data = loads_lenient_json(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno} ({err.msg}); fix the syntax there") from None
    if isinstance(data, dict) and "layers" in data and "bootstrapNAS" not in data:
        try:
            space = SearchSpace.from_dict(data)
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"{path}: not a saved search space ({err}); write it with SearchSpace.to_json") from None
        space.source = str(path)
        if model:
            space.model = model
        if space.config:
            validate_space(space)
        return space
    width = _find_width_section(data)
    if width is None:
        raise UserError(f"{path}: bootstrapNAS.training.elasticity.width.overwrite_groups: missing; "
                        "pass a LoNAS NNCF config or a saved search space")
    return import_nncf(width, path, model=model)


def _find_width_section(data: Any) -> dict | None:
    if isinstance(data, dict):
        if "overwrite_groups" in data and "overwrite_groups_widths" in data:
            return data
        for value in data.values():
            found = _find_width_section(value)
            if found is not None:
                return found
    return None


def _node_projection(node: str, adapter: Any) -> tuple[int, Any, str] | None:
    """(layer index, projection, kind) of an NNCF node name; kind is base, lora_A or lora_B."""
    match = _LAYER_RE.search(node)
    if not match:
        return None
    attrs = []
    for segment in match.group(2).split("/"):
        inner = _SEGMENT_RE.match(segment)
        if not inner:
            break
        if inner.group(1) in _NNCF_STOP:
            break
        attrs.append(inner.group(1))
    path = ".".join(attrs)
    for proj in adapter.projections:
        if proj.path == path:
            kind = "lora_A" if "[lora_A]" in node else "lora_B" if "[lora_B]" in node else "base"
            return int(match.group(1)), proj, kind
    return None


def import_nncf(width: dict, path: str | Path, *, model: str | None = None) -> SearchSpace:
    """A SearchSpace from a LoNAS/BootstrapNAS ``width`` section (``overwrite_groups`` + widths).

    Each group lists NNCF node names of one layer. A group that holds a projection's own weight
    (``self_linear``/``NNCFLinear``) sets that layer's FFN width (gate/up, intermediate, c_fc) or
    attention width (query; converted to heads = width / head_dim); a group of only ``lora_A``
    nodes is an elastic LoRA rank group. Layers without a group keep the full size. The file has
    no model config: ``model`` is a recipe (its config, model name and LoRA settings are used and
    its groups must match the file's) or a MODEL (LoRA alpha then defaults to 2 x r_max, as LoNAS).
    """
    from .errors import UserError

    where = str(path)
    if not model:
        raise UserError(f"{where}: an NNCF file carries no model config; pass --model MODEL or a recipe "
                        "(e.g. --model recipes/llama-7b-lonas.yaml)")
    recipe = None
    if Path(model).is_file() or recipe_path(model) is not None:
        recipe = load_recipe(Path(model) if Path(model).is_file() else recipe_path(model))  # type: ignore[arg-type]
        config_dict, model_name = recipe.config, recipe.model
        adapter = recipe.adapter()
    else:
        from .loading import load_config

        base = full_space(load_config(model), model=model)
        config_dict, model_name = base.config, model
        adapter = base.adapter()
    groups, widths = width.get("overwrite_groups"), width.get("overwrite_groups_widths")
    if not isinstance(groups, list) or not isinstance(widths, list) or len(groups) != len(widths):
        raise _err(where, "overwrite_groups_widths",
                   f"{len(widths) if isinstance(widths, list) else 'no'} width lists for "
                   f"{len(groups) if isinstance(groups, list) else 'no'} groups", "give one width list per group")
    n = adapter.num_layers
    heads: dict[int, list[int]] = {}
    ffn: dict[int, list[int]] = {}
    ranks: dict[int, dict[str, list[int]]] = {}
    found_groups: dict[str, list[str]] = {}
    for k, (group, values) in enumerate(zip(groups, widths)):
        key = f"overwrite_groups[{k}]"
        if not isinstance(values, list) or not values or not all(isinstance(v, int) for v in values):
            raise _err(where, f"overwrite_groups_widths[{k}]", f"{values!r} is not a non-empty list of whole numbers",
                       "write e.g. [32, 28]")
        parsed = [_node_projection(str(node), adapter) for node in group]
        if not parsed or any(p is None for p in parsed):
            bad = next((node for node, p in zip(group, parsed) if p is None), "(empty group)")
            raise _err(where, key, f"node {str(bad)[-80:]!r} is not a block projection of this {adapter.family} model",
                       "check that --model is the model the NNCF file was written for")
        layer_ids = {p[0] for p in parsed}  # type: ignore[index]
        if len(layer_ids) != 1:
            raise _err(where, key, f"spans layers {sorted(layer_ids)}", "give one group per layer")
        layer = layer_ids.pop()
        if layer >= n:
            raise _err(where, key, f"refers to layer {layer} but the model has layers 0..{n - 1}",
                       "pass the --model this NNCF file was written for")
        bases = [p for p in parsed if p[2] == "base"]  # type: ignore[index]
        if bases:
            modules = {p[1].module for p in bases}  # type: ignore[index]
            target = ffn if "ffn" in modules else heads
            if layer in target:
                raise _err(where, key, f"layer {layer} has two {'FFN' if target is ffn else 'attention'} width groups",
                           "merge them into one group")
            if target is ffn:
                target[layer] = list(values)
            else:
                head_dim = adapter.geometry(layer).head_dim
                if any(v % head_dim for v in values):
                    raise _err(where, f"overwrite_groups_widths[{k}]", f"attention widths {values} are not whole heads of {head_dim}",
                               f"use multiples of {head_dim}")
                target[layer] = [v // head_dim for v in values]
        elif all(p[2] == "lora_A" for p in parsed):  # type: ignore[index]
            names = list(dict.fromkeys(adapter.target_name(p[1]) for p in parsed))  # type: ignore[index]
            name = next((g for g, m in adapter.lora_groups.items() if set(m) == set(names)), "+".join(names))
            if recipe and recipe.lora:
                name = next((g for g, m in recipe.lora.get("groups", {}).items() if set(m) == set(names)), None)
                if name is None:
                    raise _err(where, key, f"LoRA group {names} is not a group of {model}",
                               "add it to the recipe's lora.groups or pass the matching recipe")
            found_groups.setdefault(name, names)
            ranks.setdefault(layer, {})
            if name in ranks[layer]:
                raise _err(where, key, f"layer {layer} has two rank groups for {names}", "merge them into one group")
            ranks[layer][name] = list(values)
        else:
            raise _err(where, key, "mixes lora_B nodes without the weight they follow", "add the projection's own node")
    layers = [
        LayerSpace(heads.get(i, [g.num_heads]), ffn.get(i, [g.ffn_dim]), ranks.get(i, {}))
        for i, g in enumerate(adapter.geometries())
    ]
    if recipe is not None and recipe.lora:
        lora = recipe.lora
    elif found_groups:
        r_max = max(r for layer_ranks in ranks.values() for values in layer_ranks.values() for r in values)
        lora = {"groups": found_groups, "r_max": r_max, "alpha": float(2 * r_max)}
    else:
        lora = None
    space = SearchSpace(layers, model=model_name, config=config_dict, lora=lora,
                        name=f"{Path(where).stem} (LoNAS NNCF import)", source=where)
    validate_space(space, adapter)
    return space
