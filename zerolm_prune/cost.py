"""Exact analytic parameter counts and per-token MACs of subnets, from shapes alone.

Why analytic: a budget ("80% of the parameters") must be checked for ~1e41 subnets without
building any of them, and for models we never download (LLaMA-7B from its recipe). The formulas
below mirror the transformers module trees exactly (tests build tiny models and count
``p.numel()``); any family-specific detail (biases, extra norms) lives in ``_bias``/``_block_norms``.

Conventions
-----------
* A layer's choice (``LayerChoice``) keeps ``heads`` query heads; GQA models keep
  ``heads / heads_per_kv_group`` KV heads (whole groups), MHA models keep ``heads`` KV heads.
* Block params = every parameter of the block: projections (+ biases where the family has them:
  BERT/GPT-2 everywhere, LLaMA per ``attention_bias``/``mlp_bias``, Qwen2 on q/k/v) + norms
  (LLaMA: 2 RMSNorm weights; Qwen3 also q_norm/k_norm of head_dim; BERT/GPT-2: 2 LayerNorms with
  weight and bias).
* Fixed params = everything outside the blocks: token embeddings, position / token-type
  embeddings (BERT, GPT-2), the embedding LayerNorm (BERT), the final norm (LLaMA, GPT-2), the
  BERT pooler (``with_pooler``, default True as ``BertModel`` builds it) and the LM head unless it
  is tied to the embeddings (causal families only). Pass ``model=`` to count them from a real
  module tree instead (e.g. a ``BertForSequenceClassification`` with its classifier).
* LoRA: a targeted module with rank r adds ``r * (in + out)`` parameters (A: r x in, B: out x r),
  at the shapes of the pruned module. A module in a LoRA group gets the subnet's rank for that
  group (0, or a group the choice does not name, means no LoRA); modules in ``lora["targets"]``
  outside every group get the fixed rank ``lora["r_max"]`` (LoNAS: LLaMA down_proj at 32).
* MACs are per token: every Linear contributes in*out (biases and norms are not counted), and
  attention adds ``2 * heads * head_dim * seq_len`` (QK^T scores and the weighted sum of V with
  ``seq_len`` keys per query: decoding one token at context ``seq_len``, or a bidirectional
  encoder over ``seq_len`` tokens; a causal prefill averages ``(seq_len + 1) / 2`` keys, which
  this convention does not model). ``seq_len=1`` gives the pure-Linear cost plus a token attending
  to itself. LoRA adds ``r * (in + out)`` per module. ``fixed_macs`` is the LM head
  (``hidden * vocab`` for causal families; embedding lookups cost no MACs; the BERT pooler runs
  once per sequence, not per token, and is left out).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from .loading import config_from_dict
from .models import get_adapter
from .units import kept_kv_heads  # noqa: F401  (re-exported: the kept units live in units)

if TYPE_CHECKING:  # pragma: no cover
    from .models.base import ArchAdapter, LayerGeometry, Projection
    from .space.types import LayerChoice, Subnet


# ---- shapes -----------------------------------------------------------------------------------
def _as_config(config: Any) -> Any:
    if isinstance(config, dict):
        return config_from_dict(config)
    return getattr(config, "config", config)  # a model was passed


def _adapter_for(config: Any) -> "ArchAdapter":
    return get_adapter(_as_config(config))


def projection_shape(geo: "LayerGeometry", choice: "LayerChoice", role: str) -> tuple[int, int]:
    """(in_features, out_features) of projection ``role`` after applying ``choice``."""
    d, hd = geo.hidden_size, geo.head_dim
    q = choice.heads * hd
    kv = kept_kv_heads(geo, choice.heads) * hd
    f = choice.ffn
    shapes = {
        "q": (d, q), "k": (d, kv), "v": (d, kv), "qkv": (d, q + 2 * kv), "o": (q, d),
        "gate": (d, f), "up": (d, f), "down": (f, d),
    }
    try:
        return shapes[role]
    except KeyError:
        raise ValueError(f"unknown projection role {role!r}") from None


def _bias(adapter: "ArchAdapter", config: Any, role: str) -> bool:
    if adapter.family in ("bert", "gpt2"):
        return True
    model_type = getattr(config, "model_type", "")
    if model_type == "qwen2":  # q/k/v carry biases, o_proj does not
        return role in ("q", "k", "v")
    if model_type == "mistral":
        return False
    if role in ("q", "k", "v", "o", "qkv"):
        return bool(getattr(config, "attention_bias", False))
    return bool(getattr(config, "mlp_bias", False))


def _block_norms(adapter: "ArchAdapter", config: Any, geo: "LayerGeometry") -> int:
    d = geo.hidden_size
    if adapter.family in ("bert", "gpt2"):
        return 2 * 2 * d  # two LayerNorms, weight + bias
    extra = 2 * geo.head_dim if getattr(config, "model_type", "") == "qwen3" else 0  # q_norm, k_norm
    return 2 * d + extra


# ---- LoRA -------------------------------------------------------------------------------------
def _resolve_projection(adapter: "ArchAdapter", name: str) -> "Projection":
    """The projection a LoRA module name refers to (``q_proj``, ``query``, ``attention.output.dense``)."""
    for proj in adapter.projections:
        if name in (adapter.target_name(proj), proj.path):
            return proj
    matches = [p for p in adapter.projections if p.name == name]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(adapter.lora_targets)
    raise ValueError(f"LoRA module {name!r} is not a projection of the {adapter.family} family (known: {known})")


def lora_ranks(adapter: "ArchAdapter", choice: "LayerChoice", lora: dict | None) -> list[tuple["Projection", int]]:
    """(projection, rank) for every module that carries LoRA under ``choice``; rank > 0 only."""
    if not lora:
        return []
    out: list[tuple[Projection, int]] = []
    grouped: set[str] = set()
    for group, modules in (lora.get("groups") or {}).items():
        rank = choice.rank(group) or 0
        for name in modules:
            grouped.add(name)
            if rank > 0:
                out.append((_resolve_projection(adapter, name), int(rank)))
    r_max = int(lora.get("r_max") or 0)
    for name in lora.get("targets") or []:
        if name not in grouped and r_max > 0:
            out.append((_resolve_projection(adapter, name), r_max))
    return out


def block_lora_params(geo: "LayerGeometry", choice: "LayerChoice", *, config: Any, lora: dict | None) -> int:
    """LoRA A and B parameters of one block under ``choice``."""
    adapter = _adapter_for(config)
    total = 0
    for proj, rank in lora_ranks(adapter, choice, lora):
        fan_in, fan_out = projection_shape(geo, choice, proj.role)
        total += rank * (fan_in + fan_out)
    return total


# ---- blocks -----------------------------------------------------------------------------------
def block_params(geo: "LayerGeometry", choice: "LayerChoice", *, config: Any, lora: dict | None = None,
                 include_lora: bool = False) -> int:
    """Exact parameter count of one block pruned to ``choice`` (LoRA adapters optional)."""
    config = _as_config(config)
    adapter = _adapter_for(config)
    total = _block_norms(adapter, config, geo)
    for proj in adapter.projections:
        fan_in, fan_out = projection_shape(geo, choice, proj.role)
        total += fan_in * fan_out + (fan_out if _bias(adapter, config, proj.role) else 0)
    if include_lora:
        total += block_lora_params(geo, choice, config=config, lora=lora)
    return total


def block_macs(geo: "LayerGeometry", choice: "LayerChoice", *, config: Any, seq_len: int = 1,
               lora: dict | None = None, include_lora: bool = False) -> int:
    """Multiply-accumulates per token of one block (see the module docstring for the convention)."""
    config = _as_config(config)
    adapter = _adapter_for(config)
    total = 0
    for proj in adapter.projections:
        fan_in, fan_out = projection_shape(geo, choice, proj.role)
        total += fan_in * fan_out
    total += 2 * choice.heads * geo.head_dim * int(seq_len)
    if include_lora:
        total += block_lora_params(geo, choice, config=config, lora=lora)  # r*(in+out) MACs too
    return total


# ---- outside the blocks ----------------------------------------------------------------------
def has_lm_head(adapter: "ArchAdapter") -> bool:
    """Causal families (LLaMA, GPT-2) are used with their LM head; BERT as the bare encoder."""
    return adapter.family in ("llama", "gpt2")


def _count_unique(params: Iterable[Any]) -> int:
    seen: set[int] = set()
    total = 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def fixed_params(adapter: "ArchAdapter", *, model: Any = None, with_pooler: bool = True,
                 with_head: bool | None = None) -> int:
    """Parameters outside the blocks (embeddings, final norm, pooler, untied LM head).

    With ``model`` the count comes from the module tree (all parameters not inside a block,
    tied tensors once), so heads this formula does not know (classifiers) are included.
    """
    if model is not None:
        inside = {id(p) for p in adapter.layers(model).parameters()}
        return _count_unique(p for p in model.parameters() if id(p) not in inside)
    c = adapter.config
    d, vocab = adapter.hidden_size, adapter.vocab_size
    head = has_lm_head(adapter) if with_head is None else with_head
    tied = bool(getattr(c, "tie_word_embeddings", adapter.family == "gpt2"))
    if adapter.family == "llama":
        total = vocab * d + d
    elif adapter.family == "gpt2":
        total = vocab * d + int(c.n_positions) * d + 2 * d
    elif adapter.family == "bert":
        total = (vocab + int(c.max_position_embeddings) + int(c.type_vocab_size)) * d + 2 * d
        if with_pooler:
            total += d * d + d
    else:  # pragma: no cover - a new family must add its formula here
        raise ValueError(f"no fixed-parameter formula for family {adapter.family!r}")
    if head and not tied:
        total += vocab * d
    return total


def fixed_macs(adapter: "ArchAdapter", *, with_head: bool | None = None) -> int:
    """Per-token MACs outside the blocks: the LM head projection (even when tied)."""
    head = has_lm_head(adapter) if with_head is None else with_head
    return adapter.hidden_size * adapter.vocab_size if head else 0


# ---- whole subnets ----------------------------------------------------------------------------
def _check_layers(adapter: "ArchAdapter", subnet: "Subnet") -> None:
    if subnet.num_layers != adapter.num_layers:
        raise ValueError(f"subnet has {subnet.num_layers} layers, the model {adapter.num_layers}")


def subnet_params(adapter: "ArchAdapter", subnet: "Subnet", *, lora: dict | None = None,
                  include_lora: bool = False, include_embeddings: bool = True, **fixed_kwargs: Any) -> int:
    """Parameters of the whole pruned model; ``include_embeddings=False`` counts blocks only
    (no embeddings, final norm or head). ``fixed_kwargs`` go to ``fixed_params``."""
    _check_layers(adapter, subnet)
    total = sum(
        block_params(adapter.geometry(i), choice, config=adapter.config, lora=lora, include_lora=include_lora)
        for i, choice in enumerate(subnet.layers)
    )
    if include_embeddings:
        total += fixed_params(adapter, **fixed_kwargs)
    return total


def subnet_macs(adapter: "ArchAdapter", subnet: "Subnet", *, seq_len: int = 1, lora: dict | None = None,
                include_lora: bool = False, with_head: bool | None = None) -> int:
    """Per-token MACs of the whole pruned model, LM head included for causal families."""
    _check_layers(adapter, subnet)
    total = sum(
        block_macs(adapter.geometry(i), choice, config=adapter.config, seq_len=seq_len, lora=lora,
                   include_lora=include_lora)
        for i, choice in enumerate(subnet.layers)
    )
    return total + fixed_macs(adapter, with_head=with_head)
