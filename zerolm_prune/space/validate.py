"""Checks of spaces and subnets against a model, each failure one line naming the key and the fix."""

from __future__ import annotations

from typing import Any

from .. import cost
from ..errors import UserError
from .types import SearchSpace, Subnet

#: keys of a recipe's ``lora`` mapping
LORA_KEYS = ("groups", "targets", "r_max", "alpha")


def _err(where: str, key: str, problem: str, fix: str):
    return UserError(f"{where}: {key}: {problem}; {fix}")


def validate_space(space: SearchSpace, adapter: Any = None) -> None:
    """Raise a one-line ``UserError`` (file, key, fix) when ``space`` does not fit the model."""
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
