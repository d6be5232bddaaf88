"""Rankers that measure behaviour on text the model writes itself (no external dataset).

Why: on pretrained checkpoints the weights alone say little about which layers matter (SmolLM2:
pruning layer 0, 11 or 29 alone doubles or triples perplexity, most others barely move it). The
model can tell us, without any dataset: sample a few sequences from it (from BOS, temperature 1),
then compare the pruned model's next-token distributions with the full model's on that text.

- ``selfgen-kl`` (additive, new here): for every layer and every pruned choice of each dimension
  (kept heads; FFN width), the KL(full || pruned) when ONLY that layer/dimension is pruned; a
  choice's value is minus the sum over its two dimensions, a subnet's score the sum over layers.
  Each run starts at the pruned layer from cached hidden states, so the whole table costs about
  layers x (choices-1) half-model passes on a few hundred tokens. Search can use it directly.
- ``fidelity`` (second stage, new here): re-ranks a short list (the exact search's top
  candidates) by the KL of each whole subnet to the full model on the same self-generated text.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .base import Ranker, space_of


def _require_causal(model: Any) -> None:
    from ..errors import UserError

    if not hasattr(model, "lm_head") and not hasattr(model, "get_output_embeddings"):
        raise UserError("self-generated-text rankers need a causal LM (with an LM head); use 'energy' or 'zerolm' for encoders")
    if model.get_output_embeddings() is None:
        raise UserError("self-generated-text rankers need a causal LM (with an LM head); use 'energy' or 'zerolm' for encoders")


def self_text(model: Any, *, seqs: int = 4, length: int = 128, seed: int = 0, temperature: float = 1.0,
              top_k: int = 0) -> "torch.Tensor":
    """``seqs`` x ``length`` token ids sampled from the model itself, starting at BOS.

    Plain ancestral sampling (temperature 1, no nucleus) keeps the text as diverse as the model's
    own distribution; a fixed seed makes every ranker run see the same text.
    """
    import torch

    _require_causal(model)
    cfg = model.config
    start = cfg.bos_token_id if cfg.bos_token_id is not None else (cfg.eos_token_id or 0)
    if isinstance(start, list):
        start = start[0]
    gen = torch.Generator().manual_seed(seed)
    ids = torch.full((seqs, 1), int(start), dtype=torch.long)
    past = None
    step_in = ids
    with torch.no_grad():
        for _ in range(length - 1):
            out = model(input_ids=step_in, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[:, -1].float() / max(temperature, 1e-6)
            if top_k:
                kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)
            ids = torch.cat([ids, nxt], dim=1)
            step_in = nxt
    return ids


def _log_probs(model: Any, hidden: "torch.Tensor") -> "torch.Tensor":
    import torch

    head = model.get_output_embeddings()
    return torch.log_softmax(head(hidden).float(), dim=-1)


def _kl(base_logp: "torch.Tensor", logp: "torch.Tensor") -> float:
    """Mean over tokens of KL(base || pruned)."""
    p = base_logp.exp()
    return float((p * (base_logp - logp)).sum(-1).mean())


@contextlib.contextmanager
def _from_layer(model: Any, adapter: Any, start: int):
    """The base model runs only blocks ``start..`` (fed cached hidden states as ``inputs_embeds``)."""
    from torch import nn

    base = adapter.base_model(model)
    layers = adapter.layers(model)
    parent = base
    *path, last = adapter.layers_path.split(".")
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, last, nn.ModuleList(list(layers)[start:]))
    try:
        yield base
    finally:
        setattr(parent, last, layers)


class SelfText:
    """Self-generated text, the full model's log-probs on it and every block's input, computed once."""

    def __init__(self, model: Any, *, seqs: int = 4, length: int = 128, seed: int = 0, adapter: Any = None):
        import torch

        from ..models import get_adapter

        self.model = model
        self.adapter = adapter or get_adapter(model)
        self.ids = self_text(model, seqs=seqs, length=length, seed=seed)
        inputs: list[torch.Tensor] = []
        hooks = [layer.register_forward_pre_hook(lambda m, args, kw: inputs.append(args[0] if args else kw["hidden_states"]),
                                                 with_kwargs=True)
                 for layer in self.adapter.layers(model)]
        try:
            with torch.no_grad():
                base = self.adapter.base_model(model)
                h = base(input_ids=self.ids).last_hidden_state
        finally:
            for hk in hooks:
                hk.remove()
        self.layer_inputs = [x.detach() for x in inputs]
        with torch.no_grad():
            self.base_logp = _log_probs(model, h)

    def kl_of(self, subnet: Any, *, start: int = 0, orders: dict | None = None) -> float:
        """KL(full || subnet) on the text; blocks before ``start`` must be unpruned in ``subnet``."""
        import torch

        from .apply import sliced

        with torch.no_grad(), sliced(self.model, subnet, adapter=self.adapter, orders=orders):
            if start == 0:
                h = self.adapter.base_model(self.model)(input_ids=self.ids).last_hidden_state
            else:
                with _from_layer(self.model, self.adapter, start) as base:
                    h = base(inputs_embeds=self.layer_inputs[start]).last_hidden_state
            return _kl(self.base_logp, _log_probs(self.model, h))


def _full_choice(geo: Any, ranks=()):
    from ..space import LayerChoice

    return LayerChoice(geo.num_heads, geo.ffn_dim, tuple(ranks))


@dataclass
class SelfGenKLRanker(Ranker):
    name: str = "selfgen-kl"
    provenance: str = ("new (this project): per-layer, per-dimension KL(full || pruned) on text sampled from the "
                       "model itself, summed (additive; no external data)")
    seqs: int = 4
    length: int = 128
    seed: int = 0
    progress: bool = True

    def layer_values(self, model: Any, space: Any, *, adapter: Any = None, text: SelfText | None = None) -> list[np.ndarray]:
        from tqdm import tqdm

        from ..models import get_adapter
        from ..space import LayerChoice, Subnet

        adapter = adapter or get_adapter(model)
        text = text or SelfText(model, seqs=self.seqs, length=self.length, seed=self.seed, adapter=adapter)
        n = space.num_layers
        full = [_full_choice(adapter.geometry(l)) for l in range(n)]
        jobs = []
        for l in range(n):
            geo = adapter.geometry(l)
            for h in {c.heads for c in space.options(l)} - {geo.num_heads}:
                jobs.append((l, "heads", h))
            for f in {c.ffn for c in space.options(l)} - {geo.ffn_dim}:
                jobs.append((l, "ffn", f))
        kl: dict[tuple[int, str, int], float] = {}
        for l, dim, v in tqdm(jobs, desc="selfgen-kl table", disable=not self.progress, leave=False):
            layers = list(full)
            layers[l] = LayerChoice(v, full[l].ffn) if dim == "heads" else LayerChoice(full[l].heads, v)
            kl[(l, dim, v)] = text.kl_of(Subnet(layers), start=l)
        out = []
        for l in range(n):
            vals = [-(kl.get((l, "heads", c.heads), 0.0) + kl.get((l, "ffn", c.ffn), 0.0)) for c in space.options(l)]
            out.append(np.array(vals, dtype=float))
        return out


@dataclass
class FidelityRanker(Ranker):
    name: str = "fidelity"
    provenance: str = ("new (this project): second stage, minus KL(full || subnet) of whole subnets on text "
                       "sampled from the model itself; re-ranks a short list")
    additive: bool = False
    seqs: int = 4
    length: int = 128
    seed: int = 0
    progress: bool = True

    def score(self, model: Any, subnets: Sequence[Any], *, space: Any = None, adapter: Any = None,
              text: SelfText | None = None, orders: dict | None = None) -> np.ndarray:
        from tqdm import tqdm

        text = text or SelfText(model, seqs=self.seqs, length=self.length, seed=self.seed, adapter=adapter)
        return np.array([-text.kl_of(s, orders=orders) for s in tqdm(subnets, desc="fidelity", disable=not self.progress,
                                                                        leave=False)], dtype=float)
