"""The driver end to end on the real SmolLM2: candidates, checkpoints, report, resume."""

from __future__ import annotations

import json

import pytest

from zerolm_prune.driver import prune_to_budget
from zerolm_prune.errors import UserError


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, smollm2):
    out = tmp_path_factory.mktemp("run")
    report = prune_to_budget("smollm2-135m", "smollm2-135m", 0.8, out=out, top_k=2, evaluate=False, ranker="zerolm",
                             loaded=smollm2, progress=False, log=lambda *a: None)
    return out, report


def test_candidates_and_baselines_within_budget(saved_run):
    out, _ = saved_run
    doc = json.loads((out / "ranked.json").read_text())
    names = [c["name"] for c in doc["subnets"]]
    assert names[:2] == ["top1", "top2"] and {"lonas-heuristic", "uniform", "random"} <= set(names)
    proxy = [c for c in doc["subnets"] if c["kind"] == "proxy"]
    assert all(c["params"] <= doc["budget"] for c in proxy)
    assert proxy[0]["score"] >= proxy[1]["score"]
    by_name = {c["name"]: c for c in doc["subnets"]}
    # the exact search beats every baseline that fits the same budget, on its own score
    for name in ("uniform", "random"):
        assert by_name[name]["params"] <= doc["budget"]
        assert by_name["top1"]["score"] >= by_name[name]["score"]
    assert by_name["random"]["params"] >= 0.95 * doc["budget"]
    uniform = by_name["uniform"]["subnet"]
    assert len(set(uniform["heads"])) == 1 and len(set(uniform["ffn"])) == 1
    assert doc["full_params"] == 134_515_008
    assert (out / "front.png").stat().st_size > 10_000


def test_saved_checkpoints_load_with_the_promised_size(saved_run):
    from zerolm_prune.checkpoint import load_pruned

    out, _ = saved_run
    doc = json.loads((out / "ranked.json").read_text())
    entry = doc["subnets"][0]
    model, tok = load_pruned(out / "models" / entry["name"])
    assert sum(p.numel() for p in model.parameters()) == entry["params"]
    assert tok is not None
    meta = json.loads((out / "models" / entry["name"] / "config.json").read_text())["zerolm_prune"]
    assert meta["order"] == doc["order"] == "selfgen"  # the measured-best unit order is the LLaMA default
    card = (out / "models" / entry["name"] / "README.md").read_text()
    assert "zerolm-prune" in card and "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card


def test_rerun_reuses_and_other_settings_refused(saved_run, smollm2):
    out, _ = saved_run
    ranked = out / "ranked.json"
    weights = out / "models" / "top1" / "model.safetensors"
    before = (ranked.stat().st_mtime_ns, weights.stat().st_mtime_ns)
    prune_to_budget("smollm2-135m", "smollm2-135m", 0.8, out=out, top_k=2, evaluate=False, ranker="zerolm",
                    loaded=smollm2, progress=False, log=lambda *a: None)
    assert (ranked.stat().st_mtime_ns, weights.stat().st_mtime_ns) == before
    with pytest.raises(UserError, match="other settings.*budget"):
        prune_to_budget("smollm2-135m", "smollm2-135m", 0.7, out=out, top_k=2, evaluate=False, ranker="zerolm",
                        loaded=smollm2, progress=False, log=lambda *a: None)


def test_unknown_ranker_is_a_user_error(tmp_path, smollm2):
    with pytest.raises(UserError, match="unknown ranker 'nope'"):
        prune_to_budget("smollm2-135m", "smollm2-135m", 0.8, out=tmp_path, ranker="nope", loaded=smollm2,
                        evaluate=False, log=lambda *a: None)


def test_evaluated_report_has_every_candidate(tmp_path, smollm2):
    """The default ranker (two-stage selfgen) end to end: re-ranked shortlist, lm-eval, report."""
    report = prune_to_budget("smollm2-135m", "smollm2-135m", 0.8, out=tmp_path, top_k=2, suite="piqa", limit=2,
                             perplexity_limit=2, save=False, loaded=smollm2, progress=False, log=lambda *a: None)
    rows = {r["name"]: r for r in report["candidates"]}
    assert set(rows) == {"full", "top1", "top2", "lonas-heuristic", "uniform", "random"}
    from zerolm_prune.rankers import DEFAULT_RANKER

    assert report["ranker"] == DEFAULT_RANKER and report["order"] == "selfgen"
    # the second stage decides the order of the shortlist, and every candidate is scored on its scale
    assert rows["top1"]["score"] >= rows["top2"]["score"]
    assert "re-ranked" in rows["top1"]["note"] and all(r["zerolm"] for n, r in rows.items() if n != "full")
    for row in rows.values():
        assert row["done"] and 0.0 <= row["tasks"]["piqa"]["acc"] <= 1.0
        assert row["perplexity"]["token_perplexity"] > 1.0
    # pruning hurts: the full model has the lowest perplexity of all
    assert rows["full"]["perplexity"]["token_perplexity"] == min(r["perplexity"]["token_perplexity"] for r in rows.values())
    text = (tmp_path / "report.md").read_text()
    assert "| 1 | top1 |" in text and "random" in text and "![Pareto front](front.png)" in text
    assert "![Proxy vs accuracy](eval/proxy_vs_accuracy.png)" in text
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["candidates"][0]["name"] == "full"
    # what the run shows: every candidate against the full model on the same 2 passages and at --limit 2
    section = text[text.index("## What this run shows"):text.index("\nCandidates:")]
    assert "- **top1**: perplexity " in section and "x the full model's [" in section and "(2 passages)" in section
    assert "at --limit 2" in section and "documents per task would resolve a 0.05" in section
    assert saved["candidates"][1]["verdict"]["perplexity_ratio"]["n"] == 2 and saved["verdict"]["limit"] == 2
    full_ppl = rows["full"]["perplexity"]
    assert len(full_ppl["passage_loglik"]) == len(full_ppl["passage_tokens"]) == 2


def test_encoder_run_end_to_end_reports_fidelity(tmp_path):
    """`run` on a BERT-family model (real MiniLM-L6): selfgen falls back to its encoder stages,
    checkpoints load back at their promised size, and the report's telling column is the
    embedding fidelity (cosine to the full model on real sentences), not an empty perplexity."""
    from transformers import AutoModel

    from zerolm_prune.cli import main

    out = tmp_path / "run"
    assert main(["run", "minilm-l6", "--space", "minilm-l6", "--budget", "0.8", "--top-k", "2", "--limit", "16",
                 "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    rows = {r["name"]: r for r in report["candidates"]}
    assert rows["full"]["fidelity"] == pytest.approx(1.0, abs=1e-5)
    for name in ("top1", "top2"):
        assert 0.0 < rows[name]["fidelity"] < 0.999 and rows[name]["params"] <= 0.8 * rows["full"]["params"]
        model = AutoModel.from_pretrained(out / "models" / name, trust_remote_code=True)  # our own modeling code
        assert sum(p.numel() for p in model.parameters()) == rows[name]["params"]
    table = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("|")]
    assert table[0].rstrip(" |").endswith("| mean | fidelity") and "ppl" not in table[0]
    full_row = next(line for line in table if line.startswith("| – | full |"))
    assert full_row.rstrip(" |").endswith("1.000")


def test_selfgen_kl_on_an_encoder_points_to_the_ranker_that_works(tmp_path, capsys):
    from zerolm_prune.cli import main

    out = tmp_path / "ranked.json"
    assert main(["rank", "minilm-l6", "--space", "minilm-l6", "--budget", "0.8", "--ranker", "selfgen-kl",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "need a causal LM" in errors[0] and "default 'selfgen'" in errors[0], err
    assert "Traceback" not in err and not out.exists()
