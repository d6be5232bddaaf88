"""Intervals that let a small --limit report show its own noise."""

from __future__ import annotations

import pytest

from zerolm_prune.intervals import fmt_mean, fmt_score, mean_half_width, wilson


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
