"""LoNAS / BootstrapNAS NNCF search-space files (``overwrite_groups`` + widths) and saved space JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..inputs import loads_lenient_json
from ..loading import load_config
from .recipes import full_space, load_recipe, recipe_path
from .types import LayerSpace, SearchSpace
from .validate import _err, validate_space


_LAYER_RE = re.compile(r"ModuleList\[(?:layers|layer|h)\]/[^/\[]*\[(\d+)\]/(.*)$")
_SEGMENT_RE = re.compile(r"^[^\[]*\[([^\]]+)\]$")
_NNCF_STOP = ("self_linear", "lora_A", "lora_B", "default")


def _load_json_space(path: Path, *, model: str | None) -> SearchSpace:
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
    where = str(path)
    recipe, config_dict, model_name, adapter = _nncf_model(where, model)
    groups, widths = width.get("overwrite_groups"), width.get("overwrite_groups_widths")
    if not isinstance(groups, list) or not isinstance(widths, list) or len(groups) != len(widths):
        raise _err(where, "overwrite_groups_widths",
                   f"{len(widths) if isinstance(widths, list) else 'no'} width lists for "
                   f"{len(groups) if isinstance(groups, list) else 'no'} groups", "give one width list per group")
    heads: dict[int, list[int]] = {}
    ffn: dict[int, list[int]] = {}
    ranks: dict[int, dict[str, list[int]]] = {}
    found_groups: dict[str, list[str]] = {}
    for k, (group, values) in enumerate(zip(groups, widths)):
        key = f"overwrite_groups[{k}]"
        layer, parsed = _group_layer(where, k, group, values, adapter)
        bases = [p for p in parsed if p[2] == "base"]
        if bases:
            _add_width(where, k, layer, values, {p[1].module for p in bases}, heads, ffn, adapter)
        elif all(p[2] == "lora_A" for p in parsed):
            names = list(dict.fromkeys(adapter.target_name(p[1]) for p in parsed))
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


def _nncf_model(where: str, model: str | None) -> tuple[Any, Any, Any, Any]:
    """(recipe or None, config dict, model name, adapter) of the model an NNCF file is read for."""
    if not model:
        raise UserError(f"{where}: an NNCF file carries no model config; pass --model MODEL or a recipe "
                        "(e.g. --model recipes/llama-7b-lonas.yaml)")
    if Path(model).is_file() or recipe_path(model) is not None:
        recipe = load_recipe(Path(model) if Path(model).is_file() else recipe_path(model))  # type: ignore[arg-type]
        return recipe, recipe.config, recipe.model, recipe.adapter()
    base = full_space(load_config(model), model=model)
    return None, base.config, model, base.adapter()


def _group_layer(where: str, k: int, group: Any, values: Any, adapter: Any) -> tuple[int, list]:
    """The one layer group ``k`` belongs to, and its parsed nodes; one-line errors otherwise."""
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
    n = adapter.num_layers
    if layer >= n:
        raise _err(where, key, f"refers to layer {layer} but the model has layers 0..{n - 1}",
                   "pass the --model this NNCF file was written for")
    return layer, parsed  # type: ignore[return-value]


def _add_width(where: str, k: int, layer: int, values: list[int], modules: set[str], heads: dict, ffn: dict,
               adapter: Any) -> None:
    """Record a width group: FFN widths as they are, attention widths as whole heads."""
    target = ffn if "ffn" in modules else heads
    if layer in target:
        raise _err(where, f"overwrite_groups[{k}]", f"layer {layer} has two {'FFN' if target is ffn else 'attention'} "
                   "width groups", "merge them into one group")
    if target is ffn:
        target[layer] = list(values)
        return
    head_dim = adapter.geometry(layer).head_dim
    if any(v % head_dim for v in values):
        raise _err(where, f"overwrite_groups_widths[{k}]", f"attention widths {values} are not whole heads of {head_dim}",
                   f"use multiples of {head_dim}")
    target[layer] = [v // head_dim for v in values]
