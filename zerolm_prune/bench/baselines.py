"""Baselines a data-free proxy must beat: size counts, magnitude, random, SynFlow and SNIP.

Size counts (params, non-embedding params, MACs) come from ``cost.py`` for models and from the
benchmark loaders for NAS rows. The gradient proxies are the standard zero-cost ones:

* SynFlow (Tanaka et al., NeurIPS 2020): weights replaced by |W|, an all-ones input, R = sum of
  the output; score = sum over weights of |W * dR/dW|. Data-free.
* SNIP (Lee et al., ICLR 2019): score = sum |W * dL/dW| for a loss on one batch; here random
  inputs and random targets (no data), as zero-cost NAS studies do at init.

Both run on any ``nn.Module`` mapping a float tensor to a float tensor; the benchmark code
builds small block surrogates for them (see ``bench/surrogate.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from ..models import get_adapter

if TYPE_CHECKING:  # pragma: no cover
    from ..models.base import ArchAdapter


def weight_magnitude(model: Any, adapter: "ArchAdapter | None" = None) -> float:
    """Sum of |w| over the block projection weights (what capacity sums, but L1)."""
    adapter = adapter or get_adapter(model)
    total = 0.0
    with torch.no_grad():
        for layer in adapter.layers(model):
            for proj in adapter.projections:
                total += float(adapter.projection_weight(layer, proj).abs().sum(dtype=torch.float64))
    return total


def random_scores(n: int, seed: int = 0) -> np.ndarray:
    """A random ranking: the floor any proxy must clear."""
    return np.random.default_rng(seed).random(n)


def _weights(module: "torch.nn.Module") -> list["torch.nn.Parameter"]:
    """Matrices only (dim >= 2): biases and norms are left out, as in the reference code."""
    return [p for p in module.parameters() if p.dim() >= 2]


def synflow(module: "torch.nn.Module", input_shape: tuple[int, ...]) -> float:
    """SynFlow score of ``module`` (its weights are restored afterwards), in float64."""
    params = list(module.parameters())
    saved = [p.detach().clone() for p in params]
    dtype = params[0].dtype if params else torch.float64
    try:
        module.double()
        with torch.no_grad():
            for p in module.parameters():
                p.abs_()
        module.zero_grad(set_to_none=True)
        out = module(torch.ones(input_shape, dtype=torch.float64))
        out.sum().backward()
        score = sum(float((p.detach() * p.grad).abs().sum()) for p in _weights(module) if p.grad is not None)
    finally:
        module.to(dtype)
        with torch.no_grad():
            for p, s in zip(module.parameters(), saved):
                p.copy_(s)
                p.grad = None
    return score


def snip(module: "torch.nn.Module", inputs: "torch.Tensor", targets: "torch.Tensor",
         loss_fn: Callable[[Any, Any], Any] | None = None) -> float:
    """SNIP saliency sum |W * dL/dW| for one batch (random data at init is enough to rank)."""
    loss_fn = loss_fn or torch.nn.functional.mse_loss
    module.zero_grad(set_to_none=True)
    loss = loss_fn(module(inputs), targets)
    loss.backward()
    score = sum(float((p.detach() * p.grad).abs().sum()) for p in _weights(module) if p.grad is not None)
    module.zero_grad(set_to_none=True)
    return score
