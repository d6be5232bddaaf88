"""``run ... --recover-tokens N``: recover every saved candidate and report before and after.

One call from the driver after its report is written: each candidate checkpoint under
``models/`` is distilled from the full model (merged, so it loads like ``prune``'s output) into
``recovered/<name>/`` and evaluated with the same suite, limit and perplexity passages as before.
The corpus is generated once (cached on disk) and shared by all candidates. Resumable: finished
candidates and evaluations are skipped on rerun.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import write_json, write_text
from ..checkpoint import load_pruned
from ..evaluate import evaluate_model, perplexity
from ..intervals import fmt_mean
from ..report import REPORT_JSON, REPORT_MD, render_report
from .api import recover
from .config import RecoverConfig

RECOVERED_DIR = "recovered"
RESULTS_FILE = "results.json"


def _evaluate(folder: Path, settings: Any, batch_size: Any, device: str | None, progress: bool) -> dict[str, Any]:
    model, tokenizer = load_pruned(folder, device=device)
    res = evaluate_model(model, tokenizer, suite=settings.suite, limit=settings.limit, source=settings.source,
                         data_dir=settings.data_dir, batch_size=batch_size, device=device, progress=progress,
                         desc=f"eval {folder.name} (recovered)")
    out = {"tasks": res["tasks"], "mean": res["mean"]}
    if settings.perplexity:
        out["perplexity"] = perplexity(model, tokenizer, limit=settings.perplexity_limit, source=settings.source,
                                       batch_size=batch_size, device=device, data_dir=settings.data_dir)
    return out


def recover_candidates(out: Path, report: dict[str, Any], *, model: str, tokens: int, settings: Any,
                       loaded: tuple[Any, Any], batch_size: Any = 1, device: str | None = None,
                       progress: bool = True, log=print) -> dict[str, Any]:
    """Recover and re-evaluate every candidate of ``report``; adds ``report["recovered"]`` and
    rewrites report.json / report.md with a before/after table."""
    folder = Path(out) / RECOVERED_DIR
    results_path = folder / RESULTS_FILE
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if results.get("tokens") not in (None, tokens):
        results = {}  # another token budget: its recovered models are stale
    results["tokens"] = tokens
    rows = []
    candidates = [c for c in report["candidates"] if c.get("checkpoint")]
    for i, cand in enumerate(candidates, 1):
        name, src, dst = cand["name"], Path(out) / cand["checkpoint"], folder / cand["name"]
        entry = results.setdefault("candidates", {}).get(name, {})
        if not (dst / "config.json").is_file():
            log(f"[recover {i}/{len(candidates)}] {name}: {tokens} tokens of self-distillation")
            stats = recover(src, model, dst, RecoverConfig(tokens=tokens, merge=True, device=device), overwrite=True,
                            loaded_teacher=loaded, progress=progress, log=log)
            entry = {"stats": {k: v for k, v in stats.items() if k != "config"}}
        if "mean" not in entry:
            entry.update(_evaluate(dst, settings, batch_size, device, progress))
        results["candidates"][name] = entry
        write_json(results_path, results)
        rows.append({"name": name, "before": {"mean": cand.get("mean"), "tasks": cand.get("tasks", {}),
                                              "perplexity": cand.get("perplexity")},
                     "after": {k: entry.get(k) for k in ("mean", "tasks", "perplexity")},
                     "checkpoint": str(Path(RECOVERED_DIR) / name), "stats": entry.get("stats")})
    report["recovered"] = {"tokens": tokens, "candidates": rows}
    write_json(Path(out) / REPORT_JSON, report)
    write_text(Path(out) / REPORT_MD, render_report(report) + render_recovered(report))
    return report


def _ppl(p: Any) -> str:
    value = p.get("token_perplexity") if isinstance(p, dict) else None
    return f"{value:.1f}" if value else "–"


def render_recovered(report: dict[str, Any]) -> str:
    """The before/after section appended to report.md."""
    rec = report.get("recovered") or {}
    full = next((r for r in report["candidates"] if r["name"] == "full"), {})
    lines = ["", f"## After recovery ({rec.get('tokens')} self-generated tokens, `zerolm-prune recover`)", "",
             "| candidate | ppl before | ppl after | mean before | mean after | checkpoint |", "|---|---|---|---|---|---|",
             f"| full | {_ppl(full.get('perplexity'))} | – | {fmt_mean(full.get('mean'), full.get('tasks', {}))} | – | – |"]
    for row in rec.get("candidates", []):
        b, a = row["before"], row["after"]
        lines.append(f"| {row['name']} | {_ppl(b['perplexity'])} | {_ppl(a['perplexity'])} | "
                     f"{fmt_mean(b['mean'], b['tasks'] or {})} | {fmt_mean(a['mean'], a['tasks'] or {})} | "
                     f"`{row['checkpoint']}` |")
    return "\n".join(lines) + "\n"
