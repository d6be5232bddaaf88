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

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError
from ..models import get_adapter
from ..space import LayerChoice, Subnet
from .apply import sliced
from .base import Ranker
from .orders import resolve_orders
from .selftext import SelfText, _from_layer, _kl, _log_probs, _require_causal, _sample_text, self_text  # noqa: F401  (re-exported)


def _unit_orders(model: Any, order: Any, adapter: Any, text: "SelfText | None") -> dict | None:
    """Resolve a unit order exactly as ``materialize(order=...)`` will.

    ``selfgen`` reuses ``text`` only when it is the text ``compute_orders`` itself samples (2 x 128
    tokens; every ranker here uses seed 0), so tables, fidelity scores and the saved checkpoint
    keep the same units; otherwise it samples that text once more.
    """
    same = text is not None and tuple(text.ids.shape) == (2, 128) and getattr(text, "seed", None) == 0
    return resolve_orders(model, order, adapter=adapter, text=text if same else None)


def _full_choice(geo: Any, ranks=()):
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
