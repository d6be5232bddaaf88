"""The fitted-exponent capacity (zerolm-gamma) on the real NAS-Bench-BERT and LTS rows.

What must hold: the exponent is fitted on the fit rows only; on NAS-Bench-BERT (trained-as) it
finds that width should pay less than depth (gamma > 1, attention only), which makes it the
depth-then-width ordering; on LTS GPT-2 it goes the other way (parameter-like, gamma near 0).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from zerolm_prune.bench import lts, nasbench_bert
from zerolm_prune.bench.run import evaluate, features
from zerolm_prune.proxy.alpha import GAMMA_GRID, exponent_by_sampling, gamma_mix

DATA = Path("/work/shared/data")
if not DATA.exists():  # CI checkouts keep the data next to the repository
    DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BERT = DATA / "nasbench-bert-flexibert" / "BERT_benchmark.json"
GPT2 = DATA / "lts-gpt2-archai" / "random_GPT2_lm1b.json"
pytestmark = pytest.mark.skipif(not BERT.exists(), reason="benchmark data not available")


@pytest.fixture(scope="module")
def trained_as():
    archs = nasbench_bert.load(BERT, "trained-as")
    return archs, features(archs, grad=False)


def test_gamma_one_is_zerolm_capacity_and_ties_like_hidden_x_layers(trained_as):
    archs, feat = trained_as
    j = int(np.flatnonzero(np.isclose(GAMMA_GRID, 1.0))[0])
    # expected ZeroLM capacity at gamma 1 is std^2 * max(m, n) per matrix
    want = [sum(m.std ** 2 * max(m.rows, m.cols) for _, m in a.matrices() if m.module == "attn") for a in archs]
    assert np.allclose(feat["attn_gamma"][:, j], want, rtol=1e-12)
    # trained-as attention is four h x h matrices per layer, so attention-only at gamma 1 is h x layers,
    # ties included (float sums in another order must not break them)
    score = gamma_mix(feat["attn_gamma"][:, j], feat["ffn_gamma"][:, j], np.pi / 2)
    hl = [a.hidden * a.num_layers for a in archs]
    assert kendalltau(score, hl).statistic == pytest.approx(1.0)
    assert len(np.unique(score)) == len(np.unique(hl)) == 3  # (128, 4) ties (256, 2)


def test_exponent_fit_on_bert_prefers_depth_over_width(trained_as):
    archs, feat = trained_as
    y = np.array([a.label for a in archs])
    choice = exponent_by_sampling(feat["attn_gamma"], feat["ffn_gamma"], y)
    assert choice.gamma > 1.0 and choice.alpha == float("inf")
    j = int(np.flatnonzero(np.isclose(GAMMA_GRID, choice.gamma))[0])
    score = gamma_mix(feat["attn_gamma"][:, j], feat["ffn_gamma"][:, j], choice.angle)
    lex = [a.num_layers * 1000 + a.hidden for a in archs]
    assert kendalltau(score, lex).statistic == pytest.approx(1.0)  # it *is* depth-then-width


def test_exponent_fit_on_lts_gpt2_is_parameter_like():
    archs = lts.load(GPT2)
    feat = features(archs, grad=False)
    y = np.array([a.label for a in archs])
    choice = exponent_by_sampling(feat["attn_gamma"], feat["ffn_gamma"], y)
    assert choice.gamma <= 0.5 and 0 < choice.angle < np.pi / 2
    j = int(np.flatnonzero(np.isclose(GAMMA_GRID, choice.gamma))[0])
    score = gamma_mix(feat["attn_gamma"][:, j], feat["ffn_gamma"][:, j], choice.angle)
    assert kendalltau(score, [a.nonembedding_params for a in archs]).statistic > 0.9


def test_gamma_is_fitted_on_fit_rows_only_and_reported_in_the_json(tmp_path):
    from zerolm_prune.cli import main

    archs = nasbench_bert.load(BERT, "trained-as")
    result = evaluate(archs, alpha="auto", bootstrap=0, grad=False)
    fit = np.array(result["fit_rows"])
    feat = features(archs, grad=False)
    y = np.array([a.label for a in archs])
    again = exponent_by_sampling(feat["attn_gamma"][fit], feat["ffn_gamma"][fit], y[fit])
    assert result["gamma"]["zerolm-gamma"]["gamma"] == again.gamma
    everything = exponent_by_sampling(feat["attn_gamma"], feat["ffn_gamma"], y)
    assert result["gamma"]["zerolm-gamma"]["tau_fit"] != pytest.approx(everything.tau)  # not fitted on all rows
    assert result["proxies"]["zerolm-gamma"]["kind"] == "proxy"
    assert result["proxies"]["depth-then-width"]["kind"] == "baseline"
    # with a fixed alpha nothing is fitted, so no fitted-gamma proxy is reported
    assert "zerolm-gamma" not in evaluate(archs, alpha=1.0, bootstrap=0, grad=False)["proxies"]
    out = tmp_path / "nb.json"
    assert main(["bench", "nasbench-bert", "--data", str(BERT), "--reading", "trained-as", "--bootstrap", "0",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())  # strict JSON: an attention-only alpha is written as "inf"
    assert data["gamma"]["zerolm-gamma"]["alpha"] == "inf"
