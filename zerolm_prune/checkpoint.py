"""Save pruned models so that they load everywhere, exactly; load them back.

Why it matters: "I cannot load the pruned model" is the top complaint against every structured
pruning tool. A folder written here holds safetensors weights, a config that records per-layer
shapes, the tokenizer and a model card, and loads three ways:

* uniform shapes: the config is a plain stock config (no ``layer_shapes``, no remote code), so
  any stock loader or serving engine reads it;
* per-layer shapes: ``config.layer_shapes`` plus ``modeling_zerolm.py`` copied into the folder and
  named in ``auto_map``, so ``AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)``
  (``AutoModel`` for BERT) works where zerolm_prune is not installed;
* ``load_pruned`` here, which uses the same modelling code from the package (no remote code).

Writes are atomic: everything goes to a hidden temp folder next to the target and is renamed into
place at the end, so an interrupted save never leaves a folder that looks complete.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterator

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoTokenizer

from .atomic import clean_stale_staging, default_mode, staging_prefix
from .errors import UserError
from .modelcard import render
from .modeling import modeling_zerolm
from .modeling.modeling_zerolm import ARCHITECTURES, AUTO_MAP
from .safetensors_io import SafetensorsReader, read_safetensors_header, write_safetensors  # noqa: F401  (re-exported)

FORMAT_VERSION = 1
MODELING_FILE = "modeling_zerolm.py"


def _package_version() -> str:
    try:
        return version("zerolm_prune")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "0+unknown"


def _source_dir(model: nn.Module) -> Path | None:
    name = getattr(model.config, "_name_or_path", "") or ""
    path = Path(name).expanduser()
    return path.resolve() if name and path.is_dir() else None


def check_target(out: Path, source: Path | None, overwrite: bool) -> None:
    """Refuse the source checkpoint itself, and a non-empty folder unless ``overwrite``."""
    if source is not None and (out == source or source in out.parents or out in source.parents):
        raise UserError(f"{out} is (or contains) the source checkpoint {source}; choose another --out folder")
    if out.exists():
        if not out.is_dir():
            raise UserError(f"{out} exists and is not a folder; choose another --out")
        if any(out.iterdir()) and not overwrite:
            raise UserError(f"{out} exists and is not empty; choose another --out or pass --overwrite")


def pruned_metadata(config: Any, *, subnet: Any = None, source: str | None = None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``"zerolm_prune"`` block of config.json (what ``loading.is_pruned_folder`` looks for)."""
    meta: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "package_version": _package_version(),
        "source": source or getattr(config, "_name_or_path", None) or None,
        "format": "layer_shapes" if getattr(config, "layer_shapes", None) else "stock",
    }
    if subnet is not None:
        meta["subnet"] = subnet.to_dict() if hasattr(subnet, "to_dict") else subnet
    if extra:
        meta.update(extra)
    return meta


def rewrite_config(folder: Path, default_arch: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Point a non-uniform config at the shipped modelling code; add our metadata block."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.pop("_name_or_path", None)
    if config.get("layer_shapes"):
        model_type = config.get("model_type")
        archs = config.get("architectures") or [default_arch]
        ours = [ARCHITECTURES.get(a, a) for a in archs]
        if model_type not in AUTO_MAP or not all(a in ARCHITECTURES.values() for a in ours):
            raise UserError(f"per-layer shapes are not supported for {model_type} {archs}; use a uniform subnet")
        config["architectures"] = ours
        config["auto_map"] = {auto: f"modeling_zerolm.{cls}" for auto, cls in AUTO_MAP[model_type].items()}
        shutil.copyfile(Path(__file__).parent / "modeling" / MODELING_FILE, folder / MODELING_FILE)
    else:
        config.pop("layer_shapes", None)
        config.pop("auto_map", None)
        config["architectures"] = [a.replace("ZeroLM", "", 1) if a.startswith("ZeroLM") else a
                                   for a in config.get("architectures") or [default_arch]]
    config["zerolm_prune"] = meta
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return config


def _publishable_model(model: nn.Module) -> nn.Module:
    if callable(getattr(model, "get_base_model", None)) and hasattr(model, "peft_config"):
        raise UserError("the model still carries a peft adapter; merge it (--merge) or save the adapter separately")
    return model


def save_pretrained(model: nn.Module, out_dir: str | Path, *, tokenizer: Any = None, subnet: Any = None,
                    card: dict[str, Any] | None = None, overwrite: bool = False, source: str | None = None,
                    metadata: dict[str, Any] | None = None, extra_files: dict[str, str | Path] | None = None) -> Path:
    """Write ``model`` (already materialized) to ``out_dir`` atomically; returns the folder.

    ``card``: fields for the model card (see ``zerolm_prune.modelcard.render``); a README.md is
    written whenever a card or a subnet is given. ``extra_files``: name -> path or folder copied in
    (e.g. an exported LoRA adapter). Refuses to write over the source checkpoint, and over an
    existing non-empty folder unless ``overwrite``.
    """
    order = getattr(model, "zerolm_prune_order", None)  # set by materialize: which units were kept
    model = _publishable_model(model)
    if order and "order" not in (metadata or {}):
        metadata = {"order": order, **(metadata or {})}
    out = Path(out_dir).expanduser().resolve()
    check_target(out, _source_dir(model), overwrite)
    with staged_dir(out) as tmp:
        save_model_files(model, tmp)
        meta = pruned_metadata(model.config, subnet=subnet, source=source, extra=metadata)
        rewrite_config(tmp, type(model).__name__, meta)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        for name, src in (extra_files or {}).items():
            src = Path(src)
            if src.is_dir():
                shutil.copytree(src, tmp / name)
            else:
                shutil.copyfile(src, tmp / name)
        if card is not None or subnet is not None:
            write_card(tmp, card, meta, sum(p.numel() for p in model.parameters()))
    return out


def write_card(folder: Path, card: dict[str, Any] | None, meta: dict[str, Any], params_after: int) -> None:
    fields = dict(card or {})
    fields.setdefault("base_model", meta.get("source"))
    fields.setdefault("params_after", params_after)
    if meta.get("subnet") is not None:
        fields.setdefault("subnet", meta["subnet"])
    fields.setdefault("format", meta["format"])
    (folder / "README.md").write_text(render(fields))


@contextlib.contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A hidden temp folder beside ``out`` to write into; renamed to ``out`` when the block ends,
    removed when it raises, so no half-written folder ever looks complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(out)  # debris of a killed earlier save of the same output
    tmp = Path(tempfile.mkdtemp(prefix=staging_prefix(out, "partial"), dir=out.parent))
    tmp.chmod(default_mode(0o777))  # the finished folder reads like one made by mkdir, not 0700
    try:
        yield tmp
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an old ``out`` is moved aside first and removed after."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=staging_prefix(out, "old"), dir=out.parent))
        os.replace(out, old / "x")
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_config(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise UserError(f"{folder}: no config.json; pass a folder written by zerolm-prune prune")
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None


def model_class_for(config: dict[str, Any]) -> type:
    """The class that rebuilds a saved folder: ours for per-layer shapes, stock otherwise."""
    archs = config.get("architectures") or []
    if not archs:
        raise UserError("config.json lists no architectures; cannot tell which model class to build")
    name = archs[0]
    if config.get("layer_shapes"):
        name = modeling_zerolm.ARCHITECTURES.get(name, name)
        cls = getattr(modeling_zerolm, name, None)
    else:
        name = name.replace("ZeroLM", "", 1) if name.startswith("ZeroLM") else name
        cls = getattr(transformers, name, None)
    if cls is None:
        raise UserError(f"unknown architecture {archs[0]!r} in config.json")
    return cls


def load_pruned(folder: str | Path, device: str | None = None, *, dtype: Any = None) -> tuple[nn.Module, Any]:
    """Rebuild a saved folder exactly: ``(model, tokenizer or None)``, in eval mode.

    Uses the package's copy of the modelling code, never the folder's (no remote code runs).
    """
    folder = Path(folder)
    raw = read_config(folder)
    cls = model_class_for(raw)
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    model = cls.from_pretrained(str(folder), config=config, dtype=dtype or torch.float32)
    model.eval()
    if device:
        model = model.to(device)
    tokenizer = None
    if (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return model, tokenizer


def save_model_files(model: nn.Module, folder: Path, *, max_shard_bytes: int = 5 * 1024**3) -> None:
    """config.json, generation_config.json and the weights of ``model``, one tensor at a time.

    Tied parameters are written once (as transformers does): the tie targets are dropped.
    """
    state = model.state_dict()
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    seen: set[tuple[int, int]] = set()
    entries = []
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        if name in tied or (key in seen and tensor.numel()):
            continue
        seen.add(key)
        entries.append((name, tuple(tensor.shape), tensor.dtype, (lambda t=tensor: t)))
    del state
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(str(folder))
    generation = getattr(model, "generation_config", None)
    can_generate = getattr(model, "can_generate", lambda: False)
    if generation is not None and can_generate():
        generation.save_pretrained(str(folder))
    write_safetensors(folder, entries, max_shard_bytes=max_shard_bytes)
