"""Run a subnet of a loaded model without copying it: slice the block weights in place, restore after.

Why not ``materialize``: rankers that measure a subnet's behaviour (the fidelity second stage, the
ground-truth harness) evaluate dozens of subnets of one model. Swapping in sliced views of the
original weights costs no copy of the model and runs at the subnet's own (smaller) cost; the
original tensors are put back when the context exits, even on error. GPT-2's fused Conv1D
attention is masked (zeroed) instead of sliced: same function, full cost. Slicing whole KV groups keeps
``num_key_value_groups`` (query heads per KV head) unchanged, so stock LLaMA/BERT attention code
runs the smaller shapes as they are (it reshapes with ``-1`` heads).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from ..errors import UserError
from ..models import get_adapter
from ..units import plan_from_orders


def _rows(index: Sequence[int]) -> torch.Tensor:
    return torch.tensor(list(index), dtype=torch.long)


@contextlib.contextmanager
def _swapped(model: nn.Module, subnet, adapter) -> Iterator[Callable[[nn.Module, str, torch.Tensor], None]]:
    """Yields ``put(module, name, tensor)``; every parameter put is restored on exit, even on error."""
    layers = adapter.layers(model)
    if subnet.num_layers != len(layers):
        raise UserError(f"subnet has {subnet.num_layers} layers, the model has {len(layers)}")
    saved: list[tuple[nn.Module, str, torch.nn.Parameter]] = []

    def put(module: nn.Module, name: str, value: torch.Tensor) -> None:
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, nn.Parameter(value, requires_grad=False))

    try:
        yield put
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)


@contextlib.contextmanager
def sliced(model: nn.Module, subnet, *, adapter=None, orders: dict | None = None) -> Iterator[nn.Module]:
    """Inside the ``with`` block ``model`` computes ``subnet``; weights are restored on exit.

    ``orders`` optionally maps layer index -> {"heads": KV-group order, "ffn": channel order}
    (most important first); prefix slicing (LoNAS) when absent.
    """
    adapter = adapter or get_adapter(model)
    if any(p.transposed or p.role == "qkv" for p in adapter.projections):
        with _masked(model, subnet, adapter, orders) as m:
            yield m
        return
    with _swapped(model, subnet, adapter) as swap:
        for i, (layer, choice) in enumerate(zip(adapter.layers(model), subnet.layers)):
            geo = adapter.geometry(i)
            order = (orders or {}).get(i, {})
            plan = plan_from_orders(geo, choice, order.get("heads"), order.get("ffn"))
            if choice.heads != geo.num_heads or order.get("heads") is not None:
                q_rows, kv_rows = _rows(plan.q_rows()), _rows(plan.kv_rows())
                for proj in adapter.attn_projections:
                    mod = adapter.projection_module(layer, proj)
                    mod = getattr(mod, "base_layer", mod)
                    if proj.role in ("q", "k", "v"):
                        rows = q_rows if proj.role == "q" else kv_rows
                        swap(mod, "weight", mod.weight.data.index_select(0, rows))
                        if getattr(mod, "bias", None) is not None:
                            swap(mod, "bias", mod.bias.data.index_select(0, rows))
                    elif proj.role == "o":
                        swap(mod, "weight", mod.weight.data.index_select(1, q_rows))
            if choice.ffn != geo.ffn_dim or order.get("ffn") is not None:
                ch = _rows(plan.channels)
                for proj in adapter.ffn_projections:
                    mod = adapter.projection_module(layer, proj)
                    mod = getattr(mod, "base_layer", mod)
                    if proj.role in ("gate", "up"):
                        swap(mod, "weight", mod.weight.data.index_select(0, ch))
                        if getattr(mod, "bias", None) is not None:
                            swap(mod, "bias", mod.bias.data.index_select(0, ch))
                    elif proj.role == "down":
                        swap(mod, "weight", mod.weight.data.index_select(1, ch))
        yield model


@contextlib.contextmanager
def _masked(model: nn.Module, subnet, adapter, orders: dict | None) -> Iterator[nn.Module]:
    """GPT-2 (fused QKV, Conv1D stored (in, out)): zero what the subnet removes instead of slicing.

    A removed head's q, k and v columns and its output rows are zero, a removed channel's input
    column, bias and output row are zero (GELU(0) = 0), so the block computes exactly what the
    smaller block would, at full cost. Masked copies are swapped in and restored like slices.
    """
    with _swapped(model, subnet, adapter) as put:
        for i, (layer, choice) in enumerate(zip(adapter.layers(model), subnet.layers)):
            geo = adapter.geometry(i)
            order = (orders or {}).get(i, {})
            plan = plan_from_orders(geo, choice, order.get("heads"), order.get("ffn"))
            kept_heads, kept_ch = set(plan.heads), set(plan.channels)
            drop_heads = [h for h in range(geo.num_heads) if h not in kept_heads]
            drop_ch = torch.tensor([c for c in range(geo.ffn_dim) if c not in kept_ch], dtype=torch.long)
            d, width = geo.head_dim, geo.num_heads * geo.head_dim
            cols = torch.tensor([h * d + j for h in drop_heads for j in range(d)], dtype=torch.long)
            for proj in adapter.projections:
                mod = adapter.projection_module(layer, proj)
                mod = getattr(mod, "base_layer", mod)
                out_dim = 1 if proj.transposed else 0  # where output units live in the stored weight
                w = mod.weight.data.clone()
                b = mod.bias.data.clone() if getattr(mod, "bias", None) is not None else None
                if proj.role == "qkv" and len(cols):
                    idx = torch.cat([cols + k * width for k in range(3)])
                    w.index_fill_(out_dim, idx, 0.0)
                    if b is not None:
                        b.index_fill_(0, idx, 0.0)
                elif proj.role in ("q", "k", "v") and len(cols):
                    w.index_fill_(out_dim, cols, 0.0)  # MHA only here: KV heads = query heads
                    if b is not None:
                        b.index_fill_(0, cols, 0.0)
                elif proj.role == "o" and len(cols):
                    w.index_fill_(1 - out_dim, cols, 0.0)
                elif proj.role in ("gate", "up") and len(drop_ch):
                    w.index_fill_(out_dim, drop_ch, 0.0)
                    if b is not None:
                        b.index_fill_(0, drop_ch, 0.0)
                elif proj.role == "down" and len(drop_ch):
                    w.index_fill_(1 - out_dim, drop_ch, 0.0)
                else:
                    continue
                put(mod, "weight", w)
                if b is not None:
                    put(mod, "bias", b)
        yield model
