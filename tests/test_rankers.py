"""Mechanics of the data-free rankers: slicing, tables, self-generated text, fidelity, score CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zerolm_prune.space import LayerChoice, LayerSpace, SearchSpace, Subnet


def _space(n=3, heads=(8, 4), ffn=(96, 64, 32)):
    return SearchSpace([LayerSpace(list(heads), list(ffn)) for _ in range(n)])


def _masked_logits(model, subnet, ids):
    """Reference: zero the pruned rows/columns of a copy (what a removed unit contributes: nothing)."""
    import copy

    m = copy.deepcopy(model)
    for layer, c in zip(m.model.layers, subnet.layers):
        att, mlp = layer.self_attn, layer.mlp
        d, per = 8, 4  # tiny_llama: head_dim 8, 4 query heads per KV group
        with torch.no_grad():
            att.q_proj.weight[c.heads * d:] = 0
            att.k_proj.weight[(c.heads // per) * d:] = 0
            att.v_proj.weight[(c.heads // per) * d:] = 0
            att.o_proj.weight[:, c.heads * d:] = 0
            mlp.gate_proj.weight[c.ffn:] = 0
            mlp.up_proj.weight[c.ffn:] = 0
            mlp.down_proj.weight[:, c.ffn:] = 0
    with torch.no_grad():
        return m(input_ids=ids).logits


def test_sliced_matches_masking_and_restores(tiny_llama):
    from zerolm_prune.rankers.apply import sliced

    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(0))
    sub = Subnet([LayerChoice(4, 32), LayerChoice(8, 64), LayerChoice(4, 96)])
    before = {k: v.clone() for k, v in tiny_llama.state_dict().items()}
    with torch.no_grad():
        full = tiny_llama(input_ids=ids).logits
        with sliced(tiny_llama, sub):
            assert tiny_llama.model.layers[0].self_attn.q_proj.weight.shape == (32, 64)
            assert tiny_llama.model.layers[0].mlp.down_proj.weight.shape == (64, 32)
            got = tiny_llama(input_ids=ids).logits
        after = tiny_llama(input_ids=ids).logits
    torch.testing.assert_close(got, _masked_logits(tiny_llama, sub, ids), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, full)
    torch.testing.assert_close(after, full)
    for k, v in tiny_llama.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_sliced_with_order_keeps_named_units(tiny_llama):
    from zerolm_prune.rankers.apply import sliced

    sub = Subnet([LayerChoice(4, 32), LayerChoice(8, 96), LayerChoice(8, 96)])
    order = {0: {"heads": [1, 0], "ffn": list(range(95, -1, -1))}}
    w_q = tiny_llama.model.layers[0].self_attn.q_proj.weight.detach().clone()
    w_down = tiny_llama.model.layers[0].mlp.down_proj.weight.detach().clone()
    with sliced(tiny_llama, sub, orders=order):
        torch.testing.assert_close(tiny_llama.model.layers[0].self_attn.q_proj.weight, w_q[32:])  # KV group 1 = heads 4..7
        torch.testing.assert_close(tiny_llama.model.layers[0].mlp.down_proj.weight, w_down[:, 64:])


def test_space_of_and_indices():
    from zerolm_prune.rankers import indices_in, space_of

    subs = [Subnet([LayerChoice(8, 64), LayerChoice(4, 32)]), Subnet([LayerChoice(4, 64), LayerChoice(4, 96)])]
    sp = space_of(subs)
    assert sp.layers[0].heads == [8, 4] and sp.layers[1].ffn == [96, 32]
    assert [sp.options(l)[i] for l, i in enumerate(indices_in(sp, subs[1]))] == subs[1].layers


def test_params_ranker_matches_cost(tiny_llama):
    from zerolm_prune.cost import subnet_params
    from zerolm_prune.models import get_adapter
    from zerolm_prune.rankers import get_ranker

    sp = _space()
    adapter = get_adapter(tiny_llama)
    subs = [sp.maximal(), sp.minimal(), sp.heuristic()]
    scores = get_ranker("params").score(tiny_llama, subs, space=sp)
    fixed = subnet_params(adapter, sp.maximal()) - scores[0]
    assert [s + fixed for s in scores] == [subnet_params(adapter, s) for s in subs]


def test_zerolm_ranker_matches_capacity_table(tiny_llama):
    from zerolm_prune.proxy.capacity import CapacityTable
    from zerolm_prune.rankers import get_ranker

    sp = _space()
    table = CapacityTable.from_model(tiny_llama, sp)
    subs = list(sp.iter_subnets())[:7]
    got = get_ranker("zerolm", alpha=0.3).score(tiny_llama, subs, space=sp)
    np.testing.assert_allclose(got, [table.score(s, 0.3) for s in subs], rtol=1e-9)


def test_energy_sees_a_massive_channel(tiny_llama):
    """A prefix cut that drops one huge channel must cost more than cutting many tiny ones."""
    from zerolm_prune.rankers import get_ranker

    with torch.no_grad():
        tiny_llama.model.layers[1].mlp.down_proj.weight[:, 80] *= 50.0
    sp = _space()
    vals = get_ranker("energy", edge=1.0).layer_values(tiny_llama, sp)
    edged = get_ranker("energy", edge=8.0).layer_values(tiny_llama, sp)
    np.testing.assert_allclose(edged[0], 8 * vals[0])  # first/last blocks weighted, middle ones not
    np.testing.assert_allclose(edged[1], vals[1])
    opts = sp.options(1)
    full, cut64 = opts.index(LayerChoice(8, 96)), opts.index(LayerChoice(8, 64))
    assert vals[1][full] == 0.0
    assert vals[1][cut64] < -0.9  # almost the whole (squared) energy share is gone
    assert vals[0][sp.options(0).index(LayerChoice(8, 64))] > -0.5  # a normal layer loses a modest share
    for l in range(3):  # narrower never scores better under prefix slicing
        by_ffn = [vals[l][sp.options(l).index(LayerChoice(8, f))] for f in (96, 64, 32)]
        assert by_ffn == sorted(by_ffn, reverse=True)


def test_self_text_is_seeded_and_from_bos(tiny_llama):
    from zerolm_prune.rankers.selfgen import self_text

    tiny_llama.config.bos_token_id = 1
    a = self_text(tiny_llama, seqs=2, length=10, seed=3)
    b = self_text(tiny_llama, seqs=2, length=10, seed=3)
    c = self_text(tiny_llama, seqs=2, length=10, seed=4)
    assert a.shape == (2, 10) and torch.equal(a, b) and not torch.equal(a, c)
    assert (a[:, 0] == 1).all()


def test_selfgen_table_and_fidelity(tiny_llama):
    from zerolm_prune.rankers import get_ranker
    from zerolm_prune.rankers.selfgen import SelfText

    tiny_llama.config.bos_token_id = 1
    sp = _space()
    text = SelfText(tiny_llama, seqs=2, length=16, seed=0)
    sub = Subnet([LayerChoice(8, 96), LayerChoice(4, 32), LayerChoice(8, 96)])
    assert text.kl_of(sp.maximal()) == pytest.approx(0.0, abs=1e-6)
    assert text.kl_of(sub, start=1) == pytest.approx(text.kl_of(sub, start=0), rel=1e-4, abs=1e-7)
    ranker = get_ranker("selfgen-kl", progress=False)
    vals = ranker.layer_values(tiny_llama, sp, text=text)
    for l in range(3):
        assert vals[l][0] == 0.0 and (vals[l][1:] < 0).all()
        # additive by construction: (4, 32) = heads-only + ffn-only damage
        o = sp.options(l)
        both = vals[l][o.index(LayerChoice(4, 32))]
        assert both == pytest.approx(vals[l][o.index(LayerChoice(4, 96))] + vals[l][o.index(LayerChoice(8, 32))])
    fid = get_ranker("fidelity", progress=False).score(tiny_llama, [sp.maximal(), sub, sp.minimal()], text=text)
    assert fid[0] == pytest.approx(0.0, abs=1e-6) and fid[0] > fid[1] > fid[2]


def test_get_ranker_rejects_unknown():
    from zerolm_prune.errors import UserError
    from zerolm_prune.rankers import DEFAULT_RANKER, available_rankers, get_ranker

    assert DEFAULT_RANKER in available_rankers() and "zerolm" in available_rankers()
    with pytest.raises(UserError, match="unknown ranker"):
        get_ranker("nope")
    with pytest.raises(UserError):
        get_ranker("zerolm", bogus=1)


def test_score_cli_on_smollm2(tmp_path):
    from zerolm_prune.cli import main

    full = {"heads": [9] * 30, "ffn": [1536] * 30}
    cut = {"heads": [6] * 30, "ffn": [768] * 30}
    ranked = tmp_path / "ranked.json"
    ranked.write_text(json.dumps({"model": "smollm2-135m", "subnets": [
        {"rank": 0, "score": 0, "params": 0, "macs": 0, "subnet": cut},
        {"rank": 1, "score": 0, "params": 0, "macs": 0, "subnet": full}]}))
    out = tmp_path / "scores.json"
    assert main(["score", "--subnets", str(ranked), "--ranker", "energy", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["ranker"] == "energy" and [s["index"] for s in doc["scores"]] == [0, 1]
    assert doc["scores"][1]["score"] == 0.0 and doc["scores"][0]["score"] < 0


def test_score_cli_user_errors(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"subnets": [{"subnet": {"heads": [9]}}]}))
    for args in (["--subnets", str(tmp_path / "missing.json")], ["--subnets", str(bad)]):
        proc = subprocess.run([sys.executable, "-m", "zerolm_prune.cli", "score", "smollm2-135m", *args, "--json",
                               str(tmp_path / "o.json")], capture_output=True, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1


def test_selfgen_interp_agrees_with_exact_at_the_narrowest(tiny_llama):
    """interp runs only the narrowest width end to end; it must equal exact there and scale between."""
    from zerolm_prune.rankers import get_ranker
    from zerolm_prune.rankers.selfgen import SelfText

    tiny_llama.config.bos_token_id = 1
    sp = _space()
    text = SelfText(tiny_llama, seqs=2, length=16, seed=0)
    exact = get_ranker("selfgen-kl", mode="exact", progress=False).layer_values(tiny_llama, sp, text=text)
    interp = get_ranker("selfgen-kl", progress=False).layer_values(tiny_llama, sp, text=text)
    for l in range(3):
        o = sp.options(l)
        narrow, mid = o.index(LayerChoice(8, 32)), o.index(LayerChoice(8, 64))
        assert interp[l][narrow] == pytest.approx(exact[l][narrow])
        assert interp[l][narrow] < interp[l][mid] < 0


def test_orders_keep_most_active_units(tiny_llama):
    """selfgen order puts a channel made to dominate the layer's output first; energy order too."""
    from zerolm_prune.rankers.orders import compute_orders

    tiny_llama.config.bos_token_id = 1
    with torch.no_grad():
        tiny_llama.model.layers[2].mlp.down_proj.weight[:, 77] *= 40.0
        tiny_llama.model.layers[2].self_attn.o_proj.weight[:, 8:16] *= 30.0  # head 1 of KV group 0
    assert compute_orders(tiny_llama, "prefix") is None
    for name in ("energy", "selfgen"):
        orders = compute_orders(tiny_llama, name, seqs=2, length=16)
        assert orders[2]["ffn"][0] == 77 and orders[2]["heads"][0] == 0, name
        assert sorted(orders[0]["ffn"]) == list(range(96)) and sorted(orders[0]["heads"]) == [0, 1]


def test_two_stage_selfgen_shares_one_text(tiny_llama):
    from zerolm_prune.rankers import get_ranker
    from zerolm_prune.search import top_k

    tiny_llama.config.bos_token_id = 1
    sp = _space()
    r = get_ranker("selfgen", seqs=2, length=16, progress=False)
    values = r.layer_values(tiny_llama, sp)
    text = r.text(tiny_llama)
    assert r.text(tiny_llama) is text  # generated once per model
    costs = [np.array([c.heads * 10 + c.ffn for c in sp.options(l)], dtype=float) for l in range(3)]
    found = top_k(values, costs, budget=2 * (8 * 10 + 96) + (4 * 10 + 32), k=5)
    cands = [Subnet([sp.options(l)[i] for l, i in enumerate(idx)]) for _, idx in found]
    order = r.rerank(tiny_llama, cands)
    scores = r.score(tiny_llama, cands)
    assert sorted(order) == list(range(len(cands))) and scores[order[0]] == max(scores)


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_sliced_matches_materialize(family, tiny_llama, tiny_gpt2, tiny_bert):
    """In-place slicing (masking for GPT-2) computes what the materialized subnet computes."""
    from zerolm_prune.materialize import materialize
    from zerolm_prune.rankers.apply import sliced

    model = {"llama": tiny_llama, "gpt2": tiny_gpt2, "bert": tiny_bert}[family]
    n = {"llama": 3, "gpt2": 2, "bert": 2}[family]
    choices = {"llama": [LayerChoice(4, 32), LayerChoice(8, 64), LayerChoice(4, 96)],
               "gpt2": [LayerChoice(2, 40), LayerChoice(4, 80)], "bert": [LayerChoice(3, 40), LayerChoice(6, 20)]}[family]
    sub = Subnet(choices[:n])
    ids = torch.randint(5, 120, (2, 10), generator=torch.Generator().manual_seed(1))
    small = materialize(model, sub)

    def out(m):
        o = m(input_ids=ids)
        return o.logits if hasattr(o, "logits") else o.last_hidden_state

    with torch.no_grad():
        ref = out(small)
        with sliced(model, sub):
            got = out(model)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_encoder_rankers_on_random_tokens_rank_minilm_subnets_like_real_sentences(minilm):
    """The data-free encoder ranker (random tokens, no sentences) must order equal-budget MiniLM
    subnets the way their real-sentence embedding fidelity does, where parameter counts cannot."""
    import random

    import datasets
    from scipy.stats import kendalltau

    from zerolm_prune.assets import commonsense_data_dir
    from zerolm_prune.cost import block_params
    from zerolm_prune.models import get_adapter
    from zerolm_prune.rankers import get_ranker
    from zerolm_prune.rankers.apply import sliced

    model, tok = minilm
    adapter = get_adapter(model)
    space = SearchSpace([LayerSpace([12, 8, 6], [1536, 1152, 768]) for _ in range(6)])
    opts = space.options(0)
    cost = [block_params(adapter.geometry(0), c, config=adapter.config) for c in opts]
    rng, picks = random.Random(7), set()
    while len(picks) < 12:  # distinct subnets at 0.75 of the block params (+-1%)
        pick = tuple(rng.randrange(len(opts)) for _ in range(6))
        if abs(sum(cost[i] for i in pick) / (6 * cost[0]) / 0.75 - 1) <= 0.01:
            picks.add(pick)
    subnets = [Subnet([opts[i] for i in p]) for p in sorted(picks)]

    sentences = datasets.load_from_disk(str(commonsense_data_dir() / "glue" / "sst2" / "validation"))["sentence"][:64]
    enc = tok(sentences, padding=True, truncation=True, max_length=48, return_tensors="pt")
    mask = enc["attention_mask"].unsqueeze(-1).float()

    def embed():
        return (model(**enc).last_hidden_state * mask).sum(1) / mask.sum(1)

    with torch.no_grad():
        ref = embed()
        truth = []
        for s in subnets:
            with sliced(model, s):
                truth.append(float(torch.nn.functional.cosine_similarity(embed(), ref, dim=-1).mean()))
    scores = get_ranker("fidelity", progress=False).score(model, [space.maximal(), *subnets], space=space)
    assert scores[0] == pytest.approx(1.0, abs=1e-6) and (scores[1:] < 0.999).all()
    tau = kendalltau(scores[1:], truth)[0]
    params_tau = kendalltau([sum(cost[i] for i in p) for p in sorted(picks)], truth)[0]
    assert tau >= 0.5 and tau > params_tau + 0.2, (tau, params_tau)

    # the first stage of the default ranker on encoders: an additive per-layer table, so the exact
    # search can use it; a subnet's value is the sum of its layers' entries
    table = get_ranker("selfgen", progress=False).layer_values(model, space)
    assert all(v[0] == 0.0 and (v[1:] < 0).all() for v in table)  # option 0 is the full layer
    stage1 = [sum(table[l][i] for l, i in enumerate(p)) for p in sorted(picks)]
    energy = get_ranker("energy").layer_values(model, space)
    energy_tau = kendalltau([sum(energy[l][i] for l, i in enumerate(p)) for p in sorted(picks)], truth)[0]
    stage1_tau = kendalltau(stage1, truth)[0]
    assert stage1_tau >= 0.5 and stage1_tau > energy_tau + 0.2, (stage1_tau, energy_tau)
