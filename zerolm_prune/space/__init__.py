"""Elastic search spaces (LoNAS style) and the subnets they contain.

A ``SearchSpace`` lists, per layer, the allowed choices for each elastic dimension: kept query
heads (GQA-aware: whole KV groups with their query heads), FFN width, and the LoRA rank of each
LoRA group. A ``Subnet`` picks one choice per layer per dimension. Both round-trip to JSON; the
subnet format is what ``rank`` writes and ``prune``/``eval`` read.

The package splits by job: ``types`` (the classes), ``recipes`` (recipe YAML, ratios, full
spaces), ``nncf`` (LoNAS NNCF files, saved spaces), ``validate`` (checks against a model);
``load_space`` picks among them. Every public name is importable from ``zerolm_prune.space``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import loading
from ..errors import UserError
from ..loading import config_from_dict  # noqa: F401  (re-exported; lives with the other loaders)
from .nncf import _load_json_space, import_nncf, loads_lenient_json  # noqa: F401
from .recipes import (  # noqa: F401
    DEFAULT_FFN_RATIOS, DEFAULT_HEAD_RATIOS, FFN_ROUND, LAYER_KEYS, RECIPE_KEYS, RECIPES_DIR, _ranks, _ratios,
    apply_ratios, default_lora, full_space, load_recipe, recipe_path)
from .types import LayerChoice, LayerSpace, SearchSpace, Subnet  # noqa: F401
from .validate import LORA_KEYS, validate_space, validate_subnet  # noqa: F401


def load_space(source: str, *, model: str | None = None, ffn: Any = None, heads: Any = None,
               rank: Any = None) -> SearchSpace:
    """A search space from a recipe YAML, a LoNAS NNCF JSON, a saved space JSON, or a MODEL.

    ``ffn`` and ``heads`` are ratios of the model's geometry (lists or ``"1,0.875"`` strings),
    ``rank`` absolute LoRA ranks. Given with a recipe they replace that dimension's lists; given
    with a MODEL they build the space (a MODEL alone gets ``DEFAULT_*_RATIOS``). A name of a
    shipped recipe (``smollm2-135m``) means the recipe, which carries that model's config. ``model`` names the model of an NNCF file (a MODEL or a recipe
    whose config and LoRA settings are used), or replaces a recipe's ``model``.
    """
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

    config = loading.load_config(source)
    base = full_space(config, model=source)
    if not given:
        ffn_r, heads_r = list(DEFAULT_FFN_RATIOS), list(DEFAULT_HEAD_RATIOS)
    space = apply_ratios(base, ffn=ffn_r, heads=heads_r, rank=rank_l)
    space.name = f"{source} ratios"
    return space
