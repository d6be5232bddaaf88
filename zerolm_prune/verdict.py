"""What a run shows: each candidate against the full model, claiming only the differences it resolves.

Why: at a small ``--limit`` the accuracy table is mostly noise (the dense model can "lose" to its
pruned subnets), while perplexity over the same passages is usually decisive. A reader should not
have to compare intervals by eye: ``candidate_verdict`` puts a candidate's perplexity ratio (paired
bootstrap) and mean-accuracy difference (unpaired, conservative) next to their 95% intervals and
says whether each is resolved; ``run_verdict`` adds the closing sentence and how many documents per
task would resolve a ``DELTA`` accuracy difference. A difference whose interval holds 1 (ratio) or 0
(difference) is never claimed. The numbers go to report.json, the sentences to report.md.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .intervals import Estimate, documents_to_resolve, excludes, mean_difference, ppl_interval, ppl_ratio

#: the accuracy difference the closing sentence sizes --limit for
DELTA = 0.05


def _estimate(est: Estimate | None, null: float | None = None) -> dict[str, Any] | None:
    """An interval as JSON; with ``null`` also whether it leaves that value out (``resolved``)."""
    if est is None:
        return None
    out = {"value": est.value, "lo": est.lo, "hi": est.hi, "n": est.n}
    return out if null is None else {**out, "resolved": excludes(est, null)}


def _token_ppl(row: Mapping[str, Any]) -> float | None:
    ppl = row.get("perplexity")
    return ppl.get("token_perplexity") if isinstance(ppl, Mapping) else None


def candidate_verdict(row: Mapping[str, Any], full: Mapping[str, Any]) -> dict[str, Any]:
    """A candidate row against the full model's row (both as in report.json).

    ``perplexity``: the candidate's own token perplexity with its bootstrap interval;
    ``perplexity_ratio``: candidate / full on the passages both scored (``n`` passages),
    ``resolved`` when the interval excludes 1; ``accuracy``: the mean-accuracy difference
    (candidate minus full, ``n`` documents per task), ``resolved`` when it excludes 0;
    ``documents_to_resolve``: documents per task for a ``DELTA`` half-width. Each is None where
    the run has no such numbers (old runs without per-passage results give a bare ``ratio``).
    """
    ratio = ppl_ratio(row.get("perplexity"), full.get("perplexity"))
    own, ref = _token_ppl(row), _token_ppl(full)
    acc = mean_difference(row.get("tasks") or {}, full.get("tasks") or {})
    return {
        "perplexity": _estimate(ppl_interval(row.get("perplexity"))),
        "perplexity_ratio": _estimate(ratio, 1.0) or (
            {"value": own / ref, "lo": None, "hi": None, "n": None, "resolved": False} if own and ref else None),
        "accuracy": None if acc is None else {**_estimate(acc, 0.0), "mean": row.get("mean"),
                                              "full_mean": full.get("mean")},
        "documents_to_resolve": documents_to_resolve(row.get("tasks") or {}, full.get("tasks") or {}, DELTA),
    }


def _at_limit(limit: Any) -> str:
    return f"at --limit {limit}" if limit else "with every document"


def verdict_line(name: str, verdict: Mapping[str, Any], limit: Any) -> str:
    """``top1: perplexity 2.81x the full model's [2.62, 3.01] (40 passages); mean accuracy ...``"""
    parts = []
    ratio = verdict.get("perplexity_ratio")
    if ratio is not None:
        text = f"perplexity {ratio['value']:.2f}x the full model's"
        if ratio["lo"] is None:
            text += " (no interval: this run kept no per-passage results)"
        else:
            text += f" [{ratio['lo']:.2f}, {ratio['hi']:.2f}] ({ratio['n']} passages)"
            if not ratio["resolved"]:
                text += ": not resolved"
        parts.append(text)
    acc = verdict.get("accuracy")
    if acc is not None:
        diff, half = acc["value"], (acc["hi"] - acc["lo"]) / 2
        text = (f"mean accuracy {acc['mean']:.3f} vs {acc['full_mean']:.3f}, difference {diff:+.3f} ±{half:.3f}: "
                if acc.get("mean") is not None and acc.get("full_mean") is not None
                else f"mean accuracy difference {diff:+.3f} ±{half:.3f}: ")
        text += (("lower" if diff < 0 else "higher") + " than the full model's" if acc["resolved"]
                 else f"not resolved {_at_limit(limit)}")
        parts.append(text)
    return f"**{name}**: " + ("; ".join(parts) if parts else "nothing measured")


def _who(names: list[str], total: int, what: str) -> str:
    if not names:
        return f"{what} separates no candidate from the full model"
    if len(names) == total:
        return f"{what} separates every candidate from the full model"
    return f"{what} separates {', '.join(names)} from the full model (not the others)"


def run_verdict(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """Per-candidate verdicts (by name) and the closing sentence; None without an evaluated full model.
    Rows still pending (an interrupted run) are left out: half their tasks would skew the summary."""
    rows = [r for r in report.get("candidates") or [] if r.get("done", True)]
    full = next((r for r in rows if r.get("name") == "full"), None)
    others = [r for r in rows if r is not full]
    if full is None or not others or not (full.get("tasks") or _token_ppl(full)):
        return None
    limit = (report.get("evaluation") or {}).get("limit")
    verdicts = {r["name"]: candidate_verdict(r, full) for r in others}
    sentences = []
    judged = {n: v["perplexity_ratio"] for n, v in verdicts.items()
              if (v["perplexity_ratio"] or {}).get("lo") is not None}  # old runs: no interval, no claim
    if judged:
        sentences.append(_who([n for n, r in judged.items() if r["resolved"]], len(judged), "Perplexity"))
    accs = {n: v for n, v in verdicts.items() if v["accuracy"] is not None}
    needed = None
    if accs:
        resolved = [n for n, v in accs.items() if v["accuracy"]["resolved"]]
        text = _who(resolved, len(accs), "accuracy" if sentences else "Accuracy").replace(
            " from the full model", "") + f" {_at_limit(limit)}"
        open_ = [v for n, v in accs.items() if n not in resolved]
        if open_:
            needed = max(v["documents_to_resolve"] for v in open_)
            have = min(v["accuracy"]["n"] for v in open_)
            if needed > have:
                needed = int(math.ceil(needed / 10) * 10)
                text += (f": raise --limit (about {needed} documents per task would resolve a {DELTA:.2f} "
                         "difference of mean accuracy)")
            else:
                text += f": the differences left are smaller than the ±{DELTA:.2f} this run resolves"
        sentences.append(text)
    summary = "; ".join(sentences) + "." if sentences else ""
    return {"candidates": verdicts, "summary": summary, "limit": limit, "delta": DELTA,
            "documents_to_resolve": needed}


def render_verdict(report: Mapping[str, Any]) -> list[str]:
    """The "What this run shows" lines of report.md (empty when there is nothing to compare)."""
    verdict = run_verdict(report)
    if verdict is None:
        return []
    lines = ["## What this run shows", ""]
    lines += [f"- {verdict_line(name, v, verdict['limit'])}" for name, v in verdict["candidates"].items()]
    if verdict["summary"]:
        lines += ["", verdict["summary"]]
    lines += ["", "Each candidate is paired with the full model: perplexity by a 95% paired bootstrap over the "
                  "same passages (sharper than the ppl column, whose intervals can overlap while the ratio is "
                  "resolved), accuracy by a 95% unpaired Agresti-Caffo interval of the difference (conservative: "
                  "per-document answers are not kept). Only differences whose interval excludes 1 (ratio) or 0 "
                  "(difference) are claimed."]
    return lines
