"""Cut a loaded model down to a Subnet in memory: physically smaller modules, not masks.

Why physical slicing: a masked model is as slow and as big as the original, and the only thing a
user wants from pruning is a smaller checkpoint that loads everywhere. Each block keeps whole KV
groups with their query heads (GQA), whole BERT/GPT-2 heads, and a subset of FFN channels; every
tensor that touches a dropped head or channel shrinks together (q/k/v rows and o columns;
gate/up rows and down columns; GPT-2's fused ``c_attn`` in its q, k and v parts). A peft LoRA
adapter on the model shrinks with its base layers (``lora_B`` rows, ``lora_A`` columns) and its
ranks are truncated LoNAS-style (``A[:r]``, ``B[:, :r]``, scale alpha/r_max kept). Which units
survive is planned in ``plan`` (shared with the streamed cut of a folder, ``streaming``).
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..compensate import add_biases, complete_biases, layer_biases, selfgen_means
from ..errors import UserError
from ..lora import truncate_module
from ..modeling.modeling_zerolm import set_block_sizes
from ..models import get_adapter
from ..models.base import ArchAdapter, Projection
from ..space import LayerChoice, Subnet
from ..units import LayerPlan, order_label, resolved_order
from .config import layer_shape, update_config
from .plan import Order, check_subnet, plan_layer, slice_weight


def _new_projection(base: nn.Module, rows: list[int] | None, cols: list[int] | None, transposed: bool) -> nn.Module:
    weight = slice_weight(base.weight, rows, cols, transposed)
    bias = base.bias
    if bias is not None:
        bias = bias.detach()
        bias = bias.index_select(0, torch.tensor(rows, device=bias.device)) if rows is not None else bias.clone()
    if transposed:
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
                lora_a.weight = nn.Parameter(slice_weight(lora_a.weight, None, cols, False),
                                             requires_grad=lora_a.weight.requires_grad)
                lora_a.in_features = len(cols)
            if rows is not None:
                lora_b.weight = nn.Parameter(slice_weight(lora_b.weight, rows, None, False),
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


def _base_config(model: nn.Module) -> Any:
    get_base = getattr(model, "get_base_model", None)
    inner = get_base() if callable(get_base) else model
    return inner.config


def materialize(model: nn.Module, subnet: Subnet, *, order: Order = "prefix", label: str | None = None,
                adapter: ArchAdapter | None = None, inplace: bool = False,
                lora_groups: dict[str, Sequence[str]] | None = None, compensate: Any = None) -> nn.Module:
    """Return ``model`` cut down to ``subnet`` (a copy unless ``inplace``).

    ``inplace=True`` is what the CLI uses: old tensors are freed layer by layer, so peak memory
    stays near one model. A peft-wrapped model keeps its LoRA modules, sliced and rank-truncated
    (see ``zerolm_prune.lora`` to merge or export them). ``lora_groups`` overrides the adapter's
    LoNAS groups (``SearchSpace.lora["groups"]``). ``order``: a resolved order, i.e. a weight-only
    name (prefix, capacity: computed here layer by layer) or an orders dict; energy and selfgen
    need the whole model (selfgen runs it on its own 2 x 128 sampled tokens), so they are a
    UserError here: compute them once with ``rankers.orders.resolve_orders(model, name)`` and pass
    the dict (and ``label=name``). The returned model's ``zerolm_prune_order`` attribute is
    ``label`` (default: the name, "custom" for a dict), and ``checkpoint.save_pretrained`` records
    it in the folder's metadata. ``compensate``: ``True`` (means on self-generated text) or a
    means dict from ``compensate.selfgen_means`` adds what the removed units would write on
    average as o_proj / down_proj biases (zeros elsewhere, see ``zerolm_prune.compensate``).
    """
    adapter = adapter or get_adapter(model)
    check_subnet(subnet, adapter)
    label = label or order_label(order)
    order = resolved_order(order, adapter)  # energy/selfgen refused: the caller resolves them once
    if compensate is True:  # on the unpruned model, before any copy or cut
        compensate = selfgen_means(model, adapter=adapter)
    if not inplace:
        model = copy.deepcopy(model)
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
                add_biases(layer, biases)
            set_block_sizes(layer, adapter.family, len(plan.heads), plan.num_kv_heads, choice.ffn,
                            plan.geometry.head_dim)
            if choice.ranks:
                truncate_lora_ranks(adapter, layer, index, choice, lora_groups)
            shapes.append(layer_shape(plan))
    update_config(_base_config(model), adapter, shapes)
    if compensate:
        complete_biases(model, adapter)
    try:
        model.zerolm_prune_order = label  # read by checkpoint.save_pretrained; not part of config.json
    except AttributeError:  # pragma: no cover - modules refusing attributes
        pass
    return model


def _compensation(adapter: ArchAdapter, layer: nn.Module, plan: LayerPlan, index: int, means: Any) -> dict:
    if not means:
        return {}
    return layer_biases(adapter, layer, plan, index, means)
