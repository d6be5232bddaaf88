"""Intervals that let a small --limit report show its own noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zerolm_prune.intervals import (documents_to_resolve, excludes, fmt_mean, fmt_score, mean_difference,
                                    mean_half_width, passages, ppl_interval, ppl_ratio, wilson)


def _ppl(loglik, tokens, ids=None, task="wiki_passages"):
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


def test_report_shows_intervals():
    from zerolm_prune.driver import render_report

    tasks = {"piqa": {"acc": 0.8, "score": 0.8, "n": 10}}
    row = dict(name="full", kind="full", rank=None, score=None, zerolm=None, params=100, macs=100, note="", tasks=tasks,
               mean=0.8, perplexity={"token_perplexity": 20.0}, fidelity=None, done=True, checkpoint=None)
    report = {"model": "m", "ranker": "selfgen", "budget": 80, "budget_fraction": 0.8, "by": "params", "alpha": 1.0,
              "alpha_method": "default", "order": "selfgen", "metrics": {"piqa": "acc"}, "candidates": [row],
              "pictures": {}}
    text = render_report(report)
    assert "0.800 [0.49, 0.94]" in text and "0.800 ±0.248" in text and "Wilson" in text


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
    at_n = mean_difference({t: {"score": 0.45, "n": n} for t in "abcdef"}, {t: {"score": 0.5, "n": n} for t in "abcdef"})
    assert 100 < n < 160 and at_n.hi - at_n.value == pytest.approx(0.05, rel=0.05)
