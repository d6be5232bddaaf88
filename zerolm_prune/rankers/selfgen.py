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
  Encoders (no LM head, cannot write text) get the cosine of mean-pooled outputs to the full
  model's on random tokens instead.
- encoders' table (``encoder_layer_values``, the first stage of ``selfgen`` on encoders): for
  every layer and each of its options, minus (1 - that cosine) when ONLY that layer is pruned.
  On MiniLM it ranks equal-budget subnets far better than the weight-only tables
  (benchmarks/RANKING.md), so the exact search's shortlist already holds good subnets.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .base import Ranker

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _require_causal(model: Any) -> None:
    from ..errors import UserError

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
        import torch

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
        import torch

        from .apply import sliced

        with torch.no_grad(), sliced(self.model, subnet, adapter=self.adapter, orders=orders):
            if start == 0:
                h = self.adapter.base_model(self.model)(input_ids=self.ids).last_hidden_state
            else:
                with _from_layer(self.model, self.adapter, start) as base:
                    h = base(inputs_embeds=self.layer_inputs[start]).last_hidden_state
            return _kl(self.base_logp, _log_probs(self.model, h))


def _unit_orders(model: Any, order: Any, adapter: Any, text: "SelfText | None") -> dict | None:
    """Resolve a unit order exactly as ``materialize(order=...)`` will.

    ``selfgen`` reuses ``text`` only when it is the text ``compute_orders`` itself samples (2 x 128
    tokens; every ranker here uses seed 0), so tables, fidelity scores and the saved checkpoint
    keep the same units; otherwise it samples that text once more.
    """
    from .orders import resolve_orders

    same = text is not None and tuple(text.ids.shape) == (2, 128) and getattr(text, "seed", None) == 0
    return resolve_orders(model, order, adapter=adapter, text=text if same else None)


def _full_choice(geo: Any, ranks=()):
    from ..space import LayerChoice

    return LayerChoice(geo.num_heads, geo.ffn_dim, tuple(ranks))


@dataclass
class SelfGenKLRanker(Ranker):
    name: str = "selfgen-kl"
    provenance: str = ("new (this project): per-layer, per-dimension KL(full || pruned) on text sampled from the "
                       "model itself, summed (additive; no external data)")
    seqs: int = 2
    length: int = 128
    seed: int = 0
    #: "interp": end-to-end KL only at each dimension's narrowest choice, other widths scaled by the
    #: removed output energy on the same text (2 runs per layer); "exact": one run per choice
    mode: str = "interp"
    #: which units a width keeps: "prefix" (LoNAS), a name of rankers/orders.py or an orders dict;
    #: must be what ``materialize(order=...)`` will keep. ``order`` is an alias (same as materialize).
    unit_order: Any = "prefix"
    progress: bool = True
    order: Any = None

    def __post_init__(self) -> None:
        if self.order is not None:
            self.unit_order = self.order

    def layer_values(self, model: Any, space: Any, *, adapter: Any = None, text: SelfText | None = None,
                     orders: Any = None) -> list[np.ndarray]:
        """``orders`` (resolved dict, name or None) overrides ``unit_order`` for this call."""
        from tqdm import tqdm

        from ..errors import UserError
        from ..models import get_adapter
        from ..space import LayerChoice, Subnet

        if self.mode not in ("interp", "exact"):
            raise UserError(f"selfgen-kl mode must be 'interp' or 'exact', got {self.mode!r}")
        adapter = adapter or get_adapter(model)
        text = text or SelfText(model, seqs=self.seqs, length=self.length, seed=self.seed, adapter=adapter)
        orders = _unit_orders(model, orders if orders is not None else self.unit_order, adapter, text)
        n = space.num_layers
        full = [_full_choice(adapter.geometry(l)) for l in range(n)]
        pruned: dict[tuple[int, str], list[int]] = {}
        for l in range(n):
            geo = adapter.geometry(l)
            pruned[(l, "heads")] = sorted({c.heads for c in space.options(l)} - {geo.num_heads})
            pruned[(l, "ffn")] = sorted({c.ffn for c in space.options(l)} - {geo.ffn_dim})
        jobs = [(l, dim, v) for (l, dim), vs in pruned.items() for v in (vs if self.mode == "exact" else vs[:1])]
        kl: dict[tuple[int, str, int], float] = {}
        for l, dim, v in tqdm(jobs, desc="selfgen-kl table", disable=not self.progress, leave=False):
            layers = list(full)
            layers[l] = LayerChoice(v, full[l].ffn) if dim == "heads" else LayerChoice(full[l].heads, v)
            kl[(l, dim, v)] = text.kl_of(Subnet(layers), start=l, orders=orders)
        for (l, dim), vs in pruned.items():  # interpolate the widths not run end to end
            if not vs or (l, dim, vs[-1]) in kl:
                continue
            base_v = vs[0]
            order = (orders or {}).get(l, {}).get(dim)
            ref = text.removed_output(l, dim, base_v, order)
            for v in vs[1:]:
                share = text.removed_output(l, dim, v, order) / ref if ref > 0 and np.isfinite(ref) else (full_w(l, dim, full) - v) / (full_w(l, dim, full) - base_v)
                kl[(l, dim, v)] = kl[(l, dim, base_v)] * share
        out = []
        for l in range(n):
            vals = [-(kl.get((l, "heads", c.heads), 0.0) + kl.get((l, "ffn", c.ffn), 0.0)) for c in space.options(l)]
            out.append(np.array(vals, dtype=float))
        return out


def full_w(l: int, dim: str, full: list) -> int:
    return full[l].heads if dim == "heads" else full[l].ffn


@dataclass
class FidelityRanker(Ranker):
    name: str = "fidelity"
    provenance: str = ("new (this project): second stage, minus KL(full || subnet) of whole subnets on text "
                       "sampled from the model itself; re-ranks a short list")
    additive: bool = False
    seqs: int = 2
    length: int = 128
    seed: int = 0
    unit_order: Any = "prefix"
    progress: bool = True
    order: Any = None  # alias of unit_order (the name materialize uses)

    def __post_init__(self) -> None:
        if self.order is not None:
            self.unit_order = self.order

    def score(self, model: Any, subnets: Sequence[Any], *, space: Any = None, adapter: Any = None,
              text: SelfText | None = None, orders: Any = None) -> np.ndarray:
        """``orders`` (resolved dict or name) overrides ``unit_order``; None = use ``unit_order``."""
        from tqdm import tqdm

        order = orders if orders is not None else self.unit_order
        if text is None and getattr(model, "get_output_embeddings", lambda: None)() is None:
            # an encoder cannot write text: compare pooled outputs on random tokens instead
            orders = _unit_orders(model, order, adapter, None)
            return encoder_fidelity(model, subnets, adapter=adapter, seed=self.seed, orders=orders, progress=self.progress)
        text = text or SelfText(model, seqs=self.seqs, length=self.length, seed=self.seed, adapter=adapter)
        orders = _unit_orders(model, order, adapter, text)
        return np.array([-text.kl_of(s, orders=orders) for s in tqdm(subnets, desc="fidelity", disable=not self.progress,
                                                                        leave=False)], dtype=float)


#: shape of the random-token batch ``encoder_fidelity`` compares on: many short sequences. Chosen
#: on the fit split of benchmarks/ranking/minilm.py (a grid of lengths 4..64 x 16..128 sequences):
#: Kendall tau with the real-sentence metric falls steadily with length (fit mean 0.86 at 8 tokens,
#: 0.60 at 64): long runs of random tokens spread attention over noise, unlike real sentences.
ENCODER_SEQS, ENCODER_LENGTH = 64, 8


def random_tokens(config: Any, *, seqs: int = ENCODER_SEQS, length: int = ENCODER_LENGTH,
                  seed: int = 0) -> "torch.Tensor":
    """Token ids drawn uniformly from the vocabulary (ids below 1000 skipped: BERT keeps its
    special and unused tokens there); the first and last position get CLS/SEP when the config
    names them. The data-free input for encoders, which cannot write text of their own."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    low = 1000 if config.vocab_size > 2000 else 0
    ids = torch.randint(low, config.vocab_size, (seqs, length), generator=gen)
    cls = getattr(config, "cls_token_id", None) or (101 if getattr(config, "model_type", "") == "bert" else None)
    sep = getattr(config, "sep_token_id", None) or (102 if getattr(config, "model_type", "") == "bert" else None)
    if cls is not None:
        ids[:, 0] = cls
    if sep is not None:
        ids[:, -1] = sep
    return ids


def encoder_fidelity(model: Any, subnets: Sequence[Any], *, adapter: Any = None, ids: Any = None,
                     seqs: int = ENCODER_SEQS, length: int = ENCODER_LENGTH, seed: int = 0,
                     orders: dict | None = None, progress: bool = False) -> np.ndarray:
    """Mean cosine of mean-pooled outputs (subnet vs full model) on random tokens, per subnet."""
    import torch
    from tqdm import tqdm

    from ..models import get_adapter
    from .apply import sliced

    adapter = adapter or get_adapter(model)
    ids = ids if ids is not None else random_tokens(model.config, seqs=seqs, length=length, seed=seed)
    base = adapter.base_model(model)

    def pooled() -> "torch.Tensor":
        return base(input_ids=ids).last_hidden_state.mean(1)

    with torch.no_grad():
        ref = pooled()
        out = []
        for s in tqdm(subnets, desc="fidelity (random tokens)", disable=not progress, leave=False):
            with sliced(model, s, adapter=adapter, orders=orders):
                out.append(float(torch.nn.functional.cosine_similarity(pooled(), ref, dim=-1).mean()))
    return np.array(out, dtype=float)


def encoder_layer_values(model: Any, space: Any, *, adapter: Any = None, orders: dict | None = None,
                         seed: int = 0, progress: bool = False) -> list[np.ndarray]:
    """Additive table for encoders: a layer's option is worth minus (1 - cosine to the full model's
    pooled output on random tokens) of the model pruned at that layer only. One forward pass per
    distinct (heads, FFN) option of every layer (LoRA ranks do not change the base model), exact,
    since encoders have few options and the random-token batch is short."""
    from ..models import get_adapter
    from ..space import LayerChoice, Subnet

    adapter = adapter or get_adapter(model)
    full = [_full_choice(adapter.geometry(l)) for l in range(space.num_layers)]
    jobs = sorted({(l, c.heads, c.ffn) for l in range(space.num_layers) for c in space.options(l)}
                  - {(l, f.heads, f.ffn) for l, f in enumerate(full)})
    subnets = [Subnet([LayerChoice(h, f) if i == l else full[i] for i in range(len(full))]) for l, h, f in jobs]
    cosines = encoder_fidelity(model, subnets, adapter=adapter, seed=seed, orders=orders, progress=progress)
    loss = {job: 1.0 - float(c) for job, c in zip(jobs, cosines)}
    return [np.array([-loss.get((l, c.heads, c.ffn), 0.0) for c in space.options(l)], dtype=float)
            for l in range(space.num_layers)]


@dataclass
class SelfGenRanker(Ranker):
    """Both stages on one self-generated text: ``layer_values`` (selfgen-kl, for the exact search)
    and ``score``/``rerank`` (fidelity, for a shortlist). What ``rank``/``run`` should call:
    ``values = r.layer_values(model, space)``, ``search.top_k(values, costs, budget, k)``, then
    ``r.rerank(model, candidates)`` -> order of the candidates, best first."""

    name: str = "selfgen"
    provenance: str = ("new (this project): selfgen-kl table for the exact search, then fidelity (KL to the full "
                       "model on self-generated text) re-ranks the shortlist; encoders: the same two stages "
                       "with the cosine of pooled outputs on random tokens")
    second_stage: bool = True
    seqs: int = 2
    length: int = 128
    seed: int = 0
    mode: str = "interp"
    progress: bool = True
    #: which units a width keeps in both stages (a name of rankers/orders.py or an orders dict):
    #: pass what ``materialize(order=...)`` will use; ``order`` is an alias
    unit_order: Any = "prefix"
    order: Any = None

    def __post_init__(self) -> None:
        if self.order is not None:
            self.unit_order = self.order
        self._text: SelfText | None = None
        self._text_model: int | None = None
        self._orders: tuple[int, Any] | None = None

    def orders(self, model: Any, adapter: Any = None) -> dict | None:
        """The resolved unit order (computed once per model, on the shared text when it can be)."""
        if self._orders is None or self._orders[0] != id(model):
            self._orders = (id(model), _unit_orders(model, self.unit_order, adapter, self.text(model, adapter)))
        return self._orders[1]

    def text(self, model: Any, adapter: Any = None) -> "SelfText | None":
        if getattr(model, "get_output_embeddings", lambda: None)() is None:
            return None
        if self._text is None or self._text_model != id(model):
            self._text = SelfText(model, seqs=self.seqs, length=self.length, seed=self.seed, adapter=adapter)
            self._text_model = id(model)
        return self._text

    def layer_values(self, model: Any, space: Any, *, adapter: Any = None) -> list[np.ndarray]:
        text = self.text(model, adapter)
        if text is None:  # encoders cannot write text: per-layer fidelity on random tokens
            return encoder_layer_values(model, space, adapter=adapter, orders=self.orders(model, adapter),
                                        seed=self.seed, progress=self.progress)
        return SelfGenKLRanker(seqs=self.seqs, length=self.length, seed=self.seed, mode=self.mode,
                               progress=self.progress).layer_values(model, space, adapter=adapter, text=text,
                                                                    orders=self.orders(model, adapter) or "prefix")

    def score(self, model: Any, subnets: Sequence[Any], *, space: Any = None, adapter: Any = None) -> np.ndarray:
        fid = FidelityRanker(seqs=self.seqs, length=self.length, seed=self.seed, progress=self.progress)
        return fid.score(model, subnets, adapter=adapter, text=self.text(model, adapter),
                         orders=self.orders(model, adapter) or "prefix")

    def rerank(self, model: Any, subnets: Sequence[Any], *, adapter: Any = None) -> list[int]:
        """Indices of ``subnets`` best first by fidelity (ties keep the first stage's order)."""
        scores = self.score(model, subnets, adapter=adapter)
        return sorted(range(len(subnets)), key=lambda i: (-scores[i], i))
