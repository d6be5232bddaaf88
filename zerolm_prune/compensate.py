"""Data-free bias compensation: what removed heads and channels would have written, added back.

Why: FLAP (An et al., AAAI 2024, Eq. 8) showed that much of the damage of structured pruning is a
shift of the mean: a removed FFN channel j wrote ``W_down[:, j] * x_j`` into the residual stream,
and on average that is ``W_down[:, j] * E[x_j]``, a constant. Adding ``W[:, removed] @ E[x_removed]``
as a bias of down_proj (and of o_proj for removed heads) leaves only the fluctuation around the mean
as error. FLAP estimates ``E[x]`` on calibration data; here it is the mean over the text the
model generates itself (``rankers.selfgen.SelfText``, the same text the selfgen ranker and unit
order use), so no dataset is involved.

Saving: a stock LLaMA config can only say "every q/k/v/o has a bias" (``attention_bias``) and
"every gate/up/down has a bias" (``mlp_bias``). ``complete_biases`` gives every projection of a
compensated kind a bias (zeros where nothing was added) and sets those flags, so the checkpoint
loads unchanged through the package, stock transformers and the shipped modelling code, and peft
adapters attach as usual.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .models import get_adapter
from .rankers.selfgen import SelfText

#: positions skipped at the start of every self-generated sequence when averaging: position 0 is
#: the BOS token, whose activations (attention-sink outliers) are unlike any other token's
SKIP_FIRST = 1


def selfgen_means(model: Any, *, adapter: Any = None, text: Any = None, seqs: int = 2, length: int = 128,
                  seed: int = 0, skip_first: int = SKIP_FIRST) -> dict[tuple[int, str], torch.Tensor]:
    """``{(layer, "o" | "down"): mean input of that output map}`` on self-generated text.

    ``text``: a ``SelfText`` to reuse (the one the unit order was computed on); otherwise the same
    seed-0 text is sampled (cached per model by ``rankers.selfgen.self_text``).
    """
    adapter = adapter or get_adapter(model)
    text = text or SelfText(model, seqs=seqs, length=length, seed=seed, adapter=adapter)
    n_seq, n_len = text.ids.shape
    out = {}
    for key, x in text.map_inputs.items():
        x = x.reshape(n_seq, n_len, -1)[:, skip_first:]
        out[key] = x.reshape(-1, x.shape[-1]).double().mean(0).float()
    return out


def removed_bias(weight: torch.Tensor, kept_cols: list[int] | None, mean: torch.Tensor) -> torch.Tensor | None:
    """``W[:, removed] @ mean[removed]`` for an (out, in) weight; None when nothing is removed."""
    if kept_cols is None or len(kept_cols) == weight.shape[1]:
        return None
    drop = torch.ones(weight.shape[1], dtype=torch.bool, device=weight.device)
    drop[torch.as_tensor(kept_cols, dtype=torch.long, device=weight.device)] = False
    w = weight.detach()
    return (w[:, drop].double() @ mean.to(w.device)[drop].double()).to(w.dtype)


def layer_biases(adapter: Any, layer: nn.Module, plan: Any, index: int,
                 means: dict[tuple[int, str], torch.Tensor]) -> dict[str, torch.Tensor]:
    """Compensation biases of one block for ``plan`` (a ``materialize.LayerPlan``), computed from
    the block's UNSLICED o/down weights: call before slicing. ``{projection path: bias}``."""
    out = {}
    for proj in adapter.projections:
        if proj.role not in ("o", "down") or proj.transposed or (index, proj.role) not in means:
            continue
        _, cols = plan.indices(proj)
        module = layer.get_submodule(proj.path)
        weight = getattr(module, "base_layer", module).weight
        bias = removed_bias(weight, cols, means[(index, proj.role)])
        if bias is not None:
            out[proj.path] = bias
    return out


def add_biases(layer: nn.Module, biases: dict[str, torch.Tensor]) -> None:
    """Add ``biases`` to the (sliced) projections of ``layer``, creating the bias if missing."""
    for path, bias in biases.items():
        module = layer.get_submodule(path)
        module = getattr(module, "base_layer", module)
        if module.bias is None:
            module.bias = nn.Parameter(bias.clone(), requires_grad=module.weight.requires_grad)
        else:
            module.bias.data += bias


def complete_biases(model: nn.Module, adapter: Any = None) -> dict[str, bool]:
    """Give every projection of a kind that has any bias a bias (zeros where none), and set the
    stock config flags (``attention_bias`` / ``mlp_bias``) to match, so every loader builds the
    same modules. Returns the flags set."""
    adapter = adapter or get_adapter(model)
    if adapter.family != "llama":
        return {}
    layers = adapter.layers(model)
    flags = {}
    for kind, flag in (("attn", "attention_bias"), ("ffn", "mlp_bias")):
        projs = [p for p in adapter.projections if p.module == kind]
        mods = [getattr(m, "base_layer", m) for layer in layers for m in (layer.get_submodule(p.path) for p in projs)]
        if not any(m.bias is not None for m in mods):
            continue
        for m in mods:
            if m.bias is None:
                m.bias = nn.Parameter(torch.zeros(m.weight.shape[0], dtype=m.weight.dtype, device=m.weight.device),
                                      requires_grad=m.weight.requires_grad)
        flags[flag] = True
    config = getattr(model, "config", None)
    for flag, value in flags.items():
        if config is not None:
            setattr(config, flag, value)
    return flags
