"""Text the model writes itself: the sampled ids, the full model's log-probs on them and every
block's input, computed once and shared by the selfgen unit order and the selfgen rankers.

Why its own module: the unit order (``rankers.orders``) and the rankers that score subnets
(``rankers.selfgen``) read the same text; keeping it here lets both import it without importing
each other.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..models import get_adapter
from .apply import sliced


def _require_causal(model: Any) -> None:
    if getattr(model, "get_output_embeddings", lambda: None)() is None:
        raise UserError("self-generated-text rankers need a causal LM (with an LM head); for encoders use the default "
                        "'selfgen' (it measures fidelity on random tokens there), 'fidelity' or 'energy'")


_TEXT_CACHE: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def _fingerprint(model: Any) -> float:
    """Cheap check that a cached text still belongs to these weights (in-place edits change it)."""
    head = model.get_output_embeddings().weight
    return float(head.detach().reshape(-1)[:4096].double().sum())


def self_text(model: Any, *, seqs: int = 4, length: int = 128, seed: int = 0, temperature: float = 1.0,
              top_k: int = 0) -> "torch.Tensor":
    """``seqs`` x ``length`` token ids sampled from the model itself, starting at BOS.

    Plain ancestral sampling (temperature 1, no nucleus) keeps the text as diverse as the model's
    own distribution; a fixed seed makes every ranker run see the same text. Sampling is the slow
    part on a CPU, and the unit order and the ranker of one run ask for the same text, so it is
    cached per model object (and checked against its weights).
    """
    _require_causal(model)
    key = (seqs, length, seed, temperature, top_k)
    try:
        cached = _TEXT_CACHE.get(model, {}).get(key)
        if cached is not None and cached[0] == _fingerprint(model):
            return cached[1].clone()
    except TypeError:  # an object that cannot be weakly referenced: no cache
        cached = None
    ids = _sample_text(model, seqs=seqs, length=length, seed=seed, temperature=temperature, top_k=top_k)
    try:
        _TEXT_CACHE.setdefault(model, {})[key] = (_fingerprint(model), ids.clone())
    except TypeError:
        pass
    return ids


def _sample_text(model: Any, *, seqs: int, length: int, seed: int, temperature: float, top_k: int) -> "torch.Tensor":
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
    head = model.get_output_embeddings()
    return torch.log_softmax(head(hidden).float(), dim=-1)


def _kl(base_logp: "torch.Tensor", logp: "torch.Tensor") -> float:
    """Mean over tokens of KL(base || pruned)."""
    p = base_logp.exp()
    return float((p * (base_logp - logp)).sum(-1).mean())


@contextlib.contextmanager
def _from_layer(model: Any, adapter: Any, start: int):
    """The base model runs only blocks ``start..`` (fed cached hidden states as ``inputs_embeds``)."""
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
        self.model = model
        self.adapter = adapter or get_adapter(model)
        self.seed = seed
        self.ids = self_text(model, seqs=seqs, length=length, seed=seed)
        inputs: list[torch.Tensor] = []
        hooks = [layer.register_forward_pre_hook(lambda m, args, kw: inputs.append(args[0] if args else kw["hidden_states"]),
                                                 with_kwargs=True)
                 for layer in self.adapter.layers(model)]
        # what each block's output maps (o, down) read: the units' own activations on this text
        self.map_inputs: dict[tuple[int, str], torch.Tensor] = {}
        for index, layer in enumerate(self.adapter.layers(model)):
            for proj in self.adapter.projections:
                if proj.role in ("o", "down") and not proj.transposed:
                    mod = self.adapter.projection_module(layer, proj)
                    key = (index, proj.role)
                    hooks.append(mod.register_forward_pre_hook(
                        lambda m, args, key=key: self.map_inputs.__setitem__(key, args[0].detach().reshape(-1, args[0].shape[-1]))))
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

    def removed_output(self, layer: int, dim: str, kept: int, order: list[int] | None = None) -> float:
        """Squared norm (summed over the text) of what the units cut by a prefix choice wrote.

        ``dim`` "ffn": channels ``kept..`` through down_proj; "heads": query heads ``kept..``
        through o_proj. Local, linear in the removed units: used to interpolate the end-to-end KL
        between widths measured exactly.
        """
        geo = self.adapter.geometry(layer)
        role = "down" if dim == "ffn" else "o"
        x = self.map_inputs.get((layer, role))
        if x is None:
            return float("nan")
        proj = next(p for p in self.adapter.projections if p.role == role)
        w = self.adapter.projection_weight(self.adapter.layers(self.model)[layer], proj).detach()
        if dim == "ffn":
            units = list(order) if order is not None else list(range(geo.ffn_dim))
            cols = sorted(units[kept:])
        else:  # ``order`` ranks KV groups; a group's query heads go with it
            per = geo.heads_per_kv_group if geo.num_kv_heads != geo.num_heads else 1
            groups = list(order) if order is not None else list(range(geo.num_heads // per))
            heads = sorted(h for g in groups[kept // per:] for h in range(g * per, (g + 1) * per))
            cols = [h * geo.head_dim + i for h in heads for i in range(geo.head_dim)]
        idx = torch.tensor(cols, dtype=torch.long)
        with torch.no_grad():
            return float((x.index_select(1, idx) @ w.index_select(1, idx).T).double().square().sum())

    def kl_of(self, subnet: Any, *, start: int = 0, orders: dict | None = None) -> float:
        """KL(full || subnet) on the text; blocks before ``start`` must be unpruned in ``subnet``."""
        with torch.no_grad(), sliced(self.model, subnet, adapter=self.adapter, orders=orders):
            if start == 0:
                h = self.adapter.base_model(self.model)(input_ids=self.ids).last_hidden_state
            else:
                with _from_layer(self.model, self.adapter, start) as base:
                    h = base(inputs_embeds=self.layer_inputs[start]).last_hidden_state
            return _kl(self.base_logp, _log_probs(self.model, h))
