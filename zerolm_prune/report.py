"""The report of a run folder: candidates, their scores and evaluations side by side.

``build_report`` gathers ranked.json and the evaluation results into report.json;
``render_report`` writes the Markdown table a user reads (report.md). Also the names of the files
a run folder holds, so the driver and the report agree on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .evaluate import SCATTER_FILE
from .intervals import fmt_mean, fmt_score, ppl_interval
from .verdict import render_verdict, run_verdict

RUN_FILE = "run.json"
RANKED_FILE = "ranked.json"
FRONT_FILE = "front.png"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"
EVAL_DIR = "eval"
MODELS_DIR = "models"


def build_report(document: dict, results: dict | None, out: Path) -> dict:
    """One JSON with the search, the candidates and their evaluation side by side."""
    evaluated = {c["name"]: c for c in (results or {}).get("candidates", [])}
    rows = []
    for name, entry in [("full", None)] + [(c["name"], c) for c in document["subnets"]]:
        ev = evaluated.get(name, {})
        rows.append({
            "name": name, "kind": "full" if entry is None else entry["kind"],
            "rank": None if entry is None else entry.get("rank"),
            "score": None if entry is None else entry["score"],
            "zerolm": None if entry is None else entry.get("zerolm"),
            "params": document.get("full_params") if entry is None else entry["params"],
            "macs": document.get("full_macs") if entry is None else entry["macs"],
            "note": "" if entry is None else entry.get("note", ""),
            "tasks": ev.get("tasks", {}), "mean": ev.get("mean"), "perplexity": ev.get("perplexity"),
            "fidelity": ev.get("fidelity"),  # encoders: cosine to the full model on real sentences
            "done": bool(ev.get("done")), "checkpoint": str(Path(MODELS_DIR) / name) if entry is not None else None,
        })
    pictures = {k: v for k, v in (("pareto_front", FRONT_FILE),
                                  ("proxy_vs_accuracy", f"{EVAL_DIR}/{SCATTER_FILE}")) if (out / v).is_file()}
    evaluation = {k: (results or {}).get(k) for k in ("suite", "tasks", "limit", "source", "lm_eval_version")}
    verdict = run_verdict({"candidates": rows, "evaluation": evaluation})  # what report.md's section says
    for row in rows:
        row["verdict"] = (verdict or {}).get("candidates", {}).get(row["name"])
    return {
        "model": document["model"], "ranker": document.get("ranker", "zerolm"), "space": document["space"],
        "budget": document["budget"],
        "budget_fraction": document["budget_fraction"], "by": document["by"], "alpha": document["alpha"],
        "alpha_method": document.get("alpha_method"), "order": document["order"], "table": document.get("table"),
        "metrics": (results or {}).get("metrics", {}),
        "evaluation": evaluation, "correlation": (results or {}).get("correlation"), "candidates": rows,
        "verdict": None if verdict is None else {k: v for k, v in verdict.items() if k != "candidates"},
        "pictures": pictures,
    }


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _human(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "–"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def _fmt_ppl(ppl: Any) -> str:
    """``69.7 [66.0, 73.5]`` (bootstrap over passages); the bare value for runs without passage lists."""
    value = ppl.get("token_perplexity") if isinstance(ppl, dict) else None
    if not value:
        return "–"
    est = ppl_interval(ppl)
    return f"{value:.1f}" if est is None else f"{value:.1f} [{est.lo:.1f}, {est.hi:.1f}]"


def render_report(report: dict) -> str:
    """report.md: the table a user reads first, then the pictures."""
    tasks: list[str] = []
    for row in report["candidates"]:
        tasks += [t for t in row["tasks"] if t not in tasks]
    metrics = report.get("metrics") or {}
    full_params = report["candidates"][0]["params"]
    ranker = report.get("ranker", "zerolm")
    head = ["rank", "candidate", f"{ranker} score", "ZeroLM S", "params", "% full", "MACs/tok"]
    # the telling column: perplexity for causal LMs, embedding fidelity for encoders (no perplexity)
    fidelity = any(row.get("fidelity") is not None for row in report["candidates"])
    head += [f"{t} ({metrics.get(t, 'acc')})" for t in tasks] + ["mean", "fidelity" if fidelity else "ppl"]
    lines = [
        f"# zerolm-prune run: {report['model']}",
        "",
        f"Budget {report['budget_fraction']:.3f} of the full model's {report['by']} "
        f"({_human(report['budget'])}); ranker **{ranker}**; ZeroLM alpha {report['alpha']:g} "
        f"({report.get('alpha_method')}); channel order {report['order']}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in report["candidates"]:
        cells = [
            "–" if row["rank"] is None else str(row["rank"] + 1), f"{row['name']}" + ("" if row["done"] else " (pending)"),
            _fmt(row["score"], 4 if abs(row["score"] or 0) < 10 else 1) if row["score"] is not None else "–",
            _fmt(row.get("zerolm"), 1) if row.get("zerolm") is not None else "–", _human(row["params"]),
            f"{100 * row['params'] / full_params:.1f}" if row["params"] and full_params else "–", _human(row["macs"]),
        ]
        for t in tasks:
            m = row["tasks"].get(t, {})
            cells.append(fmt_score(m.get(metrics.get(t, "acc")), m.get("n")))
        last = _fmt(row.get("fidelity")) if fidelity else _fmt_ppl(row.get("perplexity"))
        cells += [fmt_mean(row["mean"], row["tasks"]), last]
        lines.append("| " + " | ".join(cells) + " |")
    if tasks:
        lines += ["", "Accuracies carry 95% Wilson intervals, the mean a 95% normal interval, perplexity a 95% "
                      "bootstrap interval over passages, each for one model alone."]
    shows = render_verdict(report)  # right under the table: which differences this run resolves
    if shows:
        lines += [""] + shows
    lines += ["", "Candidates:", ""]
    for row in report["candidates"][1:]:
        lines.append(f"- **{row['name']}** ({row['kind']}): {row['note']}; checkpoint `{row['checkpoint']}`")
    corr = report.get("correlation")
    if corr and corr.get("kendall_tau") is not None:
        lines += ["", f"{ranker} score vs mean accuracy over the candidates: Kendall tau {corr['kendall_tau']:.3f}, "
                      f"Spearman rho {corr['spearman_rho']:.3f} (n={corr['n']}). With a small --limit these accuracies "
                      "carry wide intervals; read them as a smoke test, not a measurement."]
    for title, key in (("Pareto front", "pareto_front"), ("Proxy vs accuracy", "proxy_vs_accuracy")):
        if key in report["pictures"]:
            lines += ["", f"## {title}", "", f"![{title}]({report['pictures'][key]})"]
    return "\n".join(lines) + "\n"
