"""LoRA adapters through stock peft: load LoNAS releases, truncate ranks, merge or export.

LoNAS trains one adapter at the maximum rank r_max and picks, per layer and LoRA group, a smaller
rank at search time; a sub-adapter is the prefix ``A[:r, :]``, ``B[:, :r]`` used with the
unchanged scale ``alpha / r_max``. Stock peft would scale a rank-r module by ``alpha / r``, so an
exported smaller adapter sets ``rank_pattern`` (r) and ``alpha_pattern`` (alpha * r / r_max) per
module: peft then reproduces exactly the LoNAS scale with no code of ours.

Released LoNAS adapters are peft 0.5-era folders (``adapter_model.bin`` + ``adapter_config.json``
with one ``r`` for all targets). They are read with ``torch.load(weights_only=True)`` only, and
config keys that today's ``LoraConfig`` does not know are dropped (listed in the returned info).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from .errors import UserError

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def _is_lora(module: nn.Module) -> bool:
    return hasattr(module, "base_layer") and hasattr(module, "lora_A") and hasattr(module, "lora_B")


def lora_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every peft LoRA layer of ``model`` by its name inside the transformers model."""
    get_base = getattr(model, "get_base_model", None)
    base = get_base() if callable(get_base) else model
    return {name: m for name, m in base.named_modules() if _is_lora(m)}


def truncate_module(module: nn.Module, rank: int, *, where: str = "") -> int:
    """Keep the first ``rank`` LoRA components of every adapter on ``module`` (scale unchanged)."""
    changed = 0
    for name in list(module.lora_A.keys()):
        r_old = int(module.r[name])
        if rank < 1 or rank > r_old:
            raise UserError(f"{where}: LoRA rank {rank} is outside 1..{r_old} (the adapter's rank)")
        if rank == r_old:
            continue
        lora_a, lora_b = module.lora_A[name], module.lora_B[name]
        lora_a.weight = nn.Parameter(lora_a.weight.detach()[:rank].clone(), requires_grad=lora_a.weight.requires_grad)
        lora_a.out_features = rank
        lora_b.weight = nn.Parameter(lora_b.weight.detach()[:, :rank].clone(), requires_grad=lora_b.weight.requires_grad)
        lora_b.in_features = rank
        module.r[name] = rank
        changed += 1
    return changed


# ---- loading --------------------------------------------------------------------------------------

def read_adapter_config(adapter_dir: str | Path) -> tuple[dict[str, Any], list[str]]:
    """adapter_config.json restricted to the fields today's ``LoraConfig`` accepts."""
    from peft import LoraConfig  # lazy: peft only when a LoRA adapter is involved

    path = Path(adapter_dir) / "adapter_config.json"
    if not path.is_file():
        raise UserError(f"{adapter_dir}: no adapter_config.json; pass a peft LoRA adapter folder")
    try:
        raw = json.loads(path.read_text())
    except ValueError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    peft_type = str(raw.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise UserError(f"{adapter_dir}: peft_type {peft_type} is not LoRA; only LoRA adapters are supported")
    known = {f.name for f in dataclasses.fields(LoraConfig)}
    dropped = sorted(k for k in raw if k not in known)
    cfg = {k: v for k, v in raw.items() if k in known and k not in ("peft_type", "auto_mapping", "peft_version")}
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = list(cfg["target_modules"])
    return cfg, dropped


def read_adapter_weights(adapter_dir: str | Path) -> dict[str, torch.Tensor]:
    folder = Path(adapter_dir)
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".safetensors"):
            return load_file(str(path))
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # pickle with code in it, or a corrupt file
            raise UserError(f"{path}: cannot be read safely with torch.load(weights_only=True) ({str(err).splitlines()[0]})") from None
        if not isinstance(state, dict):
            raise UserError(f"{path}: expected a state dict of tensors")
        return state
    raise UserError(f"{adapter_dir}: no {' or '.join(WEIGHT_FILES)}; pass a peft LoRA adapter folder")


def load_adapter(model: nn.Module, adapter_dir: str | Path, *, adapter_name: str = "default"):
    """Wrap ``model`` in a stock ``PeftModel`` carrying the adapter in ``adapter_dir``.

    Works for current peft folders and the LoNAS release format; every LoRA tensor of the model
    must be found in the file (a silent partial load would evaluate a different network).
    """
    from peft import LoraConfig, get_peft_model  # lazy: peft only when a LoRA adapter is involved
    from peft.utils import set_peft_model_state_dict

    cfg, _dropped = read_adapter_config(adapter_dir)
    cfg["inference_mode"] = True
    try:
        config = LoraConfig(**cfg)
    except (TypeError, ValueError) as err:
        raise UserError(f"{adapter_dir}: adapter_config.json is not a LoRA config peft accepts ({err})") from None
    state = read_adapter_weights(adapter_dir)
    try:
        peft_model = get_peft_model(model, config, adapter_name=adapter_name)
    except ValueError as err:
        raise UserError(f"{adapter_dir}: its target modules do not fit this model ({str(err).splitlines()[0]})") from None
    try:
        result = set_peft_model_state_dict(peft_model, state, adapter_name=adapter_name)
    except RuntimeError as err:
        raise UserError(f"{adapter_dir}: adapter shapes do not fit this model ({str(err).splitlines()[0][:200]})") from None
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing:
        raise UserError(f"{adapter_dir}: {len(missing)} LoRA tensors missing from the file (first: {missing[0]}); "
                        "is it an adapter for this model?")
    peft_model.eval()
    return peft_model


# ---- export ---------------------------------------------------------------------------------------

def rank_patterns(peft_model, adapter_name: str = "default") -> tuple[dict[str, int], dict[str, float]]:
    """``rank_pattern``/``alpha_pattern`` that make stock peft rebuild the truncated adapter.

    Keys are the full module paths, regex-escaped: peft matches them with ``re.match`` at a
    dotted boundary, so an escaped full path matches exactly that module.
    """
    config = peft_model.peft_config[adapter_name]
    r_max, alpha = int(config.r), float(config.lora_alpha)
    ranks: dict[str, int] = {}
    alphas: dict[str, float] = {}
    for name, module in lora_modules(peft_model).items():
        if adapter_name not in module.r:
            continue
        r = int(module.r[adapter_name])
        # LoNAS keeps scale alpha / r_max whatever r is: alpha_r / r == alpha / r_max
        scale = float(module.scaling[adapter_name])
        if r != r_max or abs(scale - alpha / r_max) > 1e-12:
            key = re.escape(name)
            ranks[key] = r
            alphas[key] = scale * r
    return ranks, alphas


def save_adapter(peft_model, out_dir: str | Path, *, adapter_name: str = "default") -> Path:
    """Write the (truncated, sliced) adapter as a stock peft folder (safetensors)."""
    from peft import LoraConfig  # lazy: peft only when a LoRA adapter is involved

    out = Path(out_dir)
    config = peft_model.peft_config[adapter_name]
    ranks, alphas = rank_patterns(peft_model, adapter_name)
    saved = dataclasses.replace(config) if dataclasses.is_dataclass(config) else LoraConfig(**config.to_dict())
    saved.rank_pattern = {**(config.rank_pattern or {}), **ranks}
    saved.alpha_pattern = {**(config.alpha_pattern or {}), **alphas}
    original = peft_model.peft_config[adapter_name]
    peft_model.peft_config[adapter_name] = saved
    try:
        peft_model.save_pretrained(str(out), selected_adapters=[adapter_name], safe_serialization=True)
    finally:
        peft_model.peft_config[adapter_name] = original
    return out


def merge(peft_model) -> nn.Module:
    """Fold the LoRA deltas into the base weights and return the plain transformers model."""
    return peft_model.merge_and_unload()


def unload(peft_model) -> nn.Module:
    """The base model without LoRA modules and without merging (for an unmerged export)."""
    return peft_model.unload()


def save_lonas_adapter(peft_model, out_dir: str | Path, *, adapter_name: str = "default") -> Path:
    """Write an adapter as LoNAS released it: peft 0.5 key names, ``adapter_model.bin``, one ``r``.

    Used by tests and for interoperability with LoNAS's own scripts; ranks must all be r_max.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = peft_model.peft_config[adapter_name]
    state = {}
    for name, module in lora_modules(peft_model).items():
        if int(module.r[adapter_name]) != int(config.r):
            raise UserError("the LoNAS format has one rank for all targets; save truncated adapters with save_adapter")
        state[f"base_model.model.{name}.lora_A.weight"] = module.lora_A[adapter_name].weight.detach().clone()
        state[f"base_model.model.{name}.lora_B.weight"] = module.lora_B[adapter_name].weight.detach().clone()
    torch.save(state, out / "adapter_model.bin")
    target = config.target_modules
    (out / "adapter_config.json").write_text(json.dumps({
        "base_model_name_or_path": config.base_model_name_or_path,
        "bias": "none", "enable_lora": None, "fan_in_fan_out": bool(config.fan_in_fan_out),
        "inference_mode": True, "init_lora_weights": True, "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout, "merge_weights": False, "modules_to_save": None,
        "peft_type": "LORA", "r": int(config.r),
        "target_modules": sorted(target) if not isinstance(target, str) else target,
        "task_type": config.task_type,
    }, indent=2))
    return out


# ---- streaming merge ------------------------------------------------------------------------------

def adapter_deltas(adapter_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Per target module (path inside the model): ``{"A", "B", "scale", "fan_in_fan_out"}``.

    What ``materialize_folder`` needs to merge an adapter while streaming the base weights: the
    adapter is small, so it is read whole; ``scale`` is peft's (alpha/r, rank/alpha patterns and
    rsLoRA honoured) and stays fixed when the rank is later truncated, as LoNAS does.
    """
    from peft.utils.other import get_pattern_key  # lazy: peft only when a LoRA adapter is involved

    cfg, _ = read_adapter_config(adapter_dir)
    if cfg.get("use_dora"):
        raise UserError(f"{adapter_dir}: DoRA adapters cannot be merged while streaming; add --in-memory")
    state = read_adapter_weights(adapter_dir)
    r, alpha = int(cfg.get("r", 8)), float(cfg.get("lora_alpha", 8))
    rank_pattern, alpha_pattern = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
    out: dict[str, dict[str, Any]] = {}
    for key, tensor in state.items():
        for part in ("lora_A", "lora_B"):
            marker = f".{part}."
            if marker in key:
                module = key.split(marker)[0]
                break
        else:
            raise UserError(f"{adapter_dir}: tensor {key} is not a LoRA A/B matrix (trained biases or extra "
                            "modules); merge it with --in-memory")
        if module.startswith("base_model.model."):
            module = module[len("base_model.model."):]
        out.setdefault(module, {})[part] = tensor
    for module, parts in out.items():
        if set(parts) != {"lora_A", "lora_B"}:
            raise UserError(f"{adapter_dir}: {module} has only {sorted(parts)}; the adapter file is incomplete")
        r_m = int(rank_pattern.get(get_pattern_key(rank_pattern.keys(), module), r)) if rank_pattern else r
        a_m = float(alpha_pattern.get(get_pattern_key(alpha_pattern.keys(), module), alpha)) if alpha_pattern else alpha
        parts["A"], parts["B"] = parts.pop("lora_A"), parts.pop("lora_B")
        parts["scale"] = a_m / math.sqrt(r_m) if cfg.get("use_rslora") else a_m / r_m
        parts["fan_in_fan_out"] = bool(cfg.get("fan_in_fan_out"))
    return out


def merged_weight(weight: torch.Tensor, delta: dict[str, Any], rank: int | None, transposed: bool) -> torch.Tensor:
    """``weight + scale * B[:, :rank] @ A[:rank]`` in the weight's own layout and dtype."""
    a, b = delta["A"], delta["B"]
    r = a.shape[0] if rank is None else rank
    if not 1 <= r <= a.shape[0]:
        raise UserError(f"LoRA rank {r} is outside 1..{a.shape[0]} (the adapter's rank)")
    update = (b[:, :r].float() @ a[:r].float()) * delta["scale"]  # (out, in)
    if transposed:
        update = update.t()
    return (weight.float() + update).to(weight.dtype)
