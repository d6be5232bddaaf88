"""Prune a safetensors checkpoint folder into a new folder one tensor at a time, without loading it.

Why: a checkpoint larger than RAM can still be pruned. Output shapes are planned from the input
headers (``plan.plan_layer``, the same plans the in-memory cut uses); then each tensor is read with
plain file reads (no mmap), merged with its LoRA delta if an adapter is given, sliced if it belongs
to a block projection (``plan.slice_weight``) and written straight into its place in the output
shard, so peak memory is about one tensor and its slice, whatever the checkpoint size.
"""

from __future__ import annotations

import json
import math
import shutil
import types
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from transformers import AutoConfig

from ..checkpoint import (SafetensorsReader, check_target, pruned_metadata, rewrite_config, staged_dir, write_card,
                          write_safetensors)
from ..errors import UserError
from ..lora import adapter_deltas, merged_weight
from ..models import get_adapter
from ..models.base import ArchAdapter, Projection
from ..safetensors_io import _torch_dtype
from ..space import LayerChoice, Subnet
from ..units import LayerPlan, order_label, resolved_order
from .config import layer_shape, update_config
from .plan import Order, check_subnet, plan_layer, slice_weight

#: files copied unchanged from a source folder (tokenizer, generation settings)
COPIED_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                "vocab.json", "vocab.txt", "merges.txt", "added_tokens.json", "generation_config.json",
                "chat_template.jinja", "chat_template.json")

#: one output tensor as ``write_safetensors`` takes it: key, shape, dtype, and a function that
#: reads, merges and slices it only when the writer gets to it
Entry = tuple[str, tuple[int, ...], torch.dtype, Callable[[], torch.Tensor]]


def _weight_files(folder: Any) -> list[Path]:
    """The safetensors files of ``folder`` (all shards of an index, in first-use order)."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return [folder / name for name in dict.fromkeys(weight_map.values())]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    raise UserError(f"{folder}: no model.safetensors or model.safetensors.index.json; streaming needs safetensors")


def can_stream(folder: Any) -> bool:
    """True for a local folder with safetensors weights (what ``materialize_folder`` reads)."""
    try:
        _weight_files(folder)
        return True
    except (UserError, OSError, ValueError, KeyError):
        return False


def _projection_keys(adapter: ArchAdapter, keys: Sequence[str]) -> dict[str, tuple[int, Projection, str]]:
    """Map checkpoint keys of block projections to (layer, projection, 'weight'|'bias').

    Checkpoints of the same family differ in the base prefix (``bert.encoder...`` from a
    ``*For*`` head, ``encoder...`` from a bare ``BertModel``, ``h.0`` in old GPT-2 files), so
    both spellings are accepted.
    """
    wanted: dict[str, tuple[int, Projection, str]] = {}
    for i in range(adapter.num_layers):
        for proj in adapter.projections:
            for kind in ("weight", "bias"):
                for with_base in (True, False):
                    wanted[f"{adapter.layer_key_prefix(i, with_base)}{proj.path}.{kind}"] = (i, proj, kind)
    return {k: wanted[k] for k in keys if k in wanted}


def materialize_folder(src: Any, subnet: Subnet, out_dir: Any, *, order: Order = "prefix", label: str | None = None,
                       overwrite: bool = False, card: dict[str, Any] | None = None, source: str | None = None,
                       metadata: dict[str, Any] | None = None, max_shard_bytes: int = 2 * 1024**3,
                       merge_adapter: Any = None, lora_groups: dict[str, Sequence[str]] | None = None) -> Path:
    """Prune a safetensors checkpoint folder into ``out_dir`` without loading the model.

    ``order``: a resolved order. ``capacity`` reads each layer's projections once more to rank its
    heads and channels (``zerolm_prune.proxy.importance``), one layer at a time; an explicit orders
    dict is used as given; ``selfgen`` and ``energy`` are refused (UserError) because they need the
    loaded model: compute the dict once (``rankers.orders.resolve_orders``) and pass it, with
    ``label=name`` to record the name (default: the name, "custom" for a dict; ``metadata["order"]``
    wins). ``merge_adapter``: a peft LoRA folder (current or LoNAS format) merged into each weight
    as it streams past, at the subnet's ranks with the LoNAS scale (the same result as
    ``materialize`` + ``lora.merge``). The tensors are exactly those ``materialize`` +
    ``checkpoint.save_pretrained`` write.
    """
    src, out = Path(src), Path(out_dir).expanduser().resolve()
    files = _weight_files(src)
    config = AutoConfig.from_pretrained(str(src))
    adapter = get_adapter(config)
    check_subnet(subnet, adapter)
    label = label or order_label(order)
    order = resolved_order(order, adapter)  # energy/selfgen refused before any weight is read
    check_target(out, src.resolve(), overwrite)
    deltas = _deltas_by_key(adapter, adapter_deltas(merge_adapter), merge_adapter) if merge_adapter is not None else {}
    groups = dict(lora_groups or adapter.lora_groups)
    readers = [SafetensorsReader(f) for f in files]
    try:
        plans = _plan_layers(adapter, subnet, order, readers)
        with staged_dir(out) as tmp:
            entries = _output_entries(adapter, readers, plans, subnet, deltas, groups)
            write_safetensors(tmp, entries, max_shard_bytes=max_shard_bytes)
            meta = _write_config(tmp, config, adapter, plans, subnet, source=source or str(src),
                                 extra={"order": label, **(metadata or {})})
            _copy_side_files(src, tmp)
            if card is not None or subnet is not None:
                write_card(tmp, card, meta, sum(math.prod(shape) for _, shape, _, _ in entries))
    finally:
        for reader in readers:
            reader.close()
    return out


def _plan_layers(adapter: ArchAdapter, subnet: Subnet, order: Order, readers: list[Any]) -> list[LayerPlan]:
    """Every layer's plan: prefix and explicit dicts need no weights; ``capacity`` reads each
    layer's projection weights once more, one layer resident at a time."""
    if order == "prefix" or isinstance(order, Mapping):
        return [plan_layer(adapter, None, i, c, order) for i, c in enumerate(subnet.layers)]
    where = {}
    for reader in readers:
        for key, (i, proj, kind) in _projection_keys(adapter, reader.keys()).items():
            if kind == "weight":
                where[(i, proj.path)] = (reader, key)
    return [plan_layer(adapter, _StreamedLayerModel(adapter, i, where), i, c, "capacity")
            for i, c in enumerate(subnet.layers)]


def _output_entries(adapter: ArchAdapter, readers: list[Any], plans: list[LayerPlan], subnet: Subnet,
                    deltas: dict[Any, Any], groups: dict[str, Sequence[str]]) -> list[Entry]:
    """Every tensor of the input, in input order, as the output will hold it (nothing read yet)."""
    entries = []
    for reader in readers:
        targets = _projection_keys(adapter, reader.keys())
        for key in reader.keys():
            entries.append(_tensor_entry(adapter, reader, key, targets.get(key), plans, subnet, deltas, groups))
    return entries


def _tensor_entry(adapter: ArchAdapter, reader: Any, key: str, target: tuple[int, Projection, str] | None,
                  plans: list[LayerPlan], subnet: Subnet, deltas: dict[Any, Any],
                  groups: dict[str, Sequence[str]]) -> Entry:
    """One output tensor: its shape from the header and the plan alone, and how to produce it
    (read; the LoRA delta merged into a projection weight; sliced to the plan's rows and cols)."""
    info = reader.header[key]
    shape = list(info["shape"])
    dtype = _torch_dtype(info["dtype"])
    if target is None:  # not a block projection: copied as is
        return key, tuple(shape), dtype, lambda: reader.get(key)
    index, proj, kind = target
    rows, cols = plans[index].indices(proj)
    out_axis, in_axis = (1, 0) if proj.transposed else (0, 1)
    if rows is not None:
        shape[out_axis if kind == "weight" else 0] = len(rows)
    if cols is not None and kind == "weight":
        shape[in_axis] = len(cols)
    delta = deltas.get((index, proj.path)) if kind == "weight" else None
    rank = _group_rank(adapter, proj, subnet.layers[index], groups) if delta else None

    def produce() -> torch.Tensor:
        tensor = reader.get(key)
        if delta is not None:
            tensor = merged_weight(tensor, delta, rank, proj.transposed)
        if kind == "weight":
            return slice_weight(tensor, rows, cols, proj.transposed)
        return tensor.index_select(0, torch.tensor(rows)) if rows is not None else tensor

    return key, tuple(shape), dtype, produce


def _write_config(folder: Path, config: Any, adapter: ArchAdapter, plans: list[LayerPlan], subnet: Subnet, *,
                  source: str, extra: dict[str, Any]) -> dict[str, Any]:
    """config.json with the cut shapes and the pruning metadata; returns the metadata (for the card)."""
    update_config(config, adapter, [layer_shape(p) for p in plans])
    config.save_pretrained(str(folder))
    meta = pruned_metadata(config, subnet=subnet, source=source, extra=extra)
    arch = (getattr(config, "architectures", None) or ["?"])[0]
    rewrite_config(folder, arch, meta)
    return meta


def _copy_side_files(src: Path, folder: Path) -> None:
    """The tokenizer and generation files of the source, unchanged (``COPIED_FILES``)."""
    for name in COPIED_FILES:
        if (src / name).is_file() and not (folder / name).exists():
            shutil.copyfile(src / name, folder / name)


def _deltas_by_key(adapter: ArchAdapter, deltas: dict[str, Any], where: Any) -> dict[str, Any]:
    """LoRA deltas keyed by (layer, projection path); every delta must land on a block projection."""
    known = _projection_keys(adapter, [f"{m}.weight" for m in deltas])
    missing = [m for m in deltas if f"{m}.weight" not in known]
    if missing:
        raise UserError(f"{where}: LoRA module {missing[0]} is not a block projection of this model; "
                        "use --in-memory for adapters on other modules")
    return {(known[f"{m}.weight"][0], known[f"{m}.weight"][1].path): d for m, d in deltas.items()}


def _group_rank(adapter: ArchAdapter, proj: Projection, choice: LayerChoice,
                groups: dict[str, Sequence[str]]) -> int | None:
    """The subnet's LoRA rank for ``proj`` (None: the module keeps its full rank)."""
    for group, rank in choice.ranks:
        names = groups.get(group, ())
        if adapter.target_name(proj) in names or proj.name in names:
            return rank
    return None


class _LazyWeight:
    """Stands in for a projection module: ``.weight`` is read from the file on access."""

    def __init__(self, reader: Any, key: str):
        self._reader, self._key = reader, key

    @property
    def weight(self) -> torch.Tensor:
        return self._reader.get(self._key)


class _StreamedLayerModel:
    """Just enough of a model for ``proxy.importance`` to rank one layer's heads and channels.

    ``adapter.layers(model)[index]`` resolves to an object whose projection paths end in
    ``_LazyWeight``s, so only the projections the order actually needs are read, and nothing
    outlives the call.
    """

    def __init__(self, adapter: ArchAdapter, index: int, where: dict):
        layer = types.SimpleNamespace()
        for proj in adapter.projections:
            if (index, proj.path) not in where:
                continue
            node = layer
            parts = proj.path.split(".")
            for part in parts[:-1]:
                if not hasattr(node, part):
                    setattr(node, part, types.SimpleNamespace())
                node = getattr(node, part)
            setattr(node, parts[-1], _LazyWeight(*where[(index, proj.path)]))
        layers = {index: layer}
        node = self
        if adapter.base_model_prefix:
            node = types.SimpleNamespace()
            setattr(self, adapter.base_model_prefix, node)
        parts = adapter.layers_path.split(".")
        for part in parts[:-1]:
            child = types.SimpleNamespace()
            setattr(node, part, child)
            node = child
        setattr(node, parts[-1], layers)
