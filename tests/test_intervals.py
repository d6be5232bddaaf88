"""Intervals that let a small --limit report show its own noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zerolm_prune.intervals import (documents_to_resolve, excludes, fmt_mean, fmt_score, mean_difference,
                                    mean_half_width, passages, ppl_interval, ppl_ratio, wilson)


def _ppl(loglik, tokens, ids=None, task="wiki_passages"):
    """A perplexity result as ``evaluate.perplexity`` writes it (``ids=None``: lists without doc ids)."""
    out = {"task": task, "passage_loglik": list(loglik), "passage_tokens": list(tokens),
           "token_perplexity": math.exp(-sum(loglik) / sum(tokens))}
    if ids is not None:
        out["passage_ids"] = list(ids)
    return out


def _passages(n=40, seed=1):
    """Per-passage log-likelihoods with a real spread: 3-5 nats per token over 50-150 tokens."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(50, 150, n).astype(float)
    return -tokens * rng.uniform(3.0, 5.0, n), tokens


def test_wilson_matches_the_textbook_values():
    # 8 of 10: Wilson 95% interval [0.490, 0.943] (Newcombe 1998); it stays inside [0, 1] at the edges
    assert wilson(0.8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson(0.0, 10)[0] == 0.0 and wilson(0.0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(0.5, 1000)
    assert hi - lo == pytest.approx(2 * 1.96 * 0.5 / 1000 ** 0.5, rel=0.01)


def test_mean_interval_narrows_with_documents():
    tasks10 = {t: {"score": 0.5, "n": 10} for t in "abcdef"}
    tasks200 = {t: {"score": 0.5, "n": 200} for t in "abcdef"}
    assert mean_half_width(tasks10) == pytest.approx(1.96 * (6 * 0.025) ** 0.5 / 6, rel=1e-3)
    assert mean_half_width(tasks200) < mean_half_width(tasks10) / 4
    assert mean_half_width({"a": {"score": 0.5, "n": None}}) is None
    assert fmt_mean(0.5, tasks10) == "0.500 ±0.127" and fmt_score(0.8, 10) == "0.800 [0.49, 0.94]"


TASKS = ("piqa", "arc_easy", "hellaswag", "winogrande", "boolq", "arc_challenge")


def _row(name, scores, n=10, perplexity=None, kind="top"):
    """A report.json candidate row: the full model when ``kind`` is "full"."""
    tasks = {t: {"acc": p, "score": p, "n": n} for t, p in zip(TASKS, scores)}
    full = kind == "full"
    return dict(name=name, kind=kind, rank=None if full else 0, score=None if full else 1.0, zerolm=None,
                params=100 if full else 80, macs=100, note="", tasks=tasks, mean=sum(scores) / len(scores),
                perplexity=perplexity, fidelity=None, done=True, checkpoint=None if full else f"models/{name}")


def _report(*rows, limit=10):
    return {"model": "m", "ranker": "selfgen", "budget": 80, "budget_fraction": 0.8, "by": "params", "alpha": 1.0,
            "alpha_method": "default", "order": "selfgen", "metrics": {t: "acc" for t in TASKS},
            "evaluation": {"limit": limit}, "candidates": list(rows), "pictures": {}}


def test_report_shows_intervals():
    from zerolm_prune.driver import render_report

    row = _row("full", [0.8], kind="full", perplexity={"token_perplexity": 20.0})
    text = render_report(_report(row))
    assert "0.800 [0.49, 0.94]" in text and "0.800 ±0.248" in text and "Wilson" in text


def _section(text):
    return text[text.index("## What this run shows"):text.index("\nCandidates:")]


def test_report_says_what_is_not_resolved_at_a_small_limit():
    """limit 10: accuracy intervals of +-0.15 overlap (not resolved), perplexity 25% worse on every passage
    is resolved, perplexity that only jitters is not; the closing sentence names what is resolved."""
    from zerolm_prune.report import render_report

    loglik, tokens = _passages(n=20)
    jitter = np.random.default_rng(5).uniform(0.97, 1.03, 20)
    full = _row("full", [0.7, 0.6, 0.4, 0.5, 0.6, 0.3], kind="full", perplexity=_ppl(loglik, tokens, range(20)))
    top1 = _row("top1", [0.6, 0.6, 0.5, 0.5, 0.7, 0.2], perplexity=_ppl(loglik * 1.25, tokens, range(20)))
    noisy = _row("noisy", [0.5, 0.5, 0.3, 0.6, 0.6, 0.4], perplexity=_ppl(loglik * jitter, tokens, range(20)))
    text = render_report(_report(full, top1, noisy))
    section = _section(text)
    top1_line = next(line for line in section.splitlines() if line.startswith("- **top1**"))
    noisy_line = next(line for line in section.splitlines() if line.startswith("- **noisy**"))
    assert "x the full model's [" in top1_line and "(20 passages); mean accuracy 0.517 vs 0.517" in top1_line
    assert top1_line.endswith("not resolved at --limit 10") and top1_line.count("not resolved") == 1
    assert "(20 passages): not resolved; mean accuracy 0.483 vs 0.517, difference -0.033 ±" in noisy_line
    assert ("Perplexity separates top1 from the full model (not the others); accuracy separates no candidate at "
            "--limit 10: raise --limit (about 1") in section and "documents per task would resolve a 0.05" in section
    assert "lower than the full model's" not in section and "higher than" not in section
    # a pending candidate (interrupted run) is not judged; a pending full model leaves no section at all
    pending = dict(top1, name="pending", done=False)
    assert "**pending**" not in _section(render_report(_report(full, top1, pending)))
    assert "What this run shows" not in render_report(_report(dict(full, done=False), top1))
    # the ppl column carries its own bootstrap interval
    est = ppl_interval(full["perplexity"])
    assert f"| {est.value:.1f} [{est.lo:.1f}, {est.hi:.1f}] |" in text


def test_report_claims_an_accuracy_difference_its_interval_resolves():
    from zerolm_prune.report import render_report

    full = _row("full", [0.7] * 6, n=2000, kind="full")
    worse = _row("worse", [0.5] * 6, n=2000)
    section = _section(render_report(_report(full, worse, limit=2000)))
    assert "- **worse**: mean accuracy 0.500 vs 0.700, difference -0.200 ±0.0" in section
    assert "lower than the full model's" in section and "not resolved" not in section
    assert "accuracy separates every candidate at --limit 2000." in section.replace("Accuracy", "accuracy")


def test_old_report_without_passages_renders_without_ppl_interval():
    from zerolm_prune.report import render_report

    full = _row("full", [0.5] * 6, kind="full", perplexity={"token_perplexity": 20.0, "n": 20})
    top1 = _row("top1", [0.4] * 6, perplexity={"token_perplexity": 40.0, "n": 20})
    text = render_report(_report(full, top1))
    assert "| 20.0 |" in text and "| 40.0 |" in text and "[20" not in text
    assert "perplexity 2.00x the full model's (no interval: this run kept no per-passage results)" in text
    assert "Perplexity separates" not in text  # no claim without an interval


def test_build_report_keeps_the_verdict_in_report_json(tmp_path):
    import json

    from zerolm_prune.report import build_report

    loglik, tokens = _passages(n=20)
    document = {"model": "m", "space": "s", "budget": 80, "budget_fraction": 0.8, "by": "params", "alpha": 1.0,
                "order": "prefix", "full_params": 100, "full_macs": 100,
                "subnets": [{"name": "top1", "kind": "top", "rank": 0, "score": 1.0, "params": 80, "macs": 80}]}
    results = {"limit": 10, "candidates": [
        {"name": "full", "done": True, "tasks": _row("f", [0.6] * 6)["tasks"], "mean": 0.6,
         "perplexity": _ppl(loglik, tokens, range(20))},
        {"name": "top1", "done": True, "tasks": _row("t", [0.5] * 6)["tasks"], "mean": 0.5,
         "perplexity": _ppl(loglik * 1.3, tokens, range(20))}]}
    report = json.loads(json.dumps(build_report(document, results, tmp_path)))  # plain JSON all the way
    verdict = report["candidates"][1]["verdict"]
    assert verdict["perplexity_ratio"]["resolved"] and verdict["perplexity_ratio"]["lo"] > 1.0
    assert verdict["perplexity_ratio"]["n"] == 20 and verdict["perplexity"]["n"] == 20
    assert not verdict["accuracy"]["resolved"] and verdict["accuracy"]["lo"] < 0 < verdict["accuracy"]["hi"]
    assert report["candidates"][0]["verdict"] is None and report["verdict"]["documents_to_resolve"] > 10
    assert report["verdict"]["summary"].startswith("Perplexity separates every candidate from the full model")


def test_a_model_against_itself_is_exactly_one():
    ppl = _ppl(*_passages(), ids=range(40))
    assert tuple(ppl_ratio(ppl, ppl)) == (1.0, 1.0, 1.0, 40)


def test_perplexity_interval_brackets_the_value_and_is_seeded():
    ppl = _ppl(*_passages())
    est = ppl_interval(ppl)
    assert est.value == pytest.approx(ppl["token_perplexity"]) and est.lo < est.value < est.hi and est.n == 40
    assert ppl_interval(ppl) == est and ppl_interval(ppl, seed=1) != est
    # more passages from the same distribution: a narrower interval
    wide = ppl_interval(_ppl(*_passages(n=400)))
    assert wide.hi - wide.lo < (est.hi - est.lo) / 2


def test_a_clearly_worse_model_is_separated_and_a_noisy_one_is_not():
    loglik, tokens = _passages()
    full = _ppl(loglik, tokens, ids=range(40))
    worse = _ppl(loglik * 1.10, tokens, ids=range(40))  # 10% more nats on every passage
    est = ppl_ratio(worse, full)
    assert est.value == pytest.approx(worse["token_perplexity"] / full["token_perplexity"])
    assert est.lo > 1.0 and excludes(est, 1.0)
    # zero-mean noise of +-10% per passage: the paired interval holds 1
    noise = np.random.default_rng(7).choice([0.9, 1.1], 40)
    assert not excludes(ppl_ratio(_ppl(loglik * noise, tokens, ids=range(40)), full), 1.0)


def test_ratio_pairs_passages_by_doc_id():
    loglik, tokens = _passages()
    full = _ppl(loglik, tokens, ids=range(40))
    shuffled = np.random.default_rng(3).permutation(40)
    same = _ppl(loglik[shuffled], tokens[shuffled], ids=shuffled)
    assert tuple(ppl_ratio(same, full)) == pytest.approx((1.0, 1.0, 1.0, 40))
    assert ppl_ratio(_ppl(loglik[:10], tokens[:10], ids=range(10)), full).n == 10
    assert ppl_ratio(same, dict(full, task="wikitext")) is None


def test_old_results_without_passages_have_no_interval():
    old = {"token_perplexity": 20.0, "n": 40}
    assert passages(old) is None and ppl_interval(old) is None and ppl_ratio(old, old) is None
    assert ppl_interval(None) is None


def test_mean_difference_is_unpaired_agresti_caffo():
    full = {t: {"score": 0.5, "n": 10} for t in "abcdef"}
    pruned = {t: {"score": 0.4, "n": 10} for t in "abcdef"}
    est = mean_difference(pruned, full)
    # Agresti-Caffo: q = (x+1)/(n+2), var q(1-q)/(n+2) per side, six independent tasks
    q = (4 + 1) / 12
    half = 1.959964 * math.sqrt(6 * (q * (1 - q) / 12 + 0.25 / 12)) / 6
    assert est.value == pytest.approx(-0.1) and est.hi - est.value == pytest.approx(half) and est.n == 10
    assert not excludes(est, 0.0)
    many = {t: {"score": 0.4, "n": 2000} for t in "abcdef"}
    assert excludes(mean_difference(many, {t: {"score": 0.5, "n": 2000} for t in "abcdef"}), 0.0)
    # scores of 0 and 1 keep a variance (the plain normal interval would be [1, 1])
    assert mean_difference({"a": {"score": 1.0, "n": 3}}, {"a": {"score": 1.0, "n": 3}}).hi > 0.3
    assert mean_difference(pruned, {t: {"score": 0.5, "n": None} for t in "abcdef"}) is None


def test_documents_to_resolve_gives_the_half_width_asked_for():
    full = {t: {"score": 0.5, "n": 10} for t in "abcdef"}
    pruned = {t: {"score": 0.45, "n": 10} for t in "abcdef"}
    n = documents_to_resolve(pruned, full, delta=0.05)
    at_n = mean_difference({t: {"score": 0.45, "n": n} for t in "abcdef"},
                           {t: {"score": 0.5, "n": n} for t in "abcdef"})
    assert 100 < n < 160 and at_n.hi - at_n.value == pytest.approx(0.05, rel=0.05)
