"""The peers, one function each: ``method(model, stats, budget, full, **) -> None`` prunes in place.

Granularity for every method: KV groups (a group = its query heads + one K and one V head, the
unit GQA allows) and FFN channels (gate row, up row, down column). All statistics come from one
pass of the UNPRUNED model over the calibration text (FLAP computes its statistics that way; for
Wanda-sp FLAP's code recomputes inputs after each pruned layer, which we skip: a deviation).
"""

from __future__ import annotations

import torch

from .common import Geo, MapStats, geo_of, prune_by_scores, prune_layer, removed_needed, uniform_keep


def _head_sum(per_col: torch.Tensor, geo: Geo) -> torch.Tensor:
    """Per-column scores of o_proj's input -> per KV group sums."""
    return per_col.reshape(geo.kv, geo.per * geo.head_dim).sum(1)


# ---- FLAP (An et al., AAAI 2024, arXiv 2312.11983) -----------------------------------------------

def flap_scores(model, stats: MapStats) -> tuple[list, list]:
    """Fluctuation metric (WIFV, Eq. 5): S_j = Var(X_j) * ||W[:, j]||_2^2 over the input features
    of o_proj / down_proj; attention scores are squared (as FLAP's code does), then every layer and
    module is standardized (Eq. 6: (S - mean) / std over its features) so one global threshold can
    compare layers and modules (AL-AM). A head's score is the mean of its standardized features;
    a KV group's the mean over its query heads."""
    geo = geo_of(model)
    heads, chans = [], []
    for l, layer in enumerate(model.model.layers):
        wo, wd = layer.self_attn.o_proj.weight.data, layer.mlp.down_proj.weight.data
        a = (stats.var[(l, "o")] * wo.square().sum(0)) ** 2
        m = stats.var[(l, "down")] * wd.square().sum(0)
        a, m = (a - a.mean()) / a.std(), (m - m.mean()) / m.std()
        heads.append(a.reshape(geo.kv, -1).mean(1))
        chans.append(m)
    return heads, chans


def global_keep(model, heads: list, chans: list, budget: float, full: int, *, min_groups: int = 0,
                min_channels: int = 0) -> list[tuple[int, int]]:
    """Adaptive structure (FLAP's AL-AM): all units of all layers sorted by score, the lowest
    removed until the whole model is at the budget; a KV group weighs its parameter count
    (FLAP's compression weight), a channel 3 x hidden. Greedy in score order; once a group would
    overshoot, only channels are taken (keeps the budget within 0.1%)."""
    geo = geo_of(model)
    need = removed_needed(full, budget)
    units = [(float(s), l, "g", i) for l, h in enumerate(heads) for i, s in enumerate(h)]
    units += [(float(s), l, "c", i) for l, c in enumerate(chans) for i, s in enumerate(c)]
    units.sort(key=lambda u: u[0])
    keep = [[geo.kv, geo.ffn] for _ in range(geo.layers)]
    removed = 0
    for s, l, kind, i in units:
        cost = geo.group_params if kind == "g" else geo.channel_params
        if removed + cost > need + geo.channel_params // 2:
            continue
        slot = 0 if kind == "g" else 1
        if keep[l][slot] - 1 < (min_groups if kind == "g" else min_channels):
            continue
        keep[l][slot] -= 1
        removed += cost
        if removed >= need - geo.channel_params // 2:
            break
    return [tuple(k) for k in keep]


def flap(model, stats: MapStats, budget: float, full: int, *, bias: bool = True) -> None:
    heads, chans = flap_scores(model, stats)
    keep = global_keep(model, heads, chans, budget, full)
    prune_by_scores(model, heads, chans, keep, stats, compensate=bias)  # Eq. 8 bias compensation


# ---- Wanda-sp (structured Wanda, Sun et al. 2023, as the FLAP paper runs it) ---------------------

def wanda_sp(model, stats: MapStats, budget: float, full: int) -> None:
    """S_ij = |W_ij| * ||X_j||_2; a feature's score is the mean over output rows, a head's the sum
    over its features; the same ratio in every layer."""
    geo = geo_of(model)
    heads, chans = [], []
    for l, layer in enumerate(model.model.layers):
        wo, wd = layer.self_attn.o_proj.weight.data, layer.mlp.down_proj.weight.data
        heads.append(_head_sum((wo.abs() * stats.sq[(l, "o")].sqrt()).mean(0), geo))
        chans.append((wd.abs() * stats.sq[(l, "down")].sqrt()).mean(0))
    prune_by_scores(model, heads, chans, uniform_keep(geo, full, budget, list(range(geo.layers))))


# ---- L2 magnitude (FLAP's magnitude_sp baseline) ---------------------------------------------------

def magnitude(model, stats: MapStats | None, budget: float, full: int) -> None:
    """S_j = ||W[:, j]||_2 of o_proj / down_proj columns (no data); head = sum; uniform ratio."""
    geo = geo_of(model)
    heads, chans = [], []
    for layer in model.model.layers:
        heads.append(_head_sum(layer.self_attn.o_proj.weight.data.norm(dim=0), geo))
        chans.append(layer.mlp.down_proj.weight.data.norm(dim=0))
    prune_by_scores(model, heads, chans, uniform_keep(geo, full, budget, list(range(geo.layers))))


# ---- LLM-Pruner (Ma et al., NeurIPS 2023, arXiv 2305.11627), element-wise first-order Taylor -------

#: LLM-Pruner's LLaMA-7B setting keeps blocks 0-3 and the last 2 (pruned: [4, 30) of 32)
LLMP_FIRST, LLMP_LAST = 4, 2
#: the paper's calibration: 10 samples of 128 tokens
LLMP_SAMPLES, LLMP_LEN = 10, 128


def llm_pruner(model, calib: torch.Tensor, budget: float, full: int) -> None:
    """Element-wise importance I(W_k^i) = |W_k^i * dL/dW_k^i| (first-order Taylor of the loss change,
    Eq. 4-5), summed over every weight of a coupled group (Eq. 6 'sum' aggregation): a KV group =
    its q/k/v rows and o_proj columns, a channel = gate/up rows and the down_proj column. Uniform
    ratio over the blocks it prunes; first LLMP_FIRST and last LLMP_LAST blocks kept."""
    geo = geo_of(model)
    ids = calib[:, :LLMP_LEN][:LLMP_SAMPLES]
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        for k in range(0, ids.shape[0], 2):
            out = model(input_ids=ids[k:k + 2], labels=ids[k:k + 2])
            (out.loss * ids[k:k + 2].shape[0] / ids.shape[0]).backward()
    heads, chans = [], []
    d = geo.head_dim
    for layer in model.model.layers:
        at, ml = layer.self_attn, layer.mlp
        imp = {n: (m.weight.data * m.weight.grad).abs() for n, m in
               (("q", at.q_proj), ("k", at.k_proj), ("v", at.v_proj), ("o", at.o_proj),
                ("g", ml.gate_proj), ("u", ml.up_proj), ("d", ml.down_proj))}
        q = imp["q"].sum(1).reshape(geo.kv, -1).sum(1) + imp["o"].sum(0).reshape(geo.kv, -1).sum(1)
        kv = (imp["k"].sum(1) + imp["v"].sum(1)).reshape(geo.kv, d).sum(1)
        heads.append(q + kv)
        chans.append(imp["g"].sum(1) + imp["u"].sum(1) + imp["d"].sum(0))
    model.zero_grad(set_to_none=True)
    pruned = list(range(LLMP_FIRST, geo.layers - LLMP_LAST))
    prune_by_scores(model, heads, chans, uniform_keep(geo, full, budget, pruned))


# ---- ShortGPT (Men et al. 2024, arXiv 2403.03853) ---------------------------------------------------

def shortgpt(model, stats: MapStats, budget: float, full: int) -> None:
    """Block influence BI_i = 1 - E_t[cos(x_i,t, x_{i+1},t)]; the layers of lowest BI are removed
    whole. Layers come in 3.5M-parameter steps, so to meet the budget within 0.1% the remainder is
    cut from the FFN of the next-lowest-BI layer (channels of lowest ||X_j|| * ||W[:, j]||)."""
    from .common import SkipLayer

    geo = geo_of(model)
    need = removed_needed(full, budget)
    layer_params = sum(p.numel() for p in model.model.layers[0].parameters())
    order = sorted(range(geo.layers), key=lambda i: stats.bi[i])
    n_drop = need // layer_params
    rest = need - n_drop * layer_params
    partial = order[n_drop]
    wd = model.model.layers[partial].mlp.down_proj.weight.data
    score = stats.sq[(partial, "down")].sqrt() * wd.norm(dim=0)
    keep_c = geo.ffn - int(round(rest / geo.channel_params))
    chans = torch.argsort(score, descending=True)[:keep_c].tolist()
    prune_layer(model.model.layers[partial], geo, list(range(geo.kv)), chans)
    for i in order[:n_drop]:
        model.model.layers[i] = SkipLayer()
    model.shortgpt_dropped = sorted(order[:n_drop])
