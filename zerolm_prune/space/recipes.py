"""Making spaces: recipe YAML files, ratios of a model's geometry, the full space of a model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from .. import loading
from ..assets import shipped_dir
from ..errors import UserError
from ..loading import config_from_dict
from ..models import get_adapter
from .types import LayerSpace, SearchSpace
from .validate import LORA_KEYS, _err, validate_space

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


def recipe_path(name: str) -> Path | None:
    """``recipes/NAME.yaml`` when NAME is a shipped recipe."""
    if "/" in name or name.endswith((".yaml", ".yml", ".json")):
        return None
    path = RECIPES_DIR / f"{name}.yaml"
    return path if path.is_file() else None


def _ratios(value: Any, flag: str) -> list[float] | None:
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


def load_recipe(path: str | Path) -> SearchSpace:
    """Read a recipe YAML (format documented in ``recipes/smollm2-135m.yaml``) and validate it."""
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

        config = loading.load_config(str(data["model"]))
        config_dict = full_space(config).config
    elif not isinstance(config_dict, dict):
        raise _err(where, "config", "must be a mapping (the model's config.json)", "indent the config keys under config:")
    try:
        config = config_from_dict(config_dict)
    except UserError as err:
        raise UserError(f"{where}: config: {err}") from None

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
