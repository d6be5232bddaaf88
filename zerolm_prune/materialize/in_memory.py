"""Apply a Subnet to a model: physically smaller projections, not masks.

Why physical slicing: a masked model is as slow and as big as the original, and the only thing a
user wants from pruning is a smaller checkpoint that loads everywhere. Each block keeps whole KV
groups with their query heads (GQA), whole BERT/GPT-2 heads, and a subset of FFN channels; every
tensor that touches a dropped head or channel shrinks together (q/k/v rows and o columns;
gate/up rows and down columns; GPT-2's fused ``c_attn`` in its q, k and v parts). A peft LoRA
adapter on the model shrinks with its base layers (``lora_B`` rows, ``lora_A`` columns) and its
ranks are truncated LoNAS-style (``A[:r]``, ``B[:, :r]``, scale alpha/r_max kept).

Channel order: ``prefix`` keeps the first heads/channels (LoNAS's elastic training trained
exactly those prefixes); ``capacity`` keeps the ones with the highest data-free capacity
(``zerolm_prune.proxy.importance``); ``selfgen`` / ``energy`` and explicit orders dicts come from
``zerolm_prune.rankers.orders`` (``selfgen``: units by what they write on text the model generated
itself, ~40x lower SmolLM2 subnet perplexity than prefix, benchmarks/RANKING.md). Kept indices are applied in ascending order, so the result
is a plain sub-network and a prefix stays a prefix.

Every layer keeps at least one KV group and one FFN channel: LoNAS never drops a whole block,
and a zero-width Linear breaks several attention kernels, so heads=0 / ffn=0 is a UserError.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import UserError
from ..models import get_adapter
from ..models.base import ArchAdapter, Projection
from ..proxy.importance import ffn_channel_order, head_group_order
from ..rankers.orders import resolve_orders
from ..space import LayerChoice, Subnet
from ..units import ORDER_NAMES as ORDERS  # noqa: F401  (old name, re-exported)
from ..units import WEIGHT_ONLY_ORDERS, LayerPlan, check_order_name, num_groups, plan_from_orders, validate_orders

#: what ``order=`` accepts: a name of ``units.ORDER_NAMES`` or ``{layer: {"heads": [KV groups best
#: first], "ffn": [channels best first]}}`` (``rankers.orders.compute_orders``; layer keys int or str)
Order = Any


def check_subnet(subnet: Subnet, adapter: ArchAdapter) -> None:
    """One-line UserErrors for subnets that do not fit the model."""
    if subnet.num_layers != adapter.num_layers:
        raise UserError(
            f"subnet has {subnet.num_layers} layers but the model has {adapter.num_layers}; "
            "rank subnets for this model (zerolm-prune rank) or pick the matching ranked.json"
        )
    for i, choice in enumerate(subnet.layers):
        geo = adapter.geometry(i)
        per = geo.heads_per_kv_group
        if not 1 <= choice.heads <= geo.num_heads:
            raise UserError(f"layer {i}: {choice.heads} heads kept but the layer has {geo.num_heads}; "
                            f"keep between {per} and {geo.num_heads} (whole layers cannot be dropped)")
        if choice.heads % per:
            raise UserError(f"layer {i}: {choice.heads} heads would split a KV group of {per} query heads; "
                            f"use a multiple of {per}")
        if not 1 <= choice.ffn <= geo.ffn_dim:
            raise UserError(f"layer {i}: FFN width {choice.ffn} is outside 1..{geo.ffn_dim} (the original width)")


def resolve_order(model: Any, order: Order, adapter: ArchAdapter) -> Order:
    """``order`` as ``plan_layer`` uses it: prefix/capacity stay names (computed per layer, also
    from streamed weights), other names are computed once for the whole model, dicts validated."""
    if isinstance(order, str) and order in WEIGHT_ONLY_ORDERS:
        return order
    if isinstance(order, str):
        check_order_name(order)
    return resolve_orders(model, order, adapter=adapter) or "prefix"


def plan_layer(adapter: ArchAdapter, model: nn.Module, index: int, choice: LayerChoice, order: Order) -> LayerPlan:
    """Decide which KV groups and channels of block ``index`` survive.

    ``order``: a name of ORDERS or an orders dict. Names other than prefix/capacity are computed
    for the whole model on every call: resolve them once with ``resolve_order`` when planning
    many layers (``materialize`` does).
    """
    geo = adapter.geometry(index)
    n_groups = num_groups(geo)
    keep_groups = choice.heads // geo.heads_per_kv_group
    if not isinstance(order, dict) and order not in WEIGHT_ONLY_ORDERS:
        order = resolve_order(model, order, adapter)  # other names: computed for the whole model
    if isinstance(order, dict):  # only this layer's entry is checked here
        entry = order.get(index, order.get(str(index)))
        if entry is None:
            raise UserError(f"orders: layer {index} is missing; give an entry for every layer")
        entry = validate_orders({index: entry}, adapter, partial=True)[index]
        group_order, channel_order = entry.get("heads"), entry.get("ffn")
    elif order == "prefix":
        group_order = channel_order = None
    else:
        group_order = head_group_order(adapter, model, index, "capacity") if keep_groups < n_groups else None
        channel_order = ffn_channel_order(adapter, model, index, "capacity") if choice.ffn < geo.ffn_dim else None
    return plan_from_orders(geo, choice, group_order, channel_order,
                            label=order if isinstance(order, str) else "given")


# ---- slicing ------------------------------------------------------------------------------------

def _slice_weight(weight: torch.Tensor, rows: list[int] | None, cols: list[int] | None, transposed: bool) -> torch.Tensor:
    """Copy of ``weight`` restricted to (out rows, in cols); Conv1D stores (in, out)."""
    w = weight.detach()
    out_dim, in_dim = (1, 0) if transposed else (0, 1)
    if rows is not None:
        w = w.index_select(out_dim, torch.tensor(rows, device=w.device))
    if cols is not None:
        w = w.index_select(in_dim, torch.tensor(cols, device=w.device))
    return w.clone() if w.data_ptr() == weight.data_ptr() else w.contiguous()


def _new_projection(base: nn.Module, rows: list[int] | None, cols: list[int] | None, transposed: bool) -> nn.Module:
    weight = _slice_weight(base.weight, rows, cols, transposed)
    bias = base.bias
    if bias is not None:
        bias = bias.detach()
        bias = bias.index_select(0, torch.tensor(rows, device=bias.device)) if rows is not None else bias.clone()
    if transposed:
        from transformers.pytorch_utils import Conv1D

        with torch.device("meta"):
            new = Conv1D(weight.shape[1], weight.shape[0])
        new.weight = nn.Parameter(weight, requires_grad=base.weight.requires_grad)
        new.bias = nn.Parameter(bias, requires_grad=base.bias.requires_grad) if bias is not None else None
        return new
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    new.weight = nn.Parameter(weight, requires_grad=base.weight.requires_grad)
    if bias is not None:
        new.bias = nn.Parameter(bias, requires_grad=base.bias.requires_grad)
    return new


def _is_lora(module: nn.Module) -> bool:
    return hasattr(module, "base_layer") and hasattr(module, "lora_A") and hasattr(module, "lora_B")


def _set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, new)


def slice_projection(layer: nn.Module, proj: Projection, rows: list[int] | None, cols: list[int] | None) -> None:
    """Shrink one projection (and the LoRA adapter on it, if any) in place of the old module."""
    if rows is None and cols is None:
        return
    module = layer.get_submodule(proj.path)
    if _is_lora(module):
        if getattr(module, "use_dora", {}) and any(module.use_dora.values()):
            raise UserError("DoRA adapters cannot be sliced (their magnitude vectors depend on the full weight); "
                            "merge the adapter first or use plain LoRA")
        module.base_layer = _new_projection(module.base_layer, rows, cols, proj.transposed)
        for name, lora_a in module.lora_A.items():
            lora_b = module.lora_B[name]
            if cols is not None:
                lora_a.weight = nn.Parameter(_slice_weight(lora_a.weight, None, cols, False),
                                             requires_grad=lora_a.weight.requires_grad)
                lora_a.in_features = len(cols)
            if rows is not None:
                lora_b.weight = nn.Parameter(_slice_weight(lora_b.weight, rows, None, False),
                                             requires_grad=lora_b.weight.requires_grad)
                lora_b.out_features = len(rows)
                if lora_b.bias is not None:
                    lora_b.bias = nn.Parameter(lora_b.bias.detach()[rows].clone())
        if cols is not None:
            module.in_features = len(cols)
        if rows is not None:
            module.out_features = len(rows)
        return
    _set_submodule(layer, proj.path, _new_projection(module, rows, cols, proj.transposed))


def truncate_lora_ranks(adapter: ArchAdapter, layer: nn.Module, index: int, choice: LayerChoice,
                        groups: dict[str, Sequence[str]] | None = None) -> int:
    """Cut each LoRA group's rank to the subnet's choice; returns how many modules changed.

    LoNAS scaling: the scale stays alpha / r_max (what elastic training used), so ``scaling`` is
    left alone and only ``r`` and the A/B shapes change.
    """
    from ..lora import truncate_module

    groups = dict(groups or adapter.lora_groups)
    changed = 0
    for group, rank in choice.ranks:
        names = groups.get(group)
        if names is None:
            raise UserError(f"layer {index}: LoRA group {group!r} is not one of {sorted(groups)}")
        for proj in adapter.projections:
            if adapter.target_name(proj) not in names and proj.name not in names:
                continue
            module = layer.get_submodule(proj.path)
            if _is_lora(module):
                changed += truncate_module(module, rank, where=f"layer {index} {proj.path}")
    return changed


# ---- config -------------------------------------------------------------------------------------

def stock_expressible(adapter: ArchAdapter, shapes: list[dict[str, int]]) -> bool:
    """Can a stock config of this family describe these (uniform) shapes?

    BERT and GPT-2 derive the head size from hidden/heads, so fewer heads need our code; LLaMA
    configs carry ``head_dim`` but transformers 5 still demands hidden % heads == 0.
    """
    if len({tuple(sorted(s.items())) for s in shapes}) != 1:
        return False
    geo0 = adapter._base_geometry(0)
    heads = shapes[0]["num_attention_heads"]
    if adapter.family == "llama":
        return adapter.hidden_size % heads == 0
    return heads == geo0.num_heads


def update_config(config: Any, adapter: ArchAdapter, shapes: list[dict[str, int]]) -> None:
    """Record the new shapes: plain fields when stock can express them, else ``layer_shapes``."""
    head_dim = adapter.geometry(0).head_dim
    if stock_expressible(adapter, shapes):
        s = shapes[0]
        if adapter.family == "llama":
            config.head_dim = head_dim  # Qwen2-style configs derive it from hidden/heads otherwise
            config.num_attention_heads = s["num_attention_heads"]
            config.num_key_value_heads = s["num_key_value_heads"]
            config.intermediate_size = s["intermediate_size"]
        elif adapter.family == "bert":
            config.intermediate_size = s["intermediate_size"]
        else:
            config.n_inner = s["intermediate_size"]
        if getattr(config, "layer_shapes", None) is not None:
            config.layer_shapes = None
            try:
                delattr(config, "layer_shapes")
            except AttributeError:
                pass
    else:
        config.layer_shapes = [dict(s) for s in shapes]


def _base_config(model: nn.Module) -> Any:
    get_base = getattr(model, "get_base_model", None)
    inner = get_base() if callable(get_base) else model
    return inner.config


def materialize(model: nn.Module, subnet: Subnet, *, order: Order = "prefix", adapter: ArchAdapter | None = None,
                inplace: bool = False, lora_groups: dict[str, Sequence[str]] | None = None,
                compensate: Any = None) -> nn.Module:
    """Return ``model`` cut down to ``subnet`` (a copy unless ``inplace``).

    ``inplace=True`` is what the CLI uses: old tensors are freed layer by layer, so peak memory
    stays near one model. A peft-wrapped model keeps its LoRA modules, sliced and rank-truncated
    (see ``zerolm_prune.lora`` to merge or export them). ``lora_groups`` overrides the adapter's
    LoNAS groups (``SearchSpace.lora["groups"]``). ``order``: a name of ORDERS (``selfgen`` runs
    the model once on its own 2 x 128 sampled tokens, seed 0) or an orders dict; the returned
    model's ``zerolm_prune_order`` attribute names it, and ``checkpoint.save_pretrained`` records
    that in the folder's metadata. ``compensate``: ``True`` (means on self-generated text) or a
    means dict from ``compensate.selfgen_means`` adds what the removed units would write on
    average as o_proj / down_proj biases (zeros elsewhere, see ``zerolm_prune.compensate``).
    """
    adapter = adapter or get_adapter(model)
    check_subnet(subnet, adapter)
    label = order if isinstance(order, str) else "custom"
    order = resolve_order(model, order, adapter)  # on the unpruned model, before any copy or cut
    if compensate is True:
        from ..compensate import selfgen_means

        compensate = selfgen_means(model, adapter=adapter)
    if not inplace:
        model = copy.deepcopy(model)
    from ..modeling.modeling_zerolm import set_block_sizes

    layers = adapter.layers(model)
    shapes: list[dict[str, int]] = []
    with torch.no_grad():
        for index, choice in enumerate(subnet.layers):
            plan = plan_layer(adapter, model, index, choice, order)
            layer = layers[index]
            biases = _compensation(adapter, layer, plan, index, compensate)
            for proj in adapter.projections:
                rows, cols = plan.indices(proj)
                slice_projection(layer, proj, rows, cols)
            if biases:
                from ..compensate import add_biases

                add_biases(layer, biases)
            set_block_sizes(layer, adapter.family, len(plan.heads), plan.num_kv_heads, choice.ffn,
                            plan.geometry.head_dim)
            if choice.ranks:
                truncate_lora_ranks(adapter, layer, index, choice, lora_groups)
            shapes.append({"num_attention_heads": len(plan.heads), "num_key_value_heads": plan.num_kv_heads,
                           "intermediate_size": choice.ffn})
    update_config(_base_config(model), adapter, shapes)
    if compensate:
        from ..compensate import complete_biases

        complete_biases(model, adapter)
    try:
        model.zerolm_prune_order = label  # read by checkpoint.save_pretrained; not part of config.json
    except AttributeError:  # pragma: no cover - modules refusing attributes
        pass
    return model


def _compensation(adapter: ArchAdapter, layer: nn.Module, plan: LayerPlan, index: int, means: Any) -> dict:
    if not means:
        return {}
    from ..compensate import layer_biases

    return layer_biases(adapter, layer, plan, index, means)


# ---- streaming: folder in, folder out, one tensor at a time --------------------------------------

#: files copied unchanged from a source folder (tokenizer, generation settings)
COPIED_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                "vocab.json", "vocab.txt", "merges.txt", "added_tokens.json", "generation_config.json",
                "chat_template.jinja", "chat_template.json")


def _weight_files(folder: Any) -> list[Any]:
    from pathlib import Path

    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        import json

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


def materialize_folder(src: Any, subnet: Subnet, out_dir: Any, *, order: Order = "prefix", overwrite: bool = False,
                       card: dict[str, Any] | None = None, source: str | None = None,
                       metadata: dict[str, Any] | None = None, max_shard_bytes: int = 2 * 1024**3,
                       merge_adapter: Any = None, lora_groups: dict[str, Sequence[str]] | None = None) -> Any:
    """Prune a safetensors checkpoint folder into ``out_dir`` without loading the model.

    Why: a checkpoint larger than RAM can still be pruned. Output shapes are planned from the
    input headers; then each tensor is read with plain file reads (no mmap), sliced if it belongs
    to a block projection, and written straight into its place in the output shard, so peak
    memory is about one tensor and its slice, whatever the checkpoint size.
    ``capacity`` order reads each layer's projections once more to rank its heads and channels
    (``zerolm_prune.proxy.importance``), one layer at a time. An explicit orders dict is used as
    given; ``selfgen`` and ``energy`` are refused (UserError) because they need the loaded model:
    materialize in memory, or compute the dict once and pass it. ``merge_adapter``: a peft LoRA folder
    (current or LoNAS format) merged into each weight as it streams past, at the subnet's ranks
    with the LoNAS scale (the same result as ``materialize`` + ``lora.merge``).
    The tensors are exactly those ``materialize`` + ``checkpoint.save_pretrained`` write.
    """
    import shutil
    from pathlib import Path

    from transformers import AutoConfig

    from ..checkpoint import (SafetensorsReader, check_target, pruned_metadata, rewrite_config, staged_dir,
                             write_card, write_safetensors)

    if isinstance(order, str) and order not in WEIGHT_ONLY_ORDERS:
        check_order_name(order)
        raise UserError(f"order {order!r} needs the loaded model ({'a forward pass on self-generated text' if order == 'selfgen' else 'whole-layer weights'}); "
                            "prune with --in-memory (or materialize(model, subnet, order=...)), or pass its orders dict")
    src, out = Path(src), Path(out_dir).expanduser().resolve()
    files = _weight_files(src)
    config = AutoConfig.from_pretrained(str(src))
    adapter = get_adapter(config)
    check_subnet(subnet, adapter)
    label = order if isinstance(order, str) else "custom"
    if not isinstance(order, str):  # an explicit orders dict: no weights needed to plan
        from ..rankers.orders import validate_orders

        order = validate_orders(order, adapter)
    check_target(out, src.resolve(), overwrite)
    deltas: dict[str, Any] = {}
    if merge_adapter is not None:
        from ..lora import adapter_deltas

        deltas = _deltas_by_key(adapter, adapter_deltas(merge_adapter), merge_adapter)
    groups = dict(lora_groups or adapter.lora_groups)
    readers = [SafetensorsReader(f) for f in files]
    try:
        if order == "prefix" or isinstance(order, dict):
            plans = [plan_layer(adapter, None, i, c, order) for i, c in enumerate(subnet.layers)]
        else:  # one extra read of each layer's projections, one layer resident at a time
            where = {}
            for reader in readers:
                for key, (i, proj, kind) in _projection_keys(adapter, reader.keys()).items():
                    if kind == "weight":
                        where[(i, proj.path)] = (reader, key)
            plans = [plan_layer(adapter, _StreamedLayerModel(adapter, i, where), i, c, "capacity")
                     for i, c in enumerate(subnet.layers)]
    except BaseException:
        for reader in readers:
            reader.close()
        raise
    try:
        with staged_dir(out) as tmp:
            entries = []
            total_params = 0
            for reader in readers:
                targets = _projection_keys(adapter, reader.keys())
                for key in reader.keys():
                    info = reader.header[key]
                    shape = list(info["shape"])
                    rows = cols = None
                    proj = None
                    kind = "weight"
                    if key in targets:
                        index, proj, kind = targets[key]
                        rows, cols = plans[index].indices(proj)
                        out_axis, in_axis = (1, 0) if proj.transposed else (0, 1)
                        if rows is not None:
                            shape[out_axis if kind == "weight" else 0] = len(rows)
                        if cols is not None and kind == "weight":
                            shape[in_axis] = len(cols)

                    delta = deltas.get((targets[key][0], proj.path)) if proj is not None and kind == "weight" else None
                    rank = _group_rank(adapter, proj, subnet.layers[targets[key][0]], groups) if delta else None

                    def produce(reader=reader, key=key, proj=proj, kind=kind, rows=rows, cols=cols, delta=delta,
                                rank=rank):
                        tensor = reader.get(key)
                        if delta is not None:
                            from ..lora import merged_weight

                            tensor = merged_weight(tensor, delta, rank, proj.transposed)
                        if proj is None:
                            return tensor
                        if kind == "weight":
                            return _slice_weight(tensor, rows, cols, proj.transposed)
                        return tensor.index_select(0, torch.tensor(rows)) if rows is not None else tensor

                    numel = 1
                    for d in shape:
                        numel *= d
                    total_params += numel
                    entries.append((key, tuple(shape), _dtype_of(info["dtype"]), produce))
            write_safetensors(tmp, entries, max_shard_bytes=max_shard_bytes)
            shapes = [{"num_attention_heads": len(p.heads), "num_key_value_heads": p.num_kv_heads,
                       "intermediate_size": p.choice.ffn} for p in plans]
            update_config(config, adapter, shapes)
            config.save_pretrained(str(tmp))
            meta = pruned_metadata(config, subnet=subnet, source=source or str(src), extra={"order": label, **(metadata or {})})
            arch = (getattr(config, "architectures", None) or ["?"])[0]
            rewrite_config(tmp, arch, meta)
            for name in COPIED_FILES:
                if (src / name).is_file() and not (tmp / name).exists():
                    shutil.copyfile(src / name, tmp / name)
            if card is not None or subnet is not None:
                write_card(tmp, card, meta, total_params)
    finally:
        for reader in readers:
            reader.close()
    return out


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
        import types

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


def _dtype_of(code: str):
    from ..safetensors_io import _torch_dtype

    return _torch_dtype(code)
