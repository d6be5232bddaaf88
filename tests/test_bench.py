"""Benchmark loaders and reports on the real NAS-Bench-BERT and LTS files (published baselines)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from zerolm_prune.bench import lts, nasbench_bert
from zerolm_prune.bench.arch import Matrix, draw_sq_mass
from zerolm_prune.bench.run import evaluate, features
from zerolm_prune.bench.surrogate import expected_synflow, gradient_scores

DATA = Path("/work/shared/data")
if not DATA.exists():  # CI checkouts keep the data next to the repository
    DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BERT = DATA / "nasbench-bert-flexibert" / "BERT_benchmark.json"
GPT2 = DATA / "lts-gpt2-archai" / "random_GPT2_lm1b.json"
TXL = DATA / "lts-gpt2-archai" / "random_TransXL_lm1b.json"
pytestmark = pytest.mark.skipif(not BERT.exists(), reason="benchmark data not available")


def test_nasbench_bert_readings_build_what_each_code_builds():
    records = nasbench_bert.load_records(BERT)
    assert len(records) == 250
    small = next(r for r in records if r["hparams"]["model_hparam_overrides"]["hidden_size"] == 128)
    code = nasbench_bert.build(small, "proxy-code")
    assert all(b.hidden == 256 for b in code.blocks)  # hidden_size is never passed to the config
    assert all(m.rows == 1024 for b in code.blocks for m in b.matrices[-2:-1] if m.module == "ffn")
    faithful = nasbench_bert.build(small, "faithful")
    trained = nasbench_bert.build(small, "trained-as")
    assert all(b.hidden == 128 for b in faithful.blocks + trained.blocks)
    assert all(b.mixer in ("SDP",) for b in trained.blocks)
    assert all(b.matrices[4].rows == 4 * 128 for b in trained.blocks)  # first FFN dense is 4h wide
    assert code.label == pytest.approx(small["scores"]["glue"])


def test_published_size_baselines_reproduce():
    """The data READMEs' numbers: hidden x layers on this half, non-embedding params on LTS."""
    archs = nasbench_bert.load(BERT, "faithful")
    y = [a.label for a in archs]
    hl = [a.hidden * a.num_layers for a in archs]
    assert kendalltau(hl, y).statistic == pytest.approx(0.749, abs=0.0015)
    assert spearmanr(hl, y).statistic == pytest.approx(0.877, abs=0.0015)
    gpt2 = lts.load(GPT2)
    assert len(gpt2) == 200 and all(a.extra["kind"] == "gpt2" for a in gpt2)
    y = [a.label for a in gpt2]
    assert kendalltau([a.nonembedding_params for a in gpt2], y).statistic == pytest.approx(0.913, abs=0.0015)
    assert spearmanr([a.nonembedding_params for a in gpt2], y).statistic == pytest.approx(0.986, abs=0.0015)
    txl = lts.load(TXL)
    assert len(txl) == 183 and txl[0].extra["kind"] == "transxl"


def test_zerolm_lands_near_the_published_tau_under_the_proxy_code_reading():
    archs = nasbench_bert.load(BERT, "proxy-code")
    result = evaluate(archs, alpha=1.0, bootstrap=0, grad=False)
    z = result["proxies"]["zerolm"]
    assert result["n"] == 250 and z["kind"] == "proxy"
    assert 0.45 < z["kendall"] < 0.60 and 0.68 < z["spearman"] < 0.82  # paper: 0.53 / 0.76 on 500 rows


def test_auto_alpha_reports_only_rows_it_did_not_fit():
    archs = lts.load(GPT2)[:80]
    result = evaluate(archs, alpha="auto", fit_fraction=0.25, bootstrap=20, grad=False)
    assert result["n_fit"] == 20 and result["n"] == 60
    assert result["alpha"]["method"] == "sampling"
    for entry in result["proxies"].values():
        assert entry["ci95"][0] <= entry["kendall"] <= entry["ci95"][1] or entry["kendall"] == 0.0


def test_chi_square_draw_has_the_law_of_real_matrices():
    import torch

    m = Matrix("ffn", 64, 48, 0.02)
    drawn = draw_sq_mass([m] * 2000, np.random.default_rng(0))
    real = [float((torch.randn(64, 48) * 0.02).square().sum()) for _ in range(400)]
    assert drawn.mean() == pytest.approx(np.mean(real), rel=0.01)
    assert drawn.std() == pytest.approx(np.std(real), rel=0.1)


def test_expected_synflow_matches_sampled_synflow():
    archs = nasbench_bert.load(BERT, "faithful")[:3]
    for arch in archs:
        sampled = np.mean([gradient_scores(arch, seed=s)["synflow"] for s in range(3)])
        assert expected_synflow(arch) == pytest.approx(sampled, abs=0.05)  # logs: 5% in the score


def test_features_are_seeded():
    archs = lts.load(TXL)[:5]
    a, b = features(archs, seed=3, grad=False), features(archs, seed=3, grad=False)
    c = features(archs, seed=4, grad=False)
    assert np.array_equal(a["attn"], b["attn"]) and not np.array_equal(a["attn"], c["attn"])


def test_cli_writes_the_json_contract(tmp_path, capsys):
    from zerolm_prune.cli import main

    out = tmp_path / "r.json"
    assert main(["bench", "lts", "--data", str(TXL), "--bootstrap", "20", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["n"] == len(lts.load(TXL)) - data["n_fit"]
    z = data["proxies"]["zerolm"]
    assert z["kind"] == "proxy" and len(z["ci95"]) == 2 and "spearman" in z
    assert data["proxies"]["nonemb-params"]["kind"] == "baseline"
    assert "nonemb-params" in capsys.readouterr().out


def test_cli_rejects_a_file_of_another_schema(tmp_path, capsys):
    from zerolm_prune.cli import main

    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"architectures": "nope"}))
    assert main(["bench", "nasbench-bert", "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NAS-Bench-BERT" in err[0]
    assert main(["bench", "lts", "--data", str(tmp_path / "missing.json")]) == 2
